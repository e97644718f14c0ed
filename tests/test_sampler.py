"""ProtocolSampler and protocol_state against a synthetic per-run objective in grid space."""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.trial import FrozenTrial, Trial, TrialState, create_trial

from gnn_convergence.study import sampler as sampler_module
from gnn_convergence.study.demo import DEFAULT_SPACE
from gnn_convergence.study.evidence import NOT_ROBUST, ROBUST, UNDECIDED, RobustRule
from gnn_convergence.study.protocol import _owed, min_distances
from gnn_convergence.study.replay import protocol_state
from gnn_convergence.study.sampler import ProtocolSampler
from gnn_convergence.study.seeding import race_datasets
from gnn_convergence.study.space import Param, fingerprint, index_of, parse_space
from gnn_convergence.study.vocabulary import DECISION

optuna.logging.set_verbosity(optuna.logging.WARNING)

PARAMS = parse_space(DEFAULT_SPACE)
SIZES = [len(p.values) for p in PARAMS]
BOX = ((2, 4), (1, 2), (0, 3), (1, 3))
INSIDE = {"lr_W": 1e-3, "lr": 5e-4, "coeff_W_L1": 5e-6, "batch_size": 8}
OUTSIDE = {"lr_W": 1e-2, "lr": 1e-4, "coeff_W_L1": 1e-4, "batch_size": 1}
INSIDE_CONFIG = (3, 2, 3, 2)


class World:
    """Per-run synthetic objective: a run of config c on dataset d converges when the config's
    quality beats the dataset's difficulty, so a hard dataset is hard for every config.

    Quality is 1 inside BOX and falls by 0.75 per grid step (L1 in indices) outside it;
    difficulty is uniform in [0, 1) per data seed, 2 for the seeds in ``hard`` and 0 for those
    in ``easy``. One step outside the box a config converges on 25% of the datasets: the true
    boundary is the box's edge. Non-converged runs are partial (0.5), failed (0.02) far away.
    """

    def __init__(
        self, hard: Sequence[int] = (), easy: Sequence[int] = (), sleep: float = 0.0, draw: int = 0
    ) -> None:
        self.hard, self.easy, self.sleep, self.draw = set(hard), set(easy), sleep, draw

    def quality(self, config: Sequence[int]) -> float:
        distance = sum(max(lo - i, 0, i - hi) for i, (lo, hi) in zip(config, BOX, strict=True))
        return 1.0 - 0.75 * distance

    def difficulty(self, data_seed: int) -> float:
        if data_seed in self.hard:
            return 2.0
        if data_seed in self.easy:
            return 0.0
        return float(np.random.default_rng([data_seed, 5, self.draw]).random())

    def run(self, config: Sequence[int], data_seed: int) -> float:
        quality = self.quality(config)
        if quality > self.difficulty(data_seed):
            return 0.95
        return 0.5 if quality > -0.5 else 0.02

    def __call__(self, trial: Trial) -> float:
        config = suggest_config(trial)
        time.sleep(self.sleep)
        seeds, data = trial.user_attrs["seeds"], trial.user_attrs["data_seeds"]
        records = [
            {"seed": s, "data_seed": d, "connectivity_R2": self.run(config, d)}
            for s, d in zip(seeds, data, strict=True)
        ]
        trial.set_user_attr("per_seed", records)
        return min(r["connectivity_R2"] for r in records)


def suggest_values(trial: Trial, params: Sequence[Param] = PARAMS) -> list[Any]:
    values = []
    for param in params:
        dist = param.distribution
        if param.is_choice:
            values.append(trial.suggest_categorical(param.name, param.values))
        else:
            values.append(trial.suggest_float(param.name, dist.low, dist.high, log=dist.log))
    return values


def suggest_config(trial: Trial) -> tuple[int, ...]:
    values = suggest_values(trial)
    assert all(type(v) in (float, int) for v in values)
    config = tuple(index_of(p, v) for p, v in zip(PARAMS, values, strict=True))
    assert None not in config
    return config


def constant(value: float, params: Sequence[Param] = PARAMS):
    def objective(trial: Trial) -> float:
        suggest_values(trial, params)
        return value

    return objective


