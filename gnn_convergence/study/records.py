"""Study records: ``trials.csv``, ``analysis.md`` and ``answer.json``, regenerated from the
Optuna storage.

The storage is the only study state: :func:`write_records` reads every trial and the protocol
replay (:func:`~gnn_convergence.study.replay.protocol_state`) and rewrites the files
atomically, so a running study can call it after every trial. The answer's sections come from
:mod:`~gnn_convergence.study.answer_report`, the trial entries from
:mod:`~gnn_convergence.study.study_log`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from gnn_convergence.files import write_atomic
from gnn_convergence.outcome import CONVERGED, FAILED, PARTIAL, Thresholds
from gnn_convergence.results import METRICS
from gnn_convergence.study.answer_report import (
    answer_record,
    answer_text,
    data_text,
    summary_tables,
)
from gnn_convergence.study.datasets import StudyData, study_data
from gnn_convergence.study.evidence import Evidence, RobustRule
from gnn_convergence.study.formats import markdown_table, markdown_text
from gnn_convergence.study.replay import (
    DEFAULT_RULE,
    DEFAULT_THRESHOLDS,
    ProtocolState,
    protocol_state,
)
from gnn_convergence.study.space import Param
from gnn_convergence.study.study_log import iteration_entry, per_seed, trial_class
from gnn_convergence.study.vocabulary import (
    CHANGE,
    DATA_SEEDS,
    ERROR,
    FINISHED,
    FOLDER,
    PARENT,
    ROLE,
    SEED_MODE,
    SEEDS,
)

TRIALS_CSV = "trials.csv"
ANALYSIS_MD = "analysis.md"
ANSWER_JSON = "answer.json"
SUMMARY_KEYS = (*(f"{m}_{s}" for m in METRICS for s in ("min", "mean")), "training_time_min")
SEED_COLUMNS = (*METRICS, "diverged_at_step")
CONFIG_COLUMNS = ("verdict", "rate_runs", "rate_converged", "rate_mean", "rate_lower90")
HEAD_COLUMNS = (
    "number",
    "state",
    "value",
    "class",
    *CONFIG_COLUMNS,
    "role",
    "parent",
    "change",
    "seed_mode",
)
TAIL_COLUMNS = (
    *SUMMARY_KEYS,
    "seeds",
    "data_seeds",
    "folder",
    "error",
    "datetime_start",
    "duration_s",
)


def trials_frame(
    study: optuna.Study,
    params: Sequence[Param],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    rule: RobustRule = DEFAULT_RULE,
) -> pd.DataFrame:
    """One row per trial (every state), in number order; see :func:`write_records`."""
    trials = study.get_trials(deepcopy=False)
    state = protocol_state(trials, params, thresholds, rule)
    return _frame(trials, params, state, thresholds)


def _frame(
    trials: Sequence[FrozenTrial],
    params: Sequence[Param],
    state: ProtocolState,
    thresholds: Thresholds,
) -> pd.DataFrame:
    evidence = {v.number: state.evidence[v.config] for v in state.visits}
    rows = [_row(t, params, evidence.get(t.number), thresholds) for t in _by_number(trials)]
    n_seeds = max((len(per_seed(t)) for t in trials), default=0)
    columns = [
        *HEAD_COLUMNS,
        *map(column, params),
        *TAIL_COLUMNS,
        *(f"seed_{i}_{m}" for i in range(n_seeds) for m in SEED_COLUMNS),
    ]
    frame = pd.DataFrame(rows, columns=columns)
    ints = ["parent", "rate_runs", "rate_converged"]
    ints += [c for c in columns if c.endswith("diverged_at_step")]
    return frame.astype({c: "Int64" for c in ints})


def column(param: Param) -> str:
    """The parameter's column in the trial table: its label, or its full name where the label
    is one of the table's own columns (``training.seeds`` is not the ``seeds`` column)."""
    return param.name if param.label in (*HEAD_COLUMNS, *TAIL_COLUMNS) else param.label


