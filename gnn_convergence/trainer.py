"""Training of a population of K members in one vectorized loop (docs/model.md, "Training").

Member k has its own initialisation seed, its own frame draws, its own dataset and its own
learning rates and loss coefficients (`Hyper`); members share the batch size and the number of
steps. The loss is a plain sum over members and Adam is elementwise, so each member follows the
trajectory it would follow alone. A member whose loss turns non-finite is stopped and the others
go on. Every epoch starts with a fresh Adam (start learning rates, zero moments) on the
parameters the previous epoch left. The loop stays on the training device: frames are drawn
before it, and the host reads values only every cfg.log_interval steps.
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
from gnn_convergence.optimizer import PopulationAdam
from gnn_convergence.results import TrainingCurve

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    """Stacked datasets on the training device, and which dataset each member trains on."""

    activity: torch.Tensor  # (D, T, N)
    derivative: torch.Tensor  # (D, T, N)
    true_w: torch.Tensor  # (D, N, N)
    delta: torch.Tensor  # (D,), the edge_diff step xnorm / 150
    index: torch.Tensor  # (K,), dataset of each member


@dataclass
class TrainResult:
    """Final losses, divergence and the logged curve of each member; the trained weights stay in
    the model."""

    final_loss: np.ndarray  # (K,), last epoch's sum of ||pred - y||_2 divided by N
    diverged_at: list[int | None]  # step where member k's loss turned non-finite
    n_steps: int
    seconds: float
    curve: TrainingCurve  # loss/N and connectivity_R2 every cfg.log_interval steps


@dataclass
class Hyper:
    """Each member's learning rates and loss coefficients, (K,) tensors on the device."""

    lr_w: torch.Tensor
    lr: torch.Tensor
    lr_embedding: torch.Tensor
    coeff_w_l1: torch.Tensor
    coeff_edge_diff: torch.Tensor

    @classmethod
    def of(
        cls, configs: Sequence[TrainingConfig], dtype: torch.dtype, device: torch.device
    ) -> Hyper:
        """One member per config, in order."""

        def column(key: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor([getattr(c, key) for c in configs], dtype=dtype, device=device)

        return cls(  # learning rates as given (float64), coefficients in the model's dtype
            lr_w=column("learning_rate_W_start", torch.float64),
            lr=column("learning_rate_start", torch.float64),
            lr_embedding=column("learning_rate_embedding_start", torch.float64),
            coeff_w_l1=column("coeff_W_L1", dtype),
            coeff_edge_diff=column("coeff_edge_diff", dtype),
        )


def make_optimizer(model: ConnectivityGNN, hyper: Hyper) -> PopulationAdam:
    """Adam with each member's learning rate of W, of the MLPs and of the embeddings."""
    mlps = [*model.phi.parameters(), *model.psi.parameters()]
    params, lrs = [model.w, *mlps], [hyper.lr_w] + [hyper.lr] * len(mlps)
    if isinstance(model.embedding, torch.nn.Parameter):
        params.append(model.embedding)
        lrs.append(hyper.lr_embedding)
    return PopulationAdam(params, lrs)


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
    coeff_w_l1: torch.Tensor,
    coeff_edge_diff: torch.Tensor,
    edge: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member loss and its data term ||pred - y||_2, both (K,), for states u (K, B, N),
    with each member's coefficients (K,).

    The regularisers count once per sampled frame (docs/model.md, "Loss"):
    B * coeff_w_l1 * sum |W| (whole matrix) and coeff_edge_diff * the sum over the B frames of
    ||ReLU(psi*(u) - psi*(u + delta))||_2; `edge=False` skips the second where every
    coeff_edge_diff is 0.
    """
    assert u.shape == y.shape and u.dim() == 3, (u.shape, y.shape)
    k, b, _ = u.shape
    if edge:
        shifted = u + delta[:, None, None]
        psi, psi_next = model.psi_values(torch.cat([u, shifted], dim=1)).split(b, dim=1)
    else:
        psi = model.psi_values(u)  # (K, B, N)
    pred = model.phi_values(u) + model.aggregate(psi)  # (K, B, N)
    data = (pred - y).reshape(k, -1).norm(dim=1)  # (K,)
    loss = data + b * coeff_w_l1 * model.w.abs().sum(dim=(1, 2))
    if edge:
        loss = loss + coeff_edge_diff * torch.relu(psi - psi_next).norm(dim=2).sum(dim=1)
    return loss, data


def train(
    model: ConnectivityGNN,
    data: TrainData,
    cfg: TrainingConfig,
    steps_per_epoch: int,
    progress: bool = False,
    hyper: Hyper | None = None,
) -> TrainResult:
    """Train all members of `model` together for cfg.n_epochs * steps_per_epoch steps, with a
    fresh Adam for every epoch. `hyper` holds each member's learning rates and coefficients
    (default: cfg's for every member); batch size, steps, logging and compilation are cfg's."""
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
    if hyper is None:
        hyper = Hyper.of([cfg] * k, model.w.dtype, device)
    edge = bool((hyper.coeff_edge_diff > 0).any())
    optimizer = make_optimizer(model, hyper)
    log.info(
        "%d members, %d values each; lr_W %s, lr %s",
        k,
        sum(p[0].numel() for p in optimizer.params),
        _distinct(hyper.lr_w),
        _distinct(hyper.lr),
    )
    loss_fn = _compiled_loss(cfg.compile_mode) if cfg.compile else loss_terms
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
        # epoch boundary: a fresh Adam (start learning rates, zero moments), parameters kept
        if step > 0 and step % steps_per_epoch == 0:
            optimizer.reset()
            log.info(
                "step %d: epoch %d of %d starts with a fresh Adam",
                step,
                step // steps_per_epoch + 1,
                cfg.n_epochs,
            )
        # forward: each member's own frames of its own dataset
        idx = frames[:, step]  # (K, B)
        u, y = data.activity[rows, idx], data.derivative[rows, idx]  # (K, B, N)
        loss, data_norm = loss_fn(
            model,
            u=u,
            y=y,
            delta=delta,
            coeff_w_l1=hyper.coeff_w_l1,
            coeff_edge_diff=hyper.coeff_edge_diff,
            edge=edge,
        )
        # divergence: a member whose loss is not finite stops here, the others go on
        finite = torch.isfinite(loss)
        diverged = torch.where(alive & ~finite, step, diverged)
        alive = alive & finite
        # backward and update
        optimizer.zero_grad()
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
                log.warning("every member diverged by step %d", step)
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


def _distinct(values: torch.Tensor) -> str:
    return ", ".join(f"{v:g}" for v in sorted(set(values.tolist())))


def _compiled_loss(mode: str):
    """loss_terms compiled afresh: every run builds a new model, which would fail the guards of
    the previous run's graph and, after a few trials in one process, exhaust the recompile
    limit and silently fall back to eager."""
    torch.compiler.reset()
    return torch.compile(loss_terms, dynamic=False, mode=mode)


def _report(bar: tqdm, step: int, loss: list[float], r2: list[float]) -> None:
    loss_text = " ".join(f"{v:.3g}" for v in loss)
    r2_text = " ".join(f"{v:.3f}" for v in r2)
    bar.set_postfix_str(f"loss/N {loss_text} | conn_R2 {r2_text}", refresh=False)
    log.info("step %d loss/N [%s] connectivity_R2 [%s]", step, loss_text, r2_text)
