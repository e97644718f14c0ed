"""ProtocolSampler overhead and protocol progress on a synthetic working region.

Usage: ``python benchmarks/sampler_benchmark.py --trials 100 300 1000 [--seed 0]``.

Per study length it prints the sampler's decision time (mean and max over the last 50 trials,
which replay the longest history), the trials until the first robust config, the robust
configs and the probe boundaries found. No training: the objective is converged inside a box
of grid indices (failing 20% of the time), partial near it and failed far away.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optuna

from gnn_convergence.study.protocol import ROBUST
from gnn_convergence.study.sampler import ProtocolSampler
from gnn_convergence.study.space import index_of, parse_space

SPACE = {
    "training.learning_rate_W_start": "tag(log, interval(1e-4, 1e-2))",
    "training.learning_rate_start": "tag(log, interval(1e-4, 1e-3))",
    "training.coeff_W_L1": "interval(0, 1e-4)",
    "training.batch_size": "choice(1, 4, 8, 16)",
}
BOX = ((2, 4), (1, 2), (0, 3), (1, 3))
START = {"lr_W": 1e-2, "lr": 1e-4, "coeff_W_L1": 1e-4, "batch_size": 1}


class TimedSampler(ProtocolSampler):
    """ProtocolSampler that records how long each decision took."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seconds: list[float] = []

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        began = time.perf_counter()
        super().before_trial(study, trial)
        self.seconds.append(time.perf_counter() - began)


def objective(trial: optuna.Trial, params: list) -> float:
    """Converged inside BOX (20% seeded failures), 0.1 less per grid step outside it."""
    config = []
    for param in params:
        if param.is_choice:
            value = trial.suggest_categorical(param.name, param.values)
        else:
            dist = param.distribution
            value = trial.suggest_float(param.name, dist.low, dist.high, log=dist.log)
        config.append(index_of(param, value))
    distance = sum(max(lo - i, 0, i - hi) for i, (lo, hi) in zip(config, BOX, strict=True))
    if distance:
        return max(0.0, 0.85 - 0.1 * distance)
    return 0.02 if np.random.default_rng(trial.number).random() < 0.2 else 0.95


def run(n_trials: int, seed: int) -> str:
    params = parse_space(SPACE)
    sampler = TimedSampler(params, start=START, seed=seed)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(lambda t: objective(t, params), n_trials=n_trials)
    state = sampler.state(study)
    robust = [r for r in state.runs if state.status[r.config] == ROBUST]
    first = robust[0].number if robust else None
    tail = np.array(sampler.seconds[-50:]) * 1e3
    n_robust = sum(s == ROBUST for s in state.status.values())
    return (
        f"{n_trials:6d} {tail.mean():9.1f} {tail.max():8.1f} {first!s:>12} "
        f"{n_robust:7d} {len(state.boundaries):11d} {len(state.walks):6d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("trials  mean_ms   max_ms first_robust  robust  boundaries  walks")
    for n_trials in args.trials:
        print(run(n_trials, args.seed), flush=True)


if __name__ == "__main__":
    main()
