"""The LSF worker array (lsf/workers.bsub) without LSF: its #BSUB header parsed, and its body run
by a shell with LSF's variables set and a python that records what it is given."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import optuna
import pytest
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

BSUB = ROOT / "lsf" / "workers.bsub"
# What LSF sets in an element: the array's job ID, the element's index, the GPU it got (-gpu)
ELEMENT = {"LSB_JOBID": "4242", "LSB_JOBINDEX": "3", "CUDA_VISIBLE_DEVICES": "2"}


def lsf_env(storage: str, **extra: str) -> dict[str, str]:
    """An element's environment: none of GNN_STUDY_OVERRIDES unless given."""
    return worker_env(storage, "lsf", **{**ELEMENT, "GNN_STUDY_OVERRIDES": "", **extra})


def recording_python(tmp_path: Path) -> tuple[Path, Path]:
    """A `python` that writes its arguments and environment to a JSON file, and that file."""
    record = tmp_path / "python.json"
    code = (
        "import json, os, sys\n"
        f"with open({str(record)!r}, 'w') as f:\n"
        "    json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, f)\n"
    )
    return executable(tmp_path / "python", f"#!{sys.executable}\n{code}"), record


def bsub_options() -> dict[str, str]:
    """The `#BSUB -option value` lines of the script, split as a shell splits them."""
    options = {}
    for line in BSUB.read_text().splitlines():
        if line.startswith("#BSUB "):
            option, value = shlex.split(line.removeprefix("#BSUB "))
            options[option] = value
    return options


def test_the_header_asks_an_array_of_elements_with_a_gpu_each() -> None:
    options = bsub_options()
    assert re.fullmatch(r"gnn-study\[1-(\d+)\]%(\d+)", options["-J"])
    assert options["-gpu"] == "num=1"
    assert "span[hosts=1]" in options["-R"] and options["-n"].isdigit()
    assert re.fullmatch(r"\d+GB", options["-M"]) and re.fullmatch(r"\d+:\d\d", options["-W"])
    assert options["-q"]
    assert options["-o"] != options["-e"]
    for stream in ("-o", "-e"):
        assert "%J" in options[stream] and "%I" in options[stream]
    # bsub takes #BSUB lines from the script's first lines: none may follow a command
    lines = BSUB.read_text().splitlines()
    last = max(n for n, line in enumerate(lines) if line.startswith("#BSUB "))
    assert lines[0] == "#!/bin/sh" and all(line.startswith("#") for line in lines[:last])


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_an_element_runs_one_worker_on_its_gpu(tmp_path, shell) -> None:
    """The exact command line, in bash and in a POSIX sh (the body is POSIX): the study's
    overrides, one trial at a time, then GNN_STUDY_OVERRIDES split at whitespace and unglobbed
    (`training.seeds=[4,5]` is a shell pattern that names the file made here)."""
    python, record = recording_python(tmp_path)
    (tmp_path / "training.seeds=4").touch()
    overrides = "  sweeps=quick\ttraining.seeds=[4,5]   hydra.sweeper.n_trials=80 "
    env = lsf_env(PG_URL, PYTHON=str(python), GNN_STUDY_OVERRIDES=overrides)
    proc = run([shell, str(BSUB)], env, cwd=tmp_path)
    called = json.loads(record.read_text())
    assert called["argv"] == [
        "-m",
        "gnn_convergence.train",
        "-m",
        f"hydra.sweeper.storage='{PG_URL}'",
        "hydra.sweeper.study_name=lsf",
        "hydra.sweeper.n_jobs=1",
        "progress=false",
        "sweeps=quick",
        "training.seeds=[4,5]",
        "hydra.sweeper.n_trials=80",
    ]
    assert called["env"]["CUDA_VISIBLE_DEVICES"] == "2"  # as LSF set it: device=auto takes it
    log = proc.stdout.strip()
    assert log.startswith("gnn-study worker 4242[3] on ") and log.endswith(
        ": study lsf, CUDA_VISIBLE_DEVICES=2"
    )


