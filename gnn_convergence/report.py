"""Rewrite a study's records, figure pages and report from its storage.

Usage::

    python -m gnn_convergence.report STORAGE_URL STUDY_NAME [--out DIR]

Thresholds and the robust rule come from the study's own attributes (written by the sweeper);
``--converged`` and ``--failed`` override the thresholds. Without ``--out`` the pages go to the
study's own folder (the sweeper's, where its trial folders lie), and only when that folder holds
this study's records here (its analysis.md); otherwise pass ``--out``. A PostgreSQL password
goes in PGPASSWORD or ~/.pgpass, never in the URL. Prints the path of ``report.html``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna

from gnn_convergence.outcome import Thresholds
from gnn_convergence.study.pages import (
    holds_records,
    load_study,
    study_folder,
    study_params,
    study_rule,
    study_thresholds,
    write_study,
)
from gnn_convergence.study.space import fingerprint
from gnn_convergence.study.storage import reading
from gnn_convergence.study.vocabulary import SPACE_FINGERPRINT

KEY = "STORAGE_URL"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: rewrite the records, the figure pages and ``report.html``."""
    parser = argparse.ArgumentParser(
        prog="python -m gnn_convergence.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("storage", metavar=KEY, help="e.g. sqlite:///outputs/studies.db")
    parser.add_argument("study_name", metavar="STUDY_NAME")
    parser.add_argument("--out", type=Path, help="folder (default: the study's own folder)")
    parser.add_argument("--converged", type=float, help="converged above (default: study's)")
    parser.add_argument("--failed", type=float, help="failed below (default: study's)")
    args = parser.parse_args(argv)
    try:
        study = load_study(args.storage, args.study_name, KEY)
        with reading(args.storage, KEY):  # the pages read every trial
            print(report(study, args))
    except ValueError as err:  # StorageError too
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def report(study: optuna.Study, args: argparse.Namespace) -> Path:
    """Write the study's pages where ``args`` say; the path of report.html."""
    params = study_params(study)
    stored = study_thresholds(study)
    thresholds = Thresholds(
        args.converged if args.converged is not None else stored.converged,
        args.failed if args.failed is not None else stored.failed,
    )
    if fingerprint(params) != study.user_attrs.get(SPACE_FINGERPRINT):
        print(
            "warning: space fingerprint differs: the protocol may ignore trials", file=sys.stderr
        )
    folder = args.out or own_folder(study)
    return write_study(study, params, folder, thresholds, study_rule(study))


def own_folder(study: optuna.Study) -> Path:
    """The study's folder, when it holds this study's records here.

    Raises:
        ValueError: The folder is unknown, or holds no records of this study: pass --out.
    """
    folder = study_folder(study)
    if folder is None:
        raise ValueError(
            f"study {study.study_name} records no folder of its own (its trial folders are not "
            "in one folder): pass --out DIR"
        )
    if not holds_records(folder, study):
        raise ValueError(
            f"the folder of study {study.study_name}, {folder}, holds no records of it here "
            "(no analysis.md of this study): pass --out DIR"
        )
    return folder


if __name__ == "__main__":
    sys.exit(main())
