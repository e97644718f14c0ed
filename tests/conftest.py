"""Shared fixtures: configs composed from conf/ as the app composes them."""

from __future__ import annotations

import pytest
from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from gnn_convergence.config import RunConfig, register_configs, to_run_config

register_configs()


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """Compose conf/train.yaml with overrides, as `python -m gnn_convergence.train` does."""
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path="../conf"):
        return compose(config_name="train", overrides=overrides or [])


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
