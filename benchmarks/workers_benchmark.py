"""Throughput of one study shared by 1, 2 and 4 worker processes, on SQLite or PostgreSQL.

Usage::

    python benchmarks/workers_benchmark.py [--workers 1 2 4] [--trials 120] [--sleep 0.2]
        [--storage postgresql://user@host/db]   # the password in PGPASSWORD or ~/.pgpass

No training. Each worker is a separate process (multiprocessing, spawn) that loads the study
with its own ``ProtocolSampler`` (the default grid and start, noise 0.2 inside the working box)
and calls ``study.optimize`` for its share of ``--trials``; the objective sleeps ``--sleep``
seconds, standing in for training, then returns the synthetic region's value. The storage is
opened as the sweeper opens it, with its heartbeat settings (so every trial also starts a
heartbeat thread and checks for stale trials), SQLite in a fresh temporary file unless
``--storage`` is given; each worker count gets a fresh study, created before its workers start
(as the sweeper's users must), deleted afterwards. Workers start together once all have loaded
the study.

Columns: wall time from the start signal to the last worker's end; trials per minute over it;
the ideal ``workers * 60 / sleep``; the overhead per trial of each worker, its wall time divided
by its trials minus the sleep (storage, sampler replay and decision, waiting for earlier
undecided trials, heartbeats), mean and max over workers; trials that did not complete.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import sqlalchemy
from machine import machine_line
from optuna.distributions import CategoricalDistribution
from optuna.trial import Trial, TrialState

from gnn_convergence.study.demo import DEFAULT_SPACE, SEED_START
from gnn_convergence.study.sampler import ProtocolSampler
from gnn_convergence.study.space import index_of, parse_space
from gnn_convergence.study.storage import open_storage, safe_url

PARAMS = parse_space(DEFAULT_SPACE)
BOX = ((4, 5), (1, 2), (4, 6), (1, 2))  # grid indices of the working region (sampler benchmark)
NOISE = 0.2
HEARTBEAT_S, GRACE_S = 30, 120  # the sweeper's defaults (hydra.sweeper.heartbeat_interval, ...)


def storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats, as the sweeper opens it."""
    return open_storage(url, HEARTBEAT_S, GRACE_S, key="--storage")


class Region:
    """Converged inside BOX, 0.1 less per grid step outside; a run inside fails with NOISE."""

    def __init__(self, sleep: float) -> None:
        self.sleep = sleep

    def __call__(self, trial: Trial) -> float:
        config = []
        for p in PARAMS:
            dist = p.distribution
            if isinstance(dist, CategoricalDistribution):
                value = trial.suggest_categorical(p.name, dist.choices)
            else:
                value = trial.suggest_float(p.name, dist.low, dist.high, log=dist.log)
            config.append(index_of(p, value))
        time.sleep(self.sleep)
        distance = sum(max(lo - i, 0, i - hi) for i, (lo, hi) in zip(config, BOX, strict=True))
        if distance:
            return max(0.0, 0.85 - 0.1 * distance)
        return 0.02 if np.random.default_rng(trial.number).random() < NOISE else 0.95


def work(url: str, name: str, n_trials: int, sleep: float, go, results) -> None:
    """One worker: load the study, wait for the start signal, run n_trials, report its time."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = ProtocolSampler(PARAMS, start=SEED_START)
    study = optuna.load_study(study_name=name, storage=storage(url), sampler=sampler)
    results.put(None)
    go.wait()
    began = time.perf_counter()
    study.optimize(Region(sleep), n_trials=n_trials)
    results.put((n_trials, time.perf_counter() - began))


def measure(url: str, n_workers: int, n_trials: int, sleep: float) -> str:
    """One row of the table: a fresh study run by n_workers processes."""
    name = f"workers_benchmark_{n_workers}_{os.getpid()}"
    optuna.create_study(study_name=name, storage=storage(url), direction="maximize")
    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    shares = [n_trials // n_workers + (i < n_trials % n_workers) for i in range(n_workers)]
    procs = [
        ctx.Process(target=work, args=(url, name, share, sleep, go, results)) for share in shares
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        results.get()
    began = time.perf_counter()
    go.set()
    done = [results.get() for _ in procs]
    wall = time.perf_counter() - began
    for proc in procs:
        proc.join()
    trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    optuna.delete_study(study_name=name, storage=url)
    overhead = [1000 * (seconds / share - sleep) for share, seconds in done]
    not_complete = sum(t.state != TrialState.COMPLETE for t in trials)
    return (
        f"{n_workers:7d} {len(trials):6d} {wall:7.1f} {60 * len(trials) / wall:10.1f} "
        f"{60 * n_workers / sleep:9.0f} {np.mean(overhead):14.1f} {max(overhead):13.1f} "
        f"{not_complete:12d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trials", type=int, default=120, help="trials per study, all workers")
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds of 'training'")
    parser.add_argument("--storage", help="an RDB URL (default: SQLite in a temporary file)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.storage or f"sqlite:///{Path(tmp) / 'workers.db'}"
        shown = safe_url(url)
        argv = [shown if a == args.storage else a for a in sys.argv]
        print("$ python " + shlex.join(argv))
        print(machine_line(optuna, sqlalchemy))
        print(f"storage: {shown}; {args.trials} trials per study, {args.sleep} s sleep each")
        print("workers trials  wall_s trials/min ideal/min overhead_ms/trial (mean, max) failed")
        for n_workers in args.workers:
            print(measure(url, n_workers, args.trials, args.sleep), flush=True)


if __name__ == "__main__":
    main()
