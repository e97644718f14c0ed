"""The study loop: ask the protocol sampler, launch the jobs through Hydra, tell the results."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import traceback
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from gnn_convergence.artifacts import json_safe
from gnn_convergence.config import check_grid, to_run_config
from gnn_convergence.files import write_atomic
from gnn_convergence.outcome import Thresholds
from gnn_convergence.study.answer_report import recommended_command
from gnn_convergence.study.evidence import RobustRule
from gnn_convergence.study.pages import record_folder, write_study
from gnn_convergence.study.replay import protocol_state
from gnn_convergence.study.seeding import check_seeding
from gnn_convergence.study.space import (
    Param,
    check_space,
    fingerprint,
    parse_space,
    record_space,
)
from gnn_convergence.study.storage import check_url, open_storage, safe_url
from gnn_convergence.study.vocabulary import (
    DATA_SEEDS,
    ERROR,
    FINISHED,
    FOLDER,
    OVERRIDES,
    PER_SEED,
    REPORTED,
    RULE,
    SEED_MODE,
    SEEDS,
    SPACE_FINGERPRINT,
    SPACE_TEXTS,
    STUDY_UUID,
    THRESHOLDS,
    WORKER,
)
from hydra_plugins.gnn_convergence_sweeper._study_folder import (
    StudyError,
    check_storage_folder,
    check_study_name,
    claim_folder,
    storage_text,
)

log = logging.getLogger(__name__)


class ProtocolSweeperImpl(Sweeper):
    """Ask/tell loop over Optuna with our sampler; jobs go through the configured launcher."""

    def __init__(
        self,
        sampler: Any,
        study_name: str,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        params: Mapping[str, str],
        thresholds: Mapping[str, float],
        robust: Mapping[str, Any],
        seed_mode: str,
        n_seeds: int,
        n_data: int,
        heartbeat_interval: int,
        grace_period: int,
        allow_space_change: bool = False,
        defaults: Any = None,
    ) -> None:
        if n_trials < 0 or n_jobs < 1:
            raise ValueError(
                f"hydra.sweeper: n_trials={n_trials} must be >= 0, n_jobs={n_jobs} >= 1"
            )
        check_study_name(study_name)
        check_seeding(seed_mode, n_seeds, n_data)
        self.make_sampler = sampler  # a partial: the grids are known only at sweep time
        self.study_name = study_name
        self.storage_url = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.params = dict(params or {})
        self.thresholds = Thresholds(**thresholds)
        self.rule = RobustRule(**robust)
        self.seed_mode, self.n_seeds, self.n_data = seed_mode, n_seeds, n_data
        self.heartbeat = (heartbeat_interval, grace_period)
        self.allow_space_change = allow_space_change

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Keep the context and instantiate the configured launcher."""
        if self.storage_url:  # before Hydra or the sweeper writes the URL anywhere
            check_url(self.storage_url)
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(config.hydra.sweep.dir)

    def sweep(self, arguments: list[str]) -> None:
        """Run trials until the study holds n_trials finished ones; rerun to resume."""
        swept, fixed = split_arguments(arguments)
        texts = {**self.params, **swept}
        space = parse_space(texts)
        base = self.hydra_context.config_loader.load_sweep_config(self.config, list(fixed))
        check_values(space, base, self.seed_mode)
        sampler = self.make_sampler(
            params=space,
            start={p.name: OmegaConf.select(base, p.name) for p in space},
            thresholds=self.thresholds,
            seed_mode=self.seed_mode,
            n_seeds=self.n_seeds,
            n_data=self.n_data,
            robust=self.rule,
        )
        study = self._study(sampler, texts, space)
        write_config(self.config, self.sweep_dir)
        while True:  # records first: they also show what a resumed study starts from
            fail_lost_trials(study)
            self._write_pages(study, space)
            if (done := _n_finished(study)) >= self.n_trials:
                break
            trials = [ask(study, space) for _ in range(min(self.n_jobs, self.n_trials - done))]
            self._run_batch(study, trials, space, fixed)
        log.info(
            "study %s: %d finished trials; records in %s; the recommended config:",
            self.study_name,
            _n_finished(study),
            self.sweep_dir,
        )
        trials = study.get_trials(deepcopy=False)
        print(recommended_command(protocol_state(trials, space, self.thresholds, self.rule)))

    def _study(
        self,
        sampler: optuna.samplers.BaseSampler,
        texts: Mapping[str, str],
        space: Sequence[Param],
    ) -> optuna.Study:
        check_storage_folder(self.storage_url, self.sweep_dir)
        storage = open_storage(self.storage_url, *self.heartbeat)
        study = open_study(self.study_name, storage, sampler)
        claim_folder(self.sweep_dir, study, storage_text(self.storage_url))
        record_folder(study, self.sweep_dir)
        check_space_change(study, texts, space, self.allow_space_change)
        record_space(study, texts, space)
        study.set_user_attr(THRESHOLDS, dataclasses.asdict(self.thresholds))
        study.set_user_attr(RULE, dataclasses.asdict(self.rule))
        study.set_user_attr(SEED_MODE, self.seed_mode)
        if self.storage_url:
            log.info(
                "study %s in %s; watch it with: optuna-dashboard %s",
                self.study_name,
                safe_url(self.storage_url),
                safe_url(self.storage_url),
            )
        return study

    def _write_pages(self, study: optuna.Study, space: Sequence[Param]) -> None:
        """The study's records and pages; a failure is logged: the trials are in storage."""
        try:
            write_study(study, space, self.sweep_dir, self.thresholds, self.rule)
        except Exception:
            log.exception(
                "study %s: cannot write its pages in %s; its trials are safe in storage, "
                "`python -m gnn_convergence.report` writes the pages again",
                self.study_name,
                self.sweep_dir,
            )

    def _run_batch(
        self,
        study: optuna.Study,
        trials: list[optuna.Trial],
        space: Sequence[Param],
        fixed: Sequence[str],
    ) -> None:
        try:
            batch = [self._prepare(trial, space, fixed) for trial in trials]
            self.validate_batch_is_legal(batch)
            with heartbeats(study, trials):
                returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            told = [
                tell(study, t, r, self.sweep_dir / f"trial_{t.number}")
                for t, r in zip(trials, returns)
            ]
        except BaseException as err:  # Ctrl-C, the launcher or the storage failed
            fail_untold(study, trials, err)
            raise
        lost = [trial for trial, reported in zip(trials, told) if not reported]
        if lost:
            raise StudyError(
                f"trials {[t.number for t in lost]} could not write their folders in "
                f"{self.sweep_dir} ({lost[0].user_attrs[ERROR]}); "
                "they are not runs and run again: fix the folder (disk space, quota, "
                "permissions) and rerun the command to resume"
            )

    def _prepare(
        self, trial: optuna.Trial, space: Sequence[Param], fixed: Sequence[str]
    ) -> list[str]:
        seeds, data_seeds = trial.user_attrs[SEEDS], trial.user_attrs[DATA_SEEDS]
        folder = self.sweep_dir / f"trial_{trial.number}"
        for key, value in (
            (SEED_MODE, self.seed_mode),
            (FOLDER, str(folder)),
            (REPORTED, False),
            (WORKER, this_worker()),
        ):
            trial.set_user_attr(key, value)
        overrides = [f"{p.name}={trial.params[p.name]!r}" for p in space]
        overrides += [
            f"training.seeds=[{','.join(map(str, seeds))}]",
            "training.data_seeds="
            + ("null" if data_seeds is None else f"[{','.join(map(str, data_seeds))}]"),
            f"hydra.sweep.subdir={folder.name}",
        ]
        trial.set_user_attr(OVERRIDES, overrides + list(fixed))
        return overrides + list(fixed)


