"""Hydra entry point: `python -m gnn_convergence.train` runs one config, `-m` a study."""

from __future__ import annotations

from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gnn_convergence.config import register_configs, to_run_config
from gnn_convergence.run import run

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Validate the config, run it in Hydra's output folder, return the objective dict."""
    run_cfg = to_run_config(cfg)
    return run(run_cfg, HydraConfig.get().runtime.output_dir).to_dict()


if __name__ == "__main__":
    main()
