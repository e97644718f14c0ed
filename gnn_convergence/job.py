"""A trained run written into its Hydra job's output folder: what the entry point
(gnn_convergence.train) and the population launcher both do with a trained member."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

if TYPE_CHECKING:
    from gnn_convergence.run import Member


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
