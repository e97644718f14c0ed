"""The study protocol as a pure function of the trial history, decided on runs.

A config is a tuple of grid indices, one per :class:`~gnn_convergence.study.space.Param`. Every
decided trial carries a decision (system attribute :data:`DECISION`): its role, config,
parent trial and the seeds of its runs. :func:`protocol_state` replays those trials in number
order into per-config evidence (every run: its dataset, connectivity_R2 and class), walks and
the boundaries found by probing; :func:`next_decision` derives what the next trial runs.
Neither keeps anything between calls. ``docs/protocol.md`` describes the protocol in full.

In short: a walk starts at the start config (later at a jump) with a panel of datasets, and
moves one parameter by one grid step at a time from its incumbent, each move run on the panel
so it is compared with its parent run by run on the same data. A config whose first trial did
not converge and cannot be told apart from its parent is retried; a promising config is
validated on fresh datasets until the posterior of its per-run convergence rate decides
(:class:`~gnn_convergence.study.evidence.RobustRule`); from a config whose rate is clearly above
one half, probes step outward along every parameter, on fresh datasets, until the rate crosses
one half. Then, or when the walk has made ``patience`` moves without improving, a jump starts a
new walk far from every config run so far.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from gnn_convergence.outcome import CONVERGED, Thresholds, classify
from gnn_convergence.study.evidence import (
    NOT_ROBUST,
    PENDING,
    ROBUST,
    UNDECIDED,
    RobustRule,
    decide,
    lower_bound,
    posterior_mean,
    prob_above,
)
from gnn_convergence.study.space import Param, fingerprint
from gnn_convergence.study.vocabulary import (
    DECISION,
    ENQUEUED,
    JUMP,
    MOVE,
    PER_SEED,
    PROBE,
    REPORTED,
    RETRY,
    START,
    VALIDATE,
    finite,
)

WALK_ROLES = (START, JUMP, MOVE)
RETRY_RULES = ("undecided", "all")  # retry a non-converged first trial when undecided, or always
JUMP_RULES = ("far", "farthest")  # a random far config, or the farthest (often a corner)
TIE = 0.05  # paired mean difference of connectivity_R2 within which two configs are tied
HALF = 0.5  # the convergence rate at which a boundary lies
MAX_JUMP_CANDIDATES = 2000
DEFAULT_THRESHOLDS = Thresholds()
DEFAULT_RULE = RobustRule()
_SIDES = ((-1, "low"), (1, "high"))

Config = tuple[int, ...]


@dataclass(frozen=True)
class Decision:
    """What one trial runs: role, config, the trial it departs from, and its datasets.

    ``panel`` is the walk's datasets for a move or a retry, None for fresh datasets (a start or
    jump draws the panel of its walk; validations and probes run on fresh data).
    """

    role: str
    config: Config
    parent: int | None = None
    panel: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Run:
    """One training run of a trial: its seeds, connectivity_R2 (None: none) and class."""

    trial: int
    seed: int | None
    data_seed: int | None
    value: float | None
    outcome: str

    @property
    def converged(self) -> bool:
        """Whether the run converged."""
        return self.outcome == CONVERGED


@dataclass(frozen=True)
class Visit:
    """One decided trial: its role, config, parent, planned datasets and finished runs."""

    number: int
    role: str
    config: Config
    parent: int | None
    data_seeds: tuple[int, ...] | None
    runs: tuple[Run, ...]
    pending: bool

    @property
    def converged(self) -> int:
        """Converged runs of the trial."""
        return sum(r.converged for r in self.runs)


@dataclass(frozen=True)
class Evidence:
    """A config's trials and what its runs say about its per-run convergence rate.

    Attributes:
        visits: The config's trials, in number order.
        rule: The robust rule the verdict follows.
    """

    visits: tuple[Visit, ...]
    rule: RobustRule

    @property
    def runs(self) -> tuple[Run, ...]:
        """Every finished run."""
        return tuple(r for v in self.visits for r in v.runs)

    @property
    def sample(self) -> tuple[Run, ...]:
        """The runs its convergence rate is estimated from: its validation runs once it has
        any, else all its runs. A walk keeps a config because it converged on the walk's
        panel, so the panel's runs overstate the rate of exactly the configs that get
        validated; fresh datasets do not."""
        fresh = tuple(r for v in self.visits if v.role == VALIDATE for r in v.runs)
        return fresh or self.runs

    @property
    def n(self) -> int:
        """Number of runs the rate is estimated from."""
        return len(self.sample)

    @property
    def converged(self) -> int:
        """Converged runs among them."""
        return sum(r.converged for r in self.sample)

    @property
    def pending(self) -> bool:
        """Whether one of its trials is running."""
        return any(v.pending for v in self.visits)

    @property
    def validated(self) -> bool:
        """Whether it has runs on validation data (datasets no walk compared it on)."""
        return any(v.role == VALIDATE and v.runs for v in self.visits)

    @property
    def unstable(self) -> bool:
        """Converged and non-converged runs both seen: a note, never a verdict."""
        return 0 < sum(r.converged for r in self.runs) < len(self.runs)

    @property
    def mean(self) -> float:
        """Posterior mean of the convergence rate."""
        return posterior_mean(self.converged, self.n)

    @property
    def lower(self) -> float:
        """90% lower credible bound of the convergence rate."""
        return lower_bound(self.converged, self.n, 0.9)

    @property
    def verdict(self) -> str:
        """robust (only on validation runs), not robust, undecided or pending."""
        verdict = self.rule.verdict(self.converged, self.n)
        return UNDECIDED if verdict == ROBUST and not self.validated else verdict

    def above(self, level: float) -> float:
        """P(rate > level)."""
        return prob_above(self.converged, self.n, level)

    def by_data(self) -> dict[int | None, list[Run]]:
        """Finished runs grouped by dataset."""
        out: dict[int | None, list[Run]] = {}
        for run in self.runs:
            out.setdefault(run.data_seed, []).append(run)
        return out


@dataclass(frozen=True)
class Walk:
    """Trials from one start or jump up to the next one.

    Attributes:
        first: Number of the start or jump trial.
        visits: Every protocol trial in the walk's span, in number order.
        panel: The walk's datasets (those of its first trial).
        configs: Configs the walk visited (start/jump and moves), in visiting order.
        incumbent: The best config so far, by paired comparisons on the panel.
        stale: Finished moves since the incumbent last improved.
    """

    first: int
    visits: tuple[Visit, ...]
    panel: tuple[int, ...] | None
    configs: tuple[Config, ...]
    incumbent: Config
    stale: int


@dataclass(frozen=True)
class Boundary:
    """Where probing from ``origin`` found the convergence rate crossing one half.

    Attributes:
        origin: The config probed from (robust, or its rate clearly above one half).
        param: Full name of the probed parameter.
        side: ``low`` (decreasing index) or ``high``.
        inside: Last index on the ray whose rate is above one half.
        outside: First index whose rate is below, None when the grid ended first.
        inside_runs: (converged, runs) at ``inside``.
        outside_runs: (converged, runs) at ``outside``, None at the grid end.
    """

    origin: Config
    param: str
    side: str
    inside: int
    outside: int | None
    inside_runs: tuple[int, int]
    outside_runs: tuple[int, int] | None


@dataclass(frozen=True)
class ProtocolState:
    """Everything the protocol knows from a trial history (see :func:`protocol_state`)."""

    params: tuple[Param, ...]
    rule: RobustRule
    visits: tuple[Visit, ...]
    evidence: Mapping[Config, Evidence]
    walks: tuple[Walk, ...]
    boundaries: tuple[Boundary, ...]
    open_probes: tuple[Decision, ...]

    def verdict(self, config: Config) -> str:
        """The config's verdict (pending when it never ran)."""
        ev = self.evidence.get(config)
        return ev.verdict if ev is not None else PENDING

    def robust_configs(self) -> list[Config]:
        """Configs whose verdict is robust, in the order they were first run."""
        return [c for c, ev in self.evidence.items() if ev.verdict == ROBUST]

    def first_number(self, config: Config) -> int:
        """Number of the config's first trial."""
        return self.evidence[config].visits[0].number

    def config_of(self, number: int | None) -> Config | None:
        """Config run by trial ``number``, None if unknown."""
        return next((v.config for v in self.visits if v.number == number), None)

    def regions(self) -> dict[Config, tuple[Boundary, ...]]:
        """Finished boundaries per probe origin (a working region's extent so far)."""
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
    rule: RobustRule = DEFAULT_RULE,
) -> ProtocolState:
    """Replay decided trials into the protocol's state.

    Trials without a decision, with another space fingerprint, off-grid enqueued trials,
    waiting trials and FAIL trials whose job never reported (``reported`` user attribute False:
    a killed or interrupted job) are ignored. RUNNING trials are pending. A run's class comes
    from its connectivity_R2 and ``thresholds``; a trial without per-run records counts as one
    run of its value, a FAIL one as a failed run per planned dataset.

    Args:
        trials: Trials of the study, any order (e.g. ``study.get_trials(deepcopy=False)``).
        params: The study parameters, in the sampler's order.
        thresholds: Class thresholds of connectivity_R2.
        rule: When a config is robust.
    """
    params = tuple(params)
    space = fingerprint(params)
    visits = tuple(
        visit
        for t in sorted(trials, key=lambda t: t.number)
        if (visit := _visit(t, space, thresholds)) is not None
    )
    grouped: dict[Config, tuple[Visit, ...]] = {}
    for visit in visits:
        grouped[visit.config] = (*grouped.get(visit.config, ()), visit)
    evidence = {c: Evidence(vs, rule) for c, vs in grouped.items()}
    walks = _walks(visits, evidence)
    origins = tuple(
        c
        for c in _walk_configs(walks)
        if evidence[c].validated
        and (evidence[c].verdict == ROBUST or evidence[c].above(HALF) >= rule.credibility)
    )
    rays = [
        _ray(params, evidence, rule, origin, p, step)
        for origin in origins
        for p in range(len(params))
        for step, _ in _SIDES
    ]
    return ProtocolState(
        params=params,
        rule=rule,
        visits=visits,
        evidence=evidence,
        walks=walks,
        boundaries=tuple(r for r in rays if isinstance(r, Boundary)),
        open_probes=tuple(r for r in rays if isinstance(r, Decision)),
    )


