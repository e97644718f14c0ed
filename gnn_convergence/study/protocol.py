"""The study protocol as a pure function of the trial history.

A config is a tuple of grid indices, one per :class:`~gnn_convergence.study.space.Param`. Every
decided trial carries a decision (system attribute :data:`DECISION_ATTR`): its role, config and
parent trial. :func:`protocol_state` replays those trials in number order into per-config runs,
statuses, walks and the boundaries found by probing; :func:`next_decision` derives what the
next trial should run. Neither keeps anything between calls.

Protocol: a walk begins at the start config (or a jump) and moves one parameter by one grid
step at a time from its incumbent. A config whose first run failed is retried once; a converged
config is validated until ``n_validate`` converged runs make it robust; a robust config is probed
outward along every parameter and side until the class changes. Then, or when the walk stalls,
a jump starts a new walk at the grid config farthest from everything run so far.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from gnn_convergence.outcome import CONVERGED, FAILED, PARTIAL, Thresholds, classify
from gnn_convergence.study.space import Param, fingerprint

DECISION_ATTR = "protocol:decision"
REPORTED_ATTR = "reported"  # False on a launched trial until its job has returned
START, MOVE, RETRY, VALIDATE, PROBE, JUMP, ENQUEUED = (
    "start",
    "move",
    "retry",
    "validate",
    "probe",
    "jump",
    "enqueued",
)
ROBUST, UNSTABLE, UNVALIDATED, PENDING = "robust", "unstable", "converged-unvalidated", "pending"
MAX_JUMP_CANDIDATES = 2000
DEFAULT_THRESHOLDS = Thresholds()
_SIDES = ((-1, "low"), (1, "high"))

Config = tuple[int, ...]


@dataclass(frozen=True)
class Decision:
    """What one trial runs: its role, config (grid indices) and the trial it departs from."""

    role: str
    config: Config
    parent: int | None = None

    def to_attr(self, space_fingerprint: str, on_grid: bool = True) -> dict[str, Any]:
        """The JSON-serialisable system attribute recording this decision."""
        return {
            "role": self.role,
            "config": list(self.config),
            "parent": self.parent,
            "fingerprint": space_fingerprint,
            "on_grid": on_grid,
        }


@dataclass(frozen=True)
class Run:
    """One decided trial: its decision and outcome (None while it is running)."""

    number: int
    role: str
    config: Config
    parent: int | None
    outcome: str | None
    value: float | None

    @property
    def pending(self) -> bool:
        """Whether the trial is still running."""
        return self.outcome is None

    @property
    def score(self) -> float:
        """The objective value, 0 for a FAIL or non-finite one."""
        return self.value if self.value is not None and math.isfinite(self.value) else 0.0


@dataclass(frozen=True)
class Walk:
    """Trials from one start or jump up to the next one.

    Attributes:
        first: Number of the start or jump trial.
        runs: Every protocol run in the walk's span, in number order.
        configs: Configs the walk itself visited (start/jump and moves), in visiting order.
        incumbent: The visited config with the best score (earliest on ties).
    """

    first: int
    runs: tuple[Run, ...]
    configs: tuple[Config, ...]
    incumbent: Config

    @property
    def kind(self) -> str:
        """``start`` or ``jump``."""
        return self.runs[0].role


@dataclass(frozen=True)
class Boundary:
    """Where probing from a robust ``origin`` left the converged class along one parameter.

    Attributes:
        origin: The robust config probed from.
        param: Full name of the probed parameter.
        side: ``low`` (decreasing index) or ``high``.
        inside: Last index on the ray that converged.
        outside: First index that did not, None when the grid ended first.
        outside_status: Status of the config at ``outside`` (None at the grid end).
    """

    origin: Config
    param: str
    side: str
    inside: int
    outside: int | None
    outside_status: str | None


@dataclass(frozen=True)
class ProtocolState:
    """Everything the protocol knows from a trial history (see :func:`protocol_state`).

    Attributes:
        params: The study parameters.
        n_validate: Converged runs that make a config robust.
        runs: Every protocol run, in number order.
        by_config: Runs per config, in number order.
        status: Per config: robust, unstable, converged-unvalidated, partial, failed or pending.
        walks: The walks, in order.
        boundaries: Finished probe rays, per robust walk config, parameter and side.
        open_probes: Next run needed on each unfinished, unblocked probe ray.
    """

    params: tuple[Param, ...]
    n_validate: int
    runs: tuple[Run, ...]
    by_config: Mapping[Config, tuple[Run, ...]]
    status: Mapping[Config, str]
    walks: tuple[Walk, ...]
    boundaries: tuple[Boundary, ...]
    open_probes: tuple[Decision, ...]

    def score(self, config: Config) -> float | None:
        """Minimum score over the config's finished runs, None if none finished."""
        scores = [r.score for r in self.by_config.get(config, ()) if not r.pending]
        return min(scores) if scores else None

    def first_number(self, config: Config) -> int:
        """Number of the config's first trial."""
        return self.by_config[config][0].number

    def config_of(self, number: int | None) -> Config | None:
        """Config run by trial ``number``, None if unknown."""
        return next((r.config for r in self.runs if r.number == number), None)

    def regions(self) -> dict[Config, tuple[Boundary, ...]]:
        """Finished boundaries per robust walk config (a working region's extent so far)."""
        return {
            origin: tuple(b for b in self.boundaries if b.origin == origin)
            for origin in dict.fromkeys(b.origin for b in self.boundaries)
        }

    def values(self, config: Config) -> dict[str, Any]:
        """Parameter values of a config, by full name."""
        return {p.name: p.values[i] for p, i in zip(self.params, config, strict=True)}


