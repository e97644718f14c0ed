"""The SLURM launch without SLURM: the submitit launcher config and the sbatch worker array."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys

import optuna
import pytest
from conftest import compose_config
from hydra.core.plugins import Plugins
from worker_scripts import (
    PASSWORD_URL,
    PG_URL,
    REFUSED,
    ROOT,
    app_command,
    attempt,
    creation_command,
    executable,
    run,
    worker_env,
)

SBATCH = ROOT / "slurm" / "workers.sbatch"


@pytest.fixture
def submitit():
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher",
        reason="hydra-submitit-launcher is not installed (pip install -e '.[slurm]')",
    )
    return pytest.importorskip("submitit")


def test_the_slurm_launcher_config_composes(submitit) -> None:
    launcher = compose_config(["hydra/launcher=slurm"], hydra=True).hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.cpus_per_task >= 1 and launcher.mem_gb >= 4
    assert launcher.timeout_min >= 30 and launcher.array_parallelism >= 1
    assert launcher.partition is None


def test_the_cli_prints_the_launcher_config(submitit) -> None:
    # `-m` and `--cfg` do not combine in Hydra 1.3; the launcher config is the same without it
    cmd = [sys.executable, "-m", "gnn_convergence.train", "hydra/launcher=slurm"]
    out = run([*cmd, "--cfg", "hydra", "-p", "hydra.launcher"]).stdout
    assert "submitit_launcher.SlurmLauncher" in out
    assert re.search(r"^gpus_per_node: 1$", out, re.M) and "array_parallelism:" in out


def test_a_batch_is_one_array_with_a_gpu_per_task(submitit, tmp_path, monkeypatch) -> None:
    """The real launcher submits a batch of trials through fake `srun` and `sbatch`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "srun", "#!/bin/sh\n")
    executable(bin_dir / "sbatch", '#!/bin/sh\necho "Submitted batch job 42"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(submitit.core.core.Job, "results", lambda job: [job.job_id])
    cfg = compose_config(["hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}/study"], hydra=True)
    launcher = Plugins.instance().instantiate_launcher(
        hydra_context=None, task_function=print, config=cfg
    )
    batch = [[f"hydra.sweep.subdir=trial_{n}"] for n in (5, 6, 7)]
    launcher.launch(batch, initial_job_idx=5)  # its return is the mocked Job.results
    folder = tmp_path / "study" / ".submitit"
    lines = (folder / "42" / "42_submission.sh").read_text().splitlines()
    for option in ["array=0-2%3", "gpus-per-node=1", "ntasks-per-node=1", "nodes=1", "time=60"]:
        assert f"#SBATCH --{option}" in lines
    assert {"#SBATCH --cpus-per-task=4", "#SBATCH --mem=16GB"} <= set(lines)
    assert not any(line.startswith("#SBATCH --partition") for line in lines)
    assert lines[-1].startswith("srun ") and "-m submitit.core._submit" in lines[-1]
    for task, number in enumerate((5, 6, 7)):
        pickled = folder / f"42_{task}" / f"42_{task}_submitted.pkl"
        job = submitit.helpers.DelayedSubmission.load(pickled)
        assert job.args[:3] == ([f"hydra.sweep.subdir=trial_{number}"], "hydra.sweep.dir", number)


def sbatch_options() -> dict[str, str]:
    """The `#SBATCH --key=value` directives of the worker script."""
    options = {}
    for line in SBATCH.read_text().splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line.removeprefix("#SBATCH ").strip().partition("=")
            options[key] = value
    return options


def test_the_worker_array_asks_one_gpu_per_task() -> None:
    options = sbatch_options()
    assert re.fullmatch(r"\d+-\d+(%\d+)?", options["--array"])
    assert options["--gres"] == "gpu:1" and options["--ntasks"] == "1"
    assert SBATCH.read_text().startswith("#!/bin/bash\n# ")


def test_the_worker_command_composes(tmp_path) -> None:
    """The exact argv the script runs, with `--cfg` in place of `-m` (they do not combine)."""
    echo = "import json, sys\nprint(json.dumps(sys.argv[1:]))\n"
    shim = executable(tmp_path / "python", f"#!{sys.executable}\n{echo}")
    env = worker_env(PG_URL, "slurm", PYTHON=str(shim))
    argv = json.loads(run(["bash", str(SBATCH), "sweeps=quick"], env).stdout)
    assert argv[-1] == "sweeps=quick"
    app = app_command(argv)
    hydra_cfg = run([*app, "--cfg", "hydra", "-p", "hydra.sweeper"]).stdout
    assert f"storage: {PG_URL}\n" in hydra_cfg and "study_name: slurm\n" in hydra_cfg
    assert "simulation:" in run([*app, "--cfg", "job"]).stdout


def test_the_password_goes_in_pgpassword_or_pgpass_not_in_the_url(tmp_path) -> None:
    header = SBATCH.read_text().split("\n#SBATCH", 1)[0]
    assert "export GNN_STUDY_STORAGE=postgresql://user@dbhost" in header
    assert ":password@" not in header and "PGPASSWORD" in header and "~/.pgpass" in header
    env = worker_env(PASSWORD_URL, "slurm")
    proc = attempt(["bash", str(SBATCH), f"hydra.sweep.dir={tmp_path}/study"], env)
    assert proc.returncode != 0 and REFUSED in proc.stderr
    assert "pw-1234" not in proc.stdout + proc.stderr and list(tmp_path.iterdir()) == []


def test_create_the_study_once_then_a_worker_joins(tmp_path) -> None:
    url, sweep_dir = f"sqlite:///{tmp_path}/studies.db", f"hydra.sweep.dir={tmp_path}/study"
    env = worker_env(url, "slurm")
    command = creation_command(SBATCH)
    assert "hydra.sweeper.n_trials=0" in command
    run(["bash", "-c", f"{command} {shlex.quote(sweep_dir)}"], env)
    study = optuna.load_study(study_name="slurm", storage=url)
    assert study.trials == [] and study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert "space" in study.user_attrs
    proc = run(["bash", str(SBATCH), "hydra.sweeper.n_trials=0", sweep_dir], env)
    assert "study slurm: 0 finished trials" in proc.stdout + proc.stderr
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["slurm"]
    assert (tmp_path / "study" / "analysis.md").exists()
