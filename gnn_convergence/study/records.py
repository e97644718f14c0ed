"""Study records: ``trials.csv`` and ``analysis.md``, regenerated from the Optuna storage.

The storage is the only study state: :func:`write_records` reads every trial and the protocol
replay (:func:`~gnn_convergence.study.protocol.protocol_state`) and rewrites both files
atomically, so a running study can call it after every trial.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from gnn_convergence.outcome import CONVERGED, FAILED, PARTIAL, Thresholds, classify
from gnn_convergence.study.protocol import (
    DECISION_ATTR,
    DEFAULT_THRESHOLDS,
    REPORTED_ATTR,
    ROBUST,
    START,
    UNSTABLE,
    UNVALIDATED,
    Boundary,
    Config,
    ProtocolState,
    Run,
    protocol_state,
)
from gnn_convergence.study.space import Param, value_text

TRIALS_CSV = "trials.csv"
ANALYSIS_MD = "analysis.md"
SUMMARY_KEYS = (
    *(f"{m}_{s}" for m in ("connectivity_R2", "test_R2", "test_pearson", "final_loss")
      for s in ("min", "mean")),
    "training_time_min",
)  # fmt: skip
SEED_COLUMNS = ("connectivity_R2", "test_R2", "test_pearson", "final_loss", "diverged_at_step")
METRICS_LINE = ("test_R2", "test_pearson", "connectivity_R2", "final_loss")
SEEDS_LINE = ("connectivity_R2", "test_R2", "test_pearson", "final_loss")
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
ROLE_NOTES = {
    "start": "start config",
    "jump": "jump: new walk",
    "move": "move from trial {parent}",
    "retry": "retry of trial {parent}",
    "validate": "{change}",
    "probe": "probe from trial {parent}",
    "enqueued": "enqueued by hand",
}


def trial_class(trial: FrozenTrial, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> str | None:
    """The trial's class: its ``class`` attribute, else from its value; None while unfinished."""
    if trial.state not in FINISHED:
        return None
    if trial.state != TrialState.COMPLETE:
        return FAILED
    return trial.user_attrs.get("class") or classify(trial.value, thresholds)


def trials_frame(
    study: optuna.Study,
    params: Sequence[Param],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    n_validate: int = 3,
) -> pd.DataFrame:
    """One row per trial (every state), in number order; see :func:`write_records`."""
    trials = study.get_trials(deepcopy=False)
    state = protocol_state(trials, params, thresholds, n_validate)
    return _frame(trials, params, state, thresholds)


