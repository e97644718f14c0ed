"""Compare the answers of several studies on one page.

Usage::

    python -m gnn_convergence.compare --storage STORAGE_URL STUDY [STUDY ...] [--out FILE]
    python -m gnn_convergence.compare STORAGE_URL::STUDY [STORAGE_URL::STUDY ...] [--out FILE]

A STUDY is a name in ``--storage``, or ``URL::NAME`` for a study in another storage (the two
forms mix). The studies must sweep the same parameter keys; their grids may differ. Writes the
page (default ``compare.html`` here) with each study's recommended config, its runs, rate and
bound at the study's own credibility, verdict and runner-up; each parameter's operating range on
shared axes; regions; the hard datasets' share; and the simulation keys that differ (read from
each study folder's multirun.yaml). The same tables go to ``compare.md`` and ``compare.csv``
beside the page. A PostgreSQL password goes in PGPASSWORD or ~/.pgpass, never in the URL.
Prints the page's path.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gnn_convergence.study.comparison import load_studies, parse_entries, write_comparison

KEY = "--storage"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the comparison page and its tables; errors are one line, exit 2."""
    parser = argparse.ArgumentParser(
        prog="python -m gnn_convergence.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("studies", nargs="*", metavar="STUDY", help="NAME or URL::NAME")
    parser.add_argument(
        KEY,
        metavar="STORAGE_URL",
        help="storage of plain names, e.g. sqlite:///outputs/studies.db",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("compare.html"), metavar="FILE",
        help="page to write (default: compare.html); FILE.md and FILE.csv go beside it",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        studies = load_studies(parse_entries(args.studies, args.storage), KEY)
        print(write_comparison(studies, args.out))
    except ValueError as err:  # StorageError too
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
