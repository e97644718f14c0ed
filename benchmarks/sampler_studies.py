"""One study of each sampler on a world: the objective, the searches and their trial records.

Every trial is 3 runs. The protocols write each trial's training seeds and datasets as its user
attributes ``seeds`` and ``data_seeds``; TPE and random search get fresh ones, the study
offset plus 3 * number + i (as the ``rerun`` seed mode). The objective sets ``per_seed`` and
tells the minimum connectivity_R2, or FAIL when a run diverged.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from sampler_world import PARAMS, START, Config, World

from gnn_convergence.study.demo import SEED_START
from gnn_convergence.study.space import snap_index

N_RUNS = 3
SEARCH_ROLE = "search"  # role of a TPE or random-search trial


@dataclass
class TrialRecord:
    """One trial: its number, role, config, seeds, datasets, values and race round."""

    number: int
    role: str
    config: Config
    seeds: list[int]
    data_seeds: list[int]
    values: list[float | None]
    round: int | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrialRecord:
        return cls(**(d | {"config": tuple(d["config"])}))


@dataclass
class Claim:
    """A boundary as reported: from ``origin`` along parameter ``p`` in direction ``step``,
    the last inside index, the first outside index (None: none) and whether a crossing is
    claimed at all (False: "no boundary in range")."""

    origin: Config
    p: int
    step: int
    inside: int
    outside: int | None
    in_range: bool

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Claim:
        return cls(**(d | {"origin": tuple(d["origin"])}))


def cache_prob_above() -> None:
    """Memoise the package's ``evidence.prob_above`` and the answer's ``prob_better``, pure
    functions that the answer calls some 10^5 times a study: the same results, 10 times
    faster. Only what exists is memoised (the previous commit has no answer module)."""
    from gnn_convergence.study import evidence

    if not hasattr(evidence.prob_above, "cache_info"):
        evidence.prob_above = functools.lru_cache(maxsize=None)(evidence.prob_above)
    try:
        from gnn_convergence.study import answer
    except ImportError:
        return
    if hasattr(answer, "prob_better") and not hasattr(answer.prob_better, "cache_info"):
        answer.prob_better = functools.lru_cache(maxsize=None)(answer.prob_better)


def values_of(c: Config) -> dict[str, Any]:
    return {p.name: p.values[i] for p, i in zip(PARAMS, c, strict=True)}


def config_of(trial: optuna.trial.BaseTrial) -> Config:
    return tuple(snap_index(p, trial.params[p.name]) for p in PARAMS)


def fresh_seeds(offset: int, number: int) -> list[int]:
    return [offset + N_RUNS * number + i for i in range(N_RUNS)]


def evaluate(world: World, study: optuna.Study, trial: optuna.Trial, offset: int) -> TrialRecord:
    """Run the trial's runs in ``world``, set ``per_seed``, tell min or FAIL."""
    config = config_of(trial)
    attrs = trial.user_attrs
    seeds = attrs.get("seeds") or fresh_seeds(offset, trial.number)
    data = attrs.get("data_seeds") or seeds
    values = [world.run(config, int(d), int(s)) for s, d in zip(seeds, data, strict=True)]
    trial.set_user_attr(
        "per_seed",
        [
            {"seed": int(s), "data_seed": int(d), "connectivity_R2": v}
            for s, d, v in zip(seeds, data, values, strict=True)
        ],
    )
    if any(v is None for v in values):
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, min(values))
    role = attrs.get("role", SEARCH_ROLE)
    return TrialRecord(trial.number, role, config, list(seeds), list(data), values)


def drive(world: World, study: optuna.Study, trials: int, offset: int) -> list[TrialRecord]:
    """ask, evaluate, tell ``trials`` trials."""
    distributions = {p.name: p.distribution for p in PARAMS}
    return [evaluate(world, study, study.ask(distributions), offset) for _ in range(trials)]


def rule_of(level: float, credibility: float, max_runs: int, probe_min_runs: int) -> Any:
    """The package's RobustRule with these four settings, its other defaults kept (probe_runs
    raised to probe_min_runs where below it)."""
    from gnn_convergence.study.evidence import RobustRule

    default = RobustRule()
    return dataclasses.replace(
        default,
        level=level,
        credibility=credibility,
        max_runs=max_runs,
        probe_min_runs=probe_min_runs,
        probe_runs=max(default.probe_runs, probe_min_runs),
    )


def band_claims(bands: Any) -> list[Claim]:
    """Claims of the package's bands (``answer.bands``)."""
    index = {p.name: i for i, p in enumerate(PARAMS)}
    return [
        Claim(
            tuple(b.origin),
            index[b.param],
            -1 if b.side == "low" else 1,
            b.inside,
            b.outside,
            b.in_range,
        )
        for b in bands
    ]


def run_current(world: World, budget: int, rule: Any) -> tuple[list[TrialRecord], Any]:
    """The current ProtocolSampler for ``budget`` trials: its records and its final state."""
    from gnn_convergence.study.sampler import ProtocolSampler
    from gnn_convergence.study.seeding import study_offset

    sampler = ProtocolSampler(PARAMS, start=SEED_START, seed=world.seed, robust=rule)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    records = drive(world, study, budget, study_offset(world.seed))
    return records, sampler.state(study)


def run_search(world: World, trials: int, kind: str) -> list[TrialRecord]:
    """TPE or random search from the start config (enqueued), snapped to the grid."""
    from gnn_convergence.study.seeding import study_offset

    cls = optuna.samplers.TPESampler if kind == "tpe" else optuna.samplers.RandomSampler
    study = optuna.create_study(sampler=cls(seed=world.seed), direction="maximize")
    study.enqueue_trial(values_of(START))
    return drive(world, study, trials, study_offset(world.seed))


def run_previous(world: World, trials: int, level: float, credibility: float, max_runs: int):
    """The ProtocolSampler of the previous commit (only with that package on sys.path): its
    records and its boundaries as claims. Its rule takes level, credibility and max_runs; its
    probes keep their own rule (probe_runs 6, an undecided point placed by its mean)."""
    from gnn_convergence.study.evidence import RobustRule
    from gnn_convergence.study.sampler import ProtocolSampler

    rule = RobustRule(level=level, credibility=credibility, max_runs=max_runs)
    sampler = ProtocolSampler(PARAMS, start=SEED_START, seed=world.seed, robust=rule)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    records = drive(world, study, trials, 0)
    claims = [
        Claim(
            tuple(b.origin),
            [p.name for p in PARAMS].index(b.param),
            -1 if b.side == "low" else 1,
            b.inside,
            b.outside,
            b.outside is not None,
        )
        for b in sampler.state(study).boundaries
    ]
    return records, claims
