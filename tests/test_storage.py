"""The study storage: no password in any output, one-line errors, workers creating it at once."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import serve_postgres

from gnn_convergence.study.demo import demo_study
from gnn_convergence.study.storage import StorageError, open_storage, safe_url

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "s3cret-Pw-4721"
QUICK = ["sweeps=quick", "simulation=tiny", "training=tiny", "training.data_augmentation_loop=2"]


def sweep(tmp_path: Path, storage: str, *overrides: str, env=None) -> subprocess.CompletedProcess:
    """A quick study run from tmp_path, all its files in tmp_path."""
    cmd = [
        sys.executable,
        "-m",
        "gnn_convergence.train",
        "-m",
        *QUICK,
        "progress=false",
        f"hydra.sweeper.storage='{storage}'",
        f"hydra.sweep.dir={tmp_path}/study",
        f"paths.cache_dir={tmp_path}/cache",
        *overrides,
    ]
    return subprocess.run(
        cmd,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def report(tmp_path: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gnn_convergence.report", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def hydra_error(proc: subprocess.CompletedProcess) -> str:
    """The sweeper's error: one line, then Hydra's own hint (HYDRA_FULL_ERROR), no traceback."""
    assert proc.returncode != 0
    first, *rest = proc.stderr.splitlines()
    assert [line for line in rest if line] == [
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
    ], proc.stderr
    return first


def files_holding(folder: Path, text: str) -> list[Path]:
    """Every file under folder whose bytes contain text (grep -r)."""
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_safe_url_masks_the_password() -> None:
    assert safe_url(f"postgresql://gnn:{PASSWORD}@db:5432/s") == "postgresql://gnn:***@db:5432/s"
    shown = safe_url(f"postgresql://gnn@db/s?sslmode=require&password={PASSWORD}")
    assert shown == "postgresql://gnn@db/s?sslmode=require"
    assert safe_url("sqlite:///outputs/studies.db") == "sqlite:///outputs/studies.db"
    assert safe_url(f"gnn:{PASSWORD}@db") == "(not a database URL)"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://gnn:{PASSWORD}@127.0.0.1:9/s", "postgresql://gnn:***@127.0.0.1:9/s"),
        (f"postgresql://gnn@127.0.0.1:9/s?password={PASSWORD}", "postgresql://gnn@127.0.0.1:9/s"),
    ],
    ids=["in-userinfo", "in-query"],
)
def test_a_url_with_a_password_is_refused_before_anything_is_written(tmp_path, url, shown):
    proc = sweep(tmp_path, url)
    error = hydra_error(proc)
    assert error.startswith(f"hydra.sweeper.storage={shown} carries a password")
    assert error.endswith("put the password in PGPASSWORD or ~/.pgpass (libpq reads both)")
    assert PASSWORD not in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []
    proc = report(tmp_path, url, "quick")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"STORAGE_URL={shown} carries a password" in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def password_server():
    """A PostgreSQL server that checks passwords (scram-sha-256); yields its superuser URL
    without the password, which is ``PASSWORD``."""
    yield from serve_postgres(PASSWORD)


@pytest.fixture
def role_url(password_server):
    """A database owned by a new role whose password is PASSWORD: its URL, without it."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{password_server}/postgres", password=PASSWORD, autocommit=True) as c:
        c.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'")
        c.execute(f"CREATE DATABASE {name} OWNER {name}")
    return password_server.replace("postgres@", f"{name}@") + f"/{name}"


def test_the_server_requires_the_password(role_url) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(role_url, password="wrong").close()
    psycopg.connect(role_url, password=PASSWORD).close()


@pytest.mark.slow
def test_a_study_with_pgpassword_writes_and_prints_no_password(tmp_path, role_url) -> None:
    proc = sweep(tmp_path, role_url, "hydra.sweeper.n_trials=1", env={"PGPASSWORD": PASSWORD})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (tmp_path / "sweep.log").write_text(proc.stdout + proc.stderr)
    assert f"watch it with: optuna-dashboard {role_url}" in proc.stdout + proc.stderr
    study = optuna.load_study(study_name="quick", storage=role_url.replace("@", f":{PASSWORD}@"))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert Path("study/multirun.yaml") in written
    assert Path("study/trial_0/.hydra/hydra.yaml") in written
    assert Path("study/trial_0/.hydra/overrides.yaml") in written
    assert files_holding(tmp_path, PASSWORD) == []


def test_a_wrong_password_is_one_clear_line(tmp_path, role_url) -> None:
    shown = f"cannot open the study storage {role_url}: "
    proc = sweep(tmp_path, role_url, env={"PGPASSWORD": "not-" + PASSWORD})
    error = hydra_error(proc)
    assert error.startswith(shown) and "password authentication failed" in error
    assert error.endswith("check the password in PGPASSWORD or ~/.pgpass (libpq reads both)")
    assert PASSWORD not in proc.stdout + proc.stderr
    assert not (tmp_path / "study").exists()
    proc = report(tmp_path, role_url, "quick", env={"PGPASSWORD": "not-" + PASSWORD})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {shown}") and PASSWORD not in proc.stderr


def damaged_copy(tmp_path: Path, damage: str) -> str:
    """A SQLite study of 30 trials, truncated to half or with 4 kB of garbage in its middle."""
    path = tmp_path / "studies.db"
    demo_study(f"sqlite:///{path}", study_name="quick", n_trials=30)
    size = path.stat().st_size
    if damage == "truncated":
        os.truncate(path, size // 2)
    else:
        with open(path, "r+b") as f:
            f.seek(size // 2)
            f.write(os.urandom(4096))
    return f"sqlite:///{path}"


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_sqlite_file_is_one_clear_line(tmp_path, damage) -> None:
    url = damaged_copy(tmp_path, damage)
    message = f"cannot open the study storage {url}: database disk image is malformed"
    hint = "the file is damaged: restore it from a backup, or set"
    proc = report(tmp_path, url, "quick")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {message}") and hint in proc.stderr
    error = hydra_error(sweep(tmp_path, url, "hydra.sweeper.n_trials=31"))
    assert error.startswith(message) and error.endswith(
        f"{hint} hydra.sweeper.storage to a new file"
    )
    assert not (tmp_path / "study").exists()


def _open_in_rounds(urls: list[str], barrier, results) -> None:
    """A worker: at each round, open that round's new storage together with the others."""
    for url in urls:
        barrier.wait()
        try:
            open_storage(url, 30, 120)
            results.put("ok")
        except StorageError as err:
            results.put(str(err))


def test_workers_opening_a_new_sqlite_file_together_all_open_it(tmp_path) -> None:
    """Optuna creates a new storage's tables and alembic version in each process: the losers of
    that race open it again once it is made. Without the retry, a round or more fails."""
    n_workers, urls = 4, [f"sqlite:///{tmp_path}/{n}/studies.db" for n in range(6)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(n_workers), ctx.Queue()
    workers = [
        ctx.Process(target=_open_in_rounds, args=(urls, barrier, results))
        for _ in range(n_workers)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in range(n_workers * len(urls))]
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == ["ok"] * len(outcomes)
