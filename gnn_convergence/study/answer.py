"""The study's answer: candidates, their race on common datasets, the recommended config, the
boundary bands around it and the connected regions of configs judged inside.

Candidates are configs judged inside the working region on fresh datasets (robust, or
P(rate > 1/2) >= credibility), plus the leader's one-step neighbours away from a known
outside point. Up to ``rule.race_candidates`` of them race on one ordered stream of fresh datasets:
round k is the same datasets for every candidate. After each round a candidate is dropped once
the exact sign test on the datasets where it and the leader disagree says it is worse
(p < 1 - credibility); the race ends with one survivor, tied (after complete rounds, every
candidate has at least ``rule.race_tie_runs`` common race datasets with the leader and disagrees
with it on none), or after ``rule.race_rounds`` rounds; a latecomer reopens it. The
recommended config has the highest lower credible bound of its rate on fresh runs; ties go to
the config farther (in grid steps) from the nearest outside point, then to more runs.
Regions are the connected components of the configs judged inside; while there are two or
more, the path from the first region's best config to each other region's best is probed like
a ray (:func:`path`: one grid step at a time, parameters in index order), until a point judged
outside or in transition separates them or every point is inside and they merge. A
dataset whose runs failed at every config judged inside that it was run at is **hard**: no
training config of the study fixes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from gnn_convergence.study.evidence import (
    HALF,
    NOT_ROBUST,
    ROBUST,
    Evidence,
    RobustRule,
    decide,
    discordant,
    prob_better,
    sign_test,
)
from gnn_convergence.study.space import Param
from gnn_convergence.study.vocabulary import RACE

Config = tuple[int, ...]
SIDES = ((-1, "low"), (1, "high"))
INSIDE, TRANSITION, OUTSIDE = "inside", "transition", "outside"


@dataclass(frozen=True)
class Band:
    """Where the rate crosses one half along one parameter, seen from the recommended config.

    Attributes:
        origin: The config probed from.
        param: Full name of the probed parameter.
        side: ``low`` (decreasing index) or ``high``.
        inside: Last index judged inside (P(rate > 1/2) >= credibility on fresh runs).
        transition: Indices beyond it left undecided at ``probe_runs`` fresh runs.
        outside: First index judged outside, None when the grid ended first.
        inside_runs: (converged, fresh runs) at ``inside``.
        outside_runs: (converged, fresh runs) at ``outside``, None at the grid end.
    """

    origin: Config
    param: str
    side: str
    inside: int
    transition: tuple[int, ...]
    outside: int | None
    inside_runs: tuple[int, int]
    outside_runs: tuple[int, int] | None

    @property
    def in_range(self) -> bool:
        """Whether the rate was seen to leave the inside within the grid."""
        return self.outside is not None or bool(self.transition)


@dataclass(frozen=True)
class Probe:
    """A probe point owed: ``config`` needs more fresh runs. ``origin`` is the config it
    steps from: the recommended config for a band's ray, the path's previous point for a path
    between regions."""

    config: Config
    origin: Config


@dataclass(frozen=True)
class RaceRun:
    """A race round owed: ``config`` runs round ``round`` of the validation stream."""

    config: Config
    round: int


@dataclass(frozen=True)
class Cut:
    """Where the probed path from the first region's best config to another region's best
    left the inside: its first point judged outside, or one in transition (still undecided
    at ``probe_runs`` fresh runs), with that point's (converged, fresh runs)."""

    config: Config
    judged: str  # OUTSIDE or TRANSITION
    runs: tuple[int, int]


@dataclass(frozen=True)
class Region:
    """Configs judged inside, joined by one-step moves; ``best`` has the highest bound.
    ``cut``: for a region after the first, where the path from the first region's best to
    this one's left the inside (separated); None while the path is not yet probed."""

    configs: tuple[Config, ...]
    best: Config
    cut: Cut | None = None


@dataclass(frozen=True)
class HardData:
    """A dataset that no config judged inside converged on: its seed, runs and configs."""

    data_seed: int
    runs: int
    configs: int


@dataclass(frozen=True)
class Answer:
    """What the study recommends and how far one can move from it, so far."""

    recommended: Config | None
    reason: str | None
    runner_up: Config | None
    p_better: float | None
    candidates: tuple[Config, ...]
    racing: tuple[Config, ...]
    dropped: tuple[Config, ...]
    race_owed: tuple[RaceRun, ...]
    race_tied: bool  # the race ended tied: every candidate agreed with the leader
    race_common: int  # then: the fewest common race datasets a candidate has with the leader
    bands: tuple[Band, ...]
    probes_owed: tuple[Probe, ...]
    paths_owed: tuple[Probe, ...]  # the next point of each unknown path between regions
    regions: tuple[Region, ...]
    hard: tuple[HardData, ...]
    datasets_inside: int  # datasets with runs at configs judged inside


