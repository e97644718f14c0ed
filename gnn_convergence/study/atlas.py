"""The atlas: the ground truth a study's map is judged against.

A full lr_W x lr grid (other parameters at their start values), run by Hydra's basic sweeper
with the same fresh datasets in every cell (``conf/sweeps/atlas.yaml``), read back into a table
of cells and drawn as a heat map of the convergence rate per cell; a named study's trials, walk,
robust configs and boundaries are drawn over it.

Usage::

    python -m gnn_convergence.train -m sweeps=atlas
    python -m gnn_convergence.study.atlas GRID_FOLDER [--study NAME --storage URL] [--out FILE]

A job folder of the grid (``GRID_FOLDER/<n>/``) holds ``.hydra/config.yaml`` (its cell) and, once
its job has finished, ``metrics.json`` (one record per run). A job without metrics.json (it
raised, was killed or still runs) is a failed job of its cell and adds no run; so is a job whose
metrics.json cannot be read (truncated, or a run without its data_seed). A job whose config.yaml
cannot be read, or sets no lr_W or lr, is in no cell. Damaged files are named in a warning and on
the page. Writes
``atlas.html`` and ``atlas.csv`` (the cell table) into the grid folder, or the page at ``--out``
and the table beside it, and prints the page's path.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from optuna.distributions import FloatDistribution

from gnn_convergence.artifacts import METRICS_JSON
from gnn_convergence.figures import write_plotlyjs
from gnn_convergence.files import write_atomic
from gnn_convergence.outcome import CONVERGED, Thresholds, classify
from gnn_convergence.study import maps
from gnn_convergence.study.formats import MISSING, number_text, short_text
from gnn_convergence.study.pages import (
    load_study,
    page,
    study_params,
    study_rule,
    study_thresholds,
)
from gnn_convergence.study.records import trials_frame
from gnn_convergence.study.replay import DEFAULT_THRESHOLDS, ProtocolState, protocol_state
from gnn_convergence.study.space import Param, value_text
from gnn_convergence.study.vocabulary import finite

X_KEY = "training.learning_rate_W_start"
Y_KEY = "training.learning_rate_start"
ATLAS_HTML = "atlas.html"
COLUMNS = ("lr_W", "lr", "runs", "converged", "rate", "mean_R2", "failed_jobs")
CONFIG = Path(".hydra", "config.yaml")
COLORSCALE = "Blues"  # white at rate 0, dark blue at 1: the study's class colours stay legible
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridJob:
    """One job of the grid: folder, cell (lr_W, lr), and per run its connectivity_R2 (None:
    diverged) and dataset; ``values`` is None for a failed job (no readable metrics.json), and
    ``cell`` None for a job whose config cannot be read; ``error`` names the damaged file."""

    folder: Path
    cell: tuple[float, float] | None
    values: tuple[float | None, ...] | None
    data_seeds: tuple[int, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class StudyMap:
    """A sweeper study as drawn over the atlas: its trial table, protocol state, thresholds and
    its lr_W and lr parameters."""

    name: str
    frame: pd.DataFrame
    state: ProtocolState
    thresholds: Thresholds
    x: Param
    y: Param


def read_jobs(grid: str | Path) -> list[GridJob]:
    """Every job folder directly under ``grid`` (one holding .hydra/config.yaml), in job order.

    Raises:
        ValueError: When there is none, or no job's config can be read.
    """
    configs = sorted(Path(grid).glob("*/.hydra/config.yaml"), key=_job_order)
    if not configs:
        raise ValueError(f"no job folders (<n>/.hydra/config.yaml) in {grid}")
    jobs = [_job(path.parent.parent) for path in configs]
    if all(j.cell is None for j in jobs):
        raise ValueError(
            f"no job folder in {grid} has a readable {CONFIG.as_posix()} setting {X_KEY} and "
            f"{Y_KEY}: is it the grid's sweep folder (hydra.sweep.dir)?"
        )
    return jobs


def _job_order(config: Path) -> tuple[int, int, str]:
    name = config.parent.parent.name
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _job(folder: Path) -> GridJob:
    """The job in ``folder``; a damaged config.yaml or metrics.json is warned about, not raised."""
    config, metrics = folder / CONFIG, folder / METRICS_JSON
    try:
        cell = _cell(config)
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException) as err:
        log.warning(
            "atlas: job %s is in no cell: %s: %s; fix or remove the file", folder, config, err
        )
        return GridJob(folder, None, None, error=f"{config.relative_to(folder.parent)}: {err}")
    if not metrics.exists():
        return GridJob(folder, cell, None)
    try:
        values, data_seeds = _runs(metrics)
    except (OSError, ValueError) as err:
        log.warning("atlas: job %s counted as failed: %s: %s; rerun the job", folder, metrics, err)
        return GridJob(folder, cell, None, error=f"{metrics.relative_to(folder.parent)}: {err}")
    return GridJob(folder, cell, values, data_seeds)


def _cell(config: Path) -> tuple[float, float]:
    """(lr_W, lr) that a job's config.yaml sets.

    Raises:
        ValueError: When it sets either not, or not to a number.
    """
    cfg = OmegaConf.load(config)
    x, y = (OmegaConf.select(cfg, key, default=None) for key in (X_KEY, Y_KEY))
    if x is None or y is None:
        raise ValueError(f"it sets no {X_KEY} or {Y_KEY}")
    return float(x), float(y)


def _runs(metrics: Path) -> tuple[tuple[float | None, ...], tuple[int, ...]]:
    """connectivity_R2 and data_seed of each run recorded in a job's metrics.json.

    Raises:
        ValueError: For invalid (e.g. truncated) JSON, or a run record without its data_seed.
    """
    data = json.loads(metrics.read_text())
    runs = data.get("seeds") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ValueError("no list of run records under 'seeds'")
    if not all(isinstance(r.get("data_seed"), int) for r in runs):
        raise ValueError("a run record has no integer data_seed")
    return tuple(finite(r.get("connectivity_R2")) for r in runs), tuple(
        r["data_seed"] for r in runs
    )


def cell_table(
    jobs: Iterable[GridJob], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> pd.DataFrame:
    """One row per cell, by lr_W then lr: runs, converged runs (connectivity_R2 above
    ``thresholds.converged``), their share ``rate`` (NaN without runs), ``mean_R2`` over the
    runs with a value, and ``failed_jobs`` (jobs without a readable metrics.json); jobs in no
    cell are left out."""
    cells: dict[tuple[float, float], list[GridJob]] = {}
    for job in jobs:
        if job.cell is not None:
            cells.setdefault(job.cell, []).append(job)
    rows = [_cell_row(cell, members, thresholds) for cell, members in sorted(cells.items())]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _cell_row(
    cell: tuple[float, float], jobs: Sequence[GridJob], thresholds: Thresholds
) -> dict[str, float]:
    values = [v for job in jobs if job.values is not None for v in job.values]
    finite_values = [v for v in values if v is not None]
    converged = sum(classify(v, thresholds) == CONVERGED for v in values)
    return {
        "lr_W": cell[0],
        "lr": cell[1],
        "runs": len(values),
        "converged": converged,
        "rate": converged / len(values) if values else math.nan,
        "mean_R2": float(np.mean(finite_values)) if finite_values else math.nan,
        "failed_jobs": sum(job.values is None for job in jobs),
    }


def read_study(storage: str, name: str) -> StudyMap:
    """A study written by the sweeper, with its own thresholds and robust rule.

    Raises:
        ValueError: For a missing storage or study, or a study that sweeps not both lr_W and lr.
    """
    study = load_study(storage, name)
    params, thresholds, rule = study_params(study), study_thresholds(study), study_rule(study)
    by_name = {p.name: p for p in params}
    missing = [key for key in (X_KEY, Y_KEY) if key not in by_name]
    if missing:
        raise ValueError(f"study {name} does not sweep {', '.join(missing)}")
    state = protocol_state(study.get_trials(deepcopy=False), params, thresholds, rule)
    frame = trials_frame(study, params, thresholds, rule)
    return StudyMap(name, frame, state, thresholds, by_name[X_KEY], by_name[Y_KEY])


def grid_param(key: str, values: Iterable[float]) -> Param:
    """The log grid of the distinct values (what :func:`maps.axis` lays out)."""
    grid = tuple(sorted({float(v) for v in values}))
    return Param(key, grid, True, FloatDistribution(grid[0], grid[-1], log=True))


def heatmap(table: pd.DataFrame, x: Param, y: Param) -> go.Heatmap:
    """The rate of each cell (rows: y values, columns: x values; NaN where no run), with
    ``converged/runs`` written in it and the mean connectivity_R2 on hover."""
    cells = {(r.lr_W, r.lr): r for r in table.itertuples(index=False)}
    rows = [[cells.get((a, b)) for a in x.values] for b in y.values]
    return go.Heatmap(
        x=list(x.values),
        y=list(y.values),
        name="atlas",
        zmin=0,
        zmax=1,
        z=[[math.nan if c is None else c.rate for c in row] for row in rows],
        text=[[_cell_text(c) for c in row] for row in rows],
        texttemplate="%{text}",
        textfont={"size": 14},
        hoverinfo="text",
        hovertext=[[_cell_hover(c) for c in row] for row in rows],
        colorscale=COLORSCALE,
        colorbar={"title": {"text": "convergence rate", "side": "right"}, "thickness": 15},
    )


def _cell_text(cell: tuple | None) -> str:
    if cell is None:
        return ""
    failed = f"<br>{cell.failed_jobs} failed job(s)" if cell.failed_jobs else ""
    return f"{cell.converged}/{cell.runs}{failed}"


def _cell_hover(cell: tuple | None) -> str:
    if cell is None:
        return "not in the grid"
    return (
        f"atlas cell lr_W={value_text(cell.lr_W)}, lr={value_text(cell.lr)}: {cell.converged} of "
        f"{cell.runs} runs converged, mean connectivity_R2 {number_text(cell.mean_R2)}"
        + (f", {cell.failed_jobs} failed job(s)" if cell.failed_jobs else "")
    )


def walk_trace(study: StudyMap) -> go.Scatter:
    """A line from each trial's parent config to its config, where they differ in lr_W or lr."""
    state, x, y = study.state, study.x.name, study.y.name
    links, texts = [], []
    for visit in state.visits:
        parent = state.config_of(visit.parent)
        if parent is None:
            continue
        a, b = state.values(parent), state.values(visit.config)
        if (a[x], a[y]) != (b[x], b[y]):
            links.append((a[x], a[y], b[x], b[y]))
            texts.append(f"trial {visit.number} ({visit.role}) from trial {visit.parent}")
    return maps.segment_trace("walk (trial from parent)", links, texts, color="#424242", width=2)


