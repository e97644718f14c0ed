"""One run: simulate (or load) the data, train the seeds together, measure, write the folder."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnn_convergence import artifacts, metrics
from gnn_convergence.config import RunConfig, steps_per_epoch
from gnn_convergence.dataset import load_or_simulate
from gnn_convergence.model import ConnectivityGNN
from gnn_convergence.outcome import classify, run_value
from gnn_convergence.simulation import Dataset
from gnn_convergence.trainer import TrainData, edge_delta, train

log = logging.getLogger(__name__)

METRICS = ("connectivity_R2", "test_R2", "test_pearson", "final_loss")
ROLLOUT_FRAMES = 1000


@dataclass
class RunResult:
    """Per-seed records (metrics, class, data statistics) and the run's summary numbers."""

    seeds: list[dict[str, Any]]
    data: dict[int, dict[str, float]]
    training_time_min: float
    n_steps: int
    device: str

    @property
    def objective(self) -> float:
        """Minimum connectivity_R2 over the seeds; NaN if a seed diverged."""
        return run_value(s["connectivity_R2"] for s in self.seeds)

    @property
    def worst_seed(self) -> dict[str, Any]:
        """The record of the seed with the lowest connectivity_R2 (the one the objective comes
        from); a seed without a finite value (diverged) counts as the lowest."""
        return min(
            self.seeds,
            key=lambda s: (
                s["connectivity_R2"] if math.isfinite(s["connectivity_R2"]) else -math.inf
            ),
        )

    def summary(self) -> dict[str, float]:
        """min and mean over seeds of each metric, e.g. connectivity_R2_min."""
        out = {}
        for key in METRICS:
            values = np.array([s[key] for s in self.seeds], dtype=float)
            out[f"{key}_min"] = float(np.min(values))
            out[f"{key}_mean"] = float(np.mean(values))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready values: what the task function returns."""
        return {
            "objective": self.objective,
            "class": classify(self.objective),
            **self.summary(),
            "seeds": self.seeds,
            "data": {str(k): v for k, v in self.data.items()},
            "training_time_min": self.training_time_min,
            "n_steps": self.n_steps,
            "device": self.device,
        }


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


def run(cfg: RunConfig, out_dir: str | Path) -> RunResult:
    """Simulate or load, train every seed together, evaluate, and fill `out_dir`."""
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
    records = []
    for k, seed in enumerate(seeds):
        record = {"seed": seed, "data_seed": sim_seeds[k]}
        record.update({key: float(values[key][k]) for key in METRICS})
        record["class"] = classify(record["connectivity_R2"])
        record["diverged_at_step"] = trained.diverged_at[k]
        record.update(stats[sim_seeds[k]])
        records.append(record)
    result = RunResult(
        seeds=records,
        data=stats,
        training_time_min=trained.seconds / 60.0,
        n_steps=trained.n_steps,
        device=str(device),
    )
    artifacts.write_run(Path(out_dir), result, model, datasets, cfg)
    log.info(
        "objective (min connectivity_R2) %.4f: %s", result.objective, classify(result.objective)
    )
    return result