def study_answer(
    params: Sequence[Param],
    evidence: Mapping[Config, Evidence],
    rule: RobustRule,
) -> Answer:
    """The answer the evidence gives (see the module docstring)."""
    inside = [c for c, ev in evidence.items() if ev.inside]
    ranked = sorted(inside, key=lambda c: _rank(c, evidence, params))
    candidates = _with_interior_neighbours(ranked, params, evidence)
    candidates = candidates[: rule.race_candidates]
    racing, dropped = _race(candidates, evidence, rule)
    race_common = _race_tie(racing, evidence, rule) if len(racing) > 1 else 0
    race_owed = (
        _race_owed(racing, evidence, rule.race_rounds)
        if len(racing) > 1 and not race_common
        else ()
    )
    finalists = sorted(
        (c for c in racing if c in evidence and evidence[c].inside),
        key=lambda c: _rank(c, evidence, params),
    )
    order = finalists + [c for c in ranked if c not in finalists]
    recommended = order[0] if order else None
    runner_up = order[1] if len(order) > 1 else None
    p_better = None
    if recommended is not None and runner_up is not None:
        p_better = prob_better(evidence[recommended].counts, evidence[runner_up].counts)
    rays = [
        _ray(params, evidence, rule, recommended, p, step)
        for p in range(len(params) if recommended is not None else 0)
        for step, _ in SIDES
    ]
    found = regions(inside, evidence, params)
    paths = [_path(evidence, rule, found[0].best, r.best) for r in found[1:]]
    found = found[:1] + tuple(
        replace(r, cut=p) if isinstance(p, Cut) else r
        for r, p in zip(found[1:], paths, strict=True)
    )
    return Answer(
        recommended=recommended,
        reason=None if recommended is not None else _reason(evidence, rule),
        runner_up=runner_up,
        p_better=p_better,
        candidates=tuple(candidates),
        racing=tuple(racing),
        dropped=tuple(dropped),
        race_owed=tuple(race_owed),
        race_tied=bool(race_common),
        race_common=race_common,
        bands=tuple(r for r in rays if isinstance(r, Band)),
        probes_owed=tuple(r for r in rays if isinstance(r, Probe)),
        paths_owed=tuple(p for p in paths if isinstance(p, Probe)),
        regions=found,
        hard=hard_datasets(inside, evidence),
        datasets_inside=len({r.data_seed for c in inside for r in evidence[c].runs} - {None}),
    )


def hard_datasets(
    inside: Sequence[Config], evidence: Mapping[Config, Evidence]
) -> tuple[HardData, ...]:
    """Datasets run at configs judged inside on which none of those runs converged."""
    runs: dict[int, list] = {}
    for config in inside:
        for run in evidence[config].runs:
            if run.data_seed is not None:
                runs.setdefault(run.data_seed, []).append((config, run))
    return tuple(
        HardData(seed, len(found), len({c for c, _ in found}))
        for seed, found in sorted(runs.items())
        if not any(run.converged for _, run in found)
    )


def _rank(config: Config, evidence: Mapping[Config, Evidence], params) -> tuple:
    ev = evidence[config]
    return (-round(ev.lower, 9), -_margin(config, evidence, params), -ev.n, ev.visits[0].number)


def _margin(config: Config, evidence: Mapping[Config, Evidence], params) -> int:
    """Grid steps to the nearest config judged outside (the grid size where none is known)."""
    outside = [c for c, ev in evidence.items() if _outside(ev)]
    steps = (sum(abs(a - b) for a, b in zip(config, c, strict=True)) for c in outside)
    return min(steps, default=max(len(p.values) for p in params))


def _with_interior_neighbours(
    ranked: Sequence[Config], params: Sequence[Param], evidence: Mapping[Config, Evidence]
) -> list[Config]:
    """The ranked candidates with the leader's one-step neighbours away from a neighbour
    judged outside (or not inside) inserted right after the leader."""
    if not ranked:
        return []
    leader = ranked[0]
    extra = []
    for p in range(len(params)):
        for step, _ in SIDES:
            near = _shift(leader, p, step)
            far = _shift(leader, p, -step)
            if not (_on_grid(near, params) and _on_grid(far, params)):
                continue
            ev = evidence.get(near)
            if ev is None or not ev.validated or ev.inside:
                continue
            far_ev = evidence.get(far)
            if far not in ranked and far not in extra and (far_ev is None or not _outside(far_ev)):
                extra.append(far)
    return [leader, *extra, *ranked[1:]]


