"""ProtocolSampler and protocol_state against a synthetic working region in grid space."""

from __future__ import annotations

import itertools
import math
import multiprocessing
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.trial import FrozenTrial, Trial, TrialState, create_trial

from gnn_convergence.outcome import CONVERGED, FAILED, PARTIAL, classify
from gnn_convergence.study import sampler as sampler_module
from gnn_convergence.study.demo import SEED_SPACE
from gnn_convergence.study.protocol import (
    DECISION_ATTR,
    ROBUST,
    UNSTABLE,
    UNVALIDATED,
    Decision,
    min_distances,
    protocol_state,
)
from gnn_convergence.study.sampler import ProtocolSampler
from gnn_convergence.study.space import Param, fingerprint, index_of, parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

PARAMS = parse_space(SEED_SPACE)
SIZES = [len(p.values) for p in PARAMS]
BOX = ((2, 4), (1, 2), (0, 3), (1, 3))
INSIDE = {"lr_W": 1e-3, "lr": 5e-4, "coeff_W_L1": 5e-6, "batch_size": 8}
OUTSIDE = {"lr_W": 1e-2, "lr": 1e-4, "coeff_W_L1": 1e-4, "batch_size": 1}
FIRST_RUNS = ("start", "jump", "move", "probe")


class Region:
    """Synthetic objective: converged inside BOX, partial near it, failed far away.

    The value falls by 0.1 per grid step outside the box, so a walk can climb towards it. With
    ``noise`` a run inside the box fails with probability 0.2, seeded by the trial number.
    """

    def __init__(self, noise: float = 0.0, sleep: float = 0.0) -> None:
        self.noise = noise
        self.sleep = sleep

    def __call__(self, trial: Trial) -> float:
        config = suggest_config(trial)
        time.sleep(self.sleep)
        distance = sum(max(lo - i, 0, i - hi) for i, (lo, hi) in zip(config, BOX, strict=True))
        if distance:
            return max(0.0, 0.85 - 0.1 * distance)
        failed = np.random.default_rng(trial.number).random() < self.noise
        return 0.02 if failed else 0.95


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
    study.optimize(objective or Region(noise=0.2), n_trials=n_trials)
    return study


def decision(trial: FrozenTrial) -> tuple[str, tuple[int, ...], int | None]:
    attr = trial.system_attrs[DECISION_ATTR]
    return attr["role"], tuple(attr["config"]), attr["parent"]


def outcome(trial: FrozenTrial) -> str:
    return classify(trial.value if trial.state == TrialState.COMPLETE else None)


@pytest.fixture(scope="module")
def noisy() -> optuna.Study:
    return run_study(150)


def test_moves_and_probes_change_one_param_by_one_step(noisy: optuna.Study) -> None:
    trials = noisy.trials
    roles = {decision(t)[0] for t in trials}
    assert {"start", "move", "retry", "validate", "probe", "jump"} <= roles
    for trial in trials:
        role, config, parent = decision(trial)
        assert trial.user_attrs["role"] == role and trial.user_attrs["parent"] == parent
        if role in ("move", "probe"):
            before = decision(trials[parent])[1]
            assert sorted(abs(a - b) for a, b in zip(before, config, strict=True))[-2:] == [0, 1]
            assert "->" in trial.user_attrs["change"]
        elif role in ("retry", "validate"):
            assert decision(trials[parent])[1] == config
        else:
            assert parent is None


def test_a_failed_first_run_is_retried_at_once(noisy: optuna.Study) -> None:
    trials = noisy.trials[:-1]
    failed = [t for t in trials if decision(t)[0] in FIRST_RUNS and outcome(t) == FAILED]
    assert failed
    for trial in failed:
        role, config, parent = decision(noisy.trials[trial.number + 1])
        assert (role, config, parent) == ("retry", decision(trial)[1], trial.number)
    for trial in trials:
        if decision(trial)[0] == "retry":
            assert decision(noisy.trials[trial.number + 1])[0] != "retry"


def test_a_converged_config_is_validated_before_the_walk_goes_on(noisy: optuna.Study) -> None:
    trials = noisy.trials
    firsts = [t for t in trials if decision(t)[0] in ("start", "jump", "move")]
    converged = [t for t in firsts if outcome(t) == CONVERGED and t.number + 3 < len(trials)]
    assert converged
    robust = 0
    for trial in converged:
        follow = []
        for nxt in trials[trial.number + 1 :]:
            role, config, parent = decision(nxt)
            if role != "validate":
                break
            assert (config, parent) == (decision(trial)[1], trial.number)
            follow.append(outcome(nxt))
        assert len(follow) == 2 or (follow and follow[-1] != CONVERGED)
        robust += follow == [CONVERGED, CONVERGED]
    assert robust


