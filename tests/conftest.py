"""Shared fixtures: configs composed from conf/ as the app composes them."""

from __future__ import annotations

import functools
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from gnn_convergence.config import RunConfig, register_configs, to_run_config

register_configs()


def compose_config(overrides: list[str] | None = None, hydra: bool = False) -> DictConfig:
    """Compose conf/train.yaml with overrides, as `python -m gnn_convergence.train` does; with
    its hydra node when ``hydra``."""
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path="../conf"):
        return compose(config_name="train", overrides=overrides or [], return_hydra_config=hydra)


@pytest.fixture
def make_config():
    """compose_config as a fixture."""
    return compose_config


@pytest.fixture
def cache_dir(tmp_path):
    """A fresh dataset cache."""
    return tmp_path / "cache"


@pytest.fixture
def tiny_config(cache_dir) -> RunConfig:
    """The tiny pair, CPU, no progress bar, caching in tmp."""
    cfg = compose_config(
        [
            "simulation=tiny",
            "training=tiny",
            "device=cpu",
            "progress=false",
            f"paths.cache_dir={cache_dir}",
        ]
    )
    return to_run_config(cfg)


def _postgres_binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def serve_postgres(password: str | None = None):
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's postgresql package), or a skip:
    yields its URL as the superuser postgres, whose password is ``password`` (scram-sha-256)
    when given, else any connection is trusted."""
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries not installed (Debian package postgresql)")
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    root = Path(tempfile.mkdtemp(prefix="gnn-convergence-postgres-"))  # pytest's tmp is 0700
    auth = ["-A", "trust"]
    if password is not None:
        (root / "pwfile").write_text(password)
        auth = ["-A", "scram-sha-256", f"--pwfile={root / 'pwfile'}"]
    as_owner = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        for path in root.rglob("*"):
            shutil.chown(path, "postgres")
        shutil.chown(root, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    run = functools.partial(subprocess.run, check=True, capture_output=True, timeout=120)
    run([*as_owner, initdb, "-D", str(data), *auth, "-U", "postgres"])
    options = f"-p {port} -h 127.0.0.1 -k {root}"
    run(
        [*as_owner, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        run([*as_owner, pg_ctl, "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server that trusts every connection (see serve_postgres)."""
    yield from serve_postgres()


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the test server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"