def test_the_worker_command_composes(tmp_path) -> None:
    """The recorded command, run by the app with `--cfg`: the sweeper gets the storage, the study
    and one job at a time, and the passed-through overrides reach the config."""
    python, record = recording_python(tmp_path)
    overrides = "sweeps=quick training.seeds=[4,5] hydra.sweeper.n_trials=80"
    run(["bash", str(BSUB)], lsf_env(PG_URL, PYTHON=str(python), GNN_STUDY_OVERRIDES=overrides))
    app = app_command(json.loads(record.read_text())["argv"])
    sweeper = run([*app, "--cfg", "hydra", "-p", "hydra.sweeper"]).stdout
    for line in [f"storage: {PG_URL}", "study_name: lsf", "n_jobs: 1", "n_trials: 80"]:
        assert re.search(f"^{re.escape(line)}$", sweeper, re.M), line
    assert re.search(r"^  seeds:\n  - 4\n  - 5$", run([*app, "--cfg", "job"]).stdout, re.M)


def test_passed_through_overrides_come_last_so_they_win(tmp_path) -> None:
    python, record = recording_python(tmp_path)
    env = lsf_env(PG_URL, PYTHON=str(python), GNN_STUDY_OVERRIDES="hydra.sweeper.n_jobs=4")
    run(["bash", str(BSUB)], env)
    app = app_command(json.loads(record.read_text())["argv"])
    sweeper = run([*app, "--cfg", "hydra", "-p", "hydra.sweeper"]).stdout
    assert re.search(r"^n_jobs: 4$", sweeper, re.M)


@pytest.mark.parametrize("name", ["GNN_STUDY_STORAGE", "GNN_STUDY_NAME"])
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_a_missing_variable_stops_the_element_before_python(tmp_path, name, value) -> None:
    python, record = recording_python(tmp_path)
    env = lsf_env(PG_URL, PYTHON=str(python))
    if value is None:
        del env[name]
    else:
        env[name] = value
    proc = attempt(["bash", str(BSUB)], env)
    assert proc.returncode == 1 and f"{name}: set {name} to " in proc.stderr
    assert not record.exists() and proc.stdout == ""


def test_a_url_with_a_password_is_refused_and_nothing_is_written(tmp_path) -> None:
    """The sweeper's own check refuses it, as for the SLURM workers; the element's log line
    does not show the URL."""
    header = BSUB.read_text().split("\n#BSUB", 1)[0]
    assert "export GNN_STUDY_STORAGE=postgresql://user@dbhost" in header
    assert ":password@" not in header and "PGPASSWORD" in header and "~/.pgpass" in header
    env = lsf_env(PASSWORD_URL, GNN_STUDY_OVERRIDES=f"hydra.sweep.dir={tmp_path}/study")
    proc = attempt(["bash", str(BSUB)], env)
    assert proc.returncode == 1 and REFUSED in proc.stderr
    assert "pw-1234" not in proc.stdout + proc.stderr and list(tmp_path.iterdir()) == []


def test_create_the_study_once_then_submit_as_the_header_says(tmp_path) -> None:
    """The header's two commands: the creation line, then its submission line through a fake
    `bsub` that, like LSF, takes the script on its standard input and runs it as an element."""
    url, sweep_dir = f"sqlite:///{tmp_path}/studies.db", f"hydra.sweep.dir={tmp_path}/study"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(
        bin_dir / "bsub",
        '#!/bin/sh\n[ $# -eq 0 ] || { echo "fake bsub: the script goes on stdin" >&2; exit 2; }\n'
        "LSB_JOBID=7 LSB_JOBINDEX=1 exec sh\n",
    )
    command = creation_command(BSUB)
    assert "hydra.sweeper.n_trials=0" in command
    env = lsf_env(url)
    run(["bash", "-c", f"{command} {shlex.quote(sweep_dir)}"], env)
    study = optuna.load_study(study_name="lsf", storage=url)
    assert study.trials == [] and "space" in study.user_attrs
    submit = re.search(
        r'^#\s+GNN_STUDY_OVERRIDES="[^"]+" (bsub < lsf/workers\.bsub)$', BSUB.read_text(), re.M
    )
    assert submit, "no submission line in the header"
    env.update(
        GNN_STUDY_OVERRIDES=f"hydra.sweeper.n_trials=0 {sweep_dir}",
        PATH=f"{bin_dir}:{env['PATH']}",
    )
    out = run(["bash", "-c", submit.group(1)], env).stdout
    assert out.startswith("gnn-study worker 7[1] on ")
    assert "study lsf: 0 finished trials" in out
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["lsf"]
    assert (tmp_path / "study" / "analysis.md").exists()
