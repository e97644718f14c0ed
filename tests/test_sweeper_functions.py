"""The sweeper's functions in-process: override parsing, value checks, trial attributes, tell."""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import subprocess
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import TrialState

from gnn_convergence.config import ConfigError
from gnn_convergence.outcome import Thresholds
from gnn_convergence.study.demo import DEFAULT_SPACE
from gnn_convergence.study.evidence import RobustRule
from gnn_convergence.study.space import parse_space
from gnn_convergence.study.vocabulary import ERROR, PER_SEED, REPORTED, WORKER
from hydra_plugins.gnn_convergence_sweeper._impl import (
    check_values,
    fail_lost_trials,
    split_arguments,
    tell,
    trial_attrs,
)
from hydra_plugins.gnn_convergence_sweeper._study_folder import (
    StudyError,
    check_storage_folder,
    check_study_name,
    storage_text,
)
from hydra_plugins.gnn_convergence_sweeper.sweeper import RobustConf, ThresholdsConf

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    ("arguments", "swept", "fixed"),
    [
        (["training.batch_size=choice(4,8)"], {"training.batch_size": "choice(4,8)"}, []),
        (
            ["training.coeff_W_L1=interval(0,1e-4)", "progress=false"],
            {"training.coeff_W_L1": "interval(0,1e-4)"},
            ["progress=false"],
        ),
        (
            ["training.learning_rate_W_start=tag(log,interval(1e-4,1e-2))"],
            {"training.learning_rate_W_start": "tag(log,interval(1e-4,1e-2))"},
            [],
        ),
        (["training.n_epochs=range(1,3)"], {"training.n_epochs": "range(1,3)"}, []),
        (["simulation=tiny", "device=cpu"], {}, ["simulation=tiny", "device=cpu"]),
    ],
)
def test_split_arguments_separates_sweeps_from_plain_overrides(arguments, swept, fixed) -> None:
    assert split_arguments(arguments) == (swept, fixed)


def test_check_values_accepts_the_default_space(make_config) -> None:
    base = make_config(["simulation=tiny", "training=tiny"])
    check_values(parse_space(DEFAULT_SPACE), base, "paired")


def test_check_values_of_a_largest_grid_is_fast(make_config) -> None:
    """Each of the 1,000 values is validated as a run config, in well under a second each."""
    base = make_config(["simulation=tiny", "training=tiny"])
    space = parse_space({"training.batch_size": "range(1, 1001)"})
    start = time.process_time()
    check_values(space, base, "paired")
    assert time.process_time() - start < 4.0


@pytest.mark.parametrize(
    ("key", "seed_mode", "message"),
    [
        ("simulation.seed", "paired", "simulation.seed cannot change a trial: seed_mode paired"),
        ("threads", "fixed_data", "threads cannot change a trial"),
    ],
)
def test_check_values_refuses_a_key_that_cannot_change_a_trial(
    make_config, key, seed_mode, message
) -> None:
    base = make_config(["simulation=tiny", "training=tiny"])
    with pytest.raises(ValueError, match=message):
        check_values(parse_space({key: "choice(1, 2)"}), base, seed_mode)
    check_values(parse_space({"simulation.seed": "choice(1, 2)"}), base, "fixed_data")


def test_check_values_names_a_value_of_the_wrong_type(make_config) -> None:
    base = make_config(["simulation=tiny", "training=tiny"])
    with pytest.raises(ConfigError, match="search space training.batch_size: value 'many'"):
        check_values(parse_space({"training.batch_size": "choice(8, many)"}), base, "paired")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("choice(0, 8)", "search space training.batch_size: value 0 is invalid"),
        ("choice(8, -1)", "training.batch_size=-1 is invalid"),
    ],
)
def test_check_values_names_the_bad_grid_value(make_config, text: str, message: str) -> None:
    base = make_config(["simulation=tiny", "training=tiny"])
    with pytest.raises(ConfigError, match=message):
        check_values(parse_space({"training.batch_size": text}), base, "paired")


def test_check_values_refuses_an_unknown_key(make_config) -> None:
    base = make_config(["simulation=tiny", "training=tiny"])
    with pytest.raises(ValueError, match="unknown parameter training.foo"):
        check_values(parse_space({"training.foo": "choice(1, 2)"}), base, "paired")