def split_arguments(arguments: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Command-line sweeps (`key=choice(...)`, intervals, ranges) join the search space;
    plain overrides apply to every trial."""
    swept, fixed = {}, []
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        if override.is_sweep_override():
            swept[override.get_key_element()] = override.input_line.split("=", 1)[1]
        else:
            fixed.append(override.input_line)
    return swept, fixed


def check_values(space: Sequence[Param], base: DictConfig, seed_mode: str) -> None:
    """Fail before any training if a key cannot change a trial under `seed_mode`, or a grid
    value, or the base config, is invalid."""
    container = OmegaConf.to_container(base, resolve=False)
    container.pop("hydra", None)
    check_space(space, container, seed_mode)
    to_run_config(base)
    for param in space:
        check_grid(base, param.name, param.values)


def open_study(
    name: str, storage: optuna.storages.BaseStorage | None, sampler: optuna.samplers.BaseSampler
) -> optuna.Study:
    """Load the study, or create it with a new uuid (its identity, see claim_folder)."""
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, direction="maximize"
        )
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    study.set_user_attr(STUDY_UUID, uuid.uuid4().hex)
    return study


def check_space_change(
    study: optuna.Study, texts: Mapping[str, str], space: Sequence[Param], allowed: bool
) -> None:
    """A resumed study keeps its search space unless hydra.sweeper.allow_space_change is true.

    Raises:
        StudyError: The space differs from the stored one and the change is not allowed.
    """
    stored = study.user_attrs.get(SPACE_FINGERPRINT)
    if stored is None or stored == fingerprint(space):
        return
    change = (
        f"hydra.sweeper.params: study {study.study_name!r} was run with the search space "
        f"{study.user_attrs.get(SPACE_TEXTS)}, this sweep asks for {dict(texts)}"
    )
    if not allowed:
        raise StudyError(
            f"{change}; trials of the old space would drop out of the protocol's evidence. "
            "Restore the space, name another study (hydra.sweeper.study_name), or pass "
            "hydra.sweeper.allow_space_change=true to go on with the new space"
        )
    log.warning("%s; going on with the new space (hydra.sweeper.allow_space_change)", change)


def write_config(config: DictConfig, folder: Path) -> Path:
    """The sweep's config as multirun.yaml; a resumed sweep with another config keeps the
    first and writes multirun_<n>.yaml beside it, one per different config."""
    text = OmegaConf.to_yaml(config)
    path, n = folder / "multirun.yaml", 0
    while path.exists():
        if path.read_text() == text:
            return path
        n += 1
        path = folder / f"multirun_{n}.yaml"
    write_atomic(path, text)
    return path


def ask(study: optuna.Study, space: Sequence[Param]) -> optuna.Trial:
    """A new trial with the sampler's params; heartbeats are ours to record (see heartbeats)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
        return study.ask({p.name: p.distribution for p in space})


def this_worker() -> str:
    """This sweeper process, as recorded on the trials it launches: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_lost_trials(study: optuna.Study) -> None:
    """Fail the running trials of gone workers: dead processes on this host at once, any
    other once its heartbeat stopped for the grace period."""
    fail_dead_workers(study)
    fail_stale_trials(study)


def fail_dead_workers(study: optuna.Study) -> None:
    """Fail (unreported unless its evidence is stored) every running trial launched by a
    process of this host that is gone (a kill -9): the protocol decides it again."""
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER, ""))
        name, _, pid = worker.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            try:
                study._storage.set_trial_user_attr(
                    trial._trial_id, ERROR, f"worker {worker} is gone"
                )
                study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker failed it first


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def fail_untold(study: optuna.Study, trials: Sequence[optuna.Trial], err: BaseException) -> None:
    """Fail the trials of an interrupted batch that were not told yet; a trial whose evidence
    is stored keeps it, any other stays unreported: the protocol decides it again."""
    for trial in trials:
        try:
            if study._storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
                continue
            if trial.user_attrs.get(REPORTED) is not True:
                trial.set_user_attr(ERROR, f"interrupted: {type(err).__name__} {err}".strip())
            study.tell(trial, state=TrialState.FAIL)
        except Exception:  # the storage itself failed: the next sweep fails the trial
            log.exception("trial %d: cannot record the interruption", trial.number)


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail trials whose heartbeat stopped (a killed job), so the protocol can retry them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


@contextmanager
def heartbeats(study: optuna.Study, trials: Sequence[optuna.Trial]) -> Iterator[None]:
    """Record each running trial's heartbeat while its job runs."""
    with ExitStack() as stack:
        for trial in trials:
            stack.enter_context(get_heartbeat_thread(trial._trial_id, study._storage))
        yield


def tell(study: optuna.Study, trial: optuna.Trial, ret: JobReturn, folder: Path) -> bool:
    """Store the job's evidence on the trial, then mark it reported and tell Optuna; a job
    that raised is a FAIL trial. Returns False for a job that failed on its files (an
    OSError: disk, quota, permissions): its FAIL trial stays unreported, no run."""
    try:
        result = ret.return_value
    except Exception as err:  # the job's own exception, re-raised by Hydra
        return _tell_error(study, trial, err, folder)
    for key, value in trial_attrs(result).items():
        trial.set_user_attr(key, value)
    objective = result["objective"]
    if objective is None or not math.isfinite(objective):
        diverged = [s["seed"] for s in result["seeds"] if s["diverged_at_step"] is not None]
        trial.set_user_attr(ERROR, f"no finite objective: seeds {diverged} diverged")
        _report(study, trial, state=TrialState.FAIL)
    else:
        _report(study, trial, objective)
    return True


def _tell_error(study: optuna.Study, trial: optuna.Trial, err: Exception, folder: Path) -> bool:
    message = f"{type(err).__name__}: {err}".splitlines()[0]
    log.error("trial %d failed: %s", trial.number, message)
    write_error(folder, err)
    trial.set_user_attr(ERROR, message)
    if isinstance(err, OSError):
        study.tell(trial, state=TrialState.FAIL)
        return False
    _report(study, trial, state=TrialState.FAIL)
    return True


def _report(
    study: optuna.Study,
    trial: optuna.Trial,
    value: float | None = None,
    state: TrialState | None = None,
) -> None:
    """Mark the trial reported, then tell Optuna. Killed in between, the trial is failed by
    the next sweep with its evidence, which the protocol reads."""
    trial.set_user_attr(REPORTED, True)
    study.tell(trial, value, state=state)


def write_error(folder: Path, err: BaseException) -> None:
    """The job's traceback as the trial's error.txt; a failed write is logged, not raised."""
    try:
        write_atomic(folder / "error.txt", "".join(traceback.format_exception(err)))
    except OSError as write_err:
        log.error("%s: cannot write error.txt (%s); the error is on the trial", folder, write_err)


def trial_attrs(result: Mapping[str, Any]) -> dict[str, Any]:
    """The run's dict as user attributes: class, flat summary, per-seed records (NaN -> None)."""
    keys = [k for k in result if k.endswith(("_min", "_mean"))] + ["class", "training_time_min"]
    return json_safe({**{key: result[key] for key in keys}, PER_SEED: result["seeds"]})


def _n_finished(study: optuna.Study) -> int:
    """Finished trials that count toward n_trials: a killed job's trial does not."""
    trials = study.get_trials(deepcopy=False, states=FINISHED)
    return sum(t.user_attrs.get(REPORTED) is not False for t in trials)
