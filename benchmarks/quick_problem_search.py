"""Which problem the quick study should run on: per (lr_W, lr) cell, on how many of 6 datasets
a run converges (connectivity_R2 > 0.9), next to each dataset's statistics.

A cell trains training seeds 0-5 together, seed k on simulation seed 100 + k (run.py's
data_seeds), with the trainer and evaluation the app uses (eager, one thread). The measurement
behind `simulation=quick training=quick` and conf/sweeps/quick.yaml
(results: benchmarks/quick_problem_search_results.txt):

    python benchmarks/quick_problem_search.py stats tiny F    # effective ranks of 30 datasets
    python benchmarks/quick_problem_search.py grid F          # the lr_W x lr grid of candidate F
    python benchmarks/quick_problem_search.py grid F --lr-w 5e-3 1e-2 --lr 5e-4
    python benchmarks/quick_problem_search.py trial F         # one 3-run trial, timed

Candidates are named in CANDIDATES; datasets are cached in /tmp/gc_cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from typing import NamedTuple

import numpy as np
import torch
from machine import machine_line

from gnn_convergence.config import (
    NeuronType,
    PathsConfig,
    RunConfig,
    SimulationConfig,
    TrainingConfig,
    steps_per_epoch,
    validate,
)
from gnn_convergence.dataset import load_or_simulate
from gnn_convergence.model import ConnectivityGNN
from gnn_convergence.outcome import Thresholds
from gnn_convergence.run import evaluate, load_data, run, stack_data
from gnn_convergence.simulation import centred_effective_rank, effective_rank
from gnn_convergence.trainer import train

CACHE = "/tmp/gc_cache"
DATA_SEEDS = [100, 101, 102, 103, 104, 105]
CONVERGED = Thresholds().converged
LR_W = [1e-3, 2e-3, 5e-3, 1e-2, 2e-2]
LR = [1e-4, 5e-4, 1e-3]


class Candidate(NamedTuple):
    n_neurons: int
    n_frames: int
    g: float
    data_augmentation_loop: int
    n_epochs: int = 2


CANDIDATES = {
    "tiny": Candidate(50, 10000, 7.0, 6),  # the old tiny pair: 3,000 steps
    "F": Candidate(75, 10000, 7.0, 10),  # chosen: simulation=quick training=quick, 5,000 steps
}


def config(c: Candidate, lr_w: float, lr: float, seeds: list[int], data: list[int]) -> RunConfig:
    """The run config of candidate `c`: every value not named here is the app's default."""
    sim = SimulationConfig(n_neurons=c.n_neurons, n_frames=c.n_frames, neuron=NeuronType(g=c.g))
    training = TrainingConfig(
        learning_rate_W_start=lr_w,
        learning_rate_start=lr,
        n_epochs=c.n_epochs,
        data_augmentation_loop=c.data_augmentation_loop,
        seeds=seeds,
        data_seeds=data,
        log_interval=10**9,
        compile=False,
    )
    cfg = RunConfig(simulation=sim, training=training, paths=PathsConfig(CACHE), device="cpu")
    return validate(dataclasses.replace(cfg, progress=False))


def describe(name: str, c: Candidate) -> str:
    cfg = config(c, 1e-2, 5e-4, [0], None)
    steps = c.n_epochs * steps_per_epoch(cfg.training, cfg.simulation)
    return (
        f"candidate {name}: N={c.n_neurons} frames={c.n_frames} g={c.g:g} "
        f"data_augmentation_loop={c.data_augmentation_loop} n_epochs={c.n_epochs} "
        f"({steps} steps at batch 8)"
    )


def stat_text(s: dict[str, float]) -> str:
    return " ".join(f"{k.replace('effective_rank', 'er')}={v:.3g}" for k, v in s.items())


def stats(names: list[str]) -> None:
    """effective_rank_99 (as stored / centred) of simulation seeds 0-23 and 100-105."""
    for name in names:
        c = CANDIDATES[name]
        start = time.perf_counter()
        ranks = {}
        for seed in [*range(24), *DATA_SEEDS]:
            sim = config(c, 1e-2, 5e-4, [0], None).simulation
            data = load_or_simulate(dataclasses.replace(sim, seed=seed), CACHE)
            ranks[seed] = (
                effective_rank(data.activity, 0.99),
                centred_effective_rank(data.activity, 0.99),
            )
        low = [s for s, r in ranks.items() if min(r) <= 10]
        print(describe(name, c), f"({time.perf_counter() - start:.0f} s)")
        print(
            "    effective_rank_99 / effective_rank_centred_99 by seed: "
            + ", ".join(f"{seed}: {a}/{b}" for seed, (a, b) in ranks.items())
        )
        print(f"    either <= 10: {len(low)} of {len(ranks)} (seeds {low})", flush=True)