RESULT = {
    "objective": 0.91,
    "class": "converged",
    "connectivity_R2_min": 0.91,
    "connectivity_R2_mean": 0.95,
    "test_R2_min": math.nan,
    "training_time_min": 1.5,
    "seeds": [
        {
            "seed": 0,
            "data_seed": 7,
            "connectivity_R2": 0.91,
            "test_R2": math.nan,
            "diverged_at_step": None,
        },
        {
            "seed": 1,
            "data_seed": 8,
            "connectivity_R2": 0.99,
            "test_R2": 0.5,
            "diverged_at_step": None,
        },
    ],
}


def test_trial_attrs_are_json_safe_and_keep_every_run() -> None:
    attrs = trial_attrs(RESULT)
    assert attrs["connectivity_R2_min"] == 0.91 and attrs["test_R2_min"] is None
    assert attrs["class"] == "converged" and attrs["training_time_min"] == 1.5
    assert attrs[PER_SEED][0] == {
        "seed": 0,
        "data_seed": 7,
        "connectivity_R2": 0.91,
        "test_R2": None,
        "diverged_at_step": None,
    }
    assert len(attrs[PER_SEED]) == 2


def asked() -> tuple[optuna.Study, optuna.Trial]:
    study = optuna.create_study(direction="maximize")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr(REPORTED, False)
    return study, trial


def test_tell_completes_a_trial_with_its_objective(tmp_path) -> None:
    study, trial = asked()
    tell(study, trial, JobReturn(status=JobStatus.COMPLETED, _return_value=RESULT), tmp_path)
    (frozen,) = study.trials
    assert frozen.state == TrialState.COMPLETE and frozen.value == 0.91
    assert frozen.user_attrs[REPORTED] is True and len(frozen.user_attrs[PER_SEED]) == 2


def test_tell_fails_a_trial_whose_objective_is_nan(tmp_path) -> None:
    study, trial = asked()
    diverged = RESULT | {"objective": math.nan}
    diverged["seeds"] = [RESULT["seeds"][0] | {"connectivity_R2": None, "diverged_at_step": 12}]
    tell(study, trial, JobReturn(status=JobStatus.COMPLETED, _return_value=diverged), tmp_path)
    (frozen,) = study.trials
    assert frozen.state == TrialState.FAIL
    assert frozen.user_attrs[ERROR] == "no finite objective: seeds [0] diverged"
    assert frozen.user_attrs[PER_SEED][0]["diverged_at_step"] == 12


def test_tell_records_a_raising_job_as_a_fail_trial_with_its_error(tmp_path) -> None:
    study, trial = asked()
    job = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("out of memory\nmore"))
    tell(study, trial, job, tmp_path / "trial_0")
    (frozen,) = study.trials
    assert frozen.state == TrialState.FAIL
    assert frozen.user_attrs[ERROR] == "RuntimeError: out of memory"
    assert frozen.user_attrs[REPORTED] is True
    assert "RuntimeError: out of memory" in (tmp_path / "trial_0" / "error.txt").read_text()


def test_tell_keeps_the_error_of_a_job_whose_folder_cannot_take_error_txt(tmp_path, caplog):
    study, trial = asked()
    folder = tmp_path / "trial_0"
    folder.write_text("a plain file where the trial's folder must go")
    job = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("out of memory"))
    with caplog.at_level(logging.ERROR):
        assert tell(study, trial, job, folder) is True
    (frozen,) = study.trials
    assert frozen.state == TrialState.FAIL and frozen.user_attrs[REPORTED] is True
    assert frozen.user_attrs[ERROR] == "RuntimeError: out of memory"
    assert f"{folder}: cannot write error.txt" in caplog.text


def test_tell_leaves_a_job_that_failed_on_its_disk_unreported(tmp_path) -> None:
    """An OSError (disk full, quota, permissions) says nothing of the config: no run."""
    study, trial = asked()
    quota = OSError(errno.EDQUOT, "Disk quota exceeded", "trial_0/weights.pt")
    job = JobReturn(status=JobStatus.FAILED, _return_value=quota)
    assert tell(study, trial, job, tmp_path / "trial_0") is False
    (frozen,) = study.trials
    assert frozen.state == TrialState.FAIL and frozen.user_attrs[REPORTED] is False
    assert frozen.user_attrs[ERROR].startswith("OSError: [Errno 122] Disk quota exceeded")
    assert "Disk quota exceeded" in (tmp_path / "trial_0" / "error.txt").read_text()


