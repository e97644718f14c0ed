"""The study protocol's decisions: what the next trial runs, given the replayed state.

A config is a tuple of grid indices, one per :class:`~gnn_convergence.study.space.Param`.
:func:`~gnn_convergence.study.replay.protocol_state` replays the trial history;
:func:`next_decision` derives the next trial from it. Neither keeps anything between calls.
``docs/protocol.md`` describes the protocol in full.

In short: a walk starts at the start config (later at a jump) with a panel of datasets, and
climbs one parameter by one grid step at a time from its incumbent, each move run on the panel
so it is compared with its parent run by run on the same data. A config whose first trial did
not converge and cannot be told apart from its parent is retried; a promising config that no
one-step neighbour beats on the panel is validated on fresh datasets until the posterior of its
per-run convergence rate decides (:class:`~gnn_convergence.study.evidence.RobustRule`).
Configs judged inside race on a common stream of fresh datasets for the recommendation, and
probes step outward from the recommended config along every parameter, on fresh datasets,
until the rate crosses one half (:mod:`~gnn_convergence.study.answer`). When the walk's
incumbent is validated, or the walk made ``patience`` moves without improving, a jump starts a
new walk far from every config run so far.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from gnn_convergence.study.evidence import (
    ROBUST,
    UNDECIDED,
    Evidence,
    RobustRule,
    better,
    tied,
)
from gnn_convergence.study.replay import Config, ProtocolState, Walk
from gnn_convergence.study.vocabulary import (
    JUMP,
    MOVE,
    PROBE,
    RACE,
    RETRY,
    START,
    VALIDATE,
)

RETRY_RULES = ("undecided", "all")  # retry a non-converged first trial when undecided, or always
JUMP_RULES = ("far", "farthest")  # a random far config, or the farthest (often a corner)
MAX_JUMP_CANDIDATES = 2000


@dataclass(frozen=True)
class Decision:
    """What one trial runs: role, config, the trial it departs from, and its datasets.

    ``panel`` is the walk's datasets for a move, a retry or the rerun of a killed start or
    jump; None for fresh datasets (a start or jump draws the panel of its walk; validations
    and probes run on fresh data). ``round`` is a race trial's round of the validation stream.
    """

    role: str
    config: Config
    parent: int | None = None
    panel: tuple[int, ...] | None = None
    round: int | None = None


def changed_param(before: Config, after: Config) -> int:
    """Index of the first parameter whose grid index differs between two configs."""
    return next(i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b)


def _shift(config: Config, p: int, delta: int) -> Config:
    return config[:p] + (config[p] + delta,) + config[p + 1 :]


def next_decision(
    state: ProtocolState,
    start: Config,
    rng: np.random.Generator,
    patience: int,
    retry: str = "undecided",
    jump: str = "far",
) -> Decision:
    """What the next trial runs, given everything decided before it.

    Order: the rerun of a killed start or jump, a retry, a validation, a race round, a probe
    of a band or a probe of a path between regions still owed; else the start; else a move of
    the current walk; else (its incumbent validated, patience spent or boxed in) a jump.
    """
    owed = next(_owed(state, retry, patience), None)
    if owed is not None:
        return owed
    if not state.walks:
        return Decision(START, start)
    walk = state.walks[-1]
    move = None if _walk_over(state, walk, patience) else _move(state, walk, rng)
    return move or _jump(state, rng, jump)


def _owed(state: ProtocolState, retry: str, patience: int) -> Iterator[Decision]:
    for walk in state.walks:
        if walk.rerun_owed:
            yield Decision(walk.role, walk.visits[0].config, walk.first, walk.panel)
    for walk in state.walks:
        for config in walk.configs:
            if _needs_retry(state, config, retry):
                ev = state.evidence[config]
                yield Decision(RETRY, config, ev.visits[0].number, walk.panel)
    for walk in state.walks:
        for config in walk.configs:
            if _needs_validation(state, walk, config, patience):
                yield Decision(VALIDATE, config, state.first_number(config))
    for owed in state.answer.race_owed:
        yield Decision(RACE, owed.config, _parent(state, owed.config), round=owed.round)
    for owed in state.answer.probes_owed:
        yield Decision(PROBE, owed.config, state.first_number(owed.origin))
    for owed in state.answer.paths_owed:
        yield Decision(PROBE, owed.config, state.first_number(owed.origin))


def _parent(state: ProtocolState, config: Config) -> int | None:
    ev = state.evidence.get(config)
    if ev is not None:
        return ev.visits[0].number
    recommended = state.answer.recommended
    return state.first_number(recommended) if recommended is not None else None


def _needs_retry(state: ProtocolState, config: Config, retry: str) -> bool:
    """A single, finished, not fully converged first trial whose evidence is undecided: some
    of its runs converged, or it ties with a parent that converged (``undecided``)."""
    ev = state.evidence.get(config)
    if ev is None or ev.pending or len(ev.visits) != 1 or ev.converged == ev.n:
        return False
    if _promising(ev, state.rule):
        return False
    if retry == "all" or ev.converged:
        return True
    parent = state.config_of(ev.visits[0].parent)
    if parent is None or parent == config:
        return False
    return state.evidence[parent].converged > 0 and tied(ev, state.evidence[parent])


def _promising(ev: Evidence, rule: RobustRule) -> bool:
    return ev.n > 0 and ev.converged / ev.n >= rule.level


def _needs_validation(state: ProtocolState, walk: Walk, config: Config, patience: int) -> bool:
    """Validate a promising config once the walk has climbed to it (no one-step neighbour
    beats it on the panel, and every neighbour has run or is running, or the walk is over),
    and keep validating while undecided, up to max_runs fresh runs. Trials asked in parallel
    validate a promising config again while even every running validation run converging
    would leave it undecided."""
    ev = state.evidence.get(config)
    if ev is None or not ev.n:
        return False
    running = [v for v in ev.visits if v.pending]
    if any(v.role != VALIDATE for v in running):
        return False
    if running and not _promising(ev, state.rule):
        return False
    ahead = sum(len(v.data_seeds or ()) for v in running)
    fresh = len(ev.fresh) + ahead
    if not fresh:
        return (
            ev.verdict == UNDECIDED
            and _promising(ev, state.rule)
            and _climbed(state, walk, config, patience)
        )
    best = state.rule.verdict(sum(r.converged for r in ev.fresh) + ahead, fresh)
    return best == UNDECIDED and fresh < state.rule.max_runs


def _climbed(state: ProtocolState, walk: Walk, config: Config, patience: int) -> bool:
    """No one-step neighbour beats ``config`` on the panel, and the walk cannot climb on."""
    neighbours = [n for n in _neighbours(state, config) if n in state.evidence]
    if any(better(state.evidence[n], state.evidence[config]) for n in neighbours):
        return False
    unexplored = len(neighbours) < len(_neighbours(state, config))
    over = walk is not state.walks[-1] or walk.stale >= patience
    return config == walk.incumbent and (not unexplored or over)


def _neighbours(state: ProtocolState, config: Config) -> list[Config]:
    return [
        _shift(config, p, delta)
        for p in range(len(state.params))
        for delta in (-1, 1)
        if 0 <= config[p] + delta < len(state.params[p].values)
    ]


def _walk_over(state: ProtocolState, walk: Walk, patience: int) -> bool:
    if state.evidence.get(walk.incumbent) is not None and state.evidence[walk.incumbent].validated:
        return True
    if any(state.verdict(c) == ROBUST for c in walk.configs):
        return True
    return walk.stale >= patience


def _move(state: ProtocolState, walk: Walk, rng: np.random.Generator) -> Decision | None:
    incumbent = walk.incumbent
    parent = state.first_number(incumbent) if incumbent in state.evidence else walk.first
    for p, delta in _move_order(state, walk, rng):
        if 0 <= incumbent[p] + delta < len(state.params[p].values):
            target = _shift(incumbent, p, delta)
            if target not in state.evidence:
                return Decision(MOVE, target, parent, walk.panel)
    return None


def _move_order(
    state: ProtocolState, walk: Walk, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """(parameter, direction) pairs to try: the last move's lesson first, then a cycle."""
    n = len(state.params)
    moves = [v for v in walk.visits if v.role == MOVE and not v.pending]
    preferred: list[tuple[int, int]] = []
    begin = 0
    parent = state.config_of(moves[-1].parent) if moves else None
    if parent is not None and parent != moves[-1].config:
        child = moves[-1].config
        p = changed_param(parent, child)
        begin = (p + 1) % n
        delta = child[p] - parent[p]
        improved = better(state.evidence[child], state.evidence[parent])
        preferred = [(p, delta if improved else -delta)]
    cycle = [
        (q % n, d)
        for q in range(begin, begin + n)
        for d in ((1, -1) if rng.random() < 0.5 else (-1, 1))
    ]
    return preferred + cycle


