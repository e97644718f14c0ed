"""Optuna sampler that runs the convergence-study protocol on a grid."""

from __future__ import annotations

import datetime
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.logging import get_logger
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from gnn_convergence.outcome import Thresholds
from gnn_convergence.study.evidence import RobustRule
from gnn_convergence.study.protocol import (
    JUMP_RULES,
    RETRY_RULES,
    Decision,
    changed_param,
    next_decision,
)
from gnn_convergence.study.replay import (
    DEFAULT_RULE,
    DEFAULT_THRESHOLDS,
    Config,
    ProtocolState,
    protocol_state,
)
from gnn_convergence.study.seeding import (
    check_seeding,
    race_datasets,
    study_offset,
    trial_seeds,
)
from gnn_convergence.study.space import Param, fingerprint, index_of, snap_index, value_text
from gnn_convergence.study.vocabulary import (
    CHANGE,
    CONFIG,
    DATA_SEEDS,
    DECISION,
    ENQUEUED,
    FINGERPRINT,
    JUMP,
    MOVE,
    ON_GRID,
    PARENT,
    PROBE,
    RACE,
    RETRY,
    ROLE,
    ROUND,
    SEEDS,
    START,
    VALIDATE,
)

WAIT_S = 10.0
POLL_S = 0.05
_logger = get_logger(__name__)


