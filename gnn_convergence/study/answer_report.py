"""The study's answer as the records write it: ``analysis.md``'s ``## Answer`` section, its
summary tables and its ``## Data`` section, the command that trains the recommended config,
and ``answer.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from gnn_convergence.study.answer import Region
from gnn_convergence.study.datasets import STATS, Separation, StudyData
from gnn_convergence.study.evidence import ROBUST, lower_bound
from gnn_convergence.study.formats import markdown_table, short_text
from gnn_convergence.study.replay import Config, ProtocolState
from gnn_convergence.study.space import value_text


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
