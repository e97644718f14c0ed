"""The answer stage on hand-made evidence: the race, the recommendation, bands and regions."""

from __future__ import annotations

from gnn_convergence.outcome import CONVERGED, FAILED
from gnn_convergence.study.answer import RaceRun, regions, study_answer
from gnn_convergence.study.datasets import Dataset, separation
from gnn_convergence.study.demo import SEED_SPACE
from gnn_convergence.study.evidence import Evidence, RobustRule, Run, Visit, sign_test
from gnn_convergence.study.space import parse_space

PARAMS = parse_space(SEED_SPACE)
RULE = RobustRule()
A, B, C = (3, 2, 3, 2), (4, 2, 3, 2), (2, 2, 3, 2)
STREAM = 500_000


def visit(number: int, config, role: str, outcomes, data, round_=None) -> Visit:
    runs = tuple(
        Run(number, role, number * 3 + i, d, 0.95 if ok else 0.02, CONVERGED if ok else FAILED)
        for i, (ok, d) in enumerate(zip(outcomes, data, strict=True))
    )
    return Visit(number, role, config, None, tuple(data), runs, False, round_)


def validated(number: int, config, outcomes=(True,) * 6) -> list[Visit]:
    """A config with fresh validation runs on its own datasets."""
    first = 1000 * (number + 1)
    return [
        visit(number, config, "validate", outcomes[:3], range(first, first + 3)),
        visit(number + 1, config, "validate", outcomes[3:], range(first + 3, first + 6)),
    ]


def raced(number: int, config, rounds) -> list[Visit]:
    """Race trials of ``config``: round k on the stream's datasets 3k..3k+2."""
    return [
        visit(number + k, config, "race", ok, range(STREAM + 3 * k, STREAM + 3 * k + 3), k)
        for k, ok in enumerate(rounds)
    ]


def answer(visits_by_config):
    evidence = {c: Evidence(tuple(vs), RULE) for c, vs in visits_by_config.items()}
    return study_answer(PARAMS, evidence, RULE)


def test_the_sign_test_is_exact() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(0, 4) == 1 / 16 and sign_test(1, 4) == 6 / 32
    assert sign_test(4, 0) == 1.0


def test_candidates_race_on_common_datasets_catching_up_first() -> None:
    result = answer({A: [*validated(0, A), *raced(10, A, [(True,) * 3])], B: validated(2, B)})
    assert result.racing == (A, B) and result.dropped == ()
    assert result.race_owed == (RaceRun(B, 0),)


def test_a_candidate_worse_on_the_datasets_where_they_disagree_is_dropped() -> None:
    worse = [(False, False, True), (False, False, True), (True,) * 3]
    result = answer(
        {
            A: [*validated(0, A), *raced(10, A, [(True,) * 3] * 3)],
            B: [*validated(2, B), *raced(20, B, worse)],
        }
    )  # B fails on 4 datasets where A converges: p = 1/16 < 0.1
    assert result.dropped == (B,) and result.racing == (A,) and result.race_owed == ()
    assert result.recommended == A and result.runner_up == B


def test_ties_go_to_the_config_farther_from_an_outside_point() -> None:
    outside = (1, 2, 3, 2)  # lr_W one step below C: judged outside on fresh runs
    result = answer(
        {A: validated(0, A), C: validated(2, C), outside: validated(4, outside, (False,) * 6)}
    )
    assert result.recommended == A and result.runner_up == C
    assert 0.4 < result.p_better < 0.6  # the same evidence: a coin flip


def test_inside_configs_joined_by_one_step_moves_are_one_region() -> None:
    far = (0, 0, 0, 0)
    evidence = {c: Evidence(tuple(validated(i, c)), RULE) for i, c in enumerate((A, B, C, far))}
    found = regions([A, B, C, far], evidence, PARAMS)
    assert [r.configs for r in found] == [tuple(sorted((A, B, C))), (far,)]


def test_a_dataset_that_failed_at_every_inside_config_is_hard() -> None:
    a = validated(0, A, (True, True, False, True, True, True))  # dataset 1002 fails
    b = [*validated(2, B), visit(9, B, "probe", (False, True, True), (1002, 1000, 1001))]
    result = answer({A: a, B: b})
    assert [(h.data_seed, h.runs, h.configs) for h in result.hard] == [(1002, 2, 2)]
    assert result.datasets_inside == 12


def dataset(seed: int, rank: float | None, hard: bool) -> Dataset:
    stats = {"effective_rank_99": rank}
    return Dataset(seed, stats, 3, 3, 0 if hard else 3, 1, hard)


def test_a_threshold_is_claimed_only_where_it_separates_exactly() -> None:
    above = [dataset(0, 50, True), dataset(1, 60, True), dataset(2, 30, False)]
    found = separation("effective_rank_99", above)
    assert (found.side, found.threshold, found.hard, found.others) == ("above", 40, 2, 1)
    below = [dataset(0, 10, True), dataset(1, 30, False), dataset(2, 20, False)]
    assert separation("effective_rank_99", below).threshold == 15
    tie = [dataset(0, 20, True), dataset(1, 20, False)]
    assert separation("effective_rank_99", tie).side is None
    unknown = [dataset(0, None, True), dataset(1, 30, False)]
    missing = separation("effective_rank_99", unknown)
    assert (missing.side, missing.missing) == (None, 1)