def run_study(n_trials: int, objective=None, storage=None, **kwargs: Any) -> optuna.Study:
    kwargs.setdefault("start", OUTSIDE)
    study = optuna.create_study(
        storage=storage, sampler=ProtocolSampler(PARAMS, **kwargs), direction="maximize"
    )
    study.optimize(objective or World(), n_trials=n_trials)
    return study


def decision(trial: FrozenTrial) -> tuple[str, tuple[int, ...], int | None]:
    attr = trial.system_attrs[DECISION]
    return attr["role"], tuple(attr["config"]), attr["parent"]


def roles(study: optuna.Study) -> list[str]:
    return [decision(t)[0] for t in study.trials]


def state_of(study: optuna.Study, **kwargs: Any):
    return ProtocolSampler(PARAMS, **kwargs).state(study)


@pytest.fixture(scope="module")
def walk() -> optuna.Study:
    return run_study(80)


def test_moves_and_probes_change_one_param(walk: optuna.Study) -> None:
    trials = walk.trials
    assert {"start", "move", "validate", "probe", "jump"} <= set(roles(walk))
    for trial in trials:
        role, config, parent = decision(trial)
        assert trial.user_attrs["role"] == role and trial.user_attrs["parent"] == parent
        if role == "move":
            before = decision(trials[parent])[1]
            assert sorted(abs(a - b) for a, b in zip(before, config, strict=True))[-2:] == [0, 1]
            assert "->" in trial.user_attrs["change"]
        elif role == "probe":
            before = decision(trials[parent])[1]
            assert sum(a != b for a, b in zip(before, config, strict=True)) == 1
        elif role in ("retry", "validate"):
            assert decision(trials[parent])[1] == config
        elif role == "race":  # a candidate, or the leader's neighbour away from a boundary
            before = decision(trials[parent])[1]
            assert sum(abs(a - b) for a, b in zip(before, config, strict=True)) <= 1
        else:
            assert parent is None


def test_a_walk_shares_its_panel_and_validations_draw_fresh_data(walk: optuna.Study) -> None:
    panel, used = None, set()
    for trial in walk.trials:
        role = decision(trial)[0]
        data, seeds = trial.user_attrs["data_seeds"], trial.user_attrs["seeds"]
        assert seeds == [3 * trial.number + i for i in range(3)]
        if role in ("start", "jump"):
            panel = data
            assert not used & set(data)
        elif role in ("move", "retry"):
            assert data == panel
        elif role == "race":  # the common stream: round k is the same for every candidate
            k = trial.system_attrs[DECISION]["round"]
            assert data == race_datasets(0, k, 3)
            continue
        else:
            assert not used & set(data)
        used |= set(data)


def test_a_walk_from_outside_climbs_in_and_validates_a_robust_config(walk: optuna.Study) -> None:
    state = state_of(walk)
    robust = state.robust_configs()
    assert robust
    assert all(lo <= i <= hi for c in robust for i, (lo, hi) in zip(c, BOX, strict=True))
    first = robust[0]
    ev = state.evidence[first]
    assert ev.validated and ev.converged == ev.n >= 6


def test_a_walk_climbs_to_the_top_before_it_validates_then_probes() -> None:
    study = run_study(12, start=INSIDE)
    assert roles(study) == ["start"] + ["move"] * 8 + ["validate", "validate", "probe"]
    state = state_of(study)
    ev = state.evidence[INSIDE_CONFIG]
    assert (ev.converged, ev.n, len(ev.runs), ev.verdict) == (6, 6, 9, ROBUST)
    assert ev.above(0.6) >= 0.9


def test_walk_runs_alone_never_make_a_config_robust() -> None:
    study = run_study(1, start=INSIDE)
    assert state_of(study).evidence[INSIDE_CONFIG].verdict == UNDECIDED
    rule = RobustRule(level=0.5, credibility=0.9)
    assert state_of(study, robust=rule).evidence[INSIDE_CONFIG].verdict == UNDECIDED


def test_the_rate_of_a_validated_config_rests_on_its_validation_runs() -> None:
    world = World(easy=[0, 1, 2], hard=range(3, 400))
    study = run_study(11, world, start=INSIDE)
    assert roles(study) == ["start"] + ["move"] * 8 + ["validate", "jump"]
    ev = state_of(study).evidence[INSIDE_CONFIG]
    assert (ev.converged, ev.n, ev.verdict) == (0, 3, NOT_ROBUST)
    assert sum(r.converged for r in ev.runs) == 3 and ev.unstable