def protocol_state(
    trials: Sequence[FrozenTrial],
    params: Sequence[Param],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    n_validate: int = 3,
) -> ProtocolState:
    """Replay decided trials into the protocol's state.

    Trials without a decision, with another space fingerprint, off-grid enqueued trials,
    waiting trials and FAIL trials whose job never reported (``reported`` user attribute False:
    a killed or interrupted job) are ignored. RUNNING trials are pending runs; other FAIL and
    PRUNED ones are failed.

    Args:
        trials: Trials of the study, any order (e.g. ``study.get_trials(deepcopy=False)``).
        params: The study parameters, in the sampler's order.
        thresholds: Class thresholds of one run's objective value.
        n_validate: Converged runs that make a config robust.
    """
    params = tuple(params)
    space = fingerprint(params)
    runs = tuple(
        run
        for t in sorted(trials, key=lambda t: t.number)
        if (run := _run(t, space, thresholds)) is not None
    )
    by_config: dict[Config, tuple[Run, ...]] = {}
    for run in runs:
        by_config[run.config] = (*by_config.get(run.config, ()), run)
    status = {c: _status(rs, n_validate) for c, rs in by_config.items()}
    walks = _walks(runs, by_config)
    rays = [
        _ray(params, by_config, status, origin, p, step)
        for origin in _walk_configs(walks)
        if status[origin] == ROBUST
        for p in range(len(params))
        for step, _ in _SIDES
    ]
    return ProtocolState(
        params=params,
        n_validate=n_validate,
        runs=runs,
        by_config=by_config,
        status=status,
        walks=walks,
        boundaries=tuple(r for r in rays if isinstance(r, Boundary)),
        open_probes=tuple(r for r in rays if isinstance(r, Decision)),
    )


