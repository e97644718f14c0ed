"""The study's datasets: their statistics, their runs at configs judged inside, which are hard,
and whether a threshold on one statistic separates the hard ones from the others.

A dataset (a data seed) is **hard** when every run on it at a config judged inside failed (the
answer's :func:`~gnn_convergence.study.answer.hard_datasets`). A threshold on a statistic is
claimed only where it separates exactly: every hard dataset on one side, every other dataset
run at an inside config on the other. A dataset's statistics are those of its first per-run
record (they are the same for every run on it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial

from gnn_convergence.study.replay import ProtocolState
from gnn_convergence.study.vocabulary import PER_SEED, finite

STATS = ("spectral_radius", "effective_rank_90", "effective_rank_99")


@dataclass(frozen=True)
class Dataset:
    """One dataset of the study: its statistics and its runs (at configs judged inside)."""

    data_seed: int
    stats: Mapping[str, float | None]
    runs: int
    inside_runs: int
    inside_converged: int
    inside_configs: int
    hard: bool


@dataclass(frozen=True)
class Separation:
    """A threshold on ``stat`` with every hard dataset ``side`` it (below or above) and every
    other dataset run at an inside config beyond it; ``side`` None where none separates."""

    stat: str
    side: str | None
    threshold: float | None
    hard: int
    others: int
    missing: int  # datasets run at inside configs without this statistic


@dataclass(frozen=True)
class StudyData:
    """Every dataset of the study (by data seed) and one separation per statistic."""

    datasets: tuple[Dataset, ...]
    separations: tuple[Separation, ...]

    @property
    def judged(self) -> tuple[Dataset, ...]:
        """Datasets run at configs judged inside: those hard or not."""
        return tuple(d for d in self.datasets if d.inside_runs)


def data_stats(trials: Sequence[FrozenTrial]) -> dict[int, dict[str, float | None]]:
    """Each data seed's statistics, from its first per-run record in trial number order."""
    stats: dict[int, dict[str, float | None]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        records = trial.user_attrs.get(PER_SEED)
        for record in records if isinstance(records, list) else ():
            seed = record.get("data_seed") if isinstance(record, Mapping) else None
            if isinstance(seed, int) and seed not in stats:
                stats[seed] = {s: finite(record.get(s)) for s in STATS}
    return stats


def study_data(state: ProtocolState, trials: Sequence[FrozenTrial]) -> StudyData:
    """The study's datasets with their counts and hard flags, and the separations."""
    stats = data_stats(trials)
    inside = [c for c, ev in state.evidence.items() if ev.inside]
    hard = {h.data_seed for h in state.answer.hard}
    runs: dict[int, list] = {}
    for config, ev in state.evidence.items():
        for run in ev.runs:
            if run.data_seed is not None:
                runs.setdefault(run.data_seed, []).append((config in inside, config, run))
    datasets = tuple(
        _dataset(seed, stats.get(seed, {}), found, seed in hard)
        for seed, found in sorted(runs.items())
    )
    judged = [d for d in datasets if d.inside_runs]
    return StudyData(datasets, tuple(separation(s, judged) for s in STATS))


def _dataset(seed: int, stats: Mapping[str, float | None], found: list, hard: bool) -> Dataset:
    inside = [(config, run) for at_inside, config, run in found if at_inside]
    return Dataset(
        data_seed=seed,
        stats={s: stats.get(s) for s in STATS},
        runs=len(found),
        inside_runs=len(inside),
        inside_converged=sum(run.converged for _, run in inside),
        inside_configs=len({config for config, _ in inside}),
        hard=hard,
    )


def separation(stat: str, judged: Sequence[Dataset]) -> Separation:
    """Whether a threshold on ``stat`` puts every hard dataset on one side, every other on the
    other; the threshold is midway between the two groups' nearest values."""
    hard = [d.stats[stat] for d in judged if d.hard]
    others = [d.stats[stat] for d in judged if not d.hard]
    missing = sum(v is None for v in (*hard, *others))
    side, threshold = None, None
    if not missing and hard and others:
        if max(hard) < min(others):
            side, threshold = "below", (max(hard) + min(others)) / 2
        elif min(hard) > max(others):
            side, threshold = "above", (min(hard) + max(others)) / 2
    return Separation(stat, side, threshold, len(hard), len(others), missing)
