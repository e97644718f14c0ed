"""Simulated datasets cached on disk under a hash of their simulation config and code version."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from gnn_convergence import simulation
from gnn_convergence.config import SimulationConfig
from gnn_convergence.files import atomic
from gnn_convergence.simulation import Dataset, simulate

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_ARRAYS = ("w", "activity", "derivative")
# Simulation options added after the first datasets were cached: each enters the key only where
# it differs from this neutral value, so a config without them keeps the key (and the cached
# file) it had before they existed.
_NEUTRAL = {
    "connectivity_type": "chaotic",
    "connectivity_rank": 1,
    "connectivity_filling_factor": 1.0,
    "noise_model_level": 0.0,
    "measurement_noise_level": 0.0,
    "n_neuron_types": 1,
    "neuron_types": [],
}


def cache_key(cfg: SimulationConfig) -> str:
    """Stable hash of every simulation field (seed included; the options of _NEUTRAL only where
    they are not neutral), the file format and the simulation code's version
    (simulation.SIMULATION_VERSION)."""
    versions = {"format": FORMAT_VERSION, "simulation": simulation.SIMULATION_VERSION}
    fields = dataclasses.asdict(cfg)
    fields = {k: v for k, v in fields.items() if k not in _NEUTRAL or v != _NEUTRAL[k]}
    text = json.dumps({**versions, **fields}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path(cfg: SimulationConfig, cache_dir: str | Path) -> Path:
    """Where the dataset of `cfg` lives in `cache_dir`."""
    return Path(cache_dir) / f"sim_{cache_key(cfg)}.npz"


def load_or_simulate(cfg: SimulationConfig, cache_dir: str | Path) -> Dataset:
    """Load the cached dataset of `cfg`, or simulate and cache it; a damaged file (or one with
    non-finite values, or a directory at its path) is removed where it can be and rebuilt. A
    cache that cannot be written leaves the run uncached, with a warning. A simulation that
    blows up raises SimulationError and caches nothing."""
    path = cache_path(cfg, cache_dir)
    if path.exists():
        try:
            data = _load(path)
            log.info("loaded dataset %s", path)
            return data
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            log.warning("damaged dataset cache %s (%s): simulating again", path, err)
            with contextlib.suppress(OSError):  # a directory at the path stays
                path.unlink(missing_ok=True)
    data = simulate(cfg)
    try:
        _save(data, path)
    except OSError as err:
        log.warning(
            "cannot write the dataset cache %s (%s): going on uncached; make paths.cache_dir "
            "writable or remove what is at that path",
            path,
            err,
        )
        return data
    log.info("simulated dataset %s", path)
    return data


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in _ARRAYS:
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def _save(data: Dataset, path: Path) -> None:
    arrays = {name: getattr(data, name) for name in _ARRAYS}
    with atomic(path, "wb") as f:
        np.savez(f, checksum=np.array(_checksum(arrays)), **arrays)


def _load(path: Path) -> Dataset:
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in _ARRAYS}
        stored = str(f["checksum"])
    if _checksum(arrays) != stored:
        raise ValueError("checksum mismatch")
    if not all(np.isfinite(a).all() for a in arrays.values()):
        raise ValueError("non-finite values")
    return Dataset(**arrays)