def test_validation_goes_on_while_undecided_and_stops_as_not_robust() -> None:
    world = World(easy=[0, 1, 2, 27, 28, 30], hard=[29, *range(31, 400)])
    study = run_study(13, world, start=INSIDE)
    assert roles(study) == ["start"] + ["move"] * 8 + ["validate"] * 3 + ["jump"]
    ev = state_of(study).evidence[INSIDE_CONFIG]
    assert (ev.converged, ev.n, ev.verdict) == (3, 9, NOT_ROBUST)


def test_validation_stops_at_max_runs_undecided() -> None:
    rule = RobustRule(level=0.6, credibility=0.999, max_runs=9)
    study = run_study(13, start=INSIDE, robust=rule)
    assert roles(study) == ["start"] + ["move"] * 8 + ["validate"] * 3 + ["probe"]
    ev = state_of(study, robust=rule).evidence[INSIDE_CONFIG]
    assert (ev.n, ev.verdict) == (9, UNDECIDED)


def test_a_partial_first_trial_that_converged_once_is_retried_on_the_same_data() -> None:
    study = run_study(3, World(easy=[0], hard=[1, 2]), start=INSIDE)
    assert roles(study) == ["start", "retry", "move"]
    first, retry = study.trials[:2]
    assert [r["connectivity_R2"] for r in first.user_attrs["per_seed"]] == [0.95, 0.5, 0.5]
    assert decision(retry) == ("retry", INSIDE_CONFIG, 0)
    assert retry.user_attrs["data_seeds"] == first.user_attrs["data_seeds"] == [0, 1, 2]
    assert retry.user_attrs["seeds"] == [3, 4, 5]


def test_retry_all_retries_every_non_converged_first_trial() -> None:
    study = run_study(4, constant(0.5), start=INSIDE, retry="all")
    assert roles(study) == ["start", "retry", "move", "retry"]


def test_a_config_that_never_came_near_convergence_is_left() -> None:
    study = run_study(4, constant(0.5), start=INSIDE)
    assert roles(study) == ["start", "move", "move", "move"]


def test_probes_from_the_recommended_config_place_bands_at_the_crossing() -> None:
    """Six worlds, from inside the box: every band around the recommended config is right.
    Its last inside point is the box's last index and the first point past it that is not
    inside (in transition, or outside) is the first index beyond the box, where the rate is
    0.25; outside points rest on at least probe_min_runs fresh runs."""
    right, total = 0, 0
    for draw in range(6):
        study = run_study(90, World(draw=draw), start=INSIDE)
        state = state_of(study)
        origin = state.answer.recommended
        assert origin is not None and all(
            lo <= i <= hi for i, (lo, hi) in zip(origin, BOX, strict=True)
        )
        for band in state.boundaries:
            p = next(i for i, q in enumerate(PARAMS) if q.name == band.param)
            lo, hi = BOX[p]
            edge, beyond = (lo, lo - 1) if band.side == "low" else (hi, hi + 1)
            first_out = (*band.transition, band.outside)[0]
            right += band.inside == edge and first_out == (
                beyond if 0 <= beyond < SIZES[p] else None
            )
            total += 1
            if band.outside is not None:
                converged, runs = band.outside_runs
                assert runs >= state.rule.probe_min_runs and converged / runs < 0.5
    assert total == 6 * 8 and right >= 0.9 * total


def test_patience_counts_moves_without_improvement() -> None:
    study = run_study(4, constant(0.5), start=INSIDE, patience=2)
    assert roles(study) == ["start", "move", "move", "jump"]

    def uphill(trial: Trial) -> float:
        return 0.2 + 0.1 * suggest_config(trial)[0]

    study = run_study(6, uphill, start=OUTSIDE | {"lr_W": 1e-4}, patience=1, seed=1)
    lr_w = [decision(t)[1][0] for t in study.trials]
    assert roles(study) == ["start"] + ["move"] * 5 and lr_w[:3] == [0, 1, 2]


def test_moves_keep_going_when_better_and_turn_back_when_worse() -> None:
    def uphill(trial: Trial) -> float:
        return 0.2 + 0.1 * suggest_config(trial)[0]

    for seed in range(4):
        study = run_study(5, uphill, start=INSIDE, seed=seed)
        lr_w = [decision(t)[1][0] for t in study.trials]
        lr_w = lr_w[: lr_w.index(SIZES[0] - 1) + 1]
        for before, now, after in zip(lr_w, lr_w[1:], lr_w[2:], strict=False):
            assert after == (now + 1 if now > before else before + 1)


