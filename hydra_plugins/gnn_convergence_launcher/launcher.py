"""The population launcher's config schema and its thin Hydra class (logic in `_impl.py`).

No `from __future__ import annotations` here: Hydra imports this module while scanning plugins,
and OmegaConf reads the dataclass annotations as types.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class PopulationLauncherConf:
    """hydra.launcher: the jobs of a batch that can share one training are trained together."""

    _target_: str = "hydra_plugins.gnn_convergence_launcher.launcher.PopulationLauncher"
    # the most jobs trained as one population (null: a whole group); larger groups are split
    max_members: Optional[int] = None  # noqa: UP045


ConfigStore.instance().store(
    group="hydra/launcher",
    name="population",
    node=PopulationLauncherConf,
    provider="gnn_convergence",
)


class PopulationLauncher(Launcher):
    """Runs a batch of jobs in this process, training jobs of one population key together."""

    def __init__(self, max_members: int | None = None) -> None:
        from hydra_plugins.gnn_convergence_launcher._impl import PopulationLauncherImpl

        self.impl = PopulationLauncherImpl(max_members)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Keep the context, the task function and the master config."""
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        """Run every job; the JobReturns come in the order of `job_overrides`."""
        return self.impl.launch(job_overrides, initial_job_idx)