def _frame(
    trials: Sequence[FrozenTrial],
    params: Sequence[Param],
    state: ProtocolState,
    thresholds: Thresholds,
) -> pd.DataFrame:
    status = {run.number: state.status[run.config] for run in state.runs}
    rows = [_row(t, params, status.get(t.number), thresholds) for t in _by_number(trials)]
    n_seeds = max((len(_per_seed(t)) for t in trials), default=0)
    columns = [
        "number", "state", "value", "class", "config_status", "role", "parent", "change",
        "seed_mode", *(p.label for p in params), *SUMMARY_KEYS, "seeds", "data_seeds",
        "folder", "error", "datetime_start", "duration_s",
        *(f"seed_{i}_{m}" for i in range(n_seeds) for m in SEED_COLUMNS),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    ints = ["parent", *(c for c in columns if c.endswith("diverged_at_step"))]
    return frame.astype({c: "Int64" for c in ints})


def _row(
    trial: FrozenTrial, params: Sequence[Param], config_status: str | None, thresholds: Thresholds
) -> dict:
    attrs = trial.user_attrs
    row = {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "class": trial_class(trial, thresholds),
        "config_status": config_status,
        **{key: attrs.get(key) for key in ("role", "parent", "change", "seed_mode")},
        **{p.label: trial.params.get(p.name) for p in params},
        **{key: attrs.get(key) for key in SUMMARY_KEYS},
        **{key: _json(attrs.get(key)) for key in ("seeds", "data_seeds")},
        **{key: attrs.get(key) for key in ("folder", "error")},
        "datetime_start": trial.datetime_start,
        "duration_s": trial.duration.total_seconds() if trial.duration else None,
    }
    for i, record in enumerate(_per_seed(trial)):
        row.update({f"seed_{i}_{m}": record.get(m) for m in SEED_COLUMNS})
    return row


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def iteration_entry(
    trial: FrozenTrial,
    params: Sequence[Param],
    state: ProtocolState | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> str:
    """One finished trial in the study's log format (``## Iter N: class`` and 5 or 6 lines).

    Args:
        trial: A COMPLETE, FAIL or PRUNED trial.
        params: The study parameters (the Config line, in their order).
        state: Protocol state of the study, for the config's status after this trial.
        thresholds: Class thresholds of a seed without a ``class`` record.

    Raises:
        ValueError: For an unfinished trial.
    """
    if trial.state not in FINISHED:
        raise ValueError(f"trial {trial.number} is {trial.state.name}, not finished")
    seeds = _per_seed(trial)
    config = ", ".join(f"{p.label}={_param_text(trial, p)}" for p in params)
    lines = [
        f"## Iter {trial.number}: {trial_class(trial, thresholds)}",
        f"Config: {config}",
        f"Metrics: {_metrics(trial, seeds)}",
    ]
    if seeds:
        lists = (f"{m}=[{', '.join(_num(s.get(m)) for s in seeds)}]" for m in SEEDS_LINE)
        lines.append(f"Seeds: {', '.join(lists)}")
    lines.append(f"Observation: {_observation(trial, seeds, state, thresholds)}")
    lines.append(f"Change: {_change(trial)}")
    return "\n".join(lines) + "\n"


def _param_text(trial: FrozenTrial, param: Param) -> str:
    return value_text(trial.params[param.name]) if param.name in trial.params else "?"


def _metrics(trial: FrozenTrial, seeds: list[dict]) -> str:
    if trial.state != TrialState.COMPLETE:
        return f"none (error: {_error(trial)})"
    worst = min(seeds, key=_seed_value) if seeds else {"connectivity_R2": trial.value}
    return ", ".join(f"{m}={_num(worst.get(m))}" for m in METRICS_LINE)


def _error(trial: FrozenTrial) -> str:
    if trial.user_attrs.get(REPORTED_ATTR) is False:
        default = "killed before its job reported; the protocol runs it again"
    else:
        default = "pruned" if trial.state == TrialState.PRUNED else "none recorded"
    return " ".join(str(trial.user_attrs.get("error") or default).split())


def _observation(
    trial: FrozenTrial, seeds: list[dict], state: ProtocolState | None, thresholds: Thresholds
) -> str:
    parts = [
        _seed_note(trial, seeds, thresholds),
        *(
            f"seed {s.get('seed')} diverged at step {s['diverged_at_step']}"
            for s in seeds
            if s.get("diverged_at_step") is not None
        ),
        _data_note(seeds, thresholds),
        _role_note(trial),
        _config_note(trial, state),
    ]
    return "; ".join(p for p in parts if p)


def _seed_note(trial: FrozenTrial, seeds: list[dict], thresholds: Thresholds) -> str:
    if not seeds:
        done = trial.state == TrialState.COMPLETE
        return f"connectivity_R2 {_num(trial.value)}" if done else "no per-seed results"
    classes = [_seed_class(s, thresholds) for s in seeds]
    text = f"{classes.count(CONVERGED)}/{len(seeds)} seeds converged"
    values = [v for s in seeds if math.isfinite(v := _seed_value(s))]
    if not values:
        return text
    lo, hi = f"{min(values):.2f}", f"{max(values):.2f}"
    spread = f", spread {max(values) - min(values):.2f}" if len(set(classes)) > 1 else ""
    return f"{text} (connectivity_R2 {lo if lo == hi else f'{lo}-{hi}'}{spread})"


def _data_note(seeds: list[dict], thresholds: Thresholds) -> str:
    """effective_rank_99 of the data of non-converged seeds (and of converged ones if differ)."""
    ranks: dict[bool, list[str]] = {True: [], False: []}
    for s in seeds:
        rank = _finite(s.get("effective_rank_99"))
        text = _num(rank)
        good = _seed_class(s, thresholds) == CONVERGED
        if rank is not None and text not in ranks[good]:
            ranks[good].append(text)
    if not ranks[False]:
        return ""
    note = f"data effective_rank_99 {', '.join(ranks[False])} where not converged"
    if ranks[True] and ranks[True] != ranks[False]:
        note += f", {', '.join(ranks[True])} where converged"
    return note


def _role_note(trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    note = ROLE_NOTES.get(attrs.get("role"), "")
    return note.format(parent=attrs.get("parent"), change=attrs.get("change"))


def _config_note(trial: FrozenTrial, state: ProtocolState | None) -> str:
    """The config's converged runs up to this trial, when it has run more than once."""
    decision = trial.system_attrs.get(DECISION_ATTR)
    if state is None or not isinstance(decision, Mapping):
        return ""
    config = tuple(decision.get("config", ()))
    runs = [r for r in state.by_config.get(config, ()) if r.number <= trial.number]
    done = [r for r in runs if not r.pending]
    if len(done) < 2 or runs[-1].number != trial.number:
        return ""
    converged = sum(r.outcome == CONVERGED for r in done)
    note = f"config {converged}/{len(done)} runs converged"
    if converged == len(done) >= state.n_validate:
        return f"{note}: {ROBUST}"
    return f"{note}: {UNSTABLE}" if 0 < converged < len(done) else note


def _change(trial: FrozenTrial) -> str:
    if trial.user_attrs.get("role") == START:
        return "none (start)"
    return trial.user_attrs.get("change") or "none"


def summary_section(
    study: optuna.Study,
    params: Sequence[Param],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    n_validate: int = 3,
) -> str:
    """The ``# Summary`` section: configs by status, boundaries, regions and counts."""
    trials = study.get_trials(deepcopy=False)
    return _summary(trials, protocol_state(trials, params, thresholds, n_validate), thresholds)


def _summary(trials: Sequence[FrozenTrial], state: ProtocolState, thresholds: Thresholds) -> str:
    lines = ["# Summary", "", _counts(trials, thresholds), ""]
    lines += _section("Robust configs", _configs(state, ROBUST))
    lines += _section("Unstable configs", _configs(state, UNSTABLE))
    lines += _section("Converged, not yet validated", _configs(state, UNVALIDATED))
    lines += _section("Boundaries", _boundaries(state))
    lines += _section("Regions", _regions(state))
    return "\n".join(lines)


def _section(title: str, items: list[str]) -> list[str]:
    return [f"## {title}", "", *(items or ["- none"]), ""]


def _counts(trials: Sequence[FrozenTrial], thresholds: Thresholds) -> str:
    if not trials:
        return "Trials: 0"
    states = Counter(t.state.name.lower() for t in trials)
    classes = Counter(trial_class(t, thresholds) for t in trials)
    by_state = ", ".join(f"{name} {n}" for name, n in sorted(states.items()))
    by_class = ", ".join(f"{c} {classes[c]}" for c in (CONVERGED, PARTIAL, FAILED))
    return f"Trials: {len(trials)} ({by_state}); classes: {by_class}"


def _configs(state: ProtocolState, status: str) -> list[str]:
    return [
        f"- {_config_text(state, config)}: trials {', '.join(map(_run_text, runs))}"
        for config, runs in state.by_config.items()
        if state.status[config] == status
    ]


def _run_text(run: Run) -> str:
    if run.pending:
        return f"{run.number} (running)"
    return f"{run.number} ({'fail' if run.value is None else _num(run.value)})"


def _config_text(state: ProtocolState, config: Config) -> str:
    values = zip(state.params, config, strict=True)
    return ", ".join(f"{p.label}={value_text(p.values[i])}" for p, i in values)


def _boundaries(state: ProtocolState) -> list[str]:
    lines = []
    for origin, found in state.regions().items():
        first = state.first_number(origin)
        lines += [f"Around trial {first} ({_config_text(state, origin)}):", ""]
        lines += [f"- {_boundary_text(state, b)}" for b in found] + [""]
    return lines[:-1]


def _boundary_text(state: ProtocolState, b: Boundary) -> str:
    param = next(p for p in state.params if p.name == b.param)
    outside = "end of grid"
    if b.outside is not None:
        outside = f"{_grid_text(param, b.outside)} ({b.outside_status})"
    return f"{param.label} {b.side}: {_grid_text(param, b.inside)} -> {outside}"


def _grid_text(param: Param, index: int | None) -> str:
    return "?" if index is None else value_text(param.values[index])


def _regions(state: ProtocolState) -> list[str]:
    if not state.walks:
        return []
    visited = dict.fromkeys(c for w in state.walks for c in w.configs)
    robust = [c for c in visited if state.status[c] == ROBUST]
    lines = [f"{len(robust)} robust config(s) in {len(state.walks)} walk(s).", ""]
    for i, walk in enumerate(state.walks, 1):
        best = walk.incumbent
        lines.append(
            f"- walk {i} ({walk.kind} at trial {walk.first}, {len(walk.runs)} trials): best "
            f"{_config_text(state, best)} ({state.status[best]}, score {_num(state.score(best))})"
        )
        lines += [f"  - robust: {_extent(state, c)}" for c in walk.configs if c in robust]
    return lines


def _extent(state: ProtocolState, origin: Config) -> str:
    """Per parameter, the last converged value on the low and high probe rays (? if open)."""
    found = {(b.param, b.side): b.inside for b in state.regions().get(origin, ())}
    parts = []
    for param in state.params:
        lo, hi = (found.get((param.name, side)) for side in ("low", "high"))
        parts.append(f"{param.label} {_grid_text(param, lo)}..{_grid_text(param, hi)}")
    return f"{_config_text(state, origin)}; extent {', '.join(parts)}"


def write_records(
    study: optuna.Study,
    params: Sequence[Param],
    folder: str | Path,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    n_validate: int = 3,
) -> tuple[ProtocolState, pd.DataFrame]:
    """(Re)write ``folder/trials.csv`` and ``folder/analysis.md`` from the study's storage.

    ``analysis.md`` holds a header naming the study, the ``# Summary`` section and
    ``# Iterations`` with every finished trial's entry in number order. Each file is replaced
    atomically, so readers never see a partial file. Returns the protocol state and the trial
    table written, so that figures can be drawn from the same read of the storage.
    """
    trials = study.get_trials(deepcopy=False)
    state = protocol_state(trials, params, thresholds, n_validate)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame = _frame(trials, params, state, thresholds)
    write_atomic(folder / TRIALS_CSV, frame.to_csv(index=False))
    entries = [
        iteration_entry(t, params, state, thresholds)
        for t in _by_number(trials)
        if t.state in FINISHED
    ]
    header = f"# Convergence study: {study.study_name}\n"
    summary = _summary(trials, state, thresholds)
    write_atomic(folder / ANALYSIS_MD, "\n".join([header, summary, "# Iterations\n", *entries]))
    return state, frame


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename, so readers never see a
    partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _by_number(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return sorted(trials, key=lambda t: t.number)


def _per_seed(trial: FrozenTrial) -> list[dict]:
    records = trial.user_attrs.get("per_seed")
    return [r for r in records if isinstance(r, Mapping)] if isinstance(records, list) else []


def _seed_class(record: Mapping[str, Any], thresholds: Thresholds) -> str:
    return record.get("class") or classify(_finite(record.get("connectivity_R2")), thresholds)


def _seed_value(record: Mapping[str, Any]) -> float:
    """A seed's connectivity_R2, -inf when missing (so the worst seed)."""
    value = _finite(record.get("connectivity_R2"))
    return -math.inf if value is None else value


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _num(value: Any) -> str:
    """4 decimals below 1 (``0.9552``), else 5 significant digits (``1525.5``); nan if none."""
    x = _finite(value)
    if x is None:
        return "nan"
    return f"{x:.4f}" if 1e-3 <= abs(x) < 1 else f"{x:.5g}"
