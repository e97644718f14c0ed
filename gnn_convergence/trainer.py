"""Training of K seeds in one vectorized loop (docs/model.md, "Training").

Seed k has its own initialisation, its own frame draws and, optionally, its own dataset; the
loss is a plain sum over seeds and Adam is elementwise, so each seed follows the trajectory it
would follow alone. A seed whose loss turns non-finite is stopped and the others go on.
Every epoch starts with a fresh Adam (start learning rates, zero moments) on the parameters the
previous epoch left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from gnn_convergence.config import TrainingConfig
from gnn_convergence.metrics import connectivity_r2
from gnn_convergence.model import ConnectivityGNN
from gnn_convergence.results import TrainingCurve

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    """Stacked datasets on the training device, and which dataset each seed trains on."""

    activity: torch.Tensor  # (D, T, N)
    derivative: torch.Tensor  # (D, T, N)
    true_w: torch.Tensor  # (D, N, N)
    delta: torch.Tensor  # (D,), the edge_diff step xnorm / 150
    index: torch.Tensor  # (K,), dataset of each seed


@dataclass
class TrainResult:
    """Final losses, divergence and the logged curve of each seed; the trained weights stay in
    the model."""

    final_loss: np.ndarray  # (K,), last epoch's sum of ||pred - y||_2 divided by N
    diverged_at: list[int | None]  # step where seed k's loss turned non-finite
    n_steps: int
    seconds: float
    curve: TrainingCurve  # loss/N and connectivity_R2 every cfg.log_interval steps


def edge_delta(activity: np.ndarray) -> float:
    """delta = xnorm / 150 with xnorm = round(1.5 * std of all activity values)."""
    return round(1.5 * float(np.std(activity))) / 150.0


def frame_draws(seeds: Sequence[int], n_steps: int, batch_size: int, n_frames: int) -> np.ndarray:
    """Frame indices of every step, (K, steps, B), uniform in [0, n_frames - 4), per seed."""
    return np.stack(
        [
            np.random.default_rng([seed, 1]).integers(0, n_frames - 4, size=(n_steps, batch_size))
            for seed in seeds
        ]
    )


def loss_terms(
    model: ConnectivityGNN,
    *,
    u: torch.Tensor,
    y: torch.Tensor,
    delta: torch.Tensor,
    coeff_w_l1: float,
    coeff_edge_diff: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-seed loss and its data term ||pred - y||_2, both (K,), for states u (K, B, N).

    The regularisers count once per sampled frame (docs/model.md, "Loss"):
    B * coeff_w_l1 * sum |W| (whole matrix) and coeff_edge_diff * the sum over the B frames of
    ||ReLU(psi*(u) - psi*(u + delta))||_2.
    """
    assert u.shape == y.shape and u.dim() == 3, (u.shape, y.shape)
    k, b, _ = u.shape
    if coeff_edge_diff > 0:
        shifted = u + delta[:, None, None]
        psi, psi_next = model.psi_values(torch.cat([u, shifted], dim=1)).split(b, dim=1)
    else:
        psi = model.psi_values(u)  # (K, B, N)
    pred = model.phi_values(u) + model.aggregate(psi)  # (K, B, N)
    data = (pred - y).reshape(k, -1).norm(dim=1)  # (K,)
    loss = data + b * coeff_w_l1 * model.w.abs().sum(dim=(1, 2))
    if coeff_edge_diff > 0:
        loss = loss + coeff_edge_diff * torch.relu(psi - psi_next).norm(dim=2).sum(dim=1)
    return loss, data


def make_optimizer(model: ConnectivityGNN, cfg: TrainingConfig) -> torch.optim.Adam:
    """One Adam with a parameter group per learning rate: W, the MLPs, the embeddings."""
    groups = [
        {"params": [model.w], "lr": cfg.learning_rate_W_start},
        {
            "params": [*model.phi.parameters(), *model.psi.parameters()],
            "lr": cfg.learning_rate_start,
        },
    ]
    if isinstance(model.embedding, torch.nn.Parameter):
        groups.append({"params": [model.embedding], "lr": cfg.learning_rate_embedding_start})
    return torch.optim.Adam(groups, fused=True)


