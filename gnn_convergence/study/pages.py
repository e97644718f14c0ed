"""Study pages: records, figure pages and one ``report.html`` for a study in storage.

:func:`write_study` rewrites everything a study folder shows from one read of the storage; the
sweeper calls it after every trial, ``python -m gnn_convergence.report`` on demand. Every page
opens offline: plotly.js is one plotly.min.js in the study folder, shared with the trials' run
figures. The ``lr_W x lr`` map is also attached to the study for optuna-dashboard. The study's
search space, thresholds and robust rule are read from its ``params``, ``thresholds`` and
``robust`` user attributes (written by the sweeper).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from optuna_dashboard import save_plotly_graph_object

from gnn_convergence.figures import PLOTLY_JS, write_plotlyjs
from gnn_convergence.files import write_atomic
from gnn_convergence.outcome import Thresholds
from gnn_convergence.study import maps
from gnn_convergence.study.answer_report import (
    answer_text,
    data_lines,
    data_table,
    summary_tables,
)
from gnn_convergence.study.datasets import StudyData
from gnn_convergence.study.evidence import RobustRule
from gnn_convergence.study.formats import grid_text, html_float
from gnn_convergence.study.records import (
    ANALYSIS_MD,
    TRIALS_CSV,
    column,
    write_records,
)
from gnn_convergence.study.replay import DEFAULT_RULE, DEFAULT_THRESHOLDS, ProtocolState
from gnn_convergence.study.space import Param, parse_space
from gnn_convergence.study.storage import StorageError, read_storage, reading, safe_url
from gnn_convergence.study.vocabulary import FOLDER, RULE, SPACE_TEXTS, THRESHOLDS

REPORT_HTML = "report.html"
PAGES = {
    "walk": "The walk",
    "maps": "Pairwise maps",
    "slices": "One slice per parameter",
    "parallel": "Parallel coordinates",
    "data": "The datasets",
}
DASHBOARD_MAP_ID = "boundary_map"
NO_PAIR = (
    "<p>This study sweeps one parameter: there is no pair of parameters to map; "
    'see <a href="slices.html">slices.html</a>.</p>'
)
STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:1400px}"
    "table{border-collapse:collapse;font-size:13px;margin-bottom:1em}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
)


def study_figures(
    frame: pd.DataFrame,
    state: ProtocolState,
    data: StudyData,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, list[go.Figure]]:
    """Every figure of a study, by page name (see :data:`PAGES`); maps start with lr_W x lr."""
    return {
        "walk": [maps.walk_figure(frame, state, thresholds)],
        "maps": [
            maps.pair_figure(frame, state, x, y, thresholds)
            for x, y in maps.ordered_pairs(state.params)
        ],
        "slices": [maps.slice_figure(frame, state, p, thresholds) for p in state.params],
        "parallel": [maps.parallel_figure(frame, state, thresholds)],
        "data": [maps.data_figure(data, state, thresholds)],
    }


def write_study(
    study: optuna.Study,
    params: Sequence[Param],
    folder: str | Path,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    rule: RobustRule = DEFAULT_RULE,
) -> Path:
    """(Re)write the records, the figure pages and ``report.html`` in ``folder`` from one read
    of the storage; attach the boundary map to the study for optuna-dashboard. Returns the
    report's path. Cheap enough after every trial. A one-parameter study has no pairwise map:
    its maps page says so and the dashboard gets its slice."""
    folder = Path(folder)
    write_plotlyjs(folder)
    state, frame, data = write_records(study, params, folder, thresholds, rule)
    figures = study_figures(frame, state, data, thresholds)
    notes = {"maps": NO_PAIR} if not figures["maps"] else {}
    notes["data"] = "<p>" + "<br>".join(escape(line) for line in data_lines(state, data)) + "</p>"
    tails = {"data": _data_table_html(data)}
    for name, title in PAGES.items():
        html = page(
            f"{study.study_name}: {title}", figures[name], notes.get(name, ""), tails.get(name, "")
        )
        write_atomic(folder / f"{name}.html", html)
    head, tail = _report_head_html(frame, state, thresholds), _trials_html(frame, state)
    report = page(f"Study {study.study_name}", _flat(figures), head, tail)
    write_atomic(folder / REPORT_HTML, report)
    dashboard = (figures["maps"] or figures["slices"])[0]
    save_plotly_graph_object(study, dashboard, graph_object_id=DASHBOARD_MAP_ID)
    return folder / REPORT_HTML


def page(title: str, figures: Sequence[go.Figure], head: str = "", tail: str = "") -> str:
    """An HTML page: ``head``, the figures, ``tail``; plotly.js from plotly.min.js beside it."""
    divs = "\n".join(pio.to_html(f, full_html=False, include_plotlyjs=False) for f in figures)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<style>{STYLE}</style>\n<script src="{PLOTLY_JS}"></script></head>\n'
        f"<body><h1>{escape(title)}</h1>\n{head}\n{divs}\n{tail}\n</body></html>\n"
    )


def _data_table_html(data: StudyData) -> str:
    table = data_table(data)
    return "<h2>Datasets</h2>\n" + (table.to_html(index=False) if len(table) else "<p>none</p>")


def _flat(figures: Mapping[str, list[go.Figure]]) -> list[go.Figure]:
    return [f for name in PAGES for f in figures[name]]


def _report_head_html(frame: pd.DataFrame, state: ProtocolState, thresholds: Thresholds) -> str:
    states = frame["state"].value_counts().to_dict()
    counts = ", ".join(f"{s.lower()} {n}" for s, n in sorted(states.items())) or "no trials"
    now = datetime.datetime.now().isoformat(timespec="seconds")
    links = " | ".join(
        f'<a href="{f}">{f}</a>' for f in (ANALYSIS_MD, TRIALS_CSV, *(f"{p}.html" for p in PAGES))
    )
    answer = answer_text(state).removeprefix("## Answer\n\n")
    parts = [
        f"<h2>Answer</h2>\n<pre>{escape(answer)}</pre>",
        f"<p>{len(frame)} trials ({escape(counts)}); converged above {thresholds.converged:g}, "
        f"failed below {thresholds.failed:g}; robust when P(rate > {state.rule.level:g}) >= "
        f"{state.rule.credibility:g} with runs on fresh data. "
        f"Written {now}. Files (beside this page): {links}</p>",
    ]
    for title, table in summary_tables(state).items():
        parts.append(f"<h2>{escape(title)}</h2>")
        html = table.to_html(index=False, float_format=html_float)
        parts.append(html if len(table) else "<p>none</p>")
    return "\n".join([*parts, "<h2>Figures</h2>"])


def _trials_html(frame: pd.DataFrame, state: ProtocolState) -> str:
    columns = ["number", "state", "class", "verdict", "role", "change", "value"]
    names = [column(p) for p in state.params]
    trials = frame[columns[:6] + names + columns[6:]].copy()
    for name in names:
        trials[name] = [grid_text(v, "") for v in trials[name]]
    table = trials.to_html(index=False, na_rep="", float_format=html_float)
    return f"<h2>Trials</h2>\n{table}"


def study_params(study: optuna.Study) -> list[Param]:
    """The study's parameters, parsed from the search space the sweeper stored on it.

    Raises:
        ValueError: When the study has no ``params`` attribute (not made by the sweeper).
    """
    space = study.user_attrs.get(SPACE_TEXTS)
    if not isinstance(space, Mapping):
        raise ValueError(
            f"study {study.study_name} has no 'params' attribute: not a sweeper study"
        )
    return parse_space(space)


def study_thresholds(study: optuna.Study) -> Thresholds:
    """The study's ``thresholds`` attribute, else the defaults."""
    stored = study.user_attrs.get(THRESHOLDS)
    return Thresholds(**stored) if isinstance(stored, Mapping) else DEFAULT_THRESHOLDS


