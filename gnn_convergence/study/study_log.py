"""The study log: one entry per finished trial in the log format of the convergence-study
protocol: ``## Iter N: class``, then the Config, Metrics, Observation and Change lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from gnn_convergence.outcome import CONVERGED, FAILED, Thresholds, classify, worst
from gnn_convergence.results import METRICS
from gnn_convergence.study.evidence import Evidence
from gnn_convergence.study.formats import number_text
from gnn_convergence.study.replay import DEFAULT_THRESHOLDS, ProtocolState
from gnn_convergence.study.space import Param, value_text
from gnn_convergence.study.vocabulary import (
    CHANGE,
    CONFIG,
    DECISION,
    ENQUEUED,
    ERROR,
    FINISHED,
    JUMP,
    MOVE,
    PARENT,
    PER_SEED,
    PROBE,
    REPORTED,
    RETRY,
    ROLE,
    START,
    VALIDATE,
    finite,
)

ROLE_NOTES = {
    START: "start config",
    JUMP: "jump: new walk",
    MOVE: "move from trial {parent}",
    RETRY: "retry of trial {parent}",
    VALIDATE: "{change}",
    PROBE: "probe from trial {parent}",
    ENQUEUED: "enqueued by hand",
}


def trial_class(trial: FrozenTrial, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> str | None:
    """The trial's class from its value and the study's thresholds; None while unfinished."""
    if trial.state not in FINISHED:
        return None
    if trial.state != TrialState.COMPLETE:
        return FAILED
    return classify(trial.value, thresholds)


def iteration_entry(
    trial: FrozenTrial,
    params: Sequence[Param],
    state: ProtocolState | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> str:
    """One finished trial in the study's log format: ``## Iter N: class``, then the Config,
    Metrics, Observation and Change lines. Metrics are the run with the lowest
    connectivity_R2; the Observation line holds every run and the config's evidence.

    Args:
        trial: A COMPLETE, FAIL or PRUNED trial.
        params: The study parameters (the Config line, in their order).
        state: Protocol state of the study, for the config's evidence up to this trial.
        thresholds: Class thresholds of connectivity_R2.

    Raises:
        ValueError: For an unfinished trial.
    """
    if trial.state not in FINISHED:
        raise ValueError(f"trial {trial.number} is {trial.state.name}, not finished")
    seeds = per_seed(trial)
    config = ", ".join(f"{p.label}={_param_text(trial, p)}" for p in params)
    lines = [
        f"## Iter {trial.number}: {trial_class(trial, thresholds)}",
        f"Config: {config}",
        f"Metrics: {_metrics(trial, seeds)}",
        f"Observation: {_observation(trial, seeds, state, thresholds)}",
        f"Change: {_change(trial)}",
    ]
    return "\n".join(lines) + "\n"


def _param_text(trial: FrozenTrial, param: Param) -> str:
    return value_text(trial.params[param.name]) if param.name in trial.params else "?"


def _metrics(trial: FrozenTrial, seeds: list[dict]) -> str:
    if trial.state != TrialState.COMPLETE:
        return f"none (error: {_error(trial)})"
    run = worst(seeds, _seed_value) if seeds else {"connectivity_R2": trial.value}
    return ", ".join(f"{m}={number_text(run.get(m))}" for m in METRICS)


def _error(trial: FrozenTrial) -> str:
    if trial.user_attrs.get(REPORTED) is False:
        default = "killed before its job reported; the protocol runs it again"
    else:
        default = "pruned" if trial.state == TrialState.PRUNED else "none recorded"
    return " ".join(str(trial.user_attrs.get(ERROR) or default).split())


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
        return f"connectivity_R2 {number_text(trial.value)}" if done else "no per-run results"
    classes = [_seed_class(s, thresholds) for s in seeds]
    values = ", ".join(number_text(s.get("connectivity_R2")) for s in seeds)
    text = f"{classes.count(CONVERGED)}/{len(seeds)} runs converged (connectivity_R2 {values}"
    data = [s.get("data_seed") for s in seeds]
    if all(d is not None for d in data):
        text += f" on datasets {', '.join(map(str, data))}"
    return text + ")"


def _data_note(seeds: list[dict], thresholds: Thresholds) -> str:
    """effective_rank_99 of the data of non-converged seeds (and of converged ones if differ)."""
    ranks: dict[bool, list[str]] = {True: [], False: []}
    for s in seeds:
        rank = finite(s.get("effective_rank_99"))
        text = number_text(rank)
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
    note = ROLE_NOTES.get(attrs.get(ROLE), "")
    return note.format(parent=attrs.get(PARENT), change=attrs.get(CHANGE))


def _config_note(trial: FrozenTrial, state: ProtocolState | None) -> str:
    """The config's evidence up to this trial, when it has run more than once."""
    decision = trial.system_attrs.get(DECISION)
    if state is None or not isinstance(decision, Mapping):
        return ""
    config = tuple(decision.get(CONFIG, ()))
    ev = state.evidence.get(config)
    if ev is None:
        return ""
    visits = tuple(v for v in ev.visits if v.number <= trial.number)
    if len(visits) < 2 or visits[-1].number != trial.number:
        return ""
    return f"config {evidence_text(Evidence(visits, ev.rule))}"


def evidence_text(ev: Evidence) -> str:
    """``5/6 fresh runs converged, rate 0.75 (90% > 0.52): undecided, unstable``."""
    runs = "fresh runs" if ev.validated else "runs"
    bound = f"{ev.rule.credibility:.0%} > {ev.lower:.2f}"
    note = f"{ev.converged}/{ev.n} {runs} converged, rate {ev.mean:.2f} ({bound})"
    return f"{note}: {ev.verdict}" + (", unstable" if ev.unstable else "")


def _change(trial: FrozenTrial) -> str:
    if trial.user_attrs.get(ROLE) == START:
        return "none (start)"
    return trial.user_attrs.get(CHANGE) or "none"


def per_seed(trial: FrozenTrial) -> list[dict]:
    records = trial.user_attrs.get(PER_SEED)
    return [r for r in records if isinstance(r, Mapping)] if isinstance(records, list) else []


def _seed_class(record: Mapping[str, Any], thresholds: Thresholds) -> str:
    return classify(finite(record.get("connectivity_R2")), thresholds)


def _seed_value(record: Mapping[str, Any]) -> float | None:
    """A seed's connectivity_R2; None when missing or not a finite number."""
    return finite(record.get("connectivity_R2"))