def train(
    model: ConnectivityGNN,
    data: TrainData,
    cfg: TrainingConfig,
    steps_per_epoch: int,
    progress: bool = False,
) -> TrainResult:
    """Train all seeds of `model` together for cfg.n_epochs * steps_per_epoch steps, with a
    fresh Adam for every epoch."""
    device = model.w.device
    k, n = model.w.shape[0], model.w.shape[1]
    n_steps = cfg.n_epochs * steps_per_epoch
    last_epoch = n_steps - steps_per_epoch
    frames = torch.from_numpy(
        frame_draws(model.seeds, n_steps, cfg.batch_size, data.activity.shape[1] - 1)
    ).to(device)  # (K, steps, B)
    rows = data.index[:, None]  # (K, 1)
    delta = data.delta[data.index]  # (K,)
    true_w = data.true_w[data.index]  # (K, N, N)
    optimizer = make_optimizer(model, cfg)
    for group in optimizer.param_groups:
        log.info(
            "param group lr=%g: %d values", group["lr"], sum(p.numel() for p in group["params"])
        )
    loss_fn = _compiled_loss() if cfg.compile else loss_terms
    if cfg.compile:  # the first step compiles: about 10-20 s on a CPU
        log.info("compiling the loss with torch.compile (first step)")
    alive = torch.ones(k, dtype=torch.bool, device=device)
    diverged = torch.full((k,), -1, dtype=torch.long, device=device)
    epoch_loss = torch.zeros(k, device=device)
    interval_loss = torch.zeros(k, device=device)
    reported = 0
    logged: list[tuple[int, list[float], list[float]]] = []  # (step, loss/N, R2) per report
    start = time.perf_counter()
    bar = tqdm(range(n_steps), disable=not progress, mininterval=1.0, desc="train")
    for step in bar:
        # epoch boundary: Adam re-created (start learning rates, zero moments), parameters kept
        if step > 0 and step % steps_per_epoch == 0:
            optimizer = make_optimizer(model, cfg)
            log.info(
                "step %d: epoch %d of %d starts with a fresh Adam",
                step,
                step // steps_per_epoch + 1,
                cfg.n_epochs,
            )
        # forward: each seed's own frames of its own dataset
        idx = frames[:, step]  # (K, B)
        u, y = data.activity[rows, idx], data.derivative[rows, idx]  # (K, B, N)
        loss, data_norm = loss_fn(
            model,
            u=u,
            y=y,
            delta=delta,
            coeff_w_l1=cfg.coeff_W_L1,
            coeff_edge_diff=cfg.coeff_edge_diff,
        )
        # divergence: a seed whose loss is not finite stops here, the others go on
        finite = torch.isfinite(loss)
        diverged = torch.where(alive & ~finite, step, diverged)
        alive = alive & finite
        # backward and update
        optimizer.zero_grad(set_to_none=True)
        torch.where(alive, loss, 0.0).sum().backward()
        optimizer.step()
        # bookkeeping without a CPU-GPU sync
        kept = torch.where(alive, data_norm.detach(), torch.nan)
        interval_loss += kept
        if step >= last_epoch:
            epoch_loss += kept
        # logging: the only sync point
        if (step + 1) % cfg.log_interval == 0 or step + 1 == n_steps:
            logged.append(
                (
                    step + 1,
                    (interval_loss / (step + 1 - reported) / n).tolist(),
                    connectivity_r2(model.learned_w(), true_w).tolist(),
                )
            )
            _report(bar, *logged[-1])
            interval_loss.zero_()
            reported = step + 1
            if not alive.any():
                log.warning("every seed diverged by step %d", step)
                break
    return TrainResult(
        final_loss=(epoch_loss / n).cpu().numpy(),
        diverged_at=[int(s) if s >= 0 else None for s in diverged.tolist()],
        n_steps=n_steps,
        seconds=time.perf_counter() - start,
        curve=TrainingCurve(
            step=np.array([s for s, _, _ in logged], dtype=np.int64),
            loss_per_n=np.array([v for _, v, _ in logged], dtype=float).reshape(-1, k).T,
            connectivity_R2=np.array([r for _, _, r in logged], dtype=float).reshape(-1, k).T,
        ),
    )


def _compiled_loss():
    """loss_terms compiled afresh: every run builds a new model, which would fail the guards of
    the previous run's graph and, after a few trials in one process, exhaust the recompile
    limit and silently fall back to eager."""
    torch.compiler.reset()
    return torch.compile(loss_terms, dynamic=False)


def _report(bar: tqdm, step: int, loss: list[float], r2: list[float]) -> None:
    loss_text = " ".join(f"{v:.3g}" for v in loss)
    r2_text = " ".join(f"{v:.3f}" for v in r2)
    bar.set_postfix_str(f"loss/N {loss_text} | conn_R2 {r2_text}", refresh=False)
    log.info("step %d loss/N [%s] connectivity_R2 [%s]", step, loss_text, r2_text)