def _visit(trial: FrozenTrial, space: str, thresholds: Thresholds) -> Visit | None:
    decision = trial.system_attrs.get(DECISION)
    if not isinstance(decision, Mapping) or decision.get("fingerprint") != space:
        return None
    if not decision.get("on_grid", True) or trial.state == TrialState.WAITING:
        return None
    if trial.state == TrialState.FAIL and trial.user_attrs.get(REPORTED) is False:
        return None  # killed or interrupted before its job reported: no run, decide it again
    planned = decision.get("data_seeds")
    data_seeds = tuple(int(s) for s in planned) if isinstance(planned, list) else None
    pending = trial.state == TrialState.RUNNING
    return Visit(
        number=trial.number,
        role=decision["role"],
        config=tuple(int(i) for i in decision["config"]),
        parent=decision.get("parent"),
        data_seeds=data_seeds,
        runs=() if pending else _runs(trial, data_seeds, thresholds),
        pending=pending,
    )


def _runs(
    trial: FrozenTrial, data_seeds: tuple[int, ...] | None, thresholds: Thresholds
) -> tuple[Run, ...]:
    records = trial.user_attrs.get(PER_SEED)
    if isinstance(records, list) and records:
        return tuple(
            _run(
                trial.number,
                r.get("seed"),
                r.get("data_seed"),
                r.get("connectivity_R2"),
                thresholds,
            )
            for r in records
            if isinstance(r, Mapping)
        )
    if trial.state == TrialState.COMPLETE:
        return (_run(trial.number, None, None, trial.value, thresholds),)
    return tuple(_run(trial.number, None, d, None, thresholds) for d in data_seeds or (None,))