def test_probes_find_the_true_boundaries() -> None:
    study = run_study(60, Region(), start=INSIDE)
    state = ProtocolSampler(PARAMS).state(study)
    origin = decision(study.trials[0])[1]
    assert state.status[origin] == ROBUST
    found = {
        (b.param, b.side): (b.inside, b.outside) for b in state.boundaries if b.origin == origin
    }
    expected = {}
    for param, size, (lo, hi) in zip(PARAMS, SIZES, BOX, strict=True):
        expected[param.name, "low"] = (lo, lo - 1 if lo > 0 else None)
        expected[param.name, "high"] = (hi, hi + 1 if hi < size - 1 else None)
    assert found == expected


def test_a_walk_from_outside_climbs_into_the_region() -> None:
    study = run_study(40, Region())
    state = ProtocolSampler(PARAMS).state(study)
    robust = [c for c, s in state.status.items() if s == ROBUST]
    assert robust
    assert all(lo <= i <= hi for c in robust for i, (lo, hi) in zip(c, BOX, strict=True))


def normalised_min_distance(config: Sequence[int], visited: Sequence[Sequence[int]]) -> float:
    return min(
        math.dist([a / (n - 1) for a, n in zip(config, SIZES, strict=True)],
                  [b / (n - 1) for b, n in zip(other, SIZES, strict=True)])
        for other in visited
    )  # fmt: skip


def test_a_jump_lands_at_the_farthest_config(noisy: optuna.Study) -> None:
    jumps = [t for t in noisy.trials if decision(t)[0] == "jump"]
    assert len(jumps) >= 2
    grid = list(itertools.product(*(range(n) for n in SIZES)))
    for jump in jumps:
        visited = {decision(t)[1] for t in noisy.trials[: jump.number]}
        best = max(normalised_min_distance(c, visited) for c in grid)
        assert normalised_min_distance(decision(jump)[1], visited) == pytest.approx(best)
        assert jump.user_attrs["change"].startswith("jump: lr_W=")


def test_only_grid_values_are_proposed(noisy: optuna.Study) -> None:
    for trial in noisy.trials:
        assert set(trial.params) == set(SEED_SPACE)
        for param in PARAMS:
            value = trial.params[param.name]
            assert type(value) in (float, int) and value in param.values
            assert param.distribution._contains(param.distribution.to_internal_repr(value))
        config = decision(trial)[1]
        assert [p.values[i] for p, i in zip(PARAMS, config, strict=True)] == [
            trial.params[p.name] for p in PARAMS
        ]


def test_the_same_seed_proposes_the_same_sequence(noisy: optuna.Study) -> None:
    again = run_study(150)
    assert [decision(t) for t in again.trials] == [decision(t) for t in noisy.trials]


def test_an_interrupted_study_resumes_exactly(tmp_path) -> None:
    whole = run_study(25, seed=3)
    url = f"sqlite:///{tmp_path}/parts.db"
    run_study(12, storage=url, seed=3)
    study = optuna.load_study(
        study_name=None, storage=url, sampler=ProtocolSampler(PARAMS, start=OUTSIDE, seed=3)
    )
    study.optimize(Region(noise=0.2), n_trials=13)
    assert [decision(t) for t in study.trials] == [decision(t) for t in whole.trials]
    assert [t.user_attrs for t in study.trials] == [t.user_attrs for t in whole.trials]


def _worker(url: str, n_trials: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sqlite = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=sqlite)
    sampler = ProtocolSampler(PARAMS, start=OUTSIDE)
    study = optuna.load_study(study_name="workers", storage=storage, sampler=sampler)
    study.optimize(Region(noise=0.2, sleep=0.1), n_trials=n_trials)


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
        if decision(a)[0] != "validate":
            assert decision(a) != decision(b)
    firsts = [decision(t)[1] for t in trials if decision(t)[0] in FIRST_RUNS]
    assert len(firsts) == len(set(firsts))
    per_config = [decision(t)[1] for t in trials]
    assert max(per_config.count(c) for c in per_config) <= 3


@pytest.mark.parametrize("bad", [ValueError("boom"), math.nan])
def test_a_fail_trial_counts_as_failed(bad: Any) -> None:
    def objective(trial: Trial) -> float:
        if trial.number == 0:
            suggest_config(trial)
            if isinstance(bad, Exception):
                raise bad
            return bad
        return Region()(trial)

    study = optuna.create_study(sampler=ProtocolSampler(PARAMS, start=INSIDE))
    study.optimize(objective, n_trials=4, catch=(ValueError,))
    assert study.trials[0].state == TrialState.FAIL
    assert decision(study.trials[1]) == ("retry", decision(study.trials[0])[1], 0)
    assert [decision(t)[0] for t in study.trials[2:]] == ["move", "validate"]
    state = ProtocolSampler(PARAMS).state(study)
    assert state.runs[0].outcome == FAILED and state.status[state.runs[0].config] == UNSTABLE


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
    assert decision(first)[1] == (4, 2, 3, 3)
    assert off_grid.params["training.learning_rate_W_start"] == 1.5e-3
    assert off_grid.system_attrs[DECISION_ATTR]["on_grid"] is False
    assert decision(start)[0] == "start"
    state = ProtocolSampler(PARAMS).state(study)
    assert [r.number for r in state.runs] == [0, 2, 3]