def _jump(state: ProtocolState, rng: np.random.Generator, rule: str) -> Decision:
    """Jump far from every config run so far: to a random config at least half as far as the
    farthest one (``far``), or to the farthest (``farthest``, often a corner of the grid)."""
    sizes = np.array([len(p.values) for p in state.params])
    if math.prod(sizes.tolist()) <= MAX_JUMP_CANDIDATES:
        candidates = np.array(list(itertools.product(*(range(s) for s in sizes))))
    else:
        candidates = np.stack([rng.integers(0, s, MAX_JUMP_CANDIDATES) for s in sizes], axis=1)
    distance = min_distances(candidates, list(state.evidence), sizes)
    floor = distance.max() - 1e-9 if rule == "farthest" else distance.max() / 2
    chosen = candidates[int(rng.choice(np.flatnonzero(distance >= floor)))]
    return Decision(JUMP, tuple(int(i) for i in chosen))


def min_distances(
    candidates: np.ndarray, visited: Sequence[Config], sizes: np.ndarray
) -> np.ndarray:
    """Per candidate, the smallest normalised grid distance to a visited config (0 if none)."""
    if not visited:
        return np.zeros(len(candidates))
    scale = np.maximum(sizes - 1, 1)
    diff = (candidates[:, None, :] - np.array(visited)[None, :, :]) / scale
    return np.sqrt((diff**2).sum(axis=2)).min(axis=1)
