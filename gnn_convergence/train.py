"""Hydra entry point: `python -m gnn_convergence.train` runs one config, `-m` a study."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from gnn_convergence.config import register_configs, to_run_config
from gnn_convergence.job import write_job
from gnn_convergence.run import train_population

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Validate the config, run it in Hydra's output folder, return the objective dict."""
    return write_job(train_population([to_run_config(cfg)])[0])


if __name__ == "__main__":
    main()