class ProtocolSampler(BaseSampler):
    """Walk, retry, validate, probe and jump over a grid, deciding on the evidence of runs.

    The sampler is stateless: :meth:`before_trial` replays the stored trials numbered below the
    new one (:func:`~gnn_convergence.study.protocol.protocol_state`), decides the trial's
    config and the seeds of its runs, and stores the decision as the system attribute
    ``protocol:decision`` plus the user attributes ``role``, ``parent``, ``change``, ``seeds``
    and ``data_seeds``; :meth:`sample_relative` reads it back. The objective runs one training
    run per (seed, data seed) pair and stores them as the user attribute ``per_seed`` (records
    with ``seed``, ``data_seed`` and ``connectivity_R2``): those runs are the evidence.
    Randomness comes from ``numpy.random.default_rng([seed, trial.number])`` only, so a resumed
    study proposes what an uninterrupted one would; datasets and training seeds are shifted by
    the study offset of ``seed`` (:func:`~gnn_convergence.study.seeding.study_offset`), so
    studies of different seeds are independent replicates. Higher connectivity_R2 is better,
    whatever the study direction.

    Args:
        params: The study parameters (see :func:`~gnn_convergence.study.space.parse_space`).
        start: Start values by full name or label, snapped to the grid; the middle of each
            grid where missing.
        seed: Seed of every random choice.
        thresholds: Class thresholds of a run's connectivity_R2.
        seed_mode: How a trial's runs are seeded (:mod:`~gnn_convergence.study.seeding`).
        n_seeds: Runs per trial (per dataset in ``cross`` mode).
        n_data: Datasets per trial in ``cross`` mode.
        robust: When a config is robust (:class:`~gnn_convergence.study.evidence.RobustRule`).
        retry: ``undecided`` retries a non-converged first trial when some of its runs
            converged or it ties with its parent; ``all`` retries every one.
        jump: ``far`` jumps to a random config at least half as far from everything run as
            the farthest one; ``farthest`` to the farthest.
        patience: Moves without improving the incumbent before a jump (default: twice the
            number of parameters, the number of one-step neighbours).
    """

    def __init__(
        self,
        params: Sequence[Param],
        start: Mapping[str, Any] | None = None,
        seed: int = 0,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        seed_mode: str = "paired",
        n_seeds: int = 3,
        n_data: int = 1,
        robust: RobustRule = DEFAULT_RULE,
        retry: str = "undecided",
        jump: str = "far",
        patience: int | None = None,
    ) -> None:
        if not params:
            raise ValueError("ProtocolSampler needs at least one parameter")
        if patience is not None and patience < 1:
            raise ValueError(f"patience={patience} is invalid: allowed is an integer >= 1")
        _check_choice("retry", retry, RETRY_RULES)
        _check_choice("jump", jump, JUMP_RULES)
        check_seeding(seed_mode, n_seeds, n_data)
        self._params = tuple(params)
        self._start = _start_config(self._params, start or {})
        self._seed = seed
        self._thresholds = thresholds
        self._seeding = (seed_mode, n_seeds, n_data)
        self._rule = robust
        self._retry, self._jump = retry, jump
        self._patience = patience if patience is not None else 2 * len(self._params)
        self._fingerprint = fingerprint(self._params)

    @property
    def params(self) -> tuple[Param, ...]:
        """The study parameters."""
        return self._params

    def state(self, study: Study, before: int | None = None) -> ProtocolState:
        """The protocol state of ``study`` from its trials numbered below ``before`` (all)."""
        trials = study.get_trials(deepcopy=False)
        if before is not None:
            trials = [t for t in trials if t.number < before]
        return protocol_state(trials, self._params, self._thresholds, self._rule)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {p.name: p.distribution for p in self._params}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if DECISION in trial.system_attrs:
            return
        preset = {**trial.params, **trial.system_attrs.get("fixed_params", {})}
        if preset or "fixed_params" in trial.system_attrs:
            config, on_grid = self._enqueued_config(preset)
            self._record(study, trial, Decision(ENQUEUED, config), None, on_grid)
            return
        self._wait_for_earlier(study, trial)
        state = self.state(study, before=trial.number)
        rng = np.random.default_rng([self._seed, trial.number])
        decision = next_decision(state, self._start, rng, self._patience, self._retry, self._jump)
        self._record(study, trial, decision, state, True)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        decision = study._storage.get_trial_system_attrs(trial._trial_id).get(DECISION)
        if not isinstance(decision, Mapping) or decision.get(FINGERPRINT) != self._fingerprint:
            return {}
        values = zip(self._params, decision[CONFIG], strict=True)
        return {p.name: p.values[i] for p, i in values if p.name in search_space}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if any(p.name == param_name for p in self._params):
            _logger.warning(
                f"{param_name} of trial {trial.number} is sampled at random: the trial has no "
                f"protocol decision, or its decided value is outside {param_distribution}."
            )
        key = [self._seed, trial.number, zlib.crc32(param_name.encode())]
        seed = int(np.random.SeedSequence(key).generate_state(1)[0])
        return RandomSampler(seed=seed).sample_independent(
            study, trial, param_name, param_distribution
        )

    def _enqueued_config(self, fixed: Mapping[str, Any]) -> tuple[Config, bool]:
        """Config of an enqueued or preset trial (start values where not fixed), and whether
        every fixed value is exactly on the grid."""
        config, on_grid = list(self._start), True
        for i, param in enumerate(self._params):
            if param.name in fixed:
                exact = index_of(param, fixed[param.name])
                on_grid = on_grid and exact is not None
                config[i] = exact if exact is not None else _snap_or(param, fixed, config[i])
        return tuple(config), on_grid

    def _wait_for_earlier(self, study: Study, trial: FrozenTrial) -> None:
        """Poll until every earlier RUNNING trial started under WAIT_S ago has a decision."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and _undecided(study, trial.number):
            time.sleep(POLL_S)

    def _record(
        self,
        study: Study,
        trial: FrozenTrial,
        decision: Decision,
        state: ProtocolState | None,
        on_grid: bool,
    ) -> None:
        """Store the decision, user attributes first; mirror it on ``trial`` for the objective."""
        storage, trial_id = study._storage, trial._trial_id
        mode, n_seeds, n_data = self._seeding
        offset = study_offset(self._seed)
        panel = decision.panel
        if decision.round is not None:
            panel = race_datasets(offset, decision.round, n_seeds)
        seeds, data_seeds = trial_seeds(mode, trial.number, n_seeds, n_data, panel, offset)
        user = {
            ROLE: decision.role,
            PARENT: decision.parent,
            CHANGE: self.describe(decision, state),
            SEEDS: seeds,
            DATA_SEEDS: data_seeds,
        }
        for key, value in user.items():
            storage.set_trial_user_attr(trial_id, key, value)
        attr = {
            ROLE: decision.role,
            CONFIG: list(decision.config),
            PARENT: decision.parent,
            DATA_SEEDS: data_seeds,
            FINGERPRINT: self._fingerprint,
            ON_GRID: on_grid,
            ROUND: decision.round,
        }
        storage.set_trial_system_attr(trial_id, DECISION, attr)
        for key, value in user.items():
            trial.set_user_attr(key, value)
        trial.system_attrs[DECISION] = attr

    def describe(self, decision: Decision, state: ProtocolState | None) -> str:
        """Human-readable change of a decision, e.g. ``lr_W: 0.001 -> 0.002``."""
        parent = state.config_of(decision.parent) if state is not None else None
        if decision.role in (MOVE, PROBE) and parent is not None:
            p = changed_param(parent, decision.config)
            values = self._params[p].values
            old, new = value_text(values[parent[p]]), value_text(values[decision.config[p]])
            return f"{self._params[p].label}: {old} -> {new}"
        if decision.role == RETRY:
            return f"retry of trial {decision.parent}"
        if decision.role == RACE:
            return f"race round {decision.round + 1}: {self.summary(decision.config)}"
        if decision.role in (START, JUMP) and decision.parent is not None:
            return f"rerun of trial {decision.parent} (killed) on its panel"
        if decision.role == VALIDATE and state is not None:
            ev = state.evidence[decision.config]
            runs = "fresh runs" if ev.validated else "runs"
            return (
                f"validation of trial {decision.parent} on fresh data "
                f"({ev.converged}/{ev.n} {runs} converged so far)"
            )
        return f"{decision.role}: {self.summary(decision.config)}"

    def summary(self, config: Config) -> str:
        """``lr_W=0.001, lr=0.0005, ...`` for a config."""
        return ", ".join(
            f"{p.label}={value_text(p.values[i])}"
            for p, i in zip(self._params, config, strict=True)
        )


def _check_choice(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is invalid: allowed are {', '.join(allowed)}")


def _start_config(params: Sequence[Param], start: Mapping[str, Any]) -> Config:
    known = {p.name for p in params} | {p.label for p in params}
    unknown = sorted(set(start) - known)
    if unknown:
        raise ValueError(f"unknown start parameter(s) {unknown}; known: {sorted(known)}")
    config = []
    for param in params:
        value = start.get(param.name, start.get(param.label))
        config.append(len(param.values) // 2 if value is None else snap_index(param, value))
    return tuple(config)


def _snap_or(param: Param, fixed: Mapping[str, Any], default: int) -> int:
    try:
        return snap_index(param, fixed[param.name])
    except ValueError:
        return default


def _undecided(study: Study, number: int) -> bool:
    recent = datetime.datetime.now() - datetime.timedelta(seconds=WAIT_S)
    return any(
        t.number < number
        and t.state == TrialState.RUNNING
        and DECISION not in t.system_attrs
        and (t.datetime_start is None or t.datetime_start > recent)
        for t in study.get_trials(deepcopy=False)
    )