def _run(number: int, seed: Any, data_seed: Any, value: Any, thresholds: Thresholds) -> Run:
    value = finite(value)
    return Run(number, seed, data_seed, value, classify(value, thresholds))


def _walks(visits: Sequence[Visit], evidence: Mapping[Config, Evidence]) -> tuple[Walk, ...]:
    spans: list[list[Visit]] = []
    for visit in visits:
        if visit.role in (START, JUMP):
            spans.append([visit])
        elif visit.role != ENQUEUED and spans:
            spans[-1].append(visit)
    return tuple(_walk(span, evidence) for span in spans)


def _walk(span: Sequence[Visit], evidence: Mapping[Config, Evidence]) -> Walk:
    incumbent, stale = span[0].config, 0
    for visit in span:
        if visit.role == MOVE and not visit.pending:
            if better(evidence[visit.config], evidence[incumbent]):
                incumbent, stale = visit.config, 0
            else:
                stale += 1
    return Walk(
        first=span[0].number,
        visits=tuple(span),
        panel=span[0].data_seeds,
        configs=tuple(dict.fromkeys(v.config for v in span if v.role in WALK_ROLES)),
        incumbent=incumbent,
        stale=stale,
    )


def _walk_configs(walks: Sequence[Walk]) -> list[Config]:
    return list(dict.fromkeys(c for w in walks for c in w.configs))


def paired(a: Evidence, b: Evidence) -> tuple[float, float] | None:
    """(converged difference, mean connectivity_R2 difference) of a over b on their shared
    datasets, per dataset averaged over its runs; on all runs when they share none. None when
    either has no finished run."""
    runs_a, runs_b = a.by_data(), b.by_data()
    if not runs_a or not runs_b:
        return None
    shared = [d for d in runs_a if d in runs_b and d is not None]
    if shared:
        pairs = [(runs_a[d], runs_b[d]) for d in shared]
    else:
        pairs = [(list(a.runs), list(b.runs))]
    conv = sum(_share(ra) - _share(rb) for ra, rb in pairs)
    mean = sum(_mean(ra) - _mean(rb) for ra, rb in pairs) / len(pairs)
    return conv, mean