def normalised_min_distance(config: Sequence[int], visited: Sequence[Sequence[int]]) -> float:
    return min(
        math.dist([a / (n - 1) for a, n in zip(config, SIZES, strict=True)],
                  [b / (n - 1) for b, n in zip(other, SIZES, strict=True)])
        for other in visited
    )  # fmt: skip


@pytest.mark.parametrize(("rule", "share"), [("farthest", 1.0), ("far", 0.5)])
def test_a_jump_lands_far_from_everything_run(rule: str, share: float) -> None:
    study = run_study(30, constant(0.5), start=INSIDE, patience=2, jump=rule)
    jumps = [t for t in study.trials if decision(t)[0] == "jump"]
    assert len(jumps) >= 3
    grid = list(itertools.product(*(range(n) for n in SIZES)))
    for jump in jumps:
        visited = {decision(t)[1] for t in study.trials[: jump.number]}
        best = max(normalised_min_distance(c, visited) for c in grid)
        assert normalised_min_distance(decision(jump)[1], visited) >= share * best - 1e-9
        assert jump.user_attrs["change"].startswith("jump: lr_W=")


def test_only_grid_values_are_proposed(walk: optuna.Study) -> None:
    for trial in walk.trials:
        assert set(trial.params) == set(DEFAULT_SPACE)
        for param in PARAMS:
            value = trial.params[param.name]
            assert type(value) in (float, int) and value in param.values
            assert param.distribution._contains(param.distribution.to_internal_repr(value))
        config = decision(trial)[1]
        assert [p.values[i] for p, i in zip(PARAMS, config, strict=True)] == [
            trial.params[p.name] for p in PARAMS
        ]


def test_the_same_seed_proposes_the_same_sequence(walk: optuna.Study) -> None:
    again = run_study(80)
    assert [decision(t) for t in again.trials] == [decision(t) for t in walk.trials]


def test_an_interrupted_study_resumes_exactly(tmp_path) -> None:
    whole = run_study(25, seed=3)
    url = f"sqlite:///{tmp_path}/parts.db"
    run_study(12, storage=url, seed=3)
    study = optuna.load_study(
        study_name=None, storage=url, sampler=ProtocolSampler(PARAMS, start=OUTSIDE, seed=3)
    )
    study.optimize(World(), n_trials=13)
    assert [decision(t) for t in study.trials] == [decision(t) for t in whole.trials]
    assert [t.user_attrs for t in study.trials] == [t.user_attrs for t in whole.trials]


def _worker(url: str, n_trials: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sqlite = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=sqlite)
    sampler = ProtocolSampler(PARAMS, start=OUTSIDE)
    study = optuna.load_study(study_name="workers", storage=storage, sampler=sampler)
    study.optimize(World(sleep=0.1), n_trials=n_trials)