def _run(trial: FrozenTrial, space: str, thresholds: Thresholds) -> Run | None:
    decision = trial.system_attrs.get(DECISION_ATTR)
    if not isinstance(decision, Mapping) or decision.get("fingerprint") != space:
        return None
    if not decision.get("on_grid", True) or trial.state == TrialState.WAITING:
        return None
    if trial.state == TrialState.FAIL and trial.user_attrs.get(REPORTED_ATTR) is False:
        return None  # killed or interrupted before its job reported: no run, decide it again
    value = trial.value if trial.state == TrialState.COMPLETE else None
    if trial.state == TrialState.RUNNING:
        outcome = None
    else:
        outcome = classify(value, thresholds)
    config = tuple(int(i) for i in decision["config"])
    return Run(trial.number, decision["role"], config, decision.get("parent"), outcome, value)


def _status(runs: Sequence[Run], n_validate: int) -> str:
    done = [r.outcome for r in runs if not r.pending]
    converged = done.count(CONVERGED)
    if not done:
        return PENDING
    if converged and converged < len(done):
        return UNSTABLE
    if converged:
        return ROBUST if converged >= n_validate else UNVALIDATED
    return PARTIAL if PARTIAL in done else FAILED


def _walks(runs: Sequence[Run], by_config: Mapping[Config, Sequence[Run]]) -> tuple[Walk, ...]:
    spans: list[list[Run]] = []
    for run in runs:
        if run.role in (START, JUMP):
            spans.append([run])
        elif run.role != ENQUEUED and spans:
            spans[-1].append(run)
    return tuple(_walk(span, by_config) for span in spans)


def _walk(span: Sequence[Run], by_config: Mapping[Config, Sequence[Run]]) -> Walk:
    configs = tuple(dict.fromkeys(r.config for r in span if r.role in (START, JUMP, MOVE)))

    def rank(config: Config) -> tuple[float, int]:
        scores = [r.score for r in by_config[config] if not r.pending]
        return (min(scores) if scores else -math.inf, -by_config[config][0].number)

    return Walk(span[0].number, tuple(span), configs, max(configs, key=rank))


def _walk_configs(walks: Sequence[Walk]) -> list[Config]:
    return list(dict.fromkeys(c for w in walks for c in w.configs))


def _probe_point(runs: Sequence[Run]) -> str:
    """Ray class of a config: inside, outside, unknown, retry (needed) or pending."""
    done = [r for r in runs if not r.pending]
    if any(r.outcome == CONVERGED for r in done):
        return "inside"
    if not done:
        return "pending" if runs else "unknown"
    if len(runs) == 1 and done[0].outcome == FAILED:
        return "retry"
    return "pending" if len(done) < len(runs) else "outside"


def _ray(
    params: Sequence[Param],
    by_config: Mapping[Config, Sequence[Run]],
    status: Mapping[Config, str],
    origin: Config,
    p: int,
    step: int,
) -> Boundary | Decision | None:
    """Read the probe ray from ``origin``: its boundary, the next run it needs, or None."""
    side = dict(_SIDES)[step]
    inside = origin
    index = origin[p] + step
    while 0 <= index < len(params[p].values):
        point = _shift(origin, p, index - origin[p])
        runs = by_config.get(point, ())
        kind = _probe_point(runs)
        if kind == "outside":
            return Boundary(origin, params[p].name, side, inside[p], index, status[point])
        if kind == "unknown":
            return Decision(PROBE, point, by_config[inside][0].number)
        if kind == "retry":
            return Decision(RETRY, point, runs[0].number)
        if kind == "pending":
            return None
        inside, index = point, index + step
    return Boundary(origin, params[p].name, side, inside[p], None, None)


def changed_param(before: Config, after: Config) -> int:
    """Index of the first parameter whose grid index differs between two configs."""
    return next(i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b)


def _shift(config: Config, p: int, delta: int) -> Config:
    return config[:p] + (config[p] + delta,) + config[p + 1 :]


