"""The study storage: open it with one-line errors, and show its URL without a password.

A password in the storage URL would be printed and written to Hydra's config files
(multirun.yaml, every trial's .hydra/), so a URL that carries one is refused before anything is
written: libpq, which psycopg uses, reads the password from PGPASSWORD or ~/.pgpass instead.
"""

from __future__ import annotations

import random
import sqlite3
import time
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import optuna
import sqlalchemy
from hydra.errors import CompactHydraException
from sqlalchemy.engine import make_url

SWEEPER_KEY = "hydra.sweeper.storage"
RACE_WAIT_S = 2.0  # at least, before opening again a storage that another process was creating
RACE_TRIES = 3  # waits before the last try
RACE_HINT = (
    "another worker is creating the same storage: start one first (see slurm/workers.sbatch "
    "or lsf/workers.bsub) or retry"
)
PASSWORD_HINT = "put the password in PGPASSWORD or ~/.pgpass (libpq reads both)"
WRONG_PASSWORD_HINT = "check the password in PGPASSWORD or ~/.pgpass (libpq reads both)"


class StorageError(CompactHydraException, ValueError):
    """The study storage cannot be opened or read. Hydra prints the message alone, without a
    traceback; a ValueError for the command lines (report, atlas)."""


def safe_url(url: str) -> str:
    """The URL to show: its password masked, a ``password`` query parameter dropped."""
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return "(not a database URL)"
    parsed = parsed.difference_update_query(["password"])
    return parsed.render_as_string(hide_password=True)


def check_url(url: str, key: str = SWEEPER_KEY) -> None:
    """Refuse a URL that is no database URL or carries a password (see the module doc).

    Raises:
        StorageError: The message names ``key`` and what to do; it never shows a password.
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(
            f"{key} is not a database URL: give e.g. sqlite:///outputs/studies.db "
            "or postgresql://user@host:5432/db"
        ) from None
    if parsed.password or parsed.query.get("password"):
        raise StorageError(
            f"{key}={safe_url(url)} carries a password, which would be written to logs and "
            f"config files: remove it from the URL and {PASSWORD_HINT}"
        )


def open_storage(
    url: str | None, heartbeat_interval: int, grace_period: int, key: str = SWEEPER_KEY
) -> optuna.storages.BaseStorage | None:
    """An RDB storage with heartbeats, or in-memory: a trial whose heartbeat stopped for
    grace_period seconds (a killed job) is failed by the next ask of any worker. A new SQLite
    file (and its folder) is created.

    Raises:
        StorageError: The storage cannot be reached or opened (before any training).
    """
    if not url:
        return None
    check_url(url, key)
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return _open(url, key, heartbeat_interval=heartbeat_interval, grace_period=grace_period)


def read_storage(url: str, key: str) -> optuna.storages.RDBStorage:
    """An existing storage, to read: a missing SQLite file is an error, not created.

    Raises:
        StorageError: The storage is missing, damaged or cannot be reached.
    """
    check_url(url, key)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise StorageError(f"no SQLite file at {safe_url(url)}: give {key} of an existing study")
    return _open(url, key)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


@contextmanager
def reading(url: str, key: str) -> Iterator[None]:
    """Turn an error of the storage while reading it into a one-line StorageError."""
    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
        raise storage_error(url, key, err, "read") from err


def storage_error(url: str, key: str, err: Exception, doing: str = "open") -> StorageError:
    """A one-line StorageError for ``err`` raised by the storage: what failed, what to do."""
    cause = getattr(err, "orig", None) or err  # the driver's own message, not SQLAlchemy's
    lines = str(cause).strip().splitlines()
    first = lines[0] if lines else type(err).__name__
    if _is_creation_race(err):
        hint = RACE_HINT
    elif "password" in first or "authentication" in first:
        hint = WRONG_PASSWORD_HINT
    elif "malformed" in first or "not a database" in first:
        hint = f"the file is damaged: restore it from a backup, or set {key} to a new file"
    else:
        hint = f"check {key}: the database server runs and the URL names it"
    return StorageError(f"cannot {doing} the study storage {safe_url(url)}: {first}; {hint}")


def _open(url: str, key: str, **kwargs: int) -> optuna.storages.RDBStorage:
    """Open the storage; while another process is creating it, wait a random while (so that
    racing processes part) and open it again, up to ``RACE_TRIES`` times."""
    retries = 0
    while True:
        try:
            return _rdb_storage(url, **kwargs)
        except Exception as err:  # driver missing, server down, bad credentials, damaged file
            if retries == RACE_TRIES or not _is_creation_race(err):
                raise storage_error(url, key, err) from err
        retries += 1
        time.sleep(RACE_WAIT_S * (1.0 + random.random()))


def _rdb_storage(url: str, **kwargs: int) -> optuna.storages.RDBStorage:
    _quick_check(url)
    with warnings.catch_warnings():  # heartbeats are experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, **kwargs)


def _quick_check(url: str) -> None:
    """SQLite's quick_check of an existing file: a damaged file fails on opening, not later."""
    path = sqlite_path(url)
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return
    with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as conn:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise sqlite3.DatabaseError("database disk image is malformed (SQLite quick_check)")


def _is_creation_race(err: Exception) -> bool:
    """Two processes created the schema of a new storage at once (Optuna's tables, alembic)."""
    text = str(err)
    return isinstance(err, sqlalchemy.exc.IntegrityError) or any(
        marker in text for marker in ("already exists", "database is locked")
    )