@pytest.mark.parametrize(("backend", "n_workers"), [("sqlite", 2), ("postgres", 3)])
def test_workers_never_run_the_same_proposal(tmp_path, request, backend, n_workers) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/workers.db"
    else:
        url = request.getfixturevalue("postgres_url")
    optuna.create_study(study_name="workers", storage=url, direction="maximize")
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(url, 30 // n_workers)) for _ in range(n_workers)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    trials = optuna.load_study(study_name="workers", storage=url).trials
    assert len(trials) == 30 and all(t.state == TrialState.COMPLETE for t in trials)
    overlapping = [
        (a, b)
        for a, b in itertools.combinations(trials, 2)
        if a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
    ]
    assert overlapping
    for a, b in overlapping:
        assert decision(a)[1] != decision(b)[1]
    firsts = [decision(t)[1] for t in trials if decision(t)[0] in ("start", "jump", "move")]
    assert len(firsts) == len(set(firsts))
    data = [d for t in trials for d in t.user_attrs["data_seeds"]]
    training = [s for t in trials for s in t.user_attrs["seeds"]]
    assert len(training) == len(set(training))
    assert len(set(data)) < len(data)


@pytest.mark.parametrize("bad", [ValueError("boom"), math.nan])
def test_a_fail_trial_is_a_failed_run_per_planned_dataset(bad: Any) -> None:
    def objective(trial: Trial) -> float:
        if trial.number == 0:
            suggest_config(trial)
            if isinstance(bad, Exception):
                raise bad
            return bad
        return World()(trial)

    study = optuna.create_study(sampler=ProtocolSampler(PARAMS, start=INSIDE))
    study.optimize(objective, n_trials=2, catch=(ValueError,))
    assert study.trials[0].state == TrialState.FAIL
    state = state_of(study)
    runs = state.visits[0].runs
    assert [r.data_seed for r in runs] == [0, 1, 2]
    assert all(r.outcome == "failed" and r.value is None for r in runs)
    assert decision(study.trials[1])[0] == "move"


def test_enqueued_trials_are_respected() -> None:
    study = optuna.create_study(sampler=ProtocolSampler(PARAMS, start=INSIDE))
    exact = {"training.learning_rate_W_start": 2e-3, "training.batch_size": 16}
    study.enqueue_trial(exact)
    study.enqueue_trial({"training.learning_rate_W_start": 1.5e-3})
    study.optimize(constant(0.5), n_trials=4)
    first, off_grid, start, _ = study.trials
    assert first.params["training.learning_rate_W_start"] == 2e-3
    assert first.params["training.batch_size"] == 16
    assert first.user_attrs["role"] == "enqueued" and first.user_attrs["parent"] is None
    assert first.user_attrs["data_seeds"] == [0, 1, 2]
    assert decision(first)[1] == (4, 2, 3, 3)
    assert off_grid.params["training.learning_rate_W_start"] == 1.5e-3
    assert off_grid.system_attrs[DECISION]["on_grid"] is False
    assert decision(start)[0] == "start"
    assert [v.number for v in state_of(study).visits] == [0, 2, 3]


def test_a_preset_waiting_trial_is_recorded_as_enqueued() -> None:
    study = optuna.create_study(sampler=ProtocolSampler(PARAMS, start=INSIDE))
    values = dict(zip(DEFAULT_SPACE, (5e-3, 1e-4, 0.0, 1), strict=True))
    preset = optuna.trial.create_trial(
        state=TrialState.WAITING,
        params=values,
        distributions={p.name: p.distribution for p in PARAMS},
    )
    study.add_trial(preset)
    study.optimize(constant(0.5), n_trials=2)
    assert study.trials[0].params == values
    assert decision(study.trials[0]) == ("enqueued", (5, 0, 0, 0), None)
    assert decision(study.trials[1])[0] == "start"


def test_the_study_package_and_the_sweeper_do_not_import_torch() -> None:
    study = sorted(Path(sampler_module.__file__).parent.glob("*.py"))
    modules = [f"gnn_convergence.study.{p.stem}" for p in study if p.stem != "__init__"]
    modules += [
        "hydra_plugins.gnn_convergence_sweeper.sweeper",
        "hydra_plugins.gnn_convergence_sweeper._impl",
        "hydra_plugins.gnn_convergence_launcher.launcher",
        "gnn_convergence.report",
    ]
    assert {"gnn_convergence.study.atlas", "gnn_convergence.study.answer"} <= set(modules)
    code = f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
    code += "sys.exit('torch' in sys.modules and 'torch imported')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_sampler_waits_for_an_earlier_undecided_trial() -> None:
    sampler = ProtocolSampler(PARAMS, start=INSIDE)
    study = optuna.create_study(sampler=sampler)
    trial_id = study._storage.create_new_trial(study._study_id)

    def decide_late() -> None:
        time.sleep(0.3)
        sampler.before_trial(study, study._storage.get_trial(trial_id))

    thread = threading.Thread(target=decide_late)
    began = time.monotonic()
    thread.start()
    second = study.ask()
    thread.join()
    assert time.monotonic() - began >= 0.3
    assert decision(study.trials[0])[0] == "start"
    assert second.user_attrs["role"] == "move"
    assert second.user_attrs["data_seeds"] == study.trials[0].user_attrs["data_seeds"]


def test_sampler_gives_up_on_a_stale_undecided_trial(monkeypatch) -> None:
    monkeypatch.setattr(sampler_module, "WAIT_S", 0.2)
    study = optuna.create_study(sampler=ProtocolSampler(PARAMS))
    study._storage.create_new_trial(study._study_id)
    began = time.monotonic()
    trial = study.ask()
    assert 0.2 <= time.monotonic() - began < 2
    assert trial.user_attrs["role"] == "start"
    assert (
        trial.user_attrs["change"]
        == "start: lr_W=0.001, lr=0.0005, coeff_W_L1=1e-05, batch_size=8"
    )


def fake(number: int, role: str, config: tuple[int, ...], runs: Sequence[tuple], **kw):
    """A finished trial with a decision and per-run records (seed, data_seed, value)."""
    state = kw.pop("state", TrialState.COMPLETE)
    attr = {"role": role, "config": list(config), "parent": kw.pop("parent", None),
            "data_seeds": [d for _, d, _ in runs], "fingerprint": fingerprint(PARAMS)}  # fmt: skip
    records = [{"seed": s, "data_seed": d, "connectivity_R2": v} for s, d, v in runs]
    values = [v for _, _, v in runs]
    value = min(values) if state == TrialState.COMPLETE else None
    trial = create_trial(state=state, value=value, system_attrs={DECISION: attr},
                         user_attrs={"per_seed": records})  # fmt: skip
    trial.number = number
    return trial


def test_protocol_state_evidence_walks_and_paired_incumbent() -> None:
    a, b, c = (3, 1, 2, 2), (4, 1, 2, 2), (3, 2, 2, 2)
    trials = [
        fake(0, "start", a, [(0, 0, 0.95), (1, 1, 0.4), (2, 2, 0.5)]),
        fake(1, "move", b, [(3, 0, 0.96), (4, 1, 0.93), (5, 2, 0.45)], parent=0),
        fake(2, "validate", b, [(6, 6, 0.97), (7, 7, 0.98), (8, 8, 0.92)], parent=1),
        fake(3, "move", c, [(9, 0, 0.2)], parent=1, state=TrialState.RUNNING),
        create_trial(value=0.99, params={}, distributions={}),
    ]
    state = protocol_state(trials, PARAMS)
    ev = state.evidence[b]
    assert (ev.n, ev.converged, ev.validated, len(ev.runs)) == (3, 3, True, 6)
    assert ev.verdict == UNDECIDED and ev.unstable
    assert ev.mean == pytest.approx(4 / 5)
    assert state.evidence[c].pending and state.evidence[c].n == 0
    (walk,) = state.walks
    assert (walk.first, walk.configs, walk.incumbent, walk.stale) == (0, (a, b, c), b, 0)
    assert walk.panel == (0, 1, 2)
    assert state.values(a)["training.batch_size"] == 8 and state.config_of(1) == b


def test_a_config_failing_its_fresh_runs_is_validated_one_trial_at_a_time() -> None:
    """1 of 3 fresh runs converged and a validation is running: another would only pay if
    that one converged in every run, so none is asked beside it."""
    a = INSIDE_CONFIG
    trials = [
        fake(0, "start", a, [(i, i, 0.95) for i in range(3)]),
        fake(1, "validate", a, [(3, 30, 0.95), (4, 31, 0.5), (5, 32, 0.5)], parent=0),
        fake(2, "validate", a, [(6, 33, 0.95)] * 3, parent=0, state=TrialState.RUNNING),
    ]
    state = protocol_state(trials, PARAMS)
    assert state.evidence[a].verdict == UNDECIDED
    assert all(d.role != "validate" for d in _owed(state, "undecided", 8))


def test_path_probes_between_two_regions_come_after_the_bands_probes() -> None:
    """Region 1 is A (run first), region 2 is Z (recommended: more fresh runs). The path from
    A toward Z changes lr_W first; its first point is owed after the race and the 8 probes of
    the bands around Z, as a probe stepping from A."""
    a, z = (3, 2, 3, 2), (5, 1, 3, 2)
    configs = (a, a, z, z, z)
    trials = [fake(n, "validate", c, [(3 * n + i, 3 * n + i, 0.95) for i in range(3)])
              for n, c in enumerate(configs)]  # fmt: skip
    state = protocol_state(trials, PARAMS)
    assert state.answer.recommended == z
    assert [r.configs for r in state.answer.regions] == [(a,), (z,)]
    owed = [(d.role, d.config, d.parent) for d in _owed(state, "undecided", 8)]
    assert [role for role, _, _ in owed] == ["race"] * 2 + ["probe"] * 9
    assert owed[-1] == ("probe", (4, 2, 3, 2), 0)
    assert all(config != (4, 2, 3, 2) for _, config, _ in owed[:-1])


class TestBasicSampler(BasicSamplerTestCase):
    """Optuna's own sampler contract, for parameters outside the protocol's space."""

    @pytest.fixture
    def sampler(self):
        return lambda: ProtocolSampler(PARAMS)


def test_a_large_grid_jumps_to_sampled_far_configs() -> None:
    params = parse_space({f"training.p{i}": "interval(0.1, 0.7)" for i in range(5)})
    sampler = ProtocolSampler(params, patience=1, jump="farthest")
    study = optuna.create_study(sampler=sampler)
    study.optimize(constant(0.5, params), n_trials=12)
    jumps = [t for t in study.trials if decision(t)[0] == "jump"]
    assert len(jumps) >= 3 and len({decision(t)[1] for t in jumps}) == len(jumps)
    sizes = np.array([7] * 5)
    visited = [decision(t)[1] for t in study.trials[: jumps[0].number]]
    grid = np.array(list(itertools.product(range(7), repeat=5)))
    best = min_distances(grid, visited, sizes).max()
    found = min_distances(np.array([decision(jumps[0])[1]]), visited, sizes)[0]
    assert found >= 0.9 * best


def test_an_exhausted_grid_keeps_proposing() -> None:
    params = parse_space({"training.a": "choice(1, 2)", "training.b": "choice(x, y)"})
    study = optuna.create_study(sampler=ProtocolSampler(params))
    study.optimize(constant(0.95, params), n_trials=40)
    assert len({decision(t)[1] for t in study.trials}) == 4
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize(("reported", "role"), [(False, "start"), (True, "move")])
def test_a_trial_killed_before_reporting_is_run_again_not_counted(reported, role):
    study = optuna.create_study(
        sampler=ProtocolSampler(PARAMS, start=INSIDE), direction="maximize"
    )
    distributions = {p.name: p.distribution for p in PARAMS}
    first = study.ask(distributions)
    first.set_user_attr("reported", reported)
    study.tell(first, state=TrialState.FAIL)
    second = study.ask(distributions)
    assert second.user_attrs["role"] == role
    assert (second.params == first.params) == (role == "start")
    state = protocol_state(study.get_trials(), PARAMS)
    assert [v.number for v in state.visits] == ([0, 1] if reported else [1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retry": "often"}, "retry='often' is invalid"),
        ({"jump": "near"}, "jump='near' is invalid"),
        ({"seed_mode": "twice"}, "seed_mode='twice' is invalid"),
        ({"patience": 0}, "patience=0 is invalid"),
    ],
)
def test_bad_settings_are_refused_with_the_key(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProtocolSampler(PARAMS, **kwargs)


def batch_study(n_batches: int, size: int, start: dict = OUTSIDE) -> optuna.Study:
    """Ask ``size`` trials before telling any, as the sweeper does with n_jobs = size."""
    study = optuna.create_study(sampler=ProtocolSampler(PARAMS, start=start), direction="maximize")
    world = World()
    for _ in range(n_batches):
        trials = [study.ask({p.name: p.distribution for p in PARAMS}) for _ in range(size)]
        for trial in trials:
            study.tell(trial, world(trial))
    return study


def test_a_batch_proposes_distinct_configs_and_replays_identically() -> None:
    study = batch_study(8, 3)
    trials = study.trials
    for start in range(0, len(trials), 3):
        batch = [decision(t) for t in trials[start : start + 3]]
        assert len({config for _, config, _ in batch}) == 3, batch
    first = [decision(t) for t in trials[:3]]
    assert [role for role, _, _ in first] == ["start", "move", "move"]
    assert all(parent == 0 for _, _, parent in first[1:])
    panel = trials[0].user_attrs["data_seeds"]
    assert all(t.user_attrs["data_seeds"] == panel for t in trials[1:3])
    again = batch_study(8, 3)
    assert [decision(t) for t in again.trials] == [decision(t) for t in trials]
    assert [t.user_attrs for t in again.trials] == [t.user_attrs for t in trials]


def test_a_batch_climbs_and_validates_together() -> None:
    """Asked four at a time from a converging start: the start and its eight one-step
    neighbours on its panel; the batch that asks the last neighbour also validates the start
    on fresh data, since no finished neighbour beats it and the rest are running."""
    study = batch_study(3, 4, start=INSIDE)
    walk, third = study.trials[:9], study.trials[8:12]
    assert [decision(t)[0] for t in walk] == ["start"] + ["move"] * 8
    for trial in walk[1:]:
        config = decision(trial)[1]
        assert sum(a != b for a, b in zip(config, INSIDE_CONFIG)) == 1
        assert trial.user_attrs["data_seeds"] == walk[0].user_attrs["data_seeds"]
    assert [decision(t)[:2] for t in third[:2]] == [
        decision(walk[-1])[:2],
        ("validate", INSIDE_CONFIG),
    ]
    assert set(walk[0].user_attrs["data_seeds"]).isdisjoint(third[1].user_attrs["data_seeds"])


def test_a_batch_validates_as_often_as_the_best_case_still_needs() -> None:
    """Four at a time from a converging start, the third batch asks the last neighbour, then
    validates the start twice on different fresh data (3 of 3 would still be undecided at
    level 0.6 and credibility 0.9, 6 of 6 would not), and then jumps; once both report 6 of 6
    the start is robust."""
    study = batch_study(3, 4, start=INSIDE)
    third = study.trials[8:12]
    assert [decision(t)[0] for t in third] == ["move", "validate", "validate", "jump"]
    first, second = (set(t.user_attrs["data_seeds"]) for t in third[1:3])
    assert first.isdisjoint(second)
    assert state_of(study).evidence[INSIDE_CONFIG].verdict == ROBUST


def test_a_killed_start_keeps_its_walk_and_is_rerun_on_its_panel() -> None:
    """Another worker moved from a start whose worker then died: the start is run again on
    the same panel and the moves stay in its walk."""
    study = optuna.create_study(
        sampler=ProtocolSampler(PARAMS, start=INSIDE), direction="maximize"
    )
    distributions = {p.name: p.distribution for p in PARAMS}
    start = study.ask(distributions)
    moves = [study.ask(distributions) for _ in range(2)]
    world = World()
    for move in moves:
        assert move.user_attrs["role"] == "move"
        study.tell(move, world(move))
    start.set_user_attr("reported", False)  # its heartbeat stopped: failed, never reported
    study.tell(start, state=TrialState.FAIL)
    rerun = study.ask(distributions)
    assert rerun.user_attrs["role"] == "start" and rerun.params == start.params
    assert rerun.user_attrs["data_seeds"] == start.user_attrs["data_seeds"]
    assert rerun.user_attrs["change"] == "rerun of trial 0 (killed) on its panel"
    study.tell(rerun, world(rerun))
    state = protocol_state(study.get_trials(), PARAMS)
    assert len(state.walks) == 1
    assert [v.number for v in state.walks[0].visits] == [0, 1, 2, 3]
    assert not state.walks[0].rerun_owed
    assert state.evidence[INSIDE_CONFIG].n == 3


def test_studies_of_different_sampler_seeds_share_no_run_and_each_replays() -> None:
    def runs(study: optuna.Study) -> tuple[set[int], set[int]]:
        seeds = {s for t in study.trials for s in t.user_attrs["seeds"]}
        return seeds, {d for t in study.trials for d in t.user_attrs["data_seeds"]}

    first, second, again = (run_study(30, seed=s) for s in (0, 1, 1))
    assert runs(first)[0].isdisjoint(runs(second)[0])
    assert runs(first)[1].isdisjoint(runs(second)[1])
    assert [decision(t) for t in second.trials] == [decision(t) for t in again.trials]
    assert runs(second) == runs(again)


def test_the_demo_study_decides_what_it_decided_when_recorded() -> None:
    """A recorded replay: 60 trials of the synthetic demo study, their roles, configs and
    datasets, as this protocol decided them when tests/data/demo_decisions.json was written.
    A change that is meant to keep the protocol's behaviour must keep this file."""
    from gnn_convergence.study.demo import demo_study

    recorded = json.loads((Path(__file__).parent / "data" / "demo_decisions.json").read_text())
    study, _ = demo_study(n_trials=60)
    decided = [
        [
            t.system_attrs[DECISION]["role"],
            t.system_attrs[DECISION]["config"],
            t.user_attrs["data_seeds"],
        ]
        for t in study.trials
    ]
    assert decided == recorded