def _outside(ev: Evidence) -> bool:
    return ev.validated and decide(*ev.counts, HALF, ev.rule.credibility) == NOT_ROBUST


def _race(
    candidates: Sequence[Config], evidence: Mapping[Config, Evidence], rule: RobustRule
) -> tuple[list[Config], list[Config]]:
    """(still racing, dropped): a candidate is dropped when the sign test on the race
    datasets where it and the leader disagree says it is worse."""
    racing = list(candidates)
    dropped: list[Config] = []
    while len(racing) > 1:
        leader = _leader(racing, evidence)
        worst = None
        for config in racing:
            if config == leader:
                continue
            wins, losses = _discordant(config, leader, evidence)
            if sign_test(wins, losses) < 1.0 - rule.credibility:
                worst = config
                break
        if worst is None:
            break
        racing.remove(worst)
        dropped.append(worst)
    return racing, dropped


def _leader(racing: Sequence[Config], evidence: Mapping[Config, Evidence]) -> Config:
    return max(racing, key=lambda c: _race_score(c, evidence))


def _race_tie(
    racing: Sequence[Config], evidence: Mapping[Config, Evidence], rule: RobustRule
) -> int:
    """The fewest common race datasets a candidate has with the leader when the race ended
    tied, else 0: after complete rounds (every candidate has the same rounds), every candidate
    has at least ``race_tie_runs`` of them and no discordant one."""
    rounds = [_rounds(c, evidence) for c in racing]
    if not rule.race_tie_runs or any(r != rounds[0] for r in rounds):
        return 0
    leader = _leader(racing, evidence)
    common = []
    for config in racing:
        if config == leader:
            continue
        if _discordant(config, leader, evidence) != (0, 0):
            return 0
        common.append(len(_race_data(config, evidence) & _race_data(leader, evidence)))
    return min(common) if min(common) >= rule.race_tie_runs else 0


def _race_data(config: Config, evidence: Mapping[Config, Evidence]) -> set[int]:
    return {r.data_seed for r in _race_runs(config, evidence) if r.data_seed is not None}


def _race_runs(config: Config, evidence: Mapping[Config, Evidence]):
    ev = evidence.get(config)
    return [r for r in ev.runs if r.role == RACE] if ev is not None else []


def _race_score(config: Config, evidence: Mapping[Config, Evidence]) -> tuple[int, int]:
    runs = _race_runs(config, evidence)
    return sum(r.converged for r in runs), -len(runs)


def _discordant(
    config: Config, leader: Config, evidence: Mapping[Config, Evidence]
) -> tuple[int, int]:
    return discordant(_race_runs(config, evidence), _race_runs(leader, evidence))


def _rounds(config: Config, evidence: Mapping[Config, Evidence]) -> set[int]:
    ev = evidence.get(config)
    if ev is None:
        return set()
    return {v.round for v in ev.visits if v.role == RACE and v.round is not None}


def _race_owed(
    racing: Sequence[Config], evidence: Mapping[Config, Evidence], max_rounds: int
) -> list[RaceRun]:
    """The next round each racing candidate lacks: catch up to the furthest, then all on."""
    done = {c: _rounds(c, evidence) for c in racing}
    furthest = max((max(d) + 1 for d in done.values() if d), default=0)
    owed = [
        RaceRun(c, min(k for k in range(furthest) if k not in done[c]))
        for c in racing
        if any(k not in done[c] for k in range(furthest))
    ]
    if owed or furthest >= max_rounds:
        return owed
    return [RaceRun(c, furthest) for c in racing]


def _ray(
    params: Sequence[Param],
    evidence: Mapping[Config, Evidence],
    rule: RobustRule,
    origin: Config,
    p: int,
    step: int,
) -> Band | Probe | None:
    """Read the ray from ``origin`` along parameter ``p``: its band, a probe owed, or None
    while a probe point is running. Points are judged on fresh runs only, after at least
    ``probe_min_runs``; one still undecided at ``probe_runs`` is a transition point."""
    inside, transition = origin, []
    index = origin[p] + step
    while 0 <= index < len(params[p].values):
        point = _shift(origin, p, index - origin[p])
        ev = evidence.get(point)
        if ev is not None and ev.pending:
            return None
        judged, counts = _judge(ev, rule)
        if judged is None:
            return Probe(point, origin)
        if judged == NOT_ROBUST:
            return _band(params, evidence, origin, p, step, inside, transition, point, counts)
        if judged == ROBUST and not transition:
            inside = point
        else:
            transition.append(point)
        index += step
    return _band(params, evidence, origin, p, step, inside, transition, None, None)


