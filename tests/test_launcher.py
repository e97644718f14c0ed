"""The population launcher: Hydra's launcher conformance suites, and our app through it."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra import initialize
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from hydra.types import HydraContext, RunMode
from hydra.version import VersionBase
from omegaconf import OmegaConf
from packaging.version import Version

from gnn_convergence.config import ConfigError, RunConfig
from gnn_convergence.simulation import SimulationError
from gnn_convergence.train import main
from hydra_plugins.gnn_convergence_launcher._impl import BatchJob, groups
from hydra_plugins.gnn_convergence_launcher.launcher import PopulationLauncher

# the tiny pair, 500 steps a run
TINY = [
    "simulation=tiny",
    "training=tiny",
    "device=cpu",
    "progress=false",
    "training.n_epochs=1",
    "training.data_augmentation_loop=2",
]
TOLERANCE = 1e-4  # float32: a population sums its members' losses in another order


def test_the_launcher_is_discovered():
    assert PopulationLauncher.__name__ in [
        p.__name__ for p in Plugins.instance().discover(Launcher)
    ]


@pytest.fixture
def hydra_compat_version(hydra_restore_singletons):
    """Hydra's version base as in a process that does not set it (1.1), which the launcher
    suites expect; our app's `@hydra.main(version_base="1.3")`, imported by tests, sets 1.3.
    hydra_restore_singletons puts it back after the test."""
    VersionBase.instance().setbase(Version("1.1"))


@pytest.mark.usefixtures("hydra_compat_version")
@pytest.mark.parametrize("launcher_name, overrides", [("population", [])])
class TestPopulationLauncher(LauncherTestSuite):
    """Hydra's launcher suite: other apps' jobs run as with the basic launcher."""


@pytest.mark.usefixtures("hydra_compat_version")
@pytest.mark.parametrize(
    "launcher_name, overrides",
    [("population", ["hydra/sweeper=basic", "hydra.sweeper.max_batch_size=2"])],
)
class TestPopulationLauncherBatches(BatchedSweeperTestSuite):
    """Hydra's batched sweep suite: job numbers and folders across batches."""


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        (
            {},
            [
                "-m",
                "hydra/hydra_logging=hydra_debug",
                "hydra/job_logging=disabled",
                "hydra/launcher=population",
            ],
        )
    ],
)
class TestPopulationLauncherIntegration(IntegrationTestSuite):
    """Hydra's integration suite: generated apps run with `-m hydra/launcher=population`."""


def test_jobs_group_by_population_key_in_job_order_and_split_at_max_members():
    one = RunConfig()
    other = dataclasses.replace(one, training=dataclasses.replace(one.training, batch_size=4))
    cfgs = [one, other, None, one, one, other]  # None: not our app's config
    jobs = [BatchJob(num, OmegaConf.create(), cfg) for num, cfg in enumerate(cfgs)]
    assert [[j.num for j in g] for g in groups(jobs, None)] == [[0, 3, 4], [1, 5], [2]]
    assert [[j.num for j in g] for g in groups(jobs, 2)] == [[0, 3], [4], [1, 5], [2]]
    with pytest.raises(ValueError, match="max_members=0"):
        PopulationLauncher(max_members=0)


def grid(tmp_path: Path, launcher: str) -> str:
    """Two lr_W values of the tiny pair as a basic grid through `launcher`, into
    tmp_path/<launcher>; returns the command's output."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gnn_convergence.train",
            "-m",
            "hydra/sweeper=basic",
            f"hydra/launcher={launcher}",
            *TINY,
            "training.learning_rate_W_start=5e-3,1e-2",
            f"paths.cache_dir={tmp_path}/cache",
            f"hydra.sweep.dir={tmp_path}/{launcher}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def assert_same_run(got: dict, want: dict) -> None:
    """The same run but for the float32 order of sums: equal steps, seeds and data, metrics
    and training curve within TOLERANCE; the training time aside."""
    nested = ("seeds", "data", "curve", "training_time_min")
    assert got.keys() == want.keys()
    assert {k: got[k] for k in got if k not in nested} == pytest.approx(
        {k: want[k] for k in want if k not in nested}, abs=TOLERANCE
    )
    assert got["data"] == want["data"]
    for record, expected in zip(got["seeds"], want["seeds"], strict=True):
        assert record == pytest.approx(expected, abs=TOLERANCE)
    assert got["curve"]["step"] == want["curve"]["step"]
    for key in ("loss_per_n", "connectivity_R2"):
        for values, expected in zip(got["curve"][key], want["curve"][key], strict=True):
            assert values == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.slow  # trains
def test_a_grid_trains_once_and_writes_each_job_as_the_basic_launcher(tmp_path):
    output = grid(tmp_path, "population")
    assert "population of 2 jobs: #0, #1" in output
    grid(tmp_path, "basic")
    population, basic = tmp_path / "population", tmp_path / "basic"
    assert files(population) == files(basic)
    assert "0/metrics.json" in files(population) and "1/.hydra/config.yaml" in files(population)
    for job in ("0", "1"):
        for name in (".hydra/config.yaml", ".hydra/overrides.yaml"):
            assert (population / job / name).read_text() == (basic / job / name).read_text()
        got, want = (
            json.loads((d / job / "metrics.json").read_text()) for d in (population, basic)
        )
        assert_same_run(got, want)


def launch(tmp_path: Path, batch: list[list[str]]) -> list[JobReturn]:
    """Launch `batch` (each job: TINY, its cache in tmp_path, its own overrides) of our app
    through the population launcher, set up as `-m` sets it up; the jobs in tmp_path/sweep."""
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path="../conf", job_name="train"):
        hydra_ = GlobalHydra.instance().hydra
        cfg = hydra_.compose_config(
            "train",
            ["hydra/launcher=population", f"hydra.sweep.dir={tmp_path}/sweep"],
            run_mode=RunMode.MULTIRUN,
        )
        HydraConfig.instance().set_config(cfg)
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(
                config_loader=hydra_.config_loader, callbacks=Callbacks(cfg)
            ),
            task_function=main.__wrapped__,
            config=cfg,
        )
        jobs = [[*TINY, f"paths.cache_dir={tmp_path}/cache", *job] for job in batch]
        return launcher.launch(jobs, initial_job_idx=0)


@pytest.fixture
def launcher_log(caplog):
    """caplog on the launcher's logger: Hydra's logging config replaces the root's handlers."""
    logger = logging.getLogger("hydra_plugins.gnn_convergence_launcher._impl")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.mark.slow  # trains
