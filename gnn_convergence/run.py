"""Runs: simulate (or load) the data, train the seeds together, measure, write the folder.

Several runs that share everything but their seeds and training hyperparameters
(`population_key`) train as one population (`train_population`); each gives back a `Member`
that writes the folder the run would have written alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
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
from gnn_convergence.simulation import Dataset, neuron_types, true_curves
from gnn_convergence.trainer import Hyper, TrainData, TrainResult, edge_delta, train

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


def load_data(cfg: RunConfig, seeds: Sequence[int] | None = None) -> dict[int, Dataset]:
    """One dataset per distinct simulation seed (default: the run's), cached on disk."""
    return {
        seed: load_or_simulate(dataclasses.replace(cfg.simulation, seed=seed), cfg.paths.cache_dir)
        for seed in dict.fromkeys(data_seeds(cfg) if seeds is None else seeds)
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
    model: ConnectivityGNN,
    data: TrainData,
    datasets: Sequence[Dataset],
    cfg: RunConfig,
    members: slice = slice(None),
) -> Recovery:
    """The run figure's arrays for `members` (a run's slice of the population): learned against
    true W per seed, and the learned psi*, phi* against the true functions over the range of
    the run's activity (`datasets`)."""
    true_w = data.true_w[data.index[members]].cpu().double()  # (K, N, N)
    learned = model.learned_w()[members].cpu()
    alpha, _ = metrics.connectivity_fit(learned, true_w)
    lo = min(float(d.activity.min()) for d in datasets)
    hi = max(float(d.activity.max()) for d in datasets)
    u = torch.linspace(lo, hi, CURVE_POINTS)  # (G,)
    psi, phi = (c[members].cpu() for c in model.curves(u.to(model.w.device)))  # (K, G)
    neuron = neuron_types(cfg.simulation)[0]  # node 0's type
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


def weights(model: ConnectivityGNN, result: RunResult, members: slice) -> dict[str, Any]:
    """weights.pt: the run's training seeds, their simulation seeds and its members' state
    dict on CPU (the shared diagonal mask whole)."""
    return {
        "seeds": [r.seed for r in result.seeds],
        "data_seeds": [r.data_seed for r in result.seeds],
        "state_dict": {
            k: (v if k == "mask" else v[members]).cpu() for k, v in model.state_dict().items()
        },
    }


def population_key(cfg: RunConfig) -> Hashable:
    """What the runs of one population share: the simulation but its seed, the model, the
    batch size, the epochs and their steps, logging, compilation, device and threads."""
    tr, sim = cfg.training, cfg.simulation
    return (
        repr(dataclasses.replace(sim, seed=0)),
        repr(cfg.model),
        tr.batch_size,
        tr.n_epochs,
        steps_per_epoch(tr, sim),
        tr.log_interval,
        tr.compile,
        tr.compile_mode,
        cfg.device,
        cfg.threads,
    )


@dataclass
class Member:
    """One run of a population: what it measured and what its folder shows."""

    result: RunResult
    recovery: Recovery
    weights: dict[str, Any]

    def write(self, out_dir: str | Path, plotly_dir: str | Path | None = None) -> RunResult:
        """Fill `out_dir`; the run figure loads plotly.min.js from `plotly_dir` (default:
        `out_dir`, see artifacts)."""
        artifacts.write_run(
            Path(out_dir),
            self.result,
            self.recovery,
            self.weights,
            None if plotly_dir is None else Path(plotly_dir),
        )
        objective = self.result.objective
        log.info("objective (min connectivity_R2) %.4f: %s", objective, classify(objective))
        return self.result


def train_population(cfgs: Sequence[RunConfig]) -> list[Member]:
    """Train the seeds of every run in `cfgs` (one population_key) as one population, each
    member with its run's training hyperparameters; one Member per run, in order."""
    first = cfgs[0]
    if any(population_key(c) != population_key(first) for c in cfgs):
        raise ValueError("train_population: the runs differ in more than seeds and training")
    if first.threads:
        torch.set_num_threads(first.threads)
    device = resolve_device(first.device)
    seeds = [s for c in cfgs for s in c.training.seeds]
    sim_seeds = [s for c in cfgs for s in data_seeds(c)]
    datasets = load_data(first, sim_seeds)
    for seed, dataset in datasets.items():
        log.info("dataset seed %d: %s", seed, dataset.stats)
    data = stack_data(datasets, sim_seeds, device)
    model = ConnectivityGNN(first.model, first.simulation.n_neurons, seeds).to(device)
    hyper = Hyper.of([c.training for c in cfgs for _ in c.training.seeds], torch.float32, device)
    if len(cfgs) > 1:
        log.info("population of %d runs, %d members", len(cfgs), len(seeds))
    trained = train(
        model,
        data,
        first.training,
        steps_per_epoch(first.training, first.simulation),
        progress=first.progress,
        hyper=hyper,
    )
    values = evaluate(model, data, first.simulation.dt)
    values["final_loss"] = trained.final_loss
    diverged = np.array([step is not None for step in trained.diverged_at])
    for value in values.values():  # a diverged member has no metrics, not a 0 loss or R2
        value[diverged] = np.nan
    ends = np.cumsum([len(c.training.seeds) for c in cfgs])
    return [
        _member(
            cfg, slice(end - len(cfg.training.seeds), end), model, data, datasets, trained, values
        )
        for cfg, end in zip(cfgs, ends)
    ]


def _member(
    cfg: RunConfig,
    members: slice,
    model: ConnectivityGNN,
    data: TrainData,
    datasets: dict[int, Dataset],
    trained: TrainResult,
    values: dict[str, np.ndarray],
) -> Member:
    """One run's slice of a trained population."""
    seeds, sim_seeds = list(cfg.training.seeds), data_seeds(cfg)
    own = {seed: datasets[seed] for seed in dict.fromkeys(sim_seeds)}
    records = [
        SeedResult(
            seed=seed,
            data_seed=sim_seeds[i],
            **{key: float(values[key][members][i]) for key in METRICS},
            class_=classify(float(values["connectivity_R2"][members][i])),
            diverged_at_step=trained.diverged_at[members][i],
            data=dict(own[sim_seeds[i]].stats),
        )
        for i, seed in enumerate(seeds)
    ]
    curve = trained.curve
    result = RunResult(
        seeds=records,
        data={seed: d.stats for seed, d in own.items()},
        training_time_min=trained.seconds / 60.0,
        n_steps=trained.n_steps,
        device=str(model.w.device),
        curve=dataclasses.replace(
            curve,
            loss_per_n=curve.loss_per_n[members],
            connectivity_R2=curve.connectivity_R2[members],
        ),
    )
    return Member(
        result=result,
        recovery=recovery(model, data, list(own.values()), cfg, members),
        weights=weights(model, result, members),
    )


def run(cfg: RunConfig, out_dir: str | Path, plotly_dir: str | Path | None = None) -> RunResult:
    """Simulate or load, train every seed together, evaluate, and fill `out_dir`; the run
    figure loads plotly.min.js from `plotly_dir` (default: `out_dir`, see artifacts)."""
    return train_population([cfg])[0].write(out_dir, plotly_dir)