def study_rule(study: optuna.Study) -> RobustRule:
    """The study's ``robust`` attribute, else the default rule."""
    stored = study.user_attrs.get(RULE)
    return RobustRule(**stored) if isinstance(stored, Mapping) else DEFAULT_RULE


def record_folder(study: optuna.Study, folder: str | Path) -> None:
    """Record on the study the folder its records are written to (absolute), for the report."""
    study.set_user_attr(FOLDER, str(Path(folder).absolute()))


def study_folder(study: optuna.Study) -> Path | None:
    """The study's folder: its ``folder`` attribute (:func:`record_folder`), else the one
    folder all its trial folders lie in; None when neither tells."""
    recorded = study.user_attrs.get(FOLDER)
    if isinstance(recorded, str):
        return Path(recorded)
    folders = [t.user_attrs.get(FOLDER) for t in study.get_trials(deepcopy=False)]
    parents = {Path(f).parent for f in folders if isinstance(f, str)}
    return parents.pop() if len(parents) == 1 else None


def holds_records(folder: Path, study: optuna.Study) -> bool:
    """Whether ``folder`` holds this study's records: an analysis.md whose header names it."""
    analysis = folder / ANALYSIS_MD
    if not analysis.is_file():
        return False
    with open(analysis) as f:
        return f.readline() == f"# Convergence study: {study.study_name}\n"


def load_study(storage: str, name: str, key: str = "--storage") -> optuna.Study:
    """Load a study without creating anything: a missing SQLite file or study is an error.

    Raises:
        StorageError: A URL with a password, a missing or damaged SQLite file, a storage that
            cannot be opened, a missing study (the message lists the studies; a ValueError).
    """
    opened = read_storage(storage, key)
    with reading(storage, key):
        names = [s.study_name for s in opened.get_all_studies()]
        if name not in names:
            raise StorageError(
                f"no study {name!r} in {safe_url(storage)}; studies: {', '.join(names) or 'none'}"
            )
        return optuna.load_study(study_name=name, storage=opened)
