"""Rewrite a study's records, figure pages and report from its storage.

Usage::

    python -m gnn_convergence.report STORAGE_URL STUDY_NAME [--out DIR]

Thresholds and the robust rule come from the study's own attributes (written by the sweeper);
``--converged`` and ``--failed`` override the thresholds. Prints the path of ``report.html``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gnn_convergence.outcome import Thresholds
from gnn_convergence.study.pages import (
    default_folder,
    load_study,
    study_params,
    study_rule,
    study_thresholds,
    write_study,
)
from gnn_convergence.study.space import fingerprint


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: rewrite the records, the figure pages and ``report.html``."""
    parser = argparse.ArgumentParser(
        prog="python -m gnn_convergence.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("storage", help="storage URL, e.g. sqlite:///outputs/studies.db")
    parser.add_argument("study_name")
    parser.add_argument("--out", type=Path, help="folder (default: the study's own folder)")
    parser.add_argument("--converged", type=float, help="converged above (default: study's)")
    parser.add_argument("--failed", type=float, help="failed below (default: study's)")
    args = parser.parse_args(argv)
    try:
        study = load_study(args.storage, args.study_name)
        params = study_params(study)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stored = study_thresholds(study)
    thresholds = Thresholds(
        args.converged if args.converged is not None else stored.converged,
        args.failed if args.failed is not None else stored.failed,
    )
    if fingerprint(params) != study.user_attrs.get("space_fingerprint"):
        print(
            "warning: space fingerprint differs: the protocol may ignore trials", file=sys.stderr
        )
    folder = args.out or default_folder(study)
    print(write_study(study, params, folder, thresholds, study_rule(study)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
