"""Several studies' answers side by side: one page, its Markdown and a CSV row per study.

The studies must sweep the same parameter keys (their grids may differ: the figure's axes are
the union of the grids). Each study is replayed with its own thresholds and robust rule, so its
rate bound is at its own credibility. A study's simulation is read from the ``multirun.yaml``
the sweeper wrote into its folder (the folder recorded on the study, else the one of all its
trial folders); the page says so where it cannot be found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml

from gnn_convergence.figures import write_plotlyjs
from gnn_convergence.files import write_atomic
from gnn_convergence.study.answer_report import config_text, hard_share
from gnn_convergence.study.formats import markdown_table, markdown_text
from gnn_convergence.study.pages import (
    load_study,
    page,
    study_folder,
    study_params,
    study_rule,
    study_thresholds,
)
from gnn_convergence.study.ranges import operating_range, range_text, ranges_figure, union_param
from gnn_convergence.study.replay import ProtocolState, protocol_state
from gnn_convergence.study.space import Param, value_text
from gnn_convergence.study.storage import reading, safe_url

MULTIRUN = "multirun.yaml"
CHOICE = "simulation (config group)"


@dataclass(frozen=True)
class Simulation:
    """A study's simulation: its config group choice and its keys (flattened, dotted), or
    ``values`` None and ``note`` saying why it is not known."""

    choice: str | None
    values: Mapping[str, Any] | None
    note: str


@dataclass(frozen=True)
class Compared:
    """One study of the comparison, read and replayed."""

    label: str
    storage: str  # without password
    study: optuna.Study
    state: ProtocolState
    simulation: Simulation


def parse_entries(studies: Sequence[str], storage: str | None) -> list[tuple[str, str]]:
    """(storage URL, study name) of each ``NAME`` (in ``storage``) or ``URL::NAME``.

    Raises:
        ValueError: No study, a NAME without a storage, or a study given twice.
    """
    if not studies:
        raise ValueError("give at least one study: NAME (with --storage URL) or URL::NAME")
    entries = []
    for text in studies:
        url, sep, name = text.rpartition("::")
        if not sep:
            if storage is None:
                raise ValueError(
                    f"study {text!r} names no storage: give --storage URL, or URL::{text}"
                )
            url = storage
        if (url, name) in entries:
            raise ValueError(f"study {name!r} in {safe_url(url)} is given twice")
        entries.append((url, name))
    return entries


def load_studies(entries: Sequence[tuple[str, str]], key: str) -> list[Compared]:
    """Load every study, check their spaces, then replay them (each with its own thresholds
    and rule) and read their simulations.

    Raises:
        ValueError: A storage that cannot be opened, a missing study (the message lists those
            there), a study the sweeper did not make, studies of different parameter keys.
    """
    loaded = [(url, load_study(url, name, key)) for url, name in entries]
    params = [study_params(study) for _, study in loaded]
    check_keys([study.study_name for _, study in loaded], params)
    names = [study.study_name for _, study in loaded]
    out = []
    for (url, study), space in zip(loaded, params, strict=True):
        label = study.study_name
        if names.count(label) > 1:
            label = f"{label} ({safe_url(url)})"
        with reading(url, key):
            trials = study.get_trials(deepcopy=False)
            state = protocol_state(trials, space, study_thresholds(study), study_rule(study))
            simulation = study_simulation(study)
        out.append(Compared(label, safe_url(url), study, state, simulation))
    return out


def check_keys(names: Sequence[str], params: Sequence[Sequence[Param]]) -> None:
    """Every study must sweep the first one's parameter keys (in any order, any grid).

    Raises:
        ValueError: Names each study whose keys differ and the keys it lacks or adds.
    """
    first = [p.name for p in params[0]]
    problems = []
    for name, space in zip(names[1:], params[1:]):
        keys = [p.name for p in space]
        lacks = [k for k in first if k not in keys]
        adds = [k for k in keys if k not in first]
        if lacks or adds:
            parts = [f"lacks {', '.join(lacks)}" if lacks else "", f"adds {', '.join(adds)}"
                     if adds else ""]  # fmt: skip
            problems.append(f"{name} {' and '.join(p for p in parts if p)}")
    if problems:
        raise ValueError(
            f"the studies sweep different parameters: against {names[0]} "
            f"({', '.join(first)}), {'; '.join(problems)}; compare studies of one search "
            "space (their grids may differ)"
        )


def study_simulation(study: optuna.Study) -> Simulation:
    """The simulation section of the study folder's ``multirun.yaml`` (the first sweep's
    config; a resume with another simulation is noted)."""
    folder = study_folder(study)
    if folder is None:
        return Simulation(None, None, "no study folder is recorded on the study")
    path = folder / MULTIRUN
    if not path.is_file():
        return Simulation(None, None, f"no {MULTIRUN} in the study folder {folder}")
    try:
        first = _read_simulation(path)
    except (OSError, yaml.YAMLError, ValueError) as err:
        return Simulation(None, None, f"cannot read {path}: {' '.join(str(err).split())}")
    note = f"from {path}"
    for other in sorted(folder.glob("multirun_*.yaml")):
        try:
            if _read_simulation(other) != first:
                note += f"; {other.name} (a resumed sweep) holds another simulation"
        except (OSError, yaml.YAMLError, ValueError):
            note += f"; {other.name} cannot be read"
    return Simulation(first[0], first[1], note)


def _read_simulation(path: Path) -> tuple[str | None, dict[str, Any]]:
    config = yaml.safe_load(path.read_text())
    section = config.get("simulation") if isinstance(config, Mapping) else None
    if not isinstance(section, Mapping):
        raise ValueError("it has no simulation section")
    choices = ((config.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    choice = choices.get("simulation") if isinstance(choices, Mapping) else None
    return (None if choice is None else str(choice)), _flat(section)


def _flat(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        out.update(_flat(value, f"{name}.") if isinstance(value, Mapping) else {name: value})
    return out


def shared_axes(studies: Sequence[Compared]) -> list[Param]:
    """Per parameter of the first study, the union of the studies' grids."""
    return [
        union_param([next(q for q in s.state.params if q.name == p.name) for s in studies])
        for p in studies[0].state.params
    ]