@pytest.mark.usefixtures("hydra_restore_singletons")
def test_a_mixed_batch_runs_each_group_and_reports_each_error_in_its_job(tmp_path, launcher_log):
    returns = launch(
        tmp_path,
        [
            ["training.learning_rate_W_start=5e-3"],
            ["training.batch_size=4"],  # another population key: alone
            ["training.learning_rate_start=-1"],  # invalid: alone, its ConfigError returned
            ["training.learning_rate_W_start=1e-2"],
            ["simulation.dt=1e9", "training.learning_rate_W_start=5e-3"],  # blows up
            ["simulation.dt=1e9", "training.learning_rate_W_start=1e-2"],
        ],
    )
    logged = launcher_log.text
    assert "population of 2 jobs: #0, #3" in logged and "#1 runs alone" in logged
    assert "population #4, #5 failed (SimulationError" in logged
    assert [r.hydra_cfg.hydra.job.num for r in returns] == list(range(6))
    ok, failed = JobStatus.COMPLETED, JobStatus.FAILED
    assert [r.status for r in returns] == [ok, ok, failed, ok, failed, failed]
    with pytest.raises(ConfigError, match="training.learning_rate_start=-1"):
        _ = returns[2].return_value
    for ret in returns[4:]:
        with pytest.raises(SimulationError, match="not finite"):
            _ = ret.return_value
    for num in (0, 1, 3):
        saved = json.loads((tmp_path / "sweep" / str(num) / "metrics.json").read_text())
        assert returns[num].return_value == {k: v for k, v in saved.items() if k != "curve"}
    assert returns[1].return_value["n_steps"] == 2 * returns[0].return_value["n_steps"]


@pytest.mark.slow  # trains
def test_a_study_with_batches_of_three_reports_every_trial(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gnn_convergence.train",
            "-m",
            "hydra/launcher=population",
            "hydra.sweeper.n_jobs=3",
            "hydra.sweeper.n_trials=3",
            *TINY,
            f"hydra.sweeper.storage=sqlite:///{tmp_path}/studies.db",
            f"hydra.sweep.dir={tmp_path}/study",
            f"paths.cache_dir={tmp_path}/cache",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = optuna.load_study(
        study_name="convergence", storage=f"sqlite:///{tmp_path}/studies.db"
    ).get_trials()
    assert len(trials) == 3
    for t in trials:
        assert t.state == optuna.trial.TrialState.COMPLETE, t.user_attrs.get("error")
        assert t.user_attrs["reported"] is True
        assert len(t.user_attrs["per_seed"]) == 3
        assert t.value == pytest.approx(t.user_attrs["connectivity_R2_min"])
        assert (tmp_path / "study" / f"trial_{t.number}" / "metrics.json").exists()
    by_batch_size: dict[int, list[int]] = {}  # the population key that the study varies
    for t in trials:
        by_batch_size.setdefault(t.params["training.batch_size"], []).append(t.number)
    for numbers in by_batch_size.values():
        names = ", ".join(f"#{n}" for n in numbers)
        line = (
            f"population of {len(numbers)} jobs: {names}"
            if len(numbers) > 1
            else f"{names} runs alone"
        )
        assert line in proc.stdout + proc.stderr
