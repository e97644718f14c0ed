"""The study folder (hydra.sweep.dir) and the study it belongs to: its name, its study.json
marker, the check that a SQLite storage's folder exists, and the claim that refuses another
study's folder."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.engine import make_url

from gnn_convergence.files import write_atomic
from gnn_convergence.study.storage import safe_url
from gnn_convergence.study.vocabulary import FOLDER, STUDY_UUID

MARKER = "study.json"  # which study a study folder belongs to
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")
UUID_WAIT_S = 5.0  # how long a worker waits for the uuid of a study another worker created


class StudyError(RuntimeError):
    """The study cannot go on as configured or as found; the message says what to change."""


def check_study_name(name: Any) -> None:
    """The study name names its folder: a plain name, no path.

    Raises:
        ValueError: For anything but letters, digits, '-', '_' and '.', or for '.' and '..'.
    """
    if not (isinstance(name, str) and PLAIN_NAME.fullmatch(name)) or name in (".", ".."):
        raise ValueError(
            f"hydra.sweeper.study_name={name!r} is invalid: allowed is a plain name of letters, "
            "digits, '-', '_' and '.' (not '.' or '..', no '/')"
        )


def storage_text(url: str | None) -> str:
    """The storage URL as shown in messages and study.json: without its password."""
    return safe_url(url) if url else "the in-memory storage"


def check_storage_folder(url: str | None, sweep_dir: Path) -> None:
    """A SQLite file's folder must exist, or hold the study folder (then both are created):
    a mistyped path is an error, not a new study.

    Raises:
        StudyError: The folder of the SQLite file does not exist.
    """
    if not url or not url.startswith("sqlite:"):
        return
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    folder = Path(os.path.abspath(database)).parent
    if folder.is_dir() or folder in Path(os.path.abspath(sweep_dir)).parents:
        return
    raise StudyError(
        f"hydra.sweeper.storage={storage_text(url)}: the folder {folder} of the SQLite file "
        "does not exist; create it, or correct the path"
    )


def study_uuid(study: optuna.Study) -> str | None:
    """The study's uuid; None for a study from before uuids. A study another worker has just
    created gets its uuid within moments: wait for it while the study is bare."""
    deadline = time.monotonic() + UUID_WAIT_S
    while True:
        attrs = study.user_attrs
        bare = not attrs and not study.get_trials(deepcopy=False)
        if STUDY_UUID in attrs or not bare or time.monotonic() > deadline:
            return attrs.get(STUDY_UUID)
        time.sleep(0.1)


def claim_folder(folder: Path, study: optuna.Study, storage: str) -> None:
    """Check that the study folder is new or this study's, then mark it as this study's.

    A folder's study.json names its study; a folder without one (from before study.json) is
    this study's when every trial folder in it is one of the study's trials.

    Raises:
        StudyError: The folder holds another study's trials (nothing is written then).
    """
    owner = study_uuid(study)
    marker = _read_marker(folder)
    if marker is not None and marker.get("uuid") != owner:
        raise StudyError(
            f"{folder} holds the trials of study {marker.get('study_name')!r} in "
            f"{marker.get('storage')}, not of study {study.study_name!r} in {storage} "
            f"({folder / MARKER}): a study folder belongs to one study. Resume that study "
            "with its storage (hydra.sweeper.storage), or give this one another folder "
            "(hydra.sweep.dir) or name (hydra.sweeper.study_name)"
        )
    if marker is None or owner is None:
        strangers = _foreign_trial_folders(folder, study)
        if strangers:
            raise StudyError(
                f"{folder} holds trial folders ({', '.join(strangers[:5])}) that study "
                f"{study.study_name!r} in {storage} does not hold: a study folder belongs to "
                "one study. Use that study's storage (hydra.sweeper.storage), or give this "
                "one another folder (hydra.sweep.dir) or name (hydra.sweeper.study_name)"
            )
    if marker is None:
        text = {"study_name": study.study_name, "storage": storage, "uuid": owner}
        write_atomic(folder / MARKER, json.dumps(text, indent=2) + "\n")


def _read_marker(folder: Path) -> dict[str, Any] | None:
    path = folder / MARKER
    if not path.exists():
        return None
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise StudyError(
            f"cannot read {path} ({err}): it names the study of this folder; "
            "restore it, or give this study another folder (hydra.sweep.dir)"
        ) from err


def _foreign_trial_folders(folder: Path, study: optuna.Study) -> list[str]:
    """Trial folders in ``folder`` that are not the folders of the study's trials."""
    own = {
        Path(os.path.abspath(t.user_attrs[FOLDER]))
        for t in study.get_trials(deepcopy=False)
        if FOLDER in t.user_attrs
    }
    found = sorted(folder.glob("trial_*")) if folder.is_dir() else []
    return [p.name for p in found if p.is_dir() and Path(os.path.abspath(p)) not in own]
