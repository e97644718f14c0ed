"""The measured runs of benchmarks/calibration/grid.sh as one CSV: one row per run.

    python benchmarks/calibration/cells.py OUT_DIR [--csv benchmarks/calibration/runs.csv]

OUT_DIR is grid.sh's folder: its grids (lr_W, lr, coeff_W_L1, batch_size) hold one Hydra job
folder per cell, each with .hydra/config.yaml (the cell's values) and metrics.json (``seeds``:
one record per run with its seed, data_seed, connectivity_R2 (null: diverged) and its
dataset's statistics). A job without metrics.json (still running, or failed) is skipped and
named on stderr. The CSV's first line is a comment with the command that wrote it.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from pathlib import Path

from omegaconf import OmegaConf

KEYS = {  # column: config key
    "lr_W": "training.learning_rate_W_start",
    "lr": "training.learning_rate_start",
    "coeff_W_L1": "training.coeff_W_L1",
    "batch_size": "training.batch_size",
}
RUN_COLUMNS = ("data_seed", "seed", "connectivity_R2", "effective_rank_99", "spectral_radius")
GRIDS = ("lr_W", "lr", "coeff_W_L1", "batch_size")
DEFAULT_CSV = Path(__file__).with_name("runs.csv")


def job_rows(folder: Path) -> list[dict]:
    """One row per run of the job in ``folder`` (none when it has no metrics.json)."""
    metrics = folder / "metrics.json"
    if not metrics.exists():
        print(f"skipped {folder}: no metrics.json", file=sys.stderr)
        return []
    config = OmegaConf.load(folder / ".hydra" / "config.yaml")
    cell = {column: OmegaConf.select(config, key) for column, key in KEYS.items()}
    runs = json.loads(metrics.read_text())["seeds"]
    return [cell | {column: run.get(column) for column in RUN_COLUMNS} for run in runs]


def grid_rows(out_dir: Path) -> list[dict]:
    """Every run of every grid, grid by grid, job by job (a cell measured twice, e.g. the
    column's lr_W 2e-3 and a slice's, keeps both: each is a measurement)."""
    rows = []
    for grid in GRIDS:
        jobs = sorted((out_dir / grid).glob("*/.hydra/config.yaml"), key=_job_number)
        for config in jobs:
            rows += [{"grid": grid} | row for row in job_rows(config.parent.parent)]
    return rows


def _job_number(config: Path) -> int:
    name = config.parent.parent.name
    return int(name) if name.isdigit() else 10**9


def write_csv(rows: list[dict], path: Path, command: str) -> None:
    columns = ["grid", *KEYS, *RUN_COLUMNS]
    with path.open("w", newline="") as f:
        f.write(f"# {command}\n")
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows({k: ("" if row[k] is None else row[k]) for k in columns} for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="grid.sh's OUT_DIR")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    args = parser.parse_args()
    rows = grid_rows(args.out_dir)
    write_csv(
        rows, args.csv, "python " + shlex.join(["benchmarks/calibration/cells.py", *sys.argv[1:]])
    )
    print(f"{len(rows)} runs written to {args.csv}")


if __name__ == "__main__":
    main()
