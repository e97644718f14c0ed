"""Helpers for the tests of the worker array scripts (slurm/workers.sbatch, lsf/workers.bsub),
which run them with bash, the scheduler's variables set and python real or faked."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A URL with '?' and '=', which Hydra's override grammar accepts only quoted; --cfg never opens it
PG_URL = "postgresql://user@db.example.org:5432/studies?sslmode=require"
# A URL that carries a password, which the sweeper refuses before writing anything
PASSWORD_URL = "postgresql://user:pw-1234@127.0.0.1:9/studies"
REFUSED = "hydra.sweeper.storage=postgresql://user:***@127.0.0.1:9/studies carries a password"


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def attempt(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def run(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    proc = attempt(cmd, env, cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def worker_env(storage: str, study_name: str, **extra: str) -> dict[str, str]:
    """This environment with the study's variables, and this interpreter first on PATH as the
    `python` the scripts run by default."""
    env = {**os.environ, "GNN_STUDY_STORAGE": storage, "GNN_STUDY_NAME": study_name, **extra}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def creation_command(script: Path) -> str:
    """The study-creating command of the script's header comment."""
    text = script.read_text()
    match = re.search(r"^#\s+(python -m gnn_convergence\.train -m .*?[^\\])$", text, re.M | re.S)
    assert match, "no creation command in the header"
    return re.sub(r"\\\n#\s*", "", match.group(1))


def app_command(argv: list[str]) -> list[str]:
    """The app command of a worker's python argv (`-m gnn_convergence.train -m ...`) without
    its `-m`, so that `--cfg` can print the config it composes (they do not combine)."""
    assert argv[:3] == ["-m", "gnn_convergence.train", "-m"], argv
    return [sys.executable, *argv[:2], *argv[3:]]