def cell(c: Candidate, lr_w: float, lr: float) -> tuple[list[float], float]:
    """connectivity_R2 of training seeds 0-5, seed k on DATA_SEEDS[k], and the seconds."""
    cfg = config(c, lr_w, lr, list(range(len(DATA_SEEDS))), DATA_SEEDS)
    datasets = load_data(cfg)
    data = stack_data(datasets, DATA_SEEDS, torch.device("cpu"))
    model = ConnectivityGNN(cfg.model, c.n_neurons, cfg.training.seeds)
    start = time.perf_counter()
    train(model, data, cfg.training, steps_per_epoch(cfg.training, cfg.simulation))
    r2 = evaluate(model, data, cfg.simulation.dt)["connectivity_R2"]
    return [float(v) for v in r2], time.perf_counter() - start


def grid(name: str, lr_ws: list[float], lrs: list[float]) -> None:
    """Every cell of lr_ws x lrs on the 6 datasets; a table of datasets converged at the end."""
    c = CANDIDATES[name]
    print(describe(name, c))
    cfg = config(c, 1e-2, 5e-4, list(range(6)), DATA_SEEDS)
    for seed, data in load_data(cfg).items():
        print(f"    data seed {seed}: {stat_text(data.stats)}")
    counts = {}
    for lr_w in lr_ws:
        for lr in lrs:
            r2, seconds = cell(c, lr_w, lr)
            counts[lr_w, lr] = sum(v > CONVERGED for v in r2)
            failed = [s for s, v in zip(DATA_SEEDS, r2) if not v > CONVERGED]
            print(
                f"    lr_W={lr_w:g} lr={lr:g}: {counts[lr_w, lr]}/6 converged "
                f"R2 [{' '.join(f'{v:.3f}' for v in r2)}] not converged: {failed} "
                f"({seconds:.0f} s)",
                flush=True,
            )
    print(f"    datasets converged of 6 (rows lr_W, columns lr); {name}")
    print("    lr_W \\ lr " + "".join(f"{lr:>8g}" for lr in lrs))
    for lr_w in lr_ws:
        print(f"    {lr_w:<10g}" + "".join(f"{counts[lr_w, lr]:>8d}" for lr in lrs))


def trial(name: str, lr_w: float, lr: float) -> None:
    """One trial of the quick study (seed_mode rerun, trial 0): training seeds 0-2 on simulation
    seeds 0-2, simulated afresh, through run() with its folder; the wall time of the whole."""
    c = CANDIDATES[name]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config(c, lr_w, lr, [0, 1, 2], [0, 1, 2])
        cfg = dataclasses.replace(cfg, paths=PathsConfig(f"{tmp}/cache"))
        start = time.perf_counter()
        result = run(cfg, f"{tmp}/run")
        seconds = time.perf_counter() - start
    r2 = " ".join(f"{s.connectivity_R2:.3f}" for s in result.seeds)
    print(describe(name, c))
    print(
        f"    one 3-run trial at lr_W={lr_w:g} lr={lr:g}: {seconds:.1f} s wall "
        f"(training {result.training_time_min * 60:.1f} s), R2 [{r2}]",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["stats", "grid", "trial"])
    parser.add_argument("names", nargs="+", choices=sorted(CANDIDATES))
    parser.add_argument("--lr-w", type=float, nargs="+", default=LR_W)
    parser.add_argument("--lr", type=float, nargs="+", default=LR)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the machine is shared: one thread each
    print(machine_line(np, torch))
    if args.what == "stats":
        stats(args.names)
    for name in args.names if args.what != "stats" else []:
        if args.what == "grid":
            grid(name, args.lr_w, args.lr)
        else:
            trial(name, args.lr_w[0], args.lr[0])


if __name__ == "__main__":
    main()