def next_decision(
    state: ProtocolState, start: Config, rng: np.random.Generator, patience: int
) -> Decision:
    """What the next trial runs, given everything decided before it.

    Order: a retry, a validation or a probe still owed by any walk; else the start; else a move
    of the current walk; else (robust config found, walk stalled or boxed in) a jump.
    """
    owed = next(_owed(state), None)
    if owed is not None:
        return owed
    if not state.walks:
        return Decision(START, start)
    walk = state.walks[-1]
    move = None if _walk_over(state, walk, patience) else _move(state, walk, rng)
    return move or _jump(state, rng)


def _owed(state: ProtocolState) -> Iterator[Decision]:
    configs = _walk_configs(state.walks)
    for config in configs:
        runs = state.by_config[config]
        if len(runs) == 1 and runs[0].outcome == FAILED:
            yield Decision(RETRY, config, runs[0].number)
    for config in configs:
        runs = state.by_config[config]
        done = [r.outcome for r in runs if not r.pending]
        if done and set(done) == {CONVERGED} and len(runs) < state.n_validate:
            yield Decision(VALIDATE, config, runs[0].number)
    yield from state.open_probes


def _walk_over(state: ProtocolState, walk: Walk, patience: int) -> bool:
    if any(state.status[c] == ROBUST for c in walk.configs):
        return True
    entry = state.first_number(walk.incumbent)
    stale = [r for r in walk.runs if r.role == MOVE and r.number > entry and not r.pending]
    return len(stale) >= patience


def _move(state: ProtocolState, walk: Walk, rng: np.random.Generator) -> Decision | None:
    incumbent = walk.incumbent
    for p, delta in _move_order(state, walk, rng):
        if 0 <= incumbent[p] + delta < len(state.params[p].values):
            target = _shift(incumbent, p, delta)
            if target not in state.by_config:
                return Decision(MOVE, target, state.first_number(incumbent))
    return None


def _move_order(
    state: ProtocolState, walk: Walk, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """(parameter, direction) pairs to try: the last move's lesson first, then a cycle."""
    n = len(state.params)
    moves = [r for r in walk.runs if r.role == MOVE]
    preferred: list[tuple[int, int]] = []
    begin = 0
    parent = state.config_of(moves[-1].parent) if moves else None
    if parent is not None and parent != moves[-1].config:
        child = moves[-1].config
        p = changed_param(parent, child)
        begin = (p + 1) % n
        child_score, parent_score = state.score(child), state.score(parent)
        if child_score is not None and parent_score is not None and child_score != parent_score:
            delta = child[p] - parent[p]
            preferred = [(p, delta if child_score > parent_score else -delta)]
    cycle = [
        (q % n, d)
        for q in range(begin, begin + n)
        for d in ((1, -1) if rng.random() < 0.5 else (-1, 1))
    ]
    return preferred + cycle


def _jump(state: ProtocolState, rng: np.random.Generator) -> Decision:
    """Jump to the config farthest (normalised grid space) from every config run so far."""
    sizes = np.array([len(p.values) for p in state.params])
    if math.prod(sizes.tolist()) <= MAX_JUMP_CANDIDATES:
        candidates = np.array(list(itertools.product(*(range(s) for s in sizes))))
    else:
        candidates = np.stack([rng.integers(0, s, MAX_JUMP_CANDIDATES) for s in sizes], axis=1)
    distance = min_distances(candidates, list(state.by_config), sizes)
    ties = np.flatnonzero(distance >= distance.max() - 1e-9)
    chosen = candidates[int(rng.choice(ties))]
    return Decision(JUMP, tuple(int(i) for i in chosen))


def min_distances(
    candidates: np.ndarray, visited: Sequence[Config], sizes: np.ndarray
) -> np.ndarray:
    """Per candidate, the smallest normalised grid distance to a visited config (0 if none)."""
    if not visited:
        return np.zeros(len(candidates))
    scale = sizes - 1
    diff = (candidates[:, None, :] - np.array(visited)[None, :, :]) / scale
    return np.sqrt((diff**2).sum(axis=2)).min(axis=1)