def simulation_table(studies: Sequence[Compared]) -> pd.DataFrame:
    """The simulation keys whose values differ between the studies that record one (and the
    config group choice), one column per study."""
    known = [s.simulation for s in studies if s.simulation.values is not None]
    keys = list(dict.fromkeys(k for sim in known for k in sim.values))
    differ = [k for k in keys if len({repr(sim.values.get(k)) for sim in known}) > 1]
    rows = []
    choices = {sim.choice for sim in known}
    for key in ([CHOICE] if len(choices) > 1 else []) + differ:
        row = {"key": key}
        for s in studies:
            sim = s.simulation
            if sim.values is None:
                row[s.label] = "not recorded"
            elif key == CHOICE:
                row[s.label] = sim.choice or "not recorded"
            else:
                row[s.label] = _cell(sim.values.get(key, "absent"))
        rows.append(row)
    return pd.DataFrame(rows, columns=["key", *(s.label for s in studies)])


def _cell(value: Any) -> str:
    return value_text(value) if not isinstance(value, (list, dict)) else str(value)


def simulation_lines(studies: Sequence[Compared]) -> list[str]:
    """Where each study's simulation comes from, and whether the known ones are the same."""
    lines = [
        f"{s.label}: simulation {s.simulation.choice or '(group choice not recorded)'}, "
        f"{s.simulation.note}"
        if s.simulation.values is not None
        else f"{s.label}: simulation not recoverable from storage ({s.simulation.note}); "
        "shown by study name only"
        for s in studies
    ]
    known = [s for s in studies if s.simulation.values is not None]
    if len(known) > 1 and simulation_table(studies).empty:
        lines.append(f"The {len(known)} studies that record their simulation ran the same one.")
    return lines


def answers_table(studies: Sequence[Compared]) -> pd.DataFrame:
    """One row per study: the recommended config, its runs, rate and bound at the study's own
    credibility, verdict, the runner-up, regions and the hard datasets' share."""
    rows = []
    for s in studies:
        state, answer = s.state, s.state.answer
        rec, cred = answer.recommended, f"{state.rule.credibility:.0%}"
        ev = state.evidence[rec] if rec is not None else None
        hard, n, low, high = hard_share(state)
        rows.append({
            "study": s.label,
            "recommended": config_text(state, rec) if rec is not None else
            f"none ({answer.reason})",
            "runs": ev.n if ev else "", "converged": ev.converged if ev else "",
            "rate": f"{ev.mean:.2f}" if ev else "",
            "rate lower bound": f"{ev.lower:.2f} ({cred})" if ev else "",
            "verdict": ev.verdict if ev else "",
            "runner-up": "" if answer.runner_up is None else
            f"{config_text(state, answer.runner_up)} (P(recommended is better) = "
            f"{answer.p_better:.2f})",
            "regions": len(answer.regions),
            "hard datasets": f"{hard} of {n}" + (f" ({cred} interval {low:.2f}-{high:.2f})"
                                                 if n else ""),
        })  # fmt: skip
    return pd.DataFrame(rows)


def regions_table(studies: Sequence[Compared]) -> pd.DataFrame:
    """One row per region of each study: its configs judged inside and its best config."""
    rows = [
        {"study": s.label, "region": number, "configs": len(region.configs),
         "best": config_text(s.state, region.best),
         "best rate lower bound": f"{s.state.evidence[region.best].lower:.2f} "
         f"({s.state.rule.credibility:.0%})"}
        for s in studies
        for number, region in enumerate(s.state.answer.regions, start=1)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["study", "region", "configs", "best",
                                       "best rate lower bound"])  # fmt: skip