def better(a: Evidence, b: Evidence) -> bool:
    """Whether a beats b: more converged on shared data, else a higher paired mean."""
    diff = paired(a, b)
    if diff is None:
        return False
    conv, mean = diff
    return conv > 1e-9 or (abs(conv) <= 1e-9 and mean > 0.0)


def tied(a: Evidence, b: Evidence) -> bool:
    """Whether the paired comparison cannot tell a from b."""
    diff = paired(a, b)
    return diff is not None and abs(diff[0]) <= 1e-9 and abs(diff[1]) < TIE


def _share(runs: Sequence[Run]) -> float:
    return sum(r.converged for r in runs) / len(runs)


def _mean(runs: Sequence[Run]) -> float:
    return sum(r.value or 0.0 for r in runs) / len(runs)


def _ray(
    params: Sequence[Param],
    evidence: Mapping[Config, Evidence],
    rule: RobustRule,
    origin: Config,
    p: int,
    step: int,
) -> Boundary | Decision | None:
    """Read the probe ray from ``origin``: its boundary, the next run it needs, or None.

    Probe points run on fresh datasets: a walk's panel says how a config compares with its
    parent, but its datasets are shared by every config of the walk, so their runs are not
    independent draws of a config's convergence rate."""
    side = dict(_SIDES)[step]
    inside = origin
    index = origin[p] + step
    while 0 <= index < len(params[p].values):
        point = _shift(origin, p, index - origin[p])
        ev = evidence.get(point)
        parent = evidence[origin].visits[0].number
        if ev is None:
            return Decision(PROBE, point, parent)
        if ev.pending:
            return None
        side_of = decide(ev.converged, ev.n, HALF, rule.credibility)
        if side_of == UNDECIDED and ev.n < rule.probe_runs:
            return Decision(PROBE, point, parent)
        if side_of == NOT_ROBUST or (side_of == UNDECIDED and ev.mean <= HALF):
            outside = (ev.converged, ev.n)
            return Boundary(
                origin, params[p].name, side, inside[p], index, _count(evidence[inside]), outside
            )
        inside, index = point, index + step
    return Boundary(origin, params[p].name, side, inside[p], None, _count(evidence[inside]), None)


def _count(ev: Evidence) -> tuple[int, int]:
    return ev.converged, ev.n


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

    Order: a retry, a validation or a probe still owed by any walk; else the start; else a move
    of the current walk; else (robust config found, patience spent or boxed in) a jump.
    """
    owed = next(_owed(state, retry), None)
    if owed is not None:
        return owed
    if not state.walks:
        return Decision(START, start)
    walk = state.walks[-1]
    move = None if _walk_over(state, walk, patience) else _move(state, walk, rng)
    return move or _jump(state, rng, jump)


def _owed(state: ProtocolState, retry: str) -> Iterator[Decision]:
    for walk in state.walks:
        for config in walk.configs:
            if _needs_retry(state, config, retry):
                ev = state.evidence[config]
                yield Decision(RETRY, config, ev.visits[0].number, walk.panel)
    for config in _walk_configs(state.walks):
        ev = state.evidence[config]
        if not ev.pending and ev.n and _needs_validation(ev, state.rule):
            yield Decision(VALIDATE, config, ev.visits[0].number)
    yield from state.open_probes


def _needs_retry(state: ProtocolState, config: Config, retry: str) -> bool:
    """A single, finished, not fully converged first trial whose evidence is undecided: some
    of its runs converged, or it ties with a parent that converged (``undecided``)."""
    ev = state.evidence[config]
    if ev.pending or len(ev.visits) != 1 or ev.converged == ev.n or _promising(ev, state.rule):
        return False
    if retry == "all" or ev.converged:
        return True
    parent = state.config_of(ev.visits[0].parent)
    if parent is None or parent == config:
        return False
    return state.evidence[parent].converged > 0 and tied(ev, state.evidence[parent])


def _promising(ev: Evidence, rule: RobustRule) -> bool:
    return ev.n > 0 and ev.converged / ev.n >= rule.level


def _needs_validation(ev: Evidence, rule: RobustRule) -> bool:
    """Validate a promising config, and keep validating while undecided, up to max_runs."""
    if ev.verdict != UNDECIDED or ev.n >= rule.max_runs:
        return False
    return ev.validated or _promising(ev, rule)


def _walk_over(state: ProtocolState, walk: Walk, patience: int) -> bool:
    if any(state.verdict(c) == ROBUST for c in walk.configs):
        return True
    return walk.stale >= patience


def _move(state: ProtocolState, walk: Walk, rng: np.random.Generator) -> Decision | None:
    incumbent = walk.incumbent
    parent = state.first_number(incumbent)
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
