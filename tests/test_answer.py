"""The answer stage on hand-made evidence: the race, the recommendation, bands and regions."""

from __future__ import annotations

from dataclasses import replace

from gnn_convergence.outcome import CONVERGED, FAILED
from gnn_convergence.study.answer import Cut, Probe, RaceRun, regions, study_answer
from gnn_convergence.study.answer_report import answer_record, answer_text, summary_tables
from gnn_convergence.study.datasets import Dataset, separation
from gnn_convergence.study.demo import DEFAULT_SPACE
from gnn_convergence.study.evidence import Evidence, RobustRule, Run, Visit, sign_test
from gnn_convergence.study.replay import ProtocolState
from gnn_convergence.study.space import parse_space

PARAMS = parse_space(DEFAULT_SPACE)
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


def answer(visits_by_config, rule=RULE):
    evidence = {c: Evidence(tuple(vs), rule) for c, vs in visits_by_config.items()}
    return study_answer(PARAMS, evidence, rule)


def state_of(visits_by_config, rule=RULE) -> ProtocolState:
    """A protocol state of hand-made evidence, for the records (no walk)."""
    evidence = {c: Evidence(tuple(vs), rule) for c, vs in visits_by_config.items()}
    visits = tuple(sorted((v for vs in evidence.values() for v in vs.visits), key=number))
    return ProtocolState(PARAMS, rule, visits, evidence, (), study_answer(PARAMS, evidence, rule))


def number(v: Visit) -> int:
    return v.number


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


AGREE = [(True,) * 3, (True, True, False)]  # two rounds; both fail the round's third dataset


def test_a_tied_race_ends_after_two_rounds_and_owes_nothing() -> None:
    one = answer({A: [*validated(0, A), *raced(10, A, AGREE[:1])],
                  B: [*validated(2, B), *raced(20, B, AGREE[:1])]})  # fmt: skip
    assert not one.race_tied and one.race_owed == (RaceRun(A, 1), RaceRun(B, 1))
    two = answer({A: [*validated(0, A), *raced(10, A, AGREE)],
                  B: [*validated(2, B), *raced(20, B, AGREE)]})  # fmt: skip
    assert two.race_tied and two.race_common == 6
    assert two.race_owed == () and two.racing == (A, B) and two.dropped == ()
    assert two.recommended == A and two.runner_up == B  # the ranking: equal evidence, A ran first
    off = answer({A: [*validated(0, A), *raced(10, A, AGREE)],
                  B: [*validated(2, B), *raced(20, B, AGREE)]},
                 RobustRule(race_tie_runs=0))  # fmt: skip
    assert not off.race_tied and off.race_owed == (RaceRun(A, 2), RaceRun(B, 2))


def test_a_race_with_a_discordant_dataset_runs_on_to_its_rounds() -> None:
    split = [(True,) * 3, (True, True, True)]  # B converges where A fails: one discordant
    result = answer({A: [*validated(0, A), *raced(10, A, AGREE)],
                     B: [*validated(2, B), *raced(20, B, split)]})  # fmt: skip
    assert not result.race_tied and result.dropped == ()
    assert set(result.race_owed) == {RaceRun(A, 2), RaceRun(B, 2)}
    four = [*AGREE, (True,) * 3, (True,) * 3]
    done = answer({A: [*validated(0, A), *raced(10, A, four)],
                   B: [*validated(2, B), *raced(20, B, [*split, *four[2:]])]})  # fmt: skip
    assert not done.race_tied and done.race_owed == ()


def test_a_latecomer_reopens_a_tied_race_and_the_tie_check_applies_again() -> None:
    tied = {A: [*validated(0, A), *raced(10, A, AGREE)],
            B: [*validated(2, B), *raced(20, B, AGREE)]}  # fmt: skip
    late = answer({**tied, C: validated(4, C)})
    assert late.racing == (A, B, C) and not late.race_tied
    assert late.race_owed == (RaceRun(C, 0),)
    caught = answer({**tied, C: [*validated(4, C), *raced(30, C, AGREE)]})
    assert caught.race_tied and caught.race_owed == () and caught.race_common == 6
    odd = answer({**tied, C: [*validated(4, C), *raced(30, C, [(True,) * 3] * 2)]})
    assert not odd.race_tied
    assert set(odd.race_owed) == {RaceRun(A, 2), RaceRun(B, 2), RaceRun(C, 2)}


