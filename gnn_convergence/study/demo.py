"""A synthetic study in seconds, without training: for notebooks, tests and report checks.

It uses the real ProtocolSampler and stores the same study and trial attributes as the sweeper,
so everything that reads a study (records, maps, report) can be shown on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from gnn_convergence.outcome import run_value
from gnn_convergence.study.sampler import ProtocolSampler
from gnn_convergence.study.space import Param, parse_space, record_space
from gnn_convergence.study.vocabulary import DATA_SEEDS, ERROR, FOLDER, PER_SEED, SEEDS

# The default study's search space and start (conf/hydra/sweeper/convergence.yaml)
DEFAULT_SPACE = {
    "training.learning_rate_W_start": "tag(log, interval(1e-4, 1e-2))",
    "training.learning_rate_start": "tag(log, interval(1e-4, 1e-3))",
    "training.coeff_W_L1": "interval(0, 1e-4)",
    "training.batch_size": "choice(1, 4, 8, 16)",
}
SEED_START = {"lr_W": 1e-3, "lr": 5e-4, "coeff_W_L1": 5e-6, "batch_size": 8}


def demo_study(
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str = "demo",
    n_trials: int = 40,
    seed: int = 0,
    space: Mapping[str, str] = DEFAULT_SPACE,
) -> tuple[optuna.Study, list[Param]]:
    """A synthetic study in seconds, no training: the real sampler, the sweeper's attributes.

    Each of a trial's 3 runs converges when a score falling off an ellipse in (lr_W, lr) around
    (3e-3, 3e-4), shrunk by a large coeff_W_L1 or batch_size 1, beats its dataset's difficulty
    (drawn from the data seed, so shared by every config run on that dataset) plus a little
    training-seed noise; the dataset's effective ranks fall as its difficulty rises (its
    spectral radius is unrelated); at lr_W 1e-2 a run may diverge (no value), making the trial
    a FAIL as in the sweeper. Trial folders are named, not created. ``space`` may change the
    grids of the four keys (not the keys).
    """
    params = parse_space(space)
    sampler = ProtocolSampler(params, start=SEED_START, seed=seed)
    study = optuna.create_study(
        study_name=study_name, storage=storage, sampler=sampler, direction="maximize"
    )
    record_space(study, space, params)
    for _ in range(n_trials):
        trial = study.ask({p.name: p.distribution for p in params})
        seeds = _demo_runs(trial.params, trial.user_attrs[SEEDS], trial.user_attrs[DATA_SEEDS])
        value = run_value(
            math.nan if s["connectivity_R2"] is None else s["connectivity_R2"] for s in seeds
        )
        attrs = {PER_SEED: seeds, FOLDER: f"demo/{study_name}/trial_{trial.number}"}
        for key, item in attrs.items():
            trial.set_user_attr(key, item)
        if math.isnan(value):
            trial.set_user_attr(ERROR, "no finite objective: a seed diverged")
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, value)
    return study, params


def _demo_runs(
    values: Mapping[str, Any], seeds: list[int], data_seeds: list[int]
) -> list[dict[str, Any]]:
    """One record per run: its dataset's difficulty is shared by every config that runs on it."""
    lr_w, lr = values["training.learning_rate_W_start"], values["training.learning_rate_start"]
    radius = math.hypot(math.log10(lr_w / 3e-3) / 0.45, math.log10(lr / 3e-4) / 0.4)
    radius += 0.6 * (values["training.coeff_W_L1"] > 2e-5)
    radius += 0.5 * (values["training.batch_size"] == 1)
    records = []
    for seed, data_seed in zip(seeds, data_seeds, strict=True):
        hard = np.random.default_rng([data_seed, 1]).normal()
        rng = np.random.default_rng([seed, 2])
        diverged = lr_w >= 1e-2 and rng.random() < 0.5
        good = 1.2 - radius - 0.5 * hard - 0.1 * rng.normal() > 0
        conn = 0.9 + 0.09 * rng.random() if good else 0.85 * rng.random() * max(0, 1.6 - radius)
        record = {
            "seed": seed,
            "data_seed": data_seed,
            "test_R2": 0.8,
            "test_pearson": 0.6,
            "connectivity_R2": None if diverged else conn,
            "final_loss": 300.0,
        }
        record |= {"diverged_at_step": 500 if diverged else None}
        records.append(record | _demo_stats(data_seed, hard))
    return records


def _demo_stats(data_seed: int, hard: float) -> dict[str, float]:
    """The dataset's statistics: its effective ranks fall as its difficulty rises, its spectral
    radius is drawn apart from it."""
    rank = max(1, round(40 - 8 * hard))
    radius = 0.9 + 0.4 * np.random.default_rng([data_seed, 3]).random()
    return {
        "spectral_radius": radius,
        "effective_rank_90": max(1, rank // 3),
        "effective_rank_99": rank,
    }