def atlas_figure(
    table: pd.DataFrame, thresholds: Thresholds = DEFAULT_THRESHOLDS, study: StudyMap | None = None
) -> go.Figure:
    """The heat map on log axes at the grid values; with a study, its lr_W x lr map
    (:func:`maps.pair_figure`: trials, robust configs, probe and estimated boundaries) and its
    walk over it, trials at any value of the other parameters."""
    x, y = grid_param(X_KEY, table["lr_W"]), grid_param(Y_KEY, table["lr"])
    title = f"Atlas: converged runs per cell (connectivity_R2 > {thresholds.converged:g})"
    if study is None:
        fig = go.Figure(heatmap(table, x, y))
        fig.update_layout(height=650)
    else:
        pair = maps.pair_figure(study.frame, study.state, study.x, study.y, study.thresholds)
        fig = go.Figure([heatmap(table, x, y), walk_trace(study), *pair.data], pair.layout)
        fig.update_layout(legend={"x": 1.12})
        title += f", study {study.name} over it (trials at any value of the other parameters)"
    fig.update_layout(title=title, xaxis=maps.axis(x), yaxis=maps.axis(y))
    return fig


def write_atlas(
    grid: str | Path, out: str | Path | None = None, study: StudyMap | None = None
) -> Path:
    """Write the atlas page (default ``grid/atlas.html``) and the cell table beside it (same
    name, ``.csv``); the study's thresholds count converged runs when a study is given. Returns
    the page's path."""
    grid = Path(grid)
    out = Path(out) if out is not None else grid / ATLAS_HTML
    thresholds = study.thresholds if study is not None else DEFAULT_THRESHOLDS
    jobs = read_jobs(grid)
    table = cell_table(jobs, thresholds)
    write_atomic(out.with_suffix(".csv"), table.to_csv(index=False))
    write_plotlyjs(out.parent)
    figure = atlas_figure(table, thresholds, study)
    write_atomic(
        out, page(f"Atlas of {grid.name}", [figure], _grid_summary_html(jobs, table, out))
    )
    return out