def test_a_preset_waiting_trial_is_recorded_as_enqueued() -> None:
    study = optuna.create_study(sampler=ProtocolSampler(PARAMS, start=INSIDE))
    values = dict(zip(SEED_SPACE, (5e-3, 1e-4, 0.0, 1), strict=True))
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


def test_the_study_package_does_not_import_torch() -> None:
    code = "import sys, gnn_convergence.study.sampler; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_patience_ends_a_flat_walk() -> None:
    study = run_study(4, constant(0.5), start=INSIDE, patience=2)
    assert [decision(t)[0] for t in study.trials] == ["start", "move", "move", "jump"]


def test_moves_keep_going_when_better_and_turn_back_when_worse() -> None:
    def uphill(trial: Trial) -> float:
        return 0.2 + 0.1 * suggest_config(trial)[0]

    for seed in range(4):
        study = run_study(5, uphill, start=INSIDE, seed=seed)
        lr_w = [decision(t)[1][0] for t in study.trials]
        lr_w = lr_w[: lr_w.index(SIZES[0] - 1) + 1]
        for before, now, after in zip(lr_w, lr_w[1:], lr_w[2:], strict=False):
            assert after == (now + 1 if now > before else before + 1)


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


def fake(
    number: int, role: str, config: tuple[int, ...], value: float | None, **kw
) -> FrozenTrial:
    state = kw.pop("state", TrialState.COMPLETE if value is not None else TrialState.FAIL)
    attr = Decision(role, config, kw.pop("parent", None)).to_attr(
        kw.pop("fp", fingerprint(PARAMS))
    )
    trial = create_trial(state=state, value=value, system_attrs={DECISION_ATTR: attr})
    trial.number = number
    return trial


def test_protocol_state_statuses_walks_and_boundaries() -> None:
    a, b, c, d = (3, 1, 2, 2), (4, 1, 2, 2), (2, 1, 2, 2), (0, 0, 0, 0)
    trials = [
        fake(0, "start", a, 0.95),
        fake(1, "validate", a, 0.96, parent=0),
        fake(2, "validate", a, 0.97, parent=0),
        fake(3, "probe", b, None, parent=0),
        fake(4, "retry", b, 0.5, parent=3),
        fake(5, "probe", c, 0.95, parent=0),
        fake(6, "jump", d, 0.3),
        fake(7, "move", (1, 0, 0, 0), None, state=TrialState.RUNNING, parent=6),
        fake(8, "move", (0, 1, 0, 0), 0.99, fp="other", parent=6),
        create_trial(value=0.99, params={}, distributions={}),
    ]
    state = protocol_state(trials, PARAMS)
    assert state.status == {
        a: ROBUST,
        b: PARTIAL,
        c: UNVALIDATED,
        d: PARTIAL,
        (1, 0, 0, 0): "pending",
    }
    assert [(w.first, w.kind, w.configs, w.incumbent) for w in state.walks] == [
        (0, "start", (a,), a),
        (6, "jump", (d, (1, 0, 0, 0)), d),
    ]
    lr_w = {b.side: (b.inside, b.outside, b.outside_status) for b in state.boundaries}
    assert lr_w["high"] == (3, 4, PARTIAL)
    assert state.open_probes[0] == Decision("probe", (1, 1, 2, 2), 5)
    assert list(state.regions()) == [a] and state.regions()[a] == state.boundaries
    assert state.values(a)["training.batch_size"] == 8 and state.config_of(4) == b
    assert state.score(a) == 0.95 and state.score(b) == 0.0 and state.score(d) == 0.3


class TestBasicSampler(BasicSamplerTestCase):
    """Optuna's own sampler contract, for parameters outside the protocol's space."""

    @pytest.fixture
    def sampler(self):
        return lambda: ProtocolSampler(PARAMS)


def test_a_large_grid_jumps_to_sampled_far_configs() -> None:
    params = parse_space({f"training.p{i}": "interval(0.1, 0.7)" for i in range(5)})
    study = optuna.create_study(sampler=ProtocolSampler(params, patience=1))
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
    study = optuna.create_study(sampler=ProtocolSampler(params, n_validate=1))
    study.optimize(constant(0.95, params), n_trials=12)
    assert len({decision(t)[1] for t in study.trials}) == 4
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_one_converged_run_is_robust_when_n_validate_is_1() -> None:
    study = run_study(3, Region(), start=INSIDE, n_validate=1)
    assert [decision(t)[0] for t in study.trials] == ["start", "probe", "probe"]


@pytest.mark.parametrize(("reported", "role"), [(False, "start"), (True, "retry")])
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
    assert second.params == first.params
    state = protocol_state(study.get_trials(), PARAMS)
    assert [r.number for r in state.runs] == ([0, 1] if reported else [1])
