"""The protocol sweeper's config schema and its thin Hydra classes (logic in `_impl.py`).

No `from __future__ import annotations` here: Hydra imports this module while scanning plugins,
and OmegaConf reads the dataclass annotations as types.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional  # noqa: UP035

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import MISSING, DictConfig


@dataclass
class ProtocolSamplerConf:
    """The one-coordinate protocol sampler; its grids come from `params` at sweep time."""

    _target_: str = "gnn_convergence.study.sampler.ProtocolSampler"
    _partial_: bool = True
    seed: int = 0
    retry: str = "undecided"  # undecided | all: which non-converged first trials are retried
    jump: str = "far"  # far | farthest: where a new walk starts
    patience: Optional[int] = None  # noqa: UP045  moves without improvement before a jump


@dataclass
class ThresholdsConf:
    """connectivity_R2 above `converged` is converged, below `failed` is failed."""

    converged: float = 0.9
    failed: float = 0.1


@dataclass
class RobustConf:
    """Robust when P(rate > level) >= credibility under the Beta posterior of its runs."""

    level: float = 0.6
    credibility: float = 0.9
    max_runs: int = 12  # fresh runs after which a config is no longer validated
    probe_min_runs: int = 6  # fresh runs before a probe point is judged inside or outside
    probe_runs: int = 12  # fresh runs after which an undecided probe point is a transition
    race_candidates: int = 4  # configs racing for the recommendation at once
    race_rounds: int = 4  # race trials per candidate on the common datasets
    race_tie_runs: int = 6  # common race datasets, none discordant, that end a tied race; 0: off


@dataclass
class ProtocolSweeperConf:
    """hydra.sweeper: the study, its budget, its search space and how trials are seeded."""

    _target_: str = "hydra_plugins.gnn_convergence_sweeper.sweeper.ProtocolSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "protocol"}])  # noqa: UP006
    sampler: Any = MISSING
    study_name: str = "convergence"
    storage: str = "sqlite:///outputs/studies.db"
    n_trials: int = 40
    n_jobs: int = 1
    params: Dict[str, str] = field(default_factory=dict)  # noqa: UP006
    thresholds: ThresholdsConf = field(default_factory=ThresholdsConf)
    robust: RobustConf = field(default_factory=RobustConf)
    seed_mode: str = "paired"
    n_seeds: int = 3
    n_data: int = 1
    heartbeat_interval: int = 30  # seconds between a running trial's heartbeats
    grace_period: int = 120  # a trial without a heartbeat for this long was killed: failed
    # resume with a search space other than the stored one (its earlier trials then drop out
    # of the protocol's evidence); false: such a resume stops before any training
    allow_space_change: bool = False


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="gnn_convergence",
    node=ProtocolSweeperConf,
    provider="gnn_convergence",
)
ConfigStore.instance().store(
    group="hydra/sweeper/sampler",
    name="protocol",
    node=ProtocolSamplerConf,
    provider="gnn_convergence",
)


class ProtocolSweeper(Sweeper):
    """Runs a study of the convergence protocol through Optuna ask/tell and Hydra's launcher."""

    def __init__(self, **kwargs: Any) -> None:
        from hydra_plugins.gnn_convergence_sweeper._impl import ProtocolSweeperImpl

        self.impl = ProtocolSweeperImpl(**kwargs)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Keep the context and instantiate the configured launcher."""
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:  # noqa: UP006
        """Run the study until it holds n_trials finished trials."""
        return self.impl.sweep(arguments)
