"""The protocol sweeper through the real command line, on the tiny pair and real storage."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra.plugins.sweeper import Sweeper

from gnn_convergence.study.replay import protocol_state
from gnn_convergence.study.seeding import trial_seeds
from gnn_convergence.study.space import parse_space

SHORT = ["training.data_augmentation_loop=2"]  # 1,000 steps a run: a quick, real trial
TINY = ["simulation=tiny", "training=tiny", *SHORT]  # a real trial in seconds


def sweep_command(tmp_path):
    """`python -m gnn_convergence.train -m sweeps=quick`, storage and folders in tmp_path."""
    return [
        sys.executable,
        "-m",
        "gnn_convergence.train",
        "-m",
        "sweeps=quick",
        "progress=false",
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/studies.db",
        f"hydra.sweep.dir={tmp_path}/study",
        f"paths.cache_dir={tmp_path}/cache",
    ]


def sweep(tmp_path, *overrides, check=True, timeout=600):
    """Run the quick study with overrides into tmp_path."""
    proc = subprocess.run(
        [*sweep_command(tmp_path), *overrides], capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def load(tmp_path, overrides=()):
    """The quick study, from the storage the overrides name (else tmp_path's SQLite file)."""
    storage = f"sqlite:///{tmp_path}/studies.db"
    for override in overrides:
        if override.startswith("hydra.sweeper.storage="):
            storage = override.split("=", 1)[1]
    return optuna.load_study(study_name="quick", storage=storage)


def test_the_sweeper_is_discovered_and_no_search_path_plugin_is_needed():
    sweepers = [p.__name__ for p in Plugins.instance().discover(Sweeper)]
    paths = [p.__module__ for p in Plugins.instance().discover(SearchPathPlugin)]
    assert "ProtocolSweeper" in sweepers
    assert not any(m.startswith("hydra_plugins.gnn_convergence") for m in paths)


def test_seeds_are_distinct_for_every_run():
    assert trial_seeds("paired", 4, 3) == ([12, 13, 14], [12, 13, 14])
    assert trial_seeds("paired", 5, 3, panel=[12, 13, 14]) == ([15, 16, 17], [12, 13, 14])
    seen = set()
    for number in range(20):
        seeds, data = trial_seeds("rerun", number, 3)
        assert seeds == data and not seen & set(seeds)
        seen |= set(seeds)
    seeds, data = trial_seeds("cross", 2, n_seeds=2, n_data=3)
    assert len(set(seeds)) == 6 and data == [6, 6, 7, 7, 8, 8]
    assert trial_seeds("fixed_data", 1, 3) == ([3, 4, 5], None)
    with pytest.raises(ValueError, match="seed_mode"):
        trial_seeds("often", 0, 3)


@pytest.mark.slow
def test_the_quick_study_recommends_a_robust_config_within_its_budget(tmp_path):
    """`-m sweeps=quick` as it is (its start, its 12 trials): the walk climbs from its start,
    finds no neighbour better on its panel, validates the start on fresh datasets and
    recommends it; the last console line trains it. About 4 minutes on 2 idle cores."""
    proc = sweep(tmp_path, timeout=1800)
    trials = load(tmp_path).get_trials()
    roles = [t.user_attrs["role"] for t in trials]
    assert len(trials) == 12 and roles[:11] == ["start", *["move"] * 8, "validate", "validate"]
    answer = json.loads((tmp_path / "study" / "answer.json").read_text())
    recommended = answer["recommended"]
    assert recommended["verdict"] == "robust" and recommended["converged"] == 6
    assert recommended["params"]["training.learning_rate_W_start"] == 0.01
    command = "python -m gnn_convergence.train " + " ".join(
        f"{key}={value:g}" for key, value in recommended["params"].items()
    )
    assert proc.stdout.strip().splitlines()[-1] == command
    text = (tmp_path / "study" / "analysis.md").read_text()
    assert (
        "## Answer\n\nRecommended: lr_W=0.01, lr=0.0005, coeff_W_L1=5e-06, batch_size=8\n" in text
    )


@pytest.mark.slow
def test_quick_study_runs_records_and_resumes(tmp_path):
    proc = sweep(tmp_path, "hydra.sweeper.n_trials=3", *SHORT)
    assert "optuna-dashboard sqlite:///" in proc.stdout + proc.stderr
    study = load(tmp_path)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert trials[0].user_attrs["role"] == "start"
    assert trials[0].params["training.learning_rate_W_start"] == pytest.approx(1e-2)
    for t in trials:
        assert t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
        assert (tmp_path / "study" / f"trial_{t.number}" / "analysis.log").exists()
        assert t.user_attrs["seeds"] == [3 * t.number + i for i in range(3)]
        assert len(t.user_attrs["per_seed"]) == 3
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == pytest.approx(t.user_attrs["connectivity_R2_min"])
    assert trials[1].user_attrs["role"] in ("move", "retry", "validate")

    text = (tmp_path / "study" / "analysis.md").read_text()
    entry = re.compile(
        r"## Iter (\d+): (converged|partial|failed)\n"
        r"Config: lr_W=\S+, lr=\S+, coeff_W_L1=\S+, batch_size=\d+\n"
        r"Metrics: test_R2=\S+, test_pearson=\S+, connectivity_R2=\S+, final_loss=\S+\n"
        r"Observation: .+\n"
        r"Change: .+\n"
    )
    assert [int(n) for n, _ in entry.findall(text)] == [0, 1, 2]
    for name in ("trials.csv", "report.html", "maps.html", "walk.html"):
        assert (tmp_path / "study" / name).exists(), name

    sweep(tmp_path, "hydra.sweeper.n_trials=4", *SHORT)
    resumed = load(tmp_path).get_trials()
    assert [t.number for t in resumed] == [0, 1, 2, 3]
    assert resumed[0].datetime_start == trials[0].datetime_start
    assert (tmp_path / "study" / "trial_3" / "analysis.log").exists()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_killed_sweep_resumes_at_once_and_runs_the_killed_trial_again(
    tmp_path, request, backend
):
    """kill -9 during trial 0, the same command at once, long before the grace period ends:
    the dead worker's trial is failed unreported and its config runs again."""
    overrides = ["hydra.sweeper.n_trials=2", "hydra.sweeper.grace_period=600", *SHORT]
    if backend == "postgres":
        overrides.append(f"hydra.sweeper.storage={request.getfixturevalue('postgres_url')}")
    cmd = [*sweep_command(tmp_path), *overrides]
    with open(tmp_path / "killed.log", "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not (tmp_path / "study" / "trial_0" / "train.log").exists():
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    sweep(tmp_path, *overrides)
    trials = load(tmp_path, overrides).get_trials()
    killed = trials[0]
    assert killed.state == optuna.trial.TrialState.FAIL
    assert killed.user_attrs["reported"] is False
    assert killed.user_attrs["error"] == f"worker {killed.user_attrs['worker']} is gone"
    assert killed.user_attrs["worker"] == f"{socket.gethostname()}:{proc.pid}"
    assert trials[1].user_attrs["role"] == "start" and trials[1].params == killed.params
    assert [t.state for t in trials[1:]] == [optuna.trial.TrialState.COMPLETE] * 2
    analysis = (tmp_path / "study" / "analysis.md").read_text()
    assert f"error: {killed.user_attrs['error']}" in analysis


KILL_HOOK = """
import os, signal
import optuna

def _kill():
    os.kill(os.getpid(), signal.SIGKILL)

if os.environ.get("KILL_AT") == "first_result":
    _set = optuna.trial.Trial.set_user_attr

    def set_user_attr(self, key, value):
        if key.endswith("_min"):
            _kill()
        _set(self, key, value)

    optuna.trial.Trial.set_user_attr = set_user_attr
elif os.environ.get("KILL_AT") == "tell":
    optuna.study.Study.tell = lambda *args, **kwargs: _kill()
"""


@pytest.mark.slow
@pytest.mark.parametrize("at", ["first_result", "tell"])
def test_a_sweep_killed_while_it_stores_a_trial_keeps_its_evidence_or_runs_it_again(tmp_path, at):
    """SIGKILL (a sitecustomize hook) as the sweeper stores trial 0's first result, or as it
    tells Optuna, then the same command at once: trial 0 is run again (no failed runs), or
    its stored runs are the real ones."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK)
    env = os.environ | {"KILL_AT": at, "PYTHONPATH": f"{hook}:{os.environ.get('PYTHONPATH', '')}"}
    overrides = ["hydra.sweeper.n_trials=1", "hydra.sweeper.grace_period=600", *TINY]
    cmd = [*sweep_command(tmp_path), *overrides]
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    sweep(tmp_path, *overrides)
    trials = load(tmp_path).get_trials()
    first = trials[0]
    assert first.state == optuna.trial.TrialState.FAIL
    space = parse_space(load(tmp_path).user_attrs["params"])
    visits = protocol_state(trials, space).visits
    if at == "first_result":  # not stored: no run, the start runs again
        assert first.user_attrs["reported"] is False
        assert [v.number for v in visits] == [1]
        assert trials[1].user_attrs["role"] == "start" and trials[1].params == first.params
        assert trials[1].state == optuna.trial.TrialState.COMPLETE
    else:  # stored: the runs are the job's own, the trial counts
        metrics = json.loads((tmp_path / "study" / "trial_0" / "metrics.json").read_text())
        real = [s["connectivity_R2"] for s in metrics["seeds"]]
        assert [t.number for t in trials] == [0]
        assert [r.value for r in visits[0].runs] == pytest.approx(real)
        assert first.user_attrs["reported"] is True


@pytest.mark.slow
def test_a_job_that_cannot_write_its_folder_stops_the_sweep_and_runs_again(tmp_path):
    """A directory where trial 0 writes analysis.log after training: the job raises an
    OSError; the trial is not a run, the sweep stops, and the rerun trains it again."""
    sweep(tmp_path, "hydra.sweeper.n_trials=0")  # the study and its folder
    blocked = tmp_path / "study" / "trial_0" / "analysis.log"
    blocked.mkdir(parents=True)
    proc = sweep(tmp_path, "hydra.sweeper.n_trials=1", *TINY, check=False)
    assert proc.returncode != 0
    assert "trials [0] could not write their folders" in proc.stderr, proc.stderr[-3000:]
    assert "IsADirectoryError" in proc.stderr
    (failed,) = load(tmp_path).get_trials()
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["reported"] is False
    assert failed.user_attrs["error"].startswith("IsADirectoryError")
    assert "connectivity_R2" in (tmp_path / "study" / "trial_0" / "train.log").read_text()
    blocked.rmdir()
    sweep(tmp_path, "hydra.sweeper.n_trials=1", *TINY)
    trials = load(tmp_path).get_trials()
    assert trials[1].user_attrs["role"] == "start" and trials[1].params == failed.params
    assert trials[1].state == optuna.trial.TrialState.COMPLETE


@pytest.mark.slow
def test_study_pages_that_cannot_be_written_do_not_stop_the_study(tmp_path):
    """A directory where analysis.md goes: every pages write fails, logged; trials run."""
    sweep(tmp_path, "hydra.sweeper.n_trials=0")
    (tmp_path / "study" / "analysis.md").unlink()
    (tmp_path / "study" / "analysis.md").mkdir()
    proc = sweep(tmp_path, "hydra.sweeper.n_trials=1", *TINY)
    output = proc.stdout + proc.stderr
    assert "cannot write its pages" in output and "IsADirectoryError" in output
    (trial,) = load(tmp_path).get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert len(trial.user_attrs["per_seed"]) == 3


@pytest.mark.slow
def test_a_study_folder_belongs_to_one_study(tmp_path):
    """Another storage (a new file, the in-memory one) or a mistyped one stops before any
    training; the folder's trial and records stay as they were; its own study resumes."""
    study = tmp_path / "study"
    sweep(tmp_path, "hydra.sweeper.n_trials=1", *TINY)
    files = sorted(p for p in study.rglob("*") if p.is_file() and "trial_0" in p.parts)
    files += [study / "trials.csv", study / "analysis.md"]
    before = {p: p.read_bytes() for p in files}
    (tmp_path / "other").mkdir()
    owner = f"study 'quick' in sqlite:///{tmp_path}/studies.db"
    for storage, message in [
        (
            f"sqlite:///{tmp_path}/other/studies.db",
            f"not of study 'quick' in sqlite:///{tmp_path}/other",
        ),
        ("", "not of study 'quick' in the in-memory storage"),
        (f"sqlite:///{tmp_path}/typo/studies.db", f"folder {tmp_path}/typo of the SQLite file"),
    ]:
        proc = sweep(
            tmp_path,
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.n_trials=2",
            *TINY,
            check=False,
        )
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-3000:]
        if "typo" not in storage:
            assert f"{study} holds the trials of {owner}" in proc.stderr
    assert not (tmp_path / "typo").exists()
    assert not (study / "trial_1").exists()
    assert {p: p.read_bytes() for p in files} == before
    (study / "study.json").unlink()  # a folder from before the marker: its own trials adopt it
    sweep(tmp_path, "hydra.sweeper.n_trials=1", *TINY)
    assert "quick" in (study / "study.json").read_text()


def test_a_changed_search_space_stops_a_resumed_study(tmp_path):
    study = tmp_path / "study"
    sweep(tmp_path, "hydra.sweeper.n_trials=0")
    first = (study / "multirun.yaml").read_text()
    wider = "training.learning_rate_start=tag(log,interval(1e-4,1e-2))"
    proc = sweep(tmp_path, "hydra.sweeper.n_trials=0", wider, check=False)
    assert proc.returncode != 0
    assert "tag(log, interval(1e-4, 1e-3))" in proc.stderr and wider.split("=")[1] in proc.stderr
    assert "hydra.sweeper.allow_space_change=true" in proc.stderr
    lr = "training.learning_rate_start"
    assert load(tmp_path).user_attrs["params"][lr] == "tag(log, interval(1e-4, 1e-3))"
    sweep(tmp_path, "hydra.sweeper.n_trials=0", wider, "hydra.sweeper.allow_space_change=true")
    assert load(tmp_path).user_attrs["params"][lr] == "tag(log,interval(1e-4,1e-2))"
    assert (study / "multirun.yaml").read_text() == first  # the first sweep's config stays
    assert "allow_space_change: true" in (study / "multirun_1.yaml").read_text()
    sweep(tmp_path, "hydra.sweeper.n_trials=0", wider, "hydra.sweeper.allow_space_change=true")
    assert not (study / "multirun_2.yaml").exists()  # the same config again: no copy


def _sigint_default() -> None:
    """In the child before exec: SIGINT at its default, as in a terminal's foreground job.
    A shell without job control starts background commands (`pytest ... &` in a script) with
    SIGINT ignored; children inherit that, and Python then installs no KeyboardInterrupt
    handler, so the sweep would ignore the test's Ctrl-C and finish its study."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("when", "overrides", "marker", "where"),
    [
        (  # the first step compiles the loss: seconds of dynamo and inductor
            "compiling",
            ["training.compile=true"],
            "compiling the loss with torch.compile",
            "torch/_dynamo/",  # convert_frame.py, or eval_frame.py while it enters the compile
        ),
        (  # 900 steps left after the first report
            "training",
            ["training.log_interval=100"],
            "step 100 loss/N",
            "gnn_convergence/trainer.py",
        ),
    ],
)
def test_ctrl_c_records_the_trial_and_a_rerun_resumes(tmp_path, when, overrides, marker, where):
    """SIGINT as soon as trial 0's train.log shows `marker`: the sweep dies of it, with the
    KeyboardInterrupt raised in `where`; the trial is an unreported FAIL; a rerun resumes."""
    overrides = ["hydra.sweeper.n_trials=2", *SHORT, *overrides]
    log = tmp_path / "study" / "trial_0" / "train.log"
    with open(tmp_path / "interrupted.log", "w") as out:
        proc = subprocess.Popen(
            [*sweep_command(tmp_path), *overrides],
            stdout=out,
            stderr=out,
            preexec_fn=_sigint_default,
        )
        try:
            deadline = time.monotonic() + 300
            while not (log.exists() and marker in log.read_text()):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=120) == -signal.SIGINT  # died of the KeyboardInterrupt
        finally:
            proc.kill()
    output = (tmp_path / "interrupted.log").read_text()
    frames = output[output.rindex("Traceback (most recent call last)") :]
    assert frames.rstrip().endswith("KeyboardInterrupt") and where in frames, frames[-3000:]
    interrupted = load(tmp_path).get_trials()
    assert [t.state for t in interrupted] == [optuna.trial.TrialState.FAIL]
    assert interrupted[0].user_attrs["error"].startswith("interrupted: KeyboardInterrupt")
    assert interrupted[0].user_attrs["reported"] is False
    sweep(tmp_path, "hydra.sweeper.n_trials=2", *SHORT)  # eager: resuming is what is tested
    trials = load(tmp_path).get_trials()
    assert trials[1].user_attrs["role"] == "start" and trials[1].params == interrupted[0].params
    assert [t.state for t in trials[1:]] == [optuna.trial.TrialState.COMPLETE] * 2


@pytest.mark.slow  # trains
def test_worker_processes_share_one_postgres_study(tmp_path, postgres_url):
    storage = f"hydra.sweeper.storage={postgres_url}"
    sweep(tmp_path, storage, "hydra.sweeper.n_trials=0")  # create the study once, run nothing
    assert load(tmp_path, [storage]).get_trials() == []
    cmd = [*sweep_command(tmp_path), storage, "hydra.sweeper.n_trials=4", *SHORT]
    workers = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()[-3000:]
    trials = load(tmp_path, [storage]).get_trials()
    assert len(trials) >= 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    folders = [t.user_attrs["folder"] for t in trials]
    assert len(set(folders)) == len(folders)
    assert all((Path(f) / "metrics.json").exists() for f in folders)
    firsts = [
        (t.user_attrs["role"], tuple(t.params.values()))
        for t in trials
        if t.user_attrs["role"] in ("start", "move", "probe", "jump")
    ]
    assert len(firsts) == len(set(firsts))


@pytest.mark.slow  # trains
def test_parallel_jobs_through_the_joblib_launcher(tmp_path):
    sweep(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=2",
        *SHORT,
    )
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert [t.user_attrs["role"] for t in trials] == ["start", "move"]
    assert trials[0].params != trials[1].params
    for t in trials:
        assert (tmp_path / "study" / f"trial_{t.number}" / "metrics.json").exists()


def test_a_failing_job_is_a_fail_trial_and_the_study_goes_on(tmp_path):
    """simulation.dt=1e9 passes the config checks; every job's simulation blows up."""
    sweep(tmp_path, "hydra.sweeper.n_trials=2", "simulation.dt=1e9", *SHORT)
    trials = load(tmp_path).get_trials()
    assert len(trials) == 2
    for t in trials:
        assert t.state == optuna.trial.TrialState.FAIL
        error = t.user_attrs["error"]
        assert error.startswith("SimulationError: the simulated activity is not finite"), error
        assert "Euler step 35 of 10100" in error and "simulation.dt" in error
        assert (tmp_path / "study" / f"trial_{t.number}" / "error.txt").exists()
    assert not list((tmp_path / "cache").glob("*.npz"))  # nothing cached
    assert trials[1].user_attrs["role"] == "move"
    assert "## Iter 1: failed" in (tmp_path / "study" / "analysis.md").read_text()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.foo=choice(1,2)", "unknown parameter training.foo"),
        ("training.learning_rate_embedding_start=tag(log,interval(1e-4,1e-3))", "frozen"),
        ("training.batch_size=choice(0,8)", "training.batch_size"),
        ("training.learning_rate_start=interval(1e-3,1e-4)", "training.learning_rate_start"),
        ("training.learning_rate_W_start=tag(log,interval(0,1e-2))", "log"),
        ("training.batch_size=choice(8)", "training.batch_size"),
        ("hydra.sweeper.seed_mode=often", "seed_mode"),
        (
            "hydra.sweeper.study_name=../../../x",
            "hydra.sweeper.study_name='../../../x' is invalid",
        ),
        ("device=cuda:7", "device='cuda:7' is invalid: allowed is auto"),  # no such GPU here
        (
            "hydra.sweeper.storage=postgresql://postgres@127.0.0.1:1/none",
            "cannot open the study storage postgresql://postgres@127.0.0.1:1/none",
        ),
    ],
)
def test_a_bad_study_fails_before_any_trial(tmp_path, override, message):
    proc = sweep(tmp_path, override, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "study" / "trial_0").exists()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_optuna_dashboard_reads_a_study_the_sweeper_wrote(tmp_path):
    from optuna_dashboard import wsgi

    sweep(tmp_path, "simulation=tiny", "training=tiny", "hydra.sweeper.n_trials=1", *SHORT)
    storage = f"sqlite:///{tmp_path}/studies.db"
    server = make_server("127.0.0.1", 0, wsgi(storage), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        studies = json.load(urllib.request.urlopen(f"{base}/api/studies", timeout=30))
        summary = next(s for s in studies["study_summaries"] if s["study_name"] == "quick")
        detail = json.load(
            urllib.request.urlopen(f"{base}/api/studies/{summary['study_id']}?after=0", timeout=30)
        )
        trial = detail["trials"][0]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert attrs["role"] == "start" and '"connectivity_R2"' in attrs["per_seed"]
        assert {p["name"] for p in trial["params"]} >= {"training.learning_rate_W_start"}
        stored = load(tmp_path).trials[0]
        assert trial["values"] == [stored.value] and attrs["seeds"] == str(
            stored.user_attrs["seeds"]
        )
    finally:
        server.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("space", "reason"),
    [
        (  # one swept parameter, a budget too small to validate: the start converges
            [
                "hydra.sweeper.params={training.learning_rate_W_start: 'choice(1e-2, 2e-2)'}",
                "hydra.sweeper.n_trials=1",
            ],
            "no config has been validated on fresh datasets yet",
        ),
        (  # nothing converges: learning rates far too small for 1,000 steps
            [
                "hydra.sweeper.params={training.learning_rate_W_start: 'choice(1e-7, 2e-7)'}",
                "training.learning_rate_W_start=1e-7",
                "hydra.sweeper.n_trials=3",
                *SHORT,
            ],
            "no config converged in a share of its runs >= level 0.6",
        ),
    ],
)
def test_a_study_without_an_answer_says_why(tmp_path, space, reason):
    proc = sweep(tmp_path, "simulation=tiny", "training=tiny", *space)
    assert proc.stdout.strip().splitlines()[-1].startswith(f"Recommended: none ({reason}")
    text = (tmp_path / "study" / "analysis.md").read_text()
    assert f"## Answer\n\nRecommended: none\nReason: {reason}" in text
    answer = json.loads((tmp_path / "study" / "answer.json").read_text())
    assert answer["recommended"] is None and answer["reason"].startswith(reason)
