"""The answer stage a baseline's search is followed by: the package's own race and
recommendation, run on the search's evidence.

The search's trials become the package's evidence (``Run``, ``Visit``, ``Evidence``): a
previous-protocol trial keeps its role (its validation and probe runs are fresh, its walk's
runs are not); a TPE or random-search trial counts as a validation trial, since each has
datasets of its own (its runs are fresh data, though the search picked its configs on them).
The race's candidates are the configs judged inside, topped up to ``race_candidates`` with
the search's best configs by mean connectivity_R2 (what a user of the search would pick from
its trials): each of those first runs race round 0, which gives it fresh common runs.
Then, while ``study_answer`` owes race rounds and the stage has trials left, the owed race
trials run on the validation stream's common datasets (``race_datasets``), and the answer is
read again. The recommendation, the robust labels and the bands are the package's.
"""

from __future__ import annotations

from typing import Any

from sampler_studies import SEARCH_ROLE, TrialRecord
from sampler_world import PARAMS, Config, World

from gnn_convergence.outcome import classify
from gnn_convergence.study.answer import study_answer
from gnn_convergence.study.evidence import ROBUST, Evidence, Run, Visit
from gnn_convergence.study.seeding import race_datasets, study_offset, trial_seeds
from gnn_convergence.study.vocabulary import RACE, VALIDATE

N_RUNS = 3


def visit_of(record: TrialRecord) -> Visit:
    role = VALIDATE if record.role == SEARCH_ROLE else record.role
    runs = tuple(
        Run(record.number, role, s, d, v, classify(v))
        for s, d, v in zip(record.seeds, record.data_seeds, record.values, strict=True)
    )
    return Visit(
        record.number,
        role,
        record.config,
        None,
        tuple(record.data_seeds),
        runs,
        False,
        record.round,
    )


def evidence_of(records: list[TrialRecord], rule: Any) -> dict[Config, Evidence]:
    grouped: dict[Config, list[Visit]] = {}
    for record in records:
        grouped.setdefault(record.config, []).append(visit_of(record))
    return {c: Evidence(tuple(vs), rule) for c, vs in grouped.items()}


def race_trial(world: World, config: Config, round_: int, number: int) -> TrialRecord:
    offset = study_offset(world.seed)
    panel = race_datasets(offset, round_, N_RUNS)
    seeds, data = trial_seeds("paired", number, N_RUNS, 1, panel, offset)
    values = [world.run(config, d, s) for s, d in zip(seeds, data, strict=True)]
    return TrialRecord(number, RACE, config, seeds, list(data), values, round_)


def best_searched(
    records: list[TrialRecord], evidence: dict[Config, Evidence], k: int
) -> list[Config]:
    """The search's ``k`` best configs not judged inside, by the mean connectivity_R2 of their
    runs (a diverged run counts 0), then by more runs."""
    values: dict[Config, list[float]] = {}
    for record in records:
        values.setdefault(record.config, []).extend(v or 0.0 for v in record.values)
    not_inside = [c for c in values if not evidence[c].inside]
    not_inside.sort(key=lambda c: (-sum(values[c]) / len(values[c]), -len(values[c])))
    return not_inside[: max(k, 0)]


def answer_stage(
    world: World, records: list[TrialRecord], rule: Any, trials: int
) -> tuple[list[TrialRecord], Any, list[Config]]:
    """Race the search's candidates with at most ``trials`` trials: (all records, the
    answer, the configs labelled robust)."""
    records = list(records)
    number = max((r.number for r in records), default=-1) + 1
    evidence = evidence_of(records, rule)
    inside = sum(ev.inside for ev in evidence.values())
    picked = best_searched(records, evidence, rule.race_candidates - inside)[:trials]
    for i, config in enumerate(picked):
        records.append(race_trial(world, config, 0, number + i))
    number, spent = number + len(picked), len(picked)
    while True:
        evidence = evidence_of(records, rule)
        answer = study_answer(PARAMS, evidence, rule)
        owed = answer.race_owed[: trials - spent]
        if not owed:
            robust = [c for c, ev in evidence.items() if ev.verdict == ROBUST]
            return records, answer, robust
        for race in owed:
            records.append(race_trial(world, race.config, race.round, number))
            number, spent = number + 1, spent + 1
