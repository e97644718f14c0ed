"""Hydra entry point: `python -m gnn_convergence.train` runs one config, `-m` a study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gnn_convergence.config import register_configs, to_run_config
from gnn_convergence.run import Member, train_population

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Validate the config, run it in Hydra's output folder, return the objective dict."""
    return write_job(train_population([to_run_config(cfg)])[0])


def write_job(member: Member) -> dict[str, Any]:
    """Write a trained run into this job's output folder; return the objective dict."""
    hydra_cfg = HydraConfig.get()
    return member.write(hydra_cfg.runtime.output_dir, plotly_dir(hydra_cfg)).to_dict()


def plotly_dir(hydra_cfg: DictConfig) -> Path | None:
    """Where the run figure finds plotly.min.js: a job of a multirun (a study's trial) shares
    the one in the sweep folder (the study folder); a single run keeps its own (None)."""
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return Path(hydra_cfg.sweep.dir).absolute()
    return None


if __name__ == "__main__":
    main()