def ranges_table(studies: Sequence[Compared], axes: Sequence[Param]) -> pd.DataFrame:
    """One row per parameter, one column per study: its operating range (see
    :func:`~gnn_convergence.study.ranges.range_text`)."""
    rows = []
    for axis in axes:
        row = {"parameter": axis.label}
        for s in studies:
            p = next(i for i, q in enumerate(s.state.params) if q.name == axis.name)
            row[s.label] = range_text(operating_range(s.state, p))
        rows.append(row)
    return pd.DataFrame(rows)


def csv_table(studies: Sequence[Compared], axes: Sequence[Param]) -> pd.DataFrame:
    """One row per study for programs: the answers table with the recommended values and the
    operating range per parameter in columns of their own."""
    table = answers_table(studies)
    table.insert(1, "storage", [s.storage for s in studies])
    table.insert(2, "simulation", [s.simulation.choice or "" for s in studies])
    for axis in axes:
        values, ranges = [], []
        for s in studies:
            p = next(i for i, q in enumerate(s.state.params) if q.name == axis.name)
            rec = s.state.answer.recommended
            values.append("" if rec is None else value_text(s.state.params[p].values[rec[p]]))
            ranges.append(range_text(operating_range(s.state, p)))
        table[axis.label] = values
        table[f"{axis.label} range"] = ranges
    return table


def write_comparison(studies: Sequence[Compared], out: str | Path) -> Path:
    """Write the page ``out``, its Markdown (``.md``) and CSV (``.csv``) beside it, and
    plotly.min.js in its folder; returns the page's path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    axes = shared_axes(studies)
    tables = {
        "Answers": answers_table(studies),
        "Operating ranges (around each recommended config)": ranges_table(studies, axes),
        "Regions (configs judged inside, joined by one-step moves)": regions_table(studies),
        "Simulations that differ": simulation_table(studies),
    }
    notes = simulation_lines(studies)
    title = "Comparison of " + ", ".join(s.label for s in studies)
    write_atomic(out.with_suffix(".csv"), csv_table(studies, axes).to_csv(index=False))
    write_atomic(out.with_suffix(".md"), _markdown(title, studies, tables, notes))
    write_plotlyjs(out.parent)
    figure = ranges_figure([s.label for s in studies], [s.state for s in studies], axes)
    write_atomic(out, page(title, [figure], _head_html(studies, tables, notes, out)))
    return out


def _markdown(
    title: str, studies: Sequence[Compared], tables: Mapping[str, pd.DataFrame], notes: list[str]
) -> str:
    lines = [f"# {markdown_text(title)}", ""]
    lines += [f"- {_md_cell(s.label)}: study {_md_cell(s.study.study_name)} in "
              f"{_md_cell(s.storage)}" for s in studies]  # fmt: skip
    for name, table in tables.items():
        lines += ["", f"## {name}", ""]
        lines.append(markdown_table(_escaped(table)) if len(table) else "none")
    lines += ["", "Simulations:", "", *(f"- {_md_cell(n)}" for n in notes)]
    return "\n".join(lines) + "\n"


def _escaped(table: pd.DataFrame) -> pd.DataFrame:
    """Text cells and headers safe in a pipe table: HTML specials as entities, ``|`` escaped
    (the rest stays readable: ``lr_W=0.002``)."""
    escaped = table.map(lambda v: _md_cell(v) if isinstance(v, str) else v)
    return escaped.rename(columns=lambda c: _md_cell(str(c)))


def _md_cell(text: str) -> str:
    return escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def _head_html(
    studies: Sequence[Compared],
    tables: Mapping[str, pd.DataFrame],
    notes: list[str],
    out: Path,
) -> str:
    items = "".join(
        f"<li>{escape(s.label)}: study {escape(s.study.study_name)} in {escape(s.storage)}</li>"
        for s in studies
    )
    files = " | ".join(
        f'<a href="{escape(out.with_suffix(x).name)}">{escape(out.with_suffix(x).name)}</a>'
        for x in (".md", ".csv")
    )
    parts = [f"<ul>{items}</ul>", f"<p>The same tables: {files}</p>"]
    for name, table in tables.items():
        parts.append(f"<h2>{escape(name)}</h2>")
        parts.append(table.to_html(index=False) if len(table) else "<p>none</p>")
        if name.startswith("Simulations"):
            parts.append("<p>" + "<br>".join(escape(n) for n in notes) + "</p>")
    return "\n".join([*parts, "<h2>Operating ranges on shared axes</h2>"])