def _judge(ev: Evidence | None, rule: RobustRule) -> tuple[str | None, tuple[int, int]]:
    """A probe point's verdict about one half on its fresh runs (robust, not robust, or
    undecided at ``probe_runs``), None while it needs more runs; and its (converged, runs)."""
    fresh = ev.fresh if ev is not None else ()
    counts = (sum(r.converged for r in fresh), len(fresh))
    judged = decide(*counts, HALF, rule.credibility) if counts[1] else None
    if counts[1] < rule.probe_min_runs or (
        judged not in (ROBUST, NOT_ROBUST) and counts[1] < rule.probe_runs
    ):
        return None, counts
    return judged, counts


def path(start: Config, end: Config) -> list[Config]:
    """The monotone grid path from ``start`` to ``end`` (``end`` included, ``start`` not):
    one grid step at a time, the first parameter all the way, then the next, in index order.
    One fixed order keeps the path a function of its two ends, so a replay finds the same
    points; it is one of the shortest paths, not a search for the best one."""
    points, here = [], start
    for p, target in enumerate(end):
        step = 1 if target > here[p] else -1
        while here[p] != target:
            here = _shift(here, p, step)
            points.append(here)
    return points


def _path(
    evidence: Mapping[Config, Evidence], rule: RobustRule, start: Config, end: Config
) -> Cut | Probe | None:
    """Walk the path from ``start`` toward ``end``, each point judged like a probe point: the
    first point judged outside or in transition separates the two regions (a Cut); a point
    that needs more fresh runs is owed (a Probe stepping from the previous point); None while
    a point is running, or when every point is inside (the regions then merge by themselves:
    the points join them one step at a time)."""
    previous = start
    for point in path(start, end):
        ev = evidence.get(point)
        if ev is not None and ev.pending:
            return None
        judged, counts = _judge(ev, rule)
        if judged is None:
            return Probe(point, previous)
        if judged != ROBUST:
            return Cut(point, OUTSIDE if judged == NOT_ROBUST else TRANSITION, counts)
        previous = point
    return None


def _band(params, evidence, origin, p, step, inside, transition, outside, outside_runs) -> Band:
    ev = evidence[inside]
    counts = ev.counts if inside == origin else (sum(r.converged for r in ev.fresh), len(ev.fresh))
    return Band(
        origin=origin,
        param=params[p].name,
        side=dict(SIDES)[step],
        inside=inside[p],
        transition=tuple(c[p] for c in transition),
        outside=None if outside is None else outside[p],
        inside_runs=counts,
        outside_runs=outside_runs,
    )


def regions(
    inside: Sequence[Config], evidence: Mapping[Config, Evidence], params: Sequence[Param]
) -> tuple[Region, ...]:
    """Configs judged inside, merged into regions joined by one-step moves."""
    left, out = set(inside), []
    for seed in inside:
        if seed not in left:
            continue
        group, frontier = [], [seed]
        left.discard(seed)
        while frontier:
            config = frontier.pop()
            group.append(config)
            for p in range(len(config)):
                for step, _ in SIDES:
                    near = _shift(config, p, step)
                    if near in left:
                        left.discard(near)
                        frontier.append(near)
        best = min(group, key=lambda c: _rank(c, evidence, params))
        out.append(Region(tuple(sorted(group)), best))
    return tuple(out)


def _reason(evidence: Mapping[Config, Evidence], rule: RobustRule) -> str:
    runs = [ev for ev in evidence.values() if ev.runs]
    if not runs:
        return "no run has finished yet"
    if not any(ev.validated for ev in runs):
        if not any(ev.converged >= rule.level * ev.n for ev in runs):
            return (
                f"no config converged in a share of its runs >= level {rule.level:g}, "
                "so none was validated"
            )
        return (
            "no config has been validated on fresh datasets yet "
            "(a study that ends here needs a larger n_trials)"
        )
    return (
        "no config is judged inside the working region: none is robust or has "
        f"P(rate > 0.5) >= {rule.credibility:g} on fresh datasets"
    )


def _shift(config: Config, p: int, delta: int) -> Config:
    return config[:p] + (config[p] + delta,) + config[p + 1 :]


def _on_grid(config: Config, params: Sequence[Param]) -> bool:
    return all(0 <= i < len(p.values) for i, p in zip(config, params, strict=True))
