"""Run metrics (docs/model.md, "Metrics"), K seeds at once, on the run's own weights."""

from __future__ import annotations

from collections.abc import Callable

import torch

Predict = Callable[[torch.Tensor], torch.Tensor]


def connectivity_fit(
    learned: torch.Tensor, true: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slope alpha and R^2 of the least-squares fit learned = alpha * true + beta.

    learned, true: (K, N, N) -> two (K,) tensors, over all N^2 entries. R^2 is blind to the
    global scale of W; both are NaN where the learned matrix is not finite.
    """
    x = true.flatten(1).double()
    y = learned.flatten(1).double()
    xc = x - x.mean(1, keepdim=True)
    yc = y - y.mean(1, keepdim=True)
    alpha = (xc * yc).sum(1) / (xc * xc).sum(1)
    ss_res = ((yc - alpha[:, None] * xc) ** 2).sum(1)
    ss_tot = (yc * yc).sum(1)
    return alpha, 1.0 - ss_res / ss_tot


def connectivity_r2(learned: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """connectivity_R2 of each seed: (K, N, N) -> (K,)."""
    return connectivity_fit(learned, true)[1]


@torch.no_grad()
def rollout(predict: Predict, u0: torch.Tensor, n_frames: int, dt: float) -> torch.Tensor:
    """Free Euler rollout from u0 (K, N): frames 0..n_frames-1 as (K, n_frames, N)."""
    frames = [u0]
    u = u0[:, None]  # (K, 1, N)
    for _ in range(n_frames - 1):
        u = u + dt * predict(u)
        frames.append(u[:, 0])
    return torch.stack(frames, dim=1)


def _frame_r2(pred: torch.Tensor, true: torch.Tensor) -> float:
    """R^2 of pred against true over neurons, fitted on the inliers; 0 if collapsed/exploded."""
    if not torch.isfinite(pred).all() or pred.abs().max() > 1e10:
        return 0.0
    if pred.std() < 0.1 * true.std():
        return 0.0
    inlier = ((true - true.median()).abs() <= 3 * true.std()) & (
        (pred - pred.median()).abs() <= 3 * pred.std()
    )
    x, y = true[inlier], pred[inlier]
    design = torch.stack([x, torch.ones_like(x)], dim=1)
    alpha, beta = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    ss_res = ((pred - (alpha * true + beta)) ** 2).sum()
    ss_tot = ((pred - pred.mean()) ** 2).sum()
    return float(1.0 - ss_res / ss_tot)


def test_r2(pred: torch.Tensor, true: torch.Tensor, every: int = 10) -> torch.Tensor:
    """Mean frame R^2 at frames every, 2*every, ... < T. pred, true: (K, T, N) -> (K,)."""
    pred, true = pred.double(), true.double()
    frames = range(every, true.shape[1], every)
    return torch.tensor(
        [sum(_frame_r2(p[t], q[t]) for t in frames) / len(frames) for p, q in zip(pred, true)],
        dtype=torch.float64,
    )


def test_pearson(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean over neurons of the Pearson correlation in time; a constant or non-finite
    neuron counts 0. pred, true: (K, T, N) -> (K,)."""
    pred, true = pred.double(), true.double()
    pc = pred - pred.mean(1, keepdim=True)
    tc = true - true.mean(1, keepdim=True)
    r = (pc * tc).sum(1) / torch.sqrt((pc * pc).sum(1) * (tc * tc).sum(1))  # (K, N)
    return torch.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0).mean(1)
