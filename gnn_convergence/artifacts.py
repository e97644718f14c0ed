"""The run folder: analysis.log, metrics.json, weights.pt and the run figure; files only.

Each file is written atomically (files.py): a reader such as the atlas never sees half a file.

The run figure loads plotly.js from a plotly.min.js written once per folder tree: the run
folder of a single run, the study folder for its trial folders (figures.write_plotlyjs).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from gnn_convergence import figures
from gnn_convergence.files import atomic, write_atomic
from gnn_convergence.results import METRICS, Recovery, RunResult

ANALYSIS_LOG = "analysis.log"
METRICS_JSON = "metrics.json"
WEIGHTS = "weights.pt"
FIGURE = "run.html"


def analysis_lines(result: RunResult) -> list[str]:
    """`key: value` lines: data statistics, time, then per seed and min/mean of each metric,
    then the bare keys (test_R2, ...) of the seed with the lowest connectivity_R2."""
    lines = []
    for seed, stats in result.data.items():
        prefix = "" if len(result.data) == 1 else f"data_seed_{seed}."
        lines += [f"{prefix}{key}: {_fmt(value)}" for key, value in stats.items()]
    lines.append(f"training_time_min: {result.training_time_min:.3f}")
    for record in result.seeds:
        lines += [f"seed_{record.seed}.{key}: {_fmt(getattr(record, key))}" for key in METRICS]
    summary = result.summary()
    for key in METRICS:
        lines += [
            f"{key}_min: {_fmt(summary[key + '_min'])}",
            f"{key}_mean: {_fmt(summary[key + '_mean'])}",
        ]
    worst = result.worst_seed
    lines += [f"{key}: {_fmt(getattr(worst, key))}" for key in METRICS]
    return lines


def read_analysis_log(path: str | Path) -> dict[str, float]:
    """Parse an analysis.log back into numbers."""
    out = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(": ")
        out[key] = float(value)
    return out


def metrics_dict(result: RunResult) -> dict[str, Any]:
    """metrics.json: the run's dict (what the sweeper gets) and the training curve."""
    out = result.to_dict()
    if result.curve is not None:
        out["curve"] = result.curve.to_dict()
    return json_safe(out)


def write_run(
    out_dir: Path,
    result: RunResult,
    recovery: Recovery,
    weights: dict[str, Any],
    plotly_dir: Path | None = None,
) -> None:
    """Write every file of the run folder, each atomically. The figure loads plotly.min.js
    from `plotly_dir` (default: the run folder), written there if missing."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / ANALYSIS_LOG, "\n".join(analysis_lines(result)) + "\n")
    write_atomic(out_dir / METRICS_JSON, json.dumps(metrics_dict(result), indent=2))
    import torch  # here, not at the top: readers of run folders (the atlas) need no torch

    with atomic(out_dir / WEIGHTS, "wb") as f:
        torch.save(weights, f)
    plotly_js = figures.write_plotlyjs(out_dir if plotly_dir is None else Path(plotly_dir))
    figure = figures.run_figure(result.seeds, recovery, result.curve)
    script = Path(os.path.relpath(plotly_js, out_dir)).as_posix()
    write_atomic(out_dir / FIGURE, figure.to_html(include_plotlyjs=script))


def _fmt(value: float) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def json_safe(value: Any) -> Any:
    """NaN and infinity become null so metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