def _grid_summary_html(jobs: Sequence[GridJob], table: pd.DataFrame, out: Path) -> str:
    failed = [j for j in jobs if j.cell is not None and j.values is None]
    listed = "".join(
        f"; {j.folder.name} (lr_W={value_text(j.cell[0])}, lr={value_text(j.cell[1])}"
        + (f"; {j.error})" if j.error else ")")
        for j in failed
    )
    lost = [j for j in jobs if j.cell is None]
    datasets = ", ".join(map(str, sorted({d for j in jobs for d in j.data_seeds}))) or "none"
    text = (
        f"{len(jobs)} jobs in {len(table)} cells, {int(table['runs'].sum())} runs, "
        f"{int(table['converged'].sum())} converged; datasets (simulation seeds): {datasets}. "
        f"Failed jobs (no readable {METRICS_JSON}): {len(failed)}{listed}."
        + (f" Jobs in no cell: {len(lost)}; {'; '.join(j.error for j in lost)}." if lost else "")
    )
    csv = out.with_suffix(".csv").name
    cells = table.to_html(index=False, na_rep=MISSING, float_format=short_text)
    link = f'<a href="{escape(quote(csv))}">{escape(csv)}</a>'
    return f"<p>{escape(text)} Cell table: {link}.</p>\n{cells}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the atlas page and table of a grid folder."""
    parser = argparse.ArgumentParser(
        prog="python -m gnn_convergence.study.atlas",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("grid", type=Path, help="the grid's sweep folder (hydra.sweep.dir)")
    parser.add_argument("--study", help="name of a study to draw over the atlas")
    parser.add_argument(
        "--storage", help="the study's storage URL, e.g. sqlite:///outputs/studies.db"
    )
    parser.add_argument("--out", type=Path, help=f"page to write (default: GRID/{ATLAS_HTML})")
    args = parser.parse_args(argv)
    if (args.study is None) != (args.storage is None):
        parser.error("--study and --storage go together")
    try:
        study = read_study(args.storage, args.study) if args.study else None
        print(write_atlas(args.grid, args.out, study))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
