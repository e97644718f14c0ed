"""Study records: ``trials.csv`` and ``analysis.md``, regenerated from the Optuna storage.

The storage is the only study state: :func:`write_records` reads every trial and the protocol
replay (:func:`~gnn_convergence.study.replay.protocol_state`) and rewrites both files
atomically, so a running study can call it after every trial.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from gnn_convergence.files import write_atomic
from gnn_convergence.outcome import CONVERGED, FAILED, PARTIAL, Thresholds, classify, worst
from gnn_convergence.results import METRICS
from gnn_convergence.study.answer import Region
from gnn_convergence.study.datasets import STATS, Separation, StudyData, study_data
from gnn_convergence.study.evidence import ROBUST, Evidence, RobustRule, lower_bound
from gnn_convergence.study.formats import markdown_cell, number_text, short_text
from gnn_convergence.study.replay import (
    DEFAULT_RULE,
    DEFAULT_THRESHOLDS,
    Config,
    ProtocolState,
    protocol_state,
)
from gnn_convergence.study.space import Param, value_text
from gnn_convergence.study.vocabulary import (
    CHANGE,
    CONFIG,
    DATA_SEEDS,
    DECISION,
    ENQUEUED,
    ERROR,
    FINISHED,
    FOLDER,
    JUMP,
    MOVE,
    PARENT,
    PER_SEED,
    PROBE,
    REPORTED,
    RETRY,
    ROLE,
    SEED_MODE,
    SEEDS,
    START,
    VALIDATE,
    finite,
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
MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")
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
    n_seeds = max((len(_per_seed(t)) for t in trials), default=0)
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
    for i, record in enumerate(_per_seed(trial)):
        row.update({f"seed_{i}_{m}": record.get(m) for m in SEED_COLUMNS})
    return row


def _config_columns(ev: Evidence) -> dict[str, Any]:
    """The config's evidence now: its verdict and the runs its posterior rate rests on
    (fresh runs once it has any)."""
    values = (ev.verdict, ev.n, ev.converged, ev.mean, ev.lower)
    return dict(zip(CONFIG_COLUMNS, values, strict=True))


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


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
    seeds = _per_seed(trial)
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


def summary_tables(state: ProtocolState) -> dict[str, pd.DataFrame]:
    """The summary's tables, rendered in ``analysis.md`` and ``report.html`` alike: robust
    configs ranked as the answer ranks them, every config with a converged run, the boundary
    bands around the recommended config, and the regions."""
    answer = state.answer
    robust = [c for c in answer.candidates if state.verdict(c) == ROBUST]
    robust += [c for c in state.robust_configs() if c not in robust]
    seen = [c for c, ev in state.evidence.items() if ev.converged]
    return {
        "Robust configs": _config_table(state, robust),
        "Configs with converged runs": _config_table(state, seen),
        "Boundary bands around the recommended config (rate crossing 0.5)": _boundary_table(state),
        "Regions (configs judged inside, joined by one-step moves)": _region_table(state),
    }


def answer_text(state: ProtocolState) -> str:
    """The ``## Answer`` section: the recommended config (or none and why), its evidence, the
    runner-up, and the command that trains it."""
    answer, rule = state.answer, state.rule
    if answer.recommended is None:
        return f"## Answer\n\nRecommended: none\nReason: {answer.reason}\n"
    ev = state.evidence[answer.recommended]
    lines = [
        "## Answer",
        "",
        f"Recommended: {config_text(state, answer.recommended)}",
        f"Runs: {ev.n} on fresh datasets, {ev.converged} converged; "
        f"rate {ev.mean:.2f} ({rule.credibility:.0%} > {ev.lower:.2f}); verdict: {ev.verdict} "
        f"(robust claims {rule.claim})",
    ]
    if answer.runner_up is not None:
        other = state.evidence[answer.runner_up]
        lines.append(
            f"Runner-up: {config_text(state, answer.runner_up)}: {other.n} fresh runs, "
            f"{other.converged} converged, rate {other.mean:.2f} "
            f"({rule.credibility:.0%} > {other.lower:.2f}); "
            f"P(recommended is better) = {answer.p_better:.2f}"
        )
    if len(answer.candidates) > 1:
        dropped = "; ".join(config_text(state, c) for c in answer.dropped) or "none"
        tied = (
            f"; race ended tied: the candidates agreed on all {answer.race_common} common datasets"
            if answer.race_tied
            else ""
        )
        lines.append(
            f"Race: {len(answer.candidates)} candidates on common fresh datasets, "
            f"dropped: {dropped}{tied}"
        )
    lines.append(f"Train it: {recommended_command(state)}")
    lines.append(hard_text(state))
    return "\n".join(lines) + "\n"


def hard_text(state: ProtocolState) -> str:
    """The datasets no config judged inside converged on, and their share with its interval."""
    answer, mass = state.answer, state.rule.credibility
    hard, n, low, high = hard_share(state)
    seeds = ", ".join(f"{h.data_seed} ({h.runs} runs, {h.configs} configs)" for h in answer.hard)
    return (
        f"Datasets that failed at every config judged inside: {seeds or 'none'}; "
        f"{hard} of {n} datasets run at inside configs ({mass:.0%} interval {low:.2f}-{high:.2f})"
    )


def hard_share(state: ProtocolState) -> tuple[int, int, float, float]:
    """(hard datasets, datasets run at inside configs, and the central interval of the hard
    share at the rule's credibility)."""
    answer, mass = state.answer, state.rule.credibility
    hard, n = len(answer.hard), answer.datasets_inside
    low, high = lower_bound(hard, n, (1 + mass) / 2), 1 - lower_bound(n - hard, n, (1 + mass) / 2)
    return hard, n, low, high


def data_text(state: ProtocolState, data: StudyData) -> str:
    """The ``## Data`` section: one row per dataset, the hard share and the rule lines."""
    table = data_table(data)
    lines = ["## Data", "", markdown_table(table) if len(table) else "none", ""]
    return "\n".join([*lines, *data_lines(state, data)]) + "\n"


def data_table(data: StudyData) -> pd.DataFrame:
    """One row per dataset: its statistics, runs, runs at configs judged inside, hard."""
    rows = [
        {
            "data seed": d.data_seed,
            **{s: short_text(d.stats[s], "") for s in STATS},
            "runs": d.runs,
            "converged at inside configs": f"{d.inside_converged}/{d.inside_runs}"
            if d.inside_runs
            else "",
            "inside configs": d.inside_configs,
            "hard": ("yes" if d.hard else "no") if d.inside_runs else "",
        }
        for d in data.datasets
    ]
    return pd.DataFrame(rows)


def data_lines(state: ProtocolState, data: StudyData) -> list[str]:
    """The hard datasets' share and, per statistic, whether a threshold separates them."""
    if not data.judged:
        return ["No dataset was run at a config judged inside: there is nothing to judge."]
    if not state.answer.hard:
        return [hard_text(state), "Rule: no dataset is hard, so there is nothing to separate."]
    return [
        hard_text(state),
        "Rule (a threshold is claimed only where it separates the hard datasets from the "
        "others exactly):",
        *(f"- {separation_text(s)}" for s in data.separations),
    ]


def separation_text(s: Separation) -> str:
    """``every dataset with effective_rank_99 below 20 failed at every inside config: 2 of 2,
    and none above it: 0 of 14``, or ``no threshold on effective_rank_99 separates them``."""
    if s.missing:
        return f"{s.stat} is not recorded for {s.missing} of {s.hard + s.others} datasets"
    if s.side is None:
        return f"no threshold on {s.stat} separates them"
    other = "above" if s.side == "below" else "below"
    return (
        f"every dataset with {s.stat} {s.side} {short_text(s.threshold)} failed at every inside "
        f"config: {s.hard} of {s.hard}, and none {other} it: 0 of {s.others}"
    )


def recommended_command(state: ProtocolState) -> str:
    """The command that trains the recommended config, or ``Recommended: none (reason)``."""
    if state.answer.recommended is None:
        return f"Recommended: none ({state.answer.reason})"
    return f"python -m gnn_convergence.train {' '.join(overrides(state))}"


def overrides(state: ProtocolState, config: Config | None = None) -> list[str]:
    """Hydra overrides of ``config`` (the recommended one by default)."""
    config = state.answer.recommended if config is None else config
    return [f"{name}={value_text(value)}" for name, value in state.values(config).items()]


def answer_record(state: ProtocolState) -> dict[str, Any]:
    """The answer as ``answer.json`` holds it (docs/protocol.md, "The answer")."""
    answer = state.answer

    def config_record(config: Config | None) -> dict[str, Any] | None:
        if config is None:
            return None
        ev = state.evidence[config]
        return {
            "params": state.values(config),
            "runs": ev.n,
            "converged": ev.converged,
            "rate_mean": ev.mean,
            "rate_lower90": ev.lower,
            "verdict": ev.verdict,
        }

    return {
        "recommended": config_record(answer.recommended),
        "reason": answer.reason,
        "runner_up": config_record(answer.runner_up),
        "p_better": answer.p_better,
        "race": {
            "candidates": len(answer.candidates),
            "dropped": [state.values(c) for c in answer.dropped],
            "tied": answer.race_tied,
            "common_datasets": answer.race_common if answer.race_tied else None,
        },
        "boundaries": [_band_record(state, b) for b in answer.bands],
        "regions": [
            {
                "configs": len(r.configs),
                "best": state.values(r.best),
                "path": None if number == 0 else _path_record(state, r),
            }
            for number, r in enumerate(answer.regions)
        ],
        "hard_datasets": [
            {"data_seed": h.data_seed, "runs": h.runs, "configs": h.configs} for h in answer.hard
        ],
        "datasets_inside": answer.datasets_inside,
    }


def _path_record(state: ProtocolState, region: Region) -> dict[str, Any]:
    cut = region.cut
    return {
        "status": path_text(state, region),
        "judged": None if cut is None else cut.judged,
        "at": None if cut is None else state.values(cut.config),
    }


def path_text(state: ProtocolState, region: Region) -> str:
    """How a region beyond the first relates to the first: ``separated (path probed: outside
    at lr_W=0.005, ...)``, or ``not yet probed``."""
    if region.cut is None:
        return "not yet probed"
    probed = config_text(state, region.cut.config)
    return f"separated (path probed: {region.cut.judged} at {probed})"


def _band_record(state: ProtocolState, band) -> dict[str, Any]:
    param = next(p for p in state.params if p.name == band.param)
    values = [param.values[i] for i in (band.inside, *band.transition)]
    if band.outside is not None:
        values.append(param.values[band.outside])
    return {
        "param": band.param,
        "side": band.side,
        "inside": param.values[band.inside],
        "outside": None if band.outside is None else param.values[band.outside],
        "band": values if band.in_range else None,
    }


def config_text(state: ProtocolState, config: Config) -> str:
    """``lr_W=0.001, lr=0.0005, ...``: the config's values by label."""
    return ", ".join(f"{k}={v}" for k, v in _config_values(state, config).items())


def _config_table(state: ProtocolState, configs: Sequence[Config]) -> pd.DataFrame:
    rows = []
    for config in configs:
        ev = state.evidence[config]
        trials = ", ".join(f"{v.number}" + (" (running)" if v.pending else "") for v in ev.visits)
        converged = sum(r.converged for r in ev.runs)
        rows.append(
            {
                **_config_values(state, config),
                "trials": trials,
                "converged": f"{converged}/{len(ev.runs)}",
                "fresh": f"{ev.converged}/{ev.n}" if ev.validated else "",
                "rate": ev.mean,
                f"rate {state.rule.credibility:.0%} >": ev.lower,
                "verdict": ev.verdict + (", unstable" if ev.unstable else ""),
            }
        )
    return pd.DataFrame(rows)


def _config_values(state: ProtocolState, config: Config) -> dict[str, str]:
    return {p.label: value_text(p.values[i]) for p, i in zip(state.params, config, strict=True)}


def _boundary_table(state: ProtocolState) -> pd.DataFrame:
    rows = []
    for b in state.boundaries:
        param = next(p for p in state.params if p.name == b.param)
        outside = "end of grid" if b.outside is None else value_text(param.values[b.outside])
        transition = ", ".join(value_text(param.values[i]) for i in b.transition)
        rows.append(
            {
                "from trial": state.first_number(b.origin),
                "parameter": param.label,
                "side": b.side,
                "inside": value_text(param.values[b.inside]),
                "inside runs": _runs_text(b.inside_runs),
                "transition": transition,
                "outside": outside if b.in_range else "no boundary in range",
                "outside runs": _runs_text(b.outside_runs),
            }
        )
    return pd.DataFrame(rows)


def _runs_text(counts: tuple[int, int] | None) -> str:
    return "" if counts is None else f"{counts[0]}/{counts[1]} converged"


def _region_table(state: ProtocolState) -> pd.DataFrame:
    rows = []
    for number, region in enumerate(state.answer.regions, start=1):
        extent = {
            p.label: "..".join(
                value_text(p.values[f(c[i] for c in region.configs)]) for f in (min, max)
            )
            for i, p in enumerate(state.params)
        }
        best = state.evidence[region.best]
        path_note = path_text(state, region) if number > 1 else ""
        rows.append(
            {
                "region": number,
                "configs": len(region.configs),
                **extent,
                "best": config_text(state, region.best),
                f"best rate {state.rule.credibility:.0%} >": best.lower,
                "path from region 1": path_note,
            }
        )
    return pd.DataFrame(rows)


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown on one line: HTML specials as entities, Markdown punctuation
    backslash-escaped."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table, cells as :func:`~gnn_convergence.study.formats.markdown_cell` writes them."""
    cells = [[markdown_cell(v) for v in row] for row in table.values]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def write_records(
    study: optuna.Study,
    params: Sequence[Param],
    folder: str | Path,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    rule: RobustRule = DEFAULT_RULE,
) -> tuple[ProtocolState, pd.DataFrame, StudyData]:
    """(Re)write ``folder/trials.csv`` and ``folder/analysis.md`` from the study's storage.

    ``analysis.md`` holds a header naming the study, the ``## Answer`` section, the
    ``# Summary`` section, ``## Data`` (:func:`data_text`) and ``# Iterations`` with every
    finished trial's entry in number order; ``answer.json`` holds the answer
    (:func:`answer_record`). Each file is replaced atomically, so readers never see a partial
    file. Returns the protocol state, the trial table written and the study's datasets, so
    that figures can be drawn from the same read of the storage.
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


def _per_seed(trial: FrozenTrial) -> list[dict]:
    records = trial.user_attrs.get(PER_SEED)
    return [r for r in records if isinstance(r, Mapping)] if isinstance(records, list) else []


def _seed_class(record: Mapping[str, Any], thresholds: Thresholds) -> str:
    return classify(finite(record.get("connectivity_R2")), thresholds)


def _seed_value(record: Mapping[str, Any]) -> float | None:
    """A seed's connectivity_R2; None when missing or not a finite number."""
    return finite(record.get("connectivity_R2"))