def _row(
    trial: FrozenTrial, params: Sequence[Param], ev: Evidence | None, thresholds: Thresholds
) -> dict:
    attrs = trial.user_attrs
    row = {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "class": trial_class(trial, thresholds),
        **(_config_columns(ev) if ev is not None else {}),
        **{key: attrs.get(key) for key in (ROLE, PARENT, CHANGE, SEED_MODE)},
        **{column(p): trial.params.get(p.name) for p in params},
        **{key: attrs.get(key) for key in SUMMARY_KEYS},
        **{key: _json(attrs.get(key)) for key in (SEEDS, DATA_SEEDS)},
        **{key: attrs.get(key) for key in (FOLDER, ERROR)},
        "datetime_start": trial.datetime_start,
        "duration_s": trial.duration.total_seconds() if trial.duration else None,
    }
    for i, record in enumerate(per_seed(trial)):
        row.update({f"seed_{i}_{m}": record.get(m) for m in SEED_COLUMNS})
    return row


def _config_columns(ev: Evidence) -> dict[str, Any]:
    """The config's evidence now: its verdict and the runs its posterior rate rests on
    (fresh runs once it has any)."""
    values = (ev.verdict, ev.n, ev.converged, ev.mean, ev.lower)
    return dict(zip(CONFIG_COLUMNS, values, strict=True))


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _summary(trials: Sequence[FrozenTrial], state: ProtocolState, thresholds: Thresholds) -> str:
    lines = ["# Summary", "", _counts(trials, thresholds), "", _rule_text(state.rule), ""]
    for title, table in summary_tables(state).items():
        lines += [f"## {title}", "", markdown_table(table) if len(table) else "none", ""]
    return "\n".join(lines)


def _rule_text(rule: RobustRule) -> str:
    return (
        f"Robust: P(rate > {rule.level:g}) >= {rule.credibility:g} under the Beta posterior "
        f"of a config's fresh runs (validation, probe and race datasets no walk chose), up to "
        f"{rule.max_runs} validation runs; a robust verdict claims {rule.claim}. The rate of "
        "a config without fresh runs rests on all its runs."
    )


def _counts(trials: Sequence[FrozenTrial], thresholds: Thresholds) -> str:
    if not trials:
        return "Trials: 0"
    states = Counter(t.state.name.lower() for t in trials)
    classes = Counter(trial_class(t, thresholds) for t in trials)
    by_state = ", ".join(f"{name} {n}" for name, n in sorted(states.items()))
    by_class = ", ".join(f"{c} {classes[c]}" for c in (CONVERGED, PARTIAL, FAILED))
    return f"Trials: {len(trials)} ({by_state}); classes: {by_class}"


def write_records(
    study: optuna.Study,
    params: Sequence[Param],
    folder: str | Path,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    rule: RobustRule = DEFAULT_RULE,
) -> tuple[ProtocolState, pd.DataFrame, StudyData]:
    """(Re)write ``folder/trials.csv``, ``folder/analysis.md`` and ``folder/answer.json`` from
    the study's storage.

    ``analysis.md`` holds a header naming the study, the ``## Answer`` section, the
    ``# Summary`` section, ``## Data`` and ``# Iterations`` with every finished trial's entry
    in number order; ``answer.json`` holds the answer (the sections and the record come from
    :mod:`~gnn_convergence.study.answer_report`). Each file is replaced atomically, so readers
    never see a partial file. Returns the protocol state, the trial table written and the
    study's datasets, so that figures can be drawn from the same read of the storage.
    """
    trials = study.get_trials(deepcopy=False)
    state = protocol_state(trials, params, thresholds, rule)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame = _frame(trials, params, state, thresholds)
    write_atomic(folder / TRIALS_CSV, frame.to_csv(index=False))
    entries = [
        iteration_entry(t, params, state, thresholds)
        for t in _by_number(trials)
        if t.state in FINISHED
    ]
    header = f"# Convergence study: {markdown_text(study.study_name)}\n"
    summary = _summary(trials, state, thresholds)
    data = study_data(state, trials)
    sections = [header, answer_text(state), summary, data_text(state, data), "# Iterations\n"]
    write_atomic(folder / ANALYSIS_MD, "\n".join([*sections, *entries]))
    write_atomic(folder / ANSWER_JSON, json.dumps(answer_record(state), indent=2) + "\n")
    return state, frame, data


def _by_number(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return sorted(trials, key=lambda t: t.number)
