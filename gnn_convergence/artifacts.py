"""The run folder: analysis.log, metrics.json, weights.pt and the run figure."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gnn_convergence import figures
from gnn_convergence.metrics import connectivity_fit

if TYPE_CHECKING:
    from gnn_convergence.config import RunConfig
    from gnn_convergence.model import ConnectivityGNN
    from gnn_convergence.run import RunResult
    from gnn_convergence.simulation import Dataset

ANALYSIS_LOG = "analysis.log"
METRICS_JSON = "metrics.json"
WEIGHTS = "weights.pt"
FIGURE = "run.html"
_PER_SEED = ("test_R2", "test_pearson", "final_loss", "connectivity_R2")
_BARE = ("test_R2", "test_pearson", "connectivity_R2", "final_loss")


def analysis_lines(result: RunResult) -> list[str]:
    """`key: value` lines: data statistics, time, then per seed and min/mean of each metric,
    then the bare keys (test_R2, ...) of the seed with the lowest connectivity_R2."""
    lines = []
    for seed, stats in result.data.items():
        prefix = "" if len(result.data) == 1 else f"data_seed_{seed}."
        lines += [f"{prefix}{key}: {_fmt(value)}" for key, value in stats.items()]
    lines.append(f"training_time_min: {result.training_time_min:.3f}")
    for record in result.seeds:
        lines += [f"seed_{record['seed']}.{key}: {_fmt(record[key])}" for key in _PER_SEED]
    summary = result.summary()
    for key in _PER_SEED:
        lines += [
            f"{key}_min: {_fmt(summary[key + '_min'])}",
            f"{key}_mean: {_fmt(summary[key + '_mean'])}",
        ]
    worst = result.worst_seed
    lines += [f"{key}: {_fmt(worst[key])}" for key in _BARE]
    return lines


def read_analysis_log(path: str | Path) -> dict[str, float]:
    """Parse an analysis.log back into numbers."""
    out = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(": ")
        out[key] = float(value)
    return out


def write_run(
    out_dir: Path,
    result: RunResult,
    model: ConnectivityGNN,
    datasets: dict[int, Dataset],
    cfg: RunConfig,
) -> None:
    """Write every file of the run folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ANALYSIS_LOG).write_text("\n".join(analysis_lines(result)) + "\n")
    (out_dir / METRICS_JSON).write_text(json.dumps(_json_safe(result.to_dict()), indent=2))
    torch.save(
        {
            "seeds": model.seeds,
            "data_seeds": [r["data_seed"] for r in result.seeds],
            "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        },
        out_dir / WEIGHTS,
    )
    run_figure(result, model, datasets, cfg).write_html(out_dir / FIGURE, include_plotlyjs=True)


@torch.no_grad()
def run_figure(
    result: RunResult, model: ConnectivityGNN, datasets: dict[int, Dataset], cfg: RunConfig
):
    """Learned vs true W per seed and the learned psi*, phi* against the true functions."""
    true_w = torch.tensor(
        np.stack([datasets[r["data_seed"]].w for r in result.seeds]), dtype=torch.float32
    )  # (K, N, N)
    learned = model.learned_w().cpu()
    alpha, _ = connectivity_fit(learned, true_w)
    lo = min(float(d.activity.min()) for d in datasets.values())
    hi = max(float(d.activity.max()) for d in datasets.values())
    u = torch.linspace(lo, hi, 200)  # (G,)
    psi, phi = (c.cpu() for c in model.curves(u.to(model.w.device)))  # (K, G)
    p = cfg.simulation.neuron
    # psi* is learned up to the scale of W: alpha * psi* / g estimates tanh((u - h) / w)
    psi = (psi * alpha[:, None].float() / p.g).numpy()
    return figures.run_figure(
        seeds=result.seeds,
        true_w=true_w.numpy(),
        learned_w=learned.numpy(),
        u=u.numpy(),
        psi=psi,
        phi=phi.numpy(),
        true_psi=np.tanh((u.numpy() - p.h) / p.w),
        true_phi=-p.a * u.numpy() + p.b + p.s * np.tanh(u.numpy()),
    )


def _fmt(value: float) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _json_safe(value: Any) -> Any:
    """NaN and infinity become null so metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