def test_the_answer_says_the_race_ended_tied() -> None:
    state = state_of({A: [*validated(0, A), *raced(10, A, AGREE)],
                      B: [*validated(2, B), *raced(20, B, AGREE)]})  # fmt: skip
    assert "Race: 2 candidates on common fresh datasets, dropped: none; race ended tied: the " \
        "candidates agreed on all 6 common datasets" in answer_text(state)  # fmt: skip
    record = answer_record(state)
    assert record["race"] == {"candidates": 2, "dropped": [], "tied": True, "common_datasets": 6}


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


Z = (5, 1, 3, 2)  # two lr_W steps up and one lr step down from A: the path is P1, P2, Z
P1, P2 = (4, 2, 3, 2), (5, 2, 3, 2)


def probed(number: int, config, outcomes) -> list[Visit]:
    """Probe trials of ``config``: three fresh datasets each."""
    first = 1000 * (number + 1)
    return [
        visit(number + k, config, "probe", outcomes[3 * k : 3 * k + 3],
              range(first + 3 * k, first + 3 * k + 3))
        for k in range(len(outcomes) // 3)
    ]  # fmt: skip


def test_two_regions_with_an_unknown_path_owe_its_points_in_order() -> None:
    two = {A: validated(0, A), Z: validated(2, Z)}
    result = answer(two)
    assert [r.configs for r in result.regions] == [(A,), (Z,)]
    assert result.paths_owed == (Probe(P1, A),) and result.regions[1].cut is None
    halfway = answer({**two, P1: probed(10, P1, (True,) * 3)})
    assert halfway.paths_owed == (Probe(P1, A),)  # judged after probe_min_runs fresh runs
    inside = answer({**two, P1: probed(10, P1, (True,) * 6)})
    assert [r.configs for r in inside.regions] == [(A, P1), (Z,)]
    assert inside.paths_owed == (Probe(P2, P1),)
    running = {
        **two,
        P1: probed(10, P1, (True,) * 6),
        P2: [replace(probed(20, P2, (True,) * 3)[0], runs=(), pending=True)],
    }
    assert answer(running).paths_owed == ()


def test_an_outside_point_on_the_path_separates_the_regions() -> None:
    path = {A: validated(0, A), Z: validated(2, Z), P1: probed(10, P1, (True,) * 6)}
    result = answer({**path, P2: probed(20, P2, (False,) * 6)})
    assert result.paths_owed == () and len(result.regions) == 2
    assert result.regions[0].cut is None
    assert result.regions[1].cut == Cut(P2, "outside", (0, 6))
    state = state_of({**path, P2: probed(20, P2, (False,) * 6)})
    rows = summary_tables(state)["Regions (configs judged inside, joined by one-step moves)"]
    assert rows["path from region 1"].tolist() == [
        "",
        "separated (path probed: outside at lr_W=0.005, lr=0.0005, coeff_W_L1=5e-06, "
        "batch_size=8)",
    ]
    record = answer_record(state)["regions"]
    assert record[0]["path"] is None
    assert record[1]["path"] == {
        "status": rows["path from region 1"].tolist()[1],
        "judged": "outside",
        "at": state.values(P2),
    }
    undecided = answer({**path, P2: probed(20, P2, (True, False) * 6)})
    assert undecided.regions[1].cut == Cut(P2, "transition", (6, 12))


def test_a_path_judged_inside_all_along_merges_the_regions() -> None:
    path = {A: validated(0, A), Z: validated(2, Z), P1: probed(10, P1, (True,) * 6)}
    result = answer({**path, P2: probed(20, P2, (True,) * 6)})
    assert [r.configs for r in result.regions] == [tuple(sorted((A, P1, P2, Z)))]
    assert result.paths_owed == ()


def test_a_region_whose_path_is_unknown_is_not_yet_probed() -> None:
    state = state_of({A: validated(0, A), Z: validated(2, Z)})
    rows = summary_tables(state)["Regions (configs judged inside, joined by one-step moves)"]
    assert rows["path from region 1"].tolist() == ["", "not yet probed"]
    record = answer_record(state)["regions"]
    assert record[1]["path"] == {"status": "not yet probed", "judged": None, "at": None}


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
