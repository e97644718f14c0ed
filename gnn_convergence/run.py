"""One run: simulate (or load) the data, train the seeds together, measure, write the folder."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnn_convergence import artifacts, metrics
from gnn_convergence.config import RunConfig, steps_per_epoch
from gnn_convergence.dataset import load_or_simulate
from gnn_convergence.model import ConnectivityGNN
from gnn_convergence.outcome import classify
from gnn_convergence.results import METRICS, Recovery, RunResult, SeedResult
from gnn_convergence.simulation import Dataset, true_curves
from gnn_convergence.trainer import TrainData, edge_delta, train

log = logging.getLogger(__name__)

ROLLOUT_FRAMES = 1000
CURVE_POINTS = 200  # u values of the psi*/phi* curves in the run figure


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def data_seeds(cfg: RunConfig) -> list[int]:
    """The simulation seed of each training seed: training.data_seeds, else simulation.seed."""
    if cfg.training.data_seeds is not None:
        return list(cfg.training.data_seeds)
    return [cfg.simulation.seed] * len(cfg.training.seeds)


def load_data(cfg: RunConfig) -> dict[int, Dataset]:
    """One dataset per distinct simulation seed, from the cache when present."""
    return {
        seed: load_or_simulate(dataclasses.replace(cfg.simulation, seed=seed), cfg.paths.cache_dir)
        for seed in dict.fromkeys(data_seeds(cfg))
    }


def stack_data(datasets: dict[int, Dataset], seeds: list[int], device: torch.device) -> TrainData:
    """Stack the datasets as float32 tensors on `device`, with each seed's dataset index."""
    order = list(datasets)

    def stacked(name: str) -> torch.Tensor:
        return torch.tensor(
            np.stack([getattr(datasets[s], name) for s in order]),
            dtype=torch.float32,
            device=device,
        )

    return TrainData(
        activity=stacked("activity"),
        derivative=stacked("derivative"),
        true_w=stacked("w"),
        delta=torch.tensor(
            [edge_delta(datasets[s].activity) for s in order], dtype=torch.float32, device=device
        ),
        index=torch.tensor([order.index(s) for s in seeds], device=device),
    )


def evaluate(model: ConnectivityGNN, data: TrainData, dt: float) -> dict[str, np.ndarray]:
    """connectivity_R2, test_R2 and test_pearson of each seed, from its final weights."""
    true_w = data.true_w[data.index]  # (K, N, N)
    truth = data.activity[data.index, :ROLLOUT_FRAMES]  # (K, T, N)
    pred = metrics.rollout(model, truth[:, 0], truth.shape[1], dt)  # (K, T, N)
    return {
        "connectivity_R2": metrics.connectivity_r2(model.learned_w(), true_w).cpu().numpy(),
        "test_R2": metrics.test_r2(pred.cpu(), truth.cpu()).numpy(),
        "test_pearson": metrics.test_pearson(pred.cpu(), truth.cpu()).numpy(),
    }


@torch.no_grad()
def recovery(
    model: ConnectivityGNN, data: TrainData, datasets: dict[int, Dataset], cfg: RunConfig
) -> Recovery:
    """The run figure's arrays: learned against true W per seed, and the learned psi*, phi*
    against the true functions over the range of the activity."""
    true_w = data.true_w[data.index].cpu().double()  # (K, N, N)
    learned = model.learned_w().cpu()
    alpha, _ = metrics.connectivity_fit(learned, true_w)
    lo = min(float(d.activity.min()) for d in datasets.values())
    hi = max(float(d.activity.max()) for d in datasets.values())
    u = torch.linspace(lo, hi, CURVE_POINTS)  # (G,)
    psi, phi = (c.cpu() for c in model.curves(u.to(model.w.device)))  # (K, G)
    neuron = cfg.simulation.neuron
    true_psi, true_phi = true_curves(u.numpy().astype(np.float64), neuron)
    return Recovery(
        true_w=true_w.numpy(),
        learned_w=learned.numpy(),
        u=u.numpy(),
        # psi* is learned up to the scale of W: alpha * psi* / g estimates the true psi
        psi=(psi * alpha[:, None].float() / neuron.g).numpy(),
        phi=phi.numpy(),
        true_psi=true_psi,
        true_phi=true_phi,
    )


def weights(model: ConnectivityGNN, result: RunResult) -> dict[str, Any]:
    """weights.pt: the training seeds, their simulation seeds and the state dict on CPU."""
    return {
        "seeds": model.seeds,
        "data_seeds": [r.data_seed for r in result.seeds],
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
    }


def run(cfg: RunConfig, out_dir: str | Path, plotly_dir: str | Path | None = None) -> RunResult:
    """Simulate or load, train every seed together, evaluate, and fill `out_dir`; the run
    figure loads plotly.min.js from `plotly_dir` (default: `out_dir`, see artifacts)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    seeds, sim_seeds = list(cfg.training.seeds), data_seeds(cfg)
    datasets = load_data(cfg)
    stats = {seed: d.stats for seed, d in datasets.items()}
    for seed, values in stats.items():
        log.info("dataset seed %d: %s", seed, values)
    data = stack_data(datasets, sim_seeds, device)
    model = ConnectivityGNN(cfg.model, cfg.simulation.n_neurons, seeds).to(device)
    trained = train(
        model,
        data,
        cfg.training,
        steps_per_epoch(cfg.training, cfg.simulation),
        progress=cfg.progress,
    )
    values = evaluate(model, data, cfg.simulation.dt)
    values["final_loss"] = trained.final_loss
    records = [
        SeedResult(
            seed=seed,
            data_seed=sim_seeds[k],
            **{key: float(values[key][k]) for key in METRICS},
            class_=classify(float(values["connectivity_R2"][k])),
            diverged_at_step=trained.diverged_at[k],
            data=dict(stats[sim_seeds[k]]),
        )
        for k, seed in enumerate(seeds)
    ]
    result = RunResult(
        seeds=records,
        data=stats,
        training_time_min=trained.seconds / 60.0,
        n_steps=trained.n_steps,
        device=str(device),
        curve=trained.curve,
    )
    artifacts.write_run(
        Path(out_dir),
        result,
        recovery(model, data, datasets, cfg),
        weights(model, result),
        None if plotly_dir is None else Path(plotly_dir),
    )
    log.info(
        "objective (min connectivity_R2) %.4f: %s", result.objective, classify(result.objective)
    )
    return result