def test_a_trial_is_reported_only_once_its_evidence_is_stored(tmp_path, monkeypatch) -> None:
    """A storage error while the runs are written leaves the trial unreported: run again."""
    study, trial = asked()
    write = trial.set_user_attr

    def hiccup(key, value):
        if key == PER_SEED:
            raise optuna.exceptions.StorageInternalError("database is locked")
        write(key, value)

    monkeypatch.setattr(trial, "set_user_attr", hiccup)
    job = JobReturn(status=JobStatus.COMPLETED, _return_value=RESULT)
    with pytest.raises(optuna.exceptions.StorageInternalError):
        tell(study, trial, job, tmp_path)
    assert study.trials[0].user_attrs[REPORTED] is False


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_fail_lost_trials_fails_the_trials_of_a_dead_worker_on_this_host(tmp_path) -> None:
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path}/studies.db", heartbeat_interval=60, grace_period=600
    )
    study = optuna.create_study(storage=storage, direction="maximize")
    host, dead = socket.gethostname(), _dead_pid()
    workers = [f"{host}:{dead}", f"{host}:{os.getpid()}", "elsewhere.invalid:1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for worker in workers:
            trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
            trial.set_user_attr(REPORTED, False)
            trial.set_user_attr(WORKER, worker)
            storage.record_heartbeat(trial._trial_id)
    fail_lost_trials(study)
    gone, alive, elsewhere = study.get_trials()
    assert gone.state == TrialState.FAIL and gone.user_attrs[REPORTED] is False
    assert gone.user_attrs[ERROR] == f"worker {host}:{dead} is gone"
    assert alive.state == elsewhere.state == TrialState.RUNNING


@pytest.mark.parametrize("name", ["quick", "my-study_2.b", "v1.0"])
def test_a_plain_study_name_is_accepted(name) -> None:
    check_study_name(name)


@pytest.mark.parametrize("name", ["../../../x", "a/b", ".", "..", "", "a b", "/abs"])
def test_a_study_name_that_is_not_a_plain_name_is_refused(name) -> None:
    with pytest.raises(ValueError, match=r"hydra.sweeper.study_name=.* is invalid: allowed is"):
        check_study_name(name)


def test_a_sqlite_storage_in_a_missing_folder_is_refused(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/typo/studies.db"
    with pytest.raises(StudyError, match=f"folder {tmp_path}/typo of the SQLite file"):
        check_storage_folder(url, tmp_path / "study")
    assert not (tmp_path / "typo").exists()


def test_a_sqlite_storage_folder_that_holds_the_study_folder_is_accepted(tmp_path) -> None:
    """The default storage (outputs/studies.db beside outputs/studies/<name>) on a fresh clone:
    accepted, and left for the sweep to create with the study folder."""
    check_storage_folder(f"sqlite:///{tmp_path}/outputs/studies.db", tmp_path / "outputs/x/y")
    check_storage_folder(f"sqlite:///{tmp_path}/studies.db", tmp_path / "elsewhere")
    check_storage_folder(None, tmp_path / "study")
    assert list(tmp_path.iterdir()) == []


def test_a_storage_is_shown_without_its_password() -> None:
    assert storage_text("postgresql://me:secret@db:5432/studies") == (
        "postgresql://me:***@db:5432/studies"
    )
    assert storage_text(None) == storage_text("") == "the in-memory storage"


def test_the_sweeper_schema_and_the_default_study_spell_the_rules_defaults() -> None:
    """Thresholds and the robust rule have one set of defaults: the dataclasses the protocol
    uses, the sweeper's schema and conf/hydra/sweeper/convergence.yaml agree."""
    assert asdict(ThresholdsConf()) == asdict(Thresholds())
    assert asdict(RobustConf()) == asdict(RobustRule())
    conf = Path(__file__).resolve().parents[1] / "conf" / "hydra" / "sweeper" / "convergence.yaml"
    study = OmegaConf.load(conf).sweeper
    assert OmegaConf.to_container(study.thresholds) == asdict(Thresholds())
    assert OmegaConf.to_container(study.robust) == asdict(RobustRule())
    assert RobustRule().race_tie_runs == 6  # two rounds of n_seeds = 3 common datasets
