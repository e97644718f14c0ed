"""The population launcher: Hydra's basic launcher, except that the jobs of a batch that share
a population key are trained together, each then written into its own job folder.

gnn_convergence.run (torch) is imported only once a batch holds jobs of our app."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from gnn_convergence.config import RunConfig, to_run_config
from gnn_convergence.job import write_job

if TYPE_CHECKING:
    from gnn_convergence.run import Member

log = logging.getLogger(__name__)


@dataclass
class BatchJob:
    """One job of a batch: its number, composed config and RunConfig (None: run it alone)."""

    num: int
    config: DictConfig
    run_cfg: RunConfig | None


class PopulationLauncherImpl(Launcher):
    """Composes each job as the basic launcher does, trains each population once, and runs
    every job through `run_job`: a member's job writes its results, any other job runs the
    task function."""

    def __init__(self, max_members: int | None) -> None:
        if max_members is not None and max_members < 1:
            raise ValueError(f"hydra.launcher.max_members={max_members} must be null or >= 1")
        self.max_members = max_members

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Keep the context, the task function and the master config."""
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        """Run every job; the JobReturns come in the order of `job_overrides`."""
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info("Launching %d jobs locally", len(job_overrides))
        jobs = [self._compose(initial_job_idx + i, o) for i, o in enumerate(job_overrides)]
        returns: dict[int, JobReturn] = {}
        for group in groups(jobs, self.max_members):
            returns.update(self._run_group(group))
        return [returns[job.num] for job in jobs]

    def _compose(self, idx: int, overrides: Sequence[str]) -> BatchJob:
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
        return BatchJob(idx, config, our_run_config(config))

    def _run_group(self, group: list[BatchJob]) -> dict[int, JobReturn]:
        """Train a group of several jobs as one population and write each member in its job;
        a single job, or a group whose training raised, runs job by job."""
        nums = ", ".join(f"#{job.num}" for job in group)
        if len(group) == 1:
            log.info("%s runs alone", nums)
            return {group[0].num: self._run(group[0], self.task_function)}
        log.info("population of %d jobs: %s", len(group), nums)
        from gnn_convergence.run import train_population

        try:
            members = train_population([job.run_cfg for job in group])
        except Exception as err:  # each job's own run reports its error in its JobReturn
            log.warning(
                "population %s failed (%s: %s): its jobs run alone", nums, type(err).__name__, err
            )
            return {job.num: self._run(job, self.task_function) for job in group}
        return {
            job.num: self._run(job, writer(m, f"trained in the population of jobs {nums}"))
            for job, m in zip(group, members, strict=True)
        }

    def _run(self, job: BatchJob, task_function: TaskFunction) -> JobReturn:
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=task_function,
            config=job.config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret


def our_run_config(config: DictConfig) -> RunConfig | None:
    """The job's validated RunConfig; None for another app's config or an invalid one (its
    task function then runs and reports why)."""
    if not all(f.name in config for f in fields(RunConfig)):
        return None
    with hydra_config(config):
        try:
            return to_run_config(config)
        except Exception:  # ConfigError, or a value that does not resolve
            return None


@contextmanager
def hydra_config(config: DictConfig) -> Iterator[None]:
    """HydraConfig set to `config` (for `${hydra:...}` values), restored after, as in run_job."""
    orig = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = orig


def groups(jobs: Sequence[BatchJob], max_members: int | None) -> list[list[BatchJob]]:
    """Jobs grouped by `group_key`, in the order of their first job, split into chunks of at
    most `max_members`."""
    by_key: dict[Hashable, list[BatchJob]] = {}
    for job in jobs:
        by_key.setdefault(group_key(job), []).append(job)
    size = max_members or len(jobs)
    return [group[i : i + size] for group in by_key.values() for i in range(0, len(group), size)]


def group_key(job: BatchJob) -> Hashable:
    """The job's population key; a job without a RunConfig is a group of its own."""
    if job.run_cfg is None:
        return ("alone", job.num)
    from gnn_convergence.run import population_key

    return ("population", population_key(job.run_cfg))


def writer(member: Member, note: str) -> Callable[[DictConfig], dict[str, Any]]:
    """A task function that logs `note` and writes `member` into its job's folder, returning
    what `gnn_convergence.train.main` returns for the same job run alone."""

    def task(_: DictConfig) -> dict[str, Any]:
        log.info("%s; its training curve is in metrics.json", note)
        return write_job(member)

    return task
