"""Plotly maps of a convergence study: trial table and protocol state in, ``go.Figure`` out.

The table is :func:`~gnn_convergence.study.records.trials_frame`'s, one row per trial; the state
is :func:`~gnn_convergence.study.replay.protocol_state`'s. Axes follow the grids: a log axis for
a log parameter (a leading 0 drawn one decade below the smallest positive value, labelled 0),
ticks at the grid values, a non-numeric choice (a list too) by its index. Trials at the same
value are spread over a third of a grid step so that each can be hovered. Nothing here computes
a metric; the one estimate, the pairwise maps' working-region boundary, is computed in
:mod:`~gnn_convergence.study.boundary_estimate` and explained in the figure itself.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from html import escape
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gnn_convergence.figures import CLASS_COLORS
from gnn_convergence.outcome import CONVERGED, FAILED, PARTIAL, Thresholds, classify
from gnn_convergence.results import METRICS
from gnn_convergence.study.boundary_estimate import share_map
from gnn_convergence.study.datasets import STATS, Dataset, StudyData
from gnn_convergence.study.evidence import HALF, Run
from gnn_convergence.study.formats import grid_text, missing, short_text
from gnn_convergence.study.records import column
from gnn_convergence.study.replay import DEFAULT_THRESHOLDS, ProtocolState
from gnn_convergence.study.space import Param, index_of, value_text
from gnn_convergence.study.vocabulary import (
    ENQUEUED,
    FINISHED_NAMES,
    JUMP,
    MOVE,
    PROBE,
    RETRY,
    START,
    VALIDATE,
)

PENDING_COLOR = "#9e9e9e"
ROLE_SYMBOLS = {
    START: "star",
    JUMP: "star-diamond",
    MOVE: "circle",
    RETRY: "square",
    VALIDATE: "diamond",
    PROBE: "triangle-up",
    ENQUEUED: "cross",
}
Y_FLOOR = -0.2  # connectivity_R2 below this is drawn at it (the hover gives the value)
SPREAD = 0.3  # trials at one value spread over this fraction of a grid step
ESTIMATE_NOTE = (
    "Dashed line: estimated working-region boundary. Each grid cell of this map holds the share "
    "of its finished runs that converged;<br>the line is where a Gaussian-kernel average of "
    f"those shares (bandwidth one grid step, log scale on log axes) is {HALF:g}. Other "
    "parameters are pooled;<br>no line where no trial lies within about two steps. Grey bars: "
    f"boundaries found by probing, where the convergence rate crosses {HALF:g},<br>at the probed "
    "config's other value. "
    "Open circles: robust configs (posterior of the per-run convergence rate, see the summary)."
)


def _numeric(param: Param) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in param.values)


def _log(param: Param) -> bool:
    return param.log and _numeric(param)


def _position(param: Param, value: Any) -> float | None:
    """Position on the parameter's axis scale: log10 on a log axis, the index for a choice."""
    if missing(value):
        return None
    if not _numeric(param):
        return index_of(param, value)
    x = float(value)
    if _log(param):
        return math.log10(x) if x > 0 else math.log10(min(v for v in param.values if v > 0)) - 1
    return x


def _axis_value(param: Param, u: float | None) -> float | None:
    """The axis value at position u; None (a trial without this parameter yet) stays None."""
    if u is None:
        return None
    return 10**u if _log(param) else u


def place(param: Param, value: Any) -> float | None:
    """Where ``value`` lies on the parameter's axis (see :func:`axis`): the value itself, a
    leading 0 one decade below on a log axis, its index for a non-numeric choice."""
    return _axis_value(param, _position(param, value))


def _grid(param: Param) -> list[float]:
    """Axis-scale positions of the grid values."""
    return [_position(param, v) for v in param.values]


def _step(param: Param) -> float:
    grid = _grid(param)
    return (max(grid) - min(grid)) / (len(grid) - 1)


def axis(param: Param) -> dict[str, Any]:
    """Layout of a parameter's axis: log where the grid is, ticks at the grid values."""
    return {
        "title": {"text": param.label},
        "type": "log" if _log(param) else "linear",
        "tickmode": "array",
        "tickvals": [_axis_value(param, u) for u in _grid(param)],
        "ticktext": [value_text(v) for v in param.values],
    }


def _spread(param: Param, us: Sequence[float | None], keys: Sequence[Any]) -> list[float | None]:
    """Axis values of ``us``, those sharing a key spread over SPREAD grid steps."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    out: list[float | None] = list(us)
    for members in groups.values():
        for k, i in enumerate(members):
            if us[i] is not None and len(members) > 1:
                out[i] = us[i] + SPREAD * _step(param) * (k / (len(members) - 1) - 0.5)
    return [_axis_value(param, u) for u in out]


def _rows(frame: pd.DataFrame, params: Sequence[Param], running: bool = True) -> pd.DataFrame:
    """The finished (and running) trials, with columns ``hover``, ``color`` and ``y`` (the
    objective as drawn: 0 for FAIL, PRUNED and RUNNING trials, floored at Y_FLOOR)."""
    states = FINISHED_NAMES + (("RUNNING",) if running else ())
    rows = frame[frame["state"].isin(states)].reset_index(drop=True)
    seeds = _seed_indices(frame)
    rows["hover"] = [hover_text(row, params, seeds) for _, row in rows.iterrows()]
    rows["color"] = [CLASS_COLORS.get(c, PENDING_COLOR) for c in rows["class"]]
    done = (rows["state"] == "COMPLETE") & rows["value"].notna()
    rows["y"] = rows["value"].where(done, 0.0).astype(float).clip(lower=Y_FLOOR)
    return rows


def _seed_indices(frame: pd.DataFrame | pd.Series) -> list[int]:
    names = frame.columns if isinstance(frame, pd.DataFrame) else frame.index
    found = (re.fullmatch(r"seed_(\d+)_connectivity_R2", c) for c in names)
    return sorted(int(m.group(1)) for m in found if m)


def _seed_text(row: pd.Series, i: int) -> str | None:
    """``seed S: connectivity_R2 ..., diverged at step N``; None when the seed has no record."""
    values = [row.get(f"seed_{i}_{m}") for m in METRICS]
    diverged = row.get(f"seed_{i}_diverged_at_step")
    if all(missing(v) for v in values) and missing(diverged):
        return None
    seeds = json.loads(row["seeds"]) if isinstance(row.get("seeds"), str) else []
    name = f"seed {seeds[i]}" if i < len(seeds) else f"seed #{i}"
    text = ", ".join(f"{m} {short_text(v)}" for m, v in zip(METRICS, values))
    return f"{name}: {text}" + ("" if missing(diverged) else f", diverged at step {diverged}")


def _run_values(row: pd.Series) -> list[float | None]:
    """connectivity_R2 of each run the row records (None for a run without a value)."""
    return [
        None if missing(v := row[f"seed_{i}_connectivity_R2"]) else float(v)
        for i in _seed_indices(row)
        if _seed_text(row, i) is not None
    ]


def hover_text(row: pd.Series, params: Sequence[Param], seeds: Sequence[int]) -> str:
    """Trial number, state, role, class, full config, objective, per-seed values and folder."""
    head = [row["state"], grid_text(row["role"], "no role"), grid_text(row["class"], "")]
    if not missing(row["verdict"]):
        head.append(
            f"config {row['rate_converged']}/{row['rate_runs']} runs converged, rate "
            f"{row['rate_mean']:.2f} (90% > {row['rate_lower90']:.2f}): {row['verdict']}"
        )
    lines = [" | ".join(h for h in head if h)]
    lines += [] if missing(row["change"]) else [f"change: {row['change']}"]
    lines.append(", ".join(f"{p.label}={grid_text(row[column(p)], '?')}" for p in params))
    if row["state"] == "COMPLETE":
        lines.append(f"objective (min connectivity_R2): {short_text(row['value'])}")
    elif row["state"] != "RUNNING":
        lines.append(f"{row['state']}: {grid_text(row['error'])}")
    lines += [t for i in seeds if (t := _seed_text(row, i))]
    lines.append(f"folder: {grid_text(row['folder'])}")
    body = "<br>".join(escape(line, quote=False) for line in lines)
    return f"<b>trial {row['number']}</b> | {body}"


def _legend(fig: go.Figure, running: bool) -> None:
    """Legend-only entries for the class colours."""
    colors = {**CLASS_COLORS, **({"running": PENDING_COLOR} if running else {})}
    for name, color in colors.items():
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=name,
                legendgroup="class",
                legendgrouptitle={"text": "class"},
                marker={"color": color, "size": 10},
            )
        )


def _thresholds(fig: go.Figure, thresholds: Thresholds) -> None:
    lines = ((thresholds.converged, "converged above"), (thresholds.failed, "failed below"))
    for y, text in lines:
        fig.add_hline(
            y=y,
            line={"dash": "dash", "color": "#555", "width": 1},
            annotation_text=f"{text} {y:g}",
            annotation_position="top left",
        )


def segment_trace(
    name: str, segments: Sequence[tuple[Any, Any, Any, Any]], texts: Sequence[str] = (), **line
) -> go.Scatter:
    """One trace of separate segments (x0, y0, x1, y1), hover text per segment if given."""
    xs = [v for x0, _, x1, _ in segments for v in (x0, x1, None)]
    ys = [v for _, y0, _, y1 in segments for v in (y0, y1, None)]
    hover = [v for t in texts for v in (t, t, None)] or None
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        name=name,
        line=line,
        hovertext=hover,
        hoverinfo="text" if texts else "skip",
    )


def _param_boundaries(state: ProtocolState, param: Param) -> list[tuple[float, str, Any]]:
    """(axis midpoint, hover text, origin config) of each probe boundary along ``param``."""
    marks = []
    for b in state.boundaries:
        if b.param != param.name or b.outside is None:
            continue
        inside, outside = (param.values[i] for i in (b.inside, b.outside))
        mid = _axis_value(param, (_position(param, inside) + _position(param, outside)) / 2)
        text = (
            f"probe boundary from trial {state.first_number(b.origin)} ({b.side} side): "
            f"{param.label} {value_text(inside)} {b.inside_runs[0]}/{b.inside_runs[1]} runs "
            f"converged, {value_text(outside)} {b.outside_runs[0]}/{b.outside_runs[1]}"
        )
        marks.append((mid, text, b.origin))
    return marks


def slice_figure(
    frame: pd.DataFrame,
    state: ProtocolState,
    param: Param,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> go.Figure:
    """One parameter against connectivity_R2: every seed (a seed without a value as x at 0),
    each trial's minimum, the thresholds and the probe boundaries; running trials at 0."""
    rows = _rows(frame, state.params)
    us = [_position(param, v) for v in rows[column(param)]]
    rows["x"] = _spread(param, us, us)
    seeds = [
        (row, None if missing(v := row[f"seed_{i}_connectivity_R2"]) else float(v))
        for _, row in rows.iterrows()
        for i in _seed_indices(frame)
        if _seed_text(row, i) is not None
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[r["x"] for r, _ in seeds],
            y=[0.0 if v is None else max(v, Y_FLOOR) for _, v in seeds],
            mode="markers",
            name="seed",
            hovertext=[r["hover"] for r, _ in seeds],
            hoverinfo="text",
            marker={
                "color": [CLASS_COLORS[classify(v, thresholds)] for _, v in seeds],
                "symbol": ["x" if v is None else "circle" for _, v in seeds],
                "size": 6,
                "opacity": 0.7,
            },
        )
    )
    running = rows["state"] == "RUNNING"
    for name, part, symbol in (
        ("trial minimum", rows[~running], "diamond"),
        ("running (no value yet)", rows[running], "circle-open"),
    ):
        fig.add_trace(
            go.Scatter(
                x=part["x"],
                y=part["y"],
                mode="markers",
                name=name,
                hoverinfo="text",
                hovertext=part["hover"],
                marker={
                    "color": part["color"],
                    "size": 11,
                    "symbol": symbol,
                    "line": {"color": "black", "width": 1},
                },
            )
        )
    marks = _param_boundaries(state, param)
    segments = [(mid, Y_FLOOR, mid, 1.0) for mid, _, _ in marks]
    texts = [text for _, text, _ in marks]
    fig.add_trace(
        segment_trace("probe boundary", segments, texts, color="#616161", width=3, dash="dot")
    )
    _thresholds(fig, thresholds)
    _legend(fig, running=running.any())
    fig.update_layout(
        title=f"{param.label}: connectivity_R2 of every seed and each trial's minimum",
        xaxis=axis(param),
        yaxis={"title": {"text": f"connectivity_R2 (below {Y_FLOOR:g} drawn at it)"}},
        height=500,
    )
    return fig


def ordered_pairs(params: Sequence[Param]) -> list[tuple[Param, Param]]:
    """Every pair of parameters, lr_W x lr first, then in the parameters' order."""
    pairs = list(itertools.combinations(params, 2))
    return sorted(pairs, key=lambda pair: (pair[0].label, pair[1].label) != ("lr_W", "lr"))


def _estimate_trace(
    rows: pd.DataFrame, x: Param, y: Param, thresholds: Thresholds
) -> go.Contour | None:
    cells: dict[tuple[float, float], list[bool]] = defaultdict(list)
    done = rows[rows["state"].isin(FINISHED_NAMES)]
    for _, row in done.iterrows():
        cell = (_position(x, row[column(x)]), _position(y, row[column(y)]))
        if None not in cell:
            cells[cell] += [classify(v, thresholds) == CONVERGED for v in _run_values(row)]
    if not cells:
        return None
    extents = ((min(_grid(x)), max(_grid(x))), (min(_grid(y)), max(_grid(y))))
    axes, share = share_map(cells, (_step(x), _step(y)), extents)
    return go.Contour(
        x=[_axis_value(x, u) for u in axes[0]],
        y=[_axis_value(y, u) for u in axes[1]],
        z=share,
        name="boundary estimate",
        showlegend=True,
        showscale=False,
        hoverinfo="skip",
        colorscale=[[0, "black"], [1, "black"]],
        contours={"start": HALF, "end": HALF, "size": 1, "coloring": "lines"},
        line={"width": 2, "dash": "dash"},
    )


def pair_figure(
    frame: pd.DataFrame,
    state: ProtocolState,
    x: Param,
    y: Param,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> go.Figure:
    """Every trial placed by two parameters, coloured by class, with the robust configs, the
    probe boundaries and the estimated working-region boundary (explained under the plot)."""
    rows = _rows(frame, state.params)
    us = [(_position(x, a), _position(y, b)) for a, b in zip(rows[column(x)], rows[column(y)])]
    fig = go.Figure()
    estimate = _estimate_trace(rows, x, y, thresholds)
    if estimate is not None:
        fig.add_trace(estimate)
    running = rows["state"] == "RUNNING"
    fig.add_trace(
        go.Scatter(
            x=_spread(x, [u[0] for u in us], us),
            y=[_axis_value(y, u[1]) for u in us],
            mode="markers",
            name="trial (colour: class)",
            hoverinfo="text",
            hovertext=rows["hover"],
            marker={
                "color": rows["color"],
                "size": 10,
                "line": {"color": "white", "width": 1},
                "symbol": ["circle-open" if r else "circle" for r in running],
            },
        )
    )
    fig.add_trace(_robust_trace(state, x, y))
    fig.add_trace(_pair_boundaries(state, x, y))
    _legend(fig, running=running.any())
    fig.add_annotation(
        text=ESTIMATE_NOTE,
        xref="paper",
        yref="paper",
        x=0,
        y=-0.22,
        showarrow=False,
        align="left",
        xanchor="left",
        yanchor="top",
        font={"size": 11},
    )
    fig.update_layout(
        title=f"{x.label} x {y.label}: where training converges "
        f"(connectivity_R2 > {thresholds.converged:g}; a trial is coloured by its worst run)",
        xaxis=axis(x),
        yaxis=axis(y),
        height=650,
        margin={"b": 170},
    )
    return fig


def _robust_trace(state: ProtocolState, x: Param, y: Param) -> go.Scatter:
    robust = state.robust_configs()
    values = [state.values(c) for c in robust]
    texts = [
        f"robust config ({state.evidence[c].converged}/{state.evidence[c].n} runs converged, "
        f"trials {', '.join(str(v.number) for v in state.evidence[c].visits)}): "
        + ", ".join(f"{p.label}={value_text(v[p.name])}" for p in state.params)
        for c, v in zip(robust, values)
    ]
    return go.Scatter(
        x=[_axis_value(x, _position(x, v[x.name])) for v in values],
        y=[_axis_value(y, _position(y, v[y.name])) for v in values],
        mode="markers",
        name="robust config",
        hovertext=texts,
        hoverinfo="text",
        marker={"symbol": "circle-open", "size": 24, "color": "black", "line": {"width": 3}},
    )


def _pair_boundaries(state: ProtocolState, x: Param, y: Param) -> go.Scatter:
    """A bar across each probe boundary along x or y, at the origin's other value."""
    segments, texts = [], []
    for along, other in ((x, y), (y, x)):
        for mid, text, origin in _param_boundaries(state, along):
            u = _position(other, state.values(origin)[other.name])
            lo, hi = (_axis_value(other, u + d * _step(other)) for d in (-0.4, 0.4))
            segments.append((mid, lo, mid, hi) if along is x else (lo, mid, hi, mid))
            texts.append(text)
    return segment_trace("probe boundary", segments, texts, color="#616161", width=4)


def walk_figure(
    frame: pd.DataFrame, state: ProtocolState, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> go.Figure:
    """Trial number against the objective, one marker symbol per role, a line from each trial to
    the one it departs from, and a dotted line where each walk (start or jump) begins."""
    rows = _rows(frame, state.params)
    y_of = dict(zip(rows["number"], rows["y"]))
    links = [
        (int(parent), y_of[int(parent)], number, y_of[number])
        for number, parent in zip(rows["number"], rows["parent"])
        if not missing(parent) and int(parent) in y_of
    ]
    fig = go.Figure(segment_trace("from parent", links, color="#bdbdbd", width=1))
    roles = rows["role"].fillna("no role")
    for role in dict.fromkeys([*ROLE_SYMBOLS, *roles]):
        part = rows[roles == role]
        if part.empty:
            continue
        symbol = ROLE_SYMBOLS.get(role, "circle-x")
        fig.add_trace(
            go.Scatter(
                x=part["number"],
                y=part["y"],
                mode="markers",
                name=role,
                legendgroup="role",
                legendgrouptitle={"text": "role"},
                hoverinfo="text",
                hovertext=part["hover"],
                marker={
                    "color": part["color"],
                    "size": 11,
                    "line": {"color": "black", "width": 1},
                    "symbol": [
                        f"{symbol}-open" if s == "RUNNING" else symbol for s in part["state"]
                    ],
                },
            )
        )
    starts = [(w.first - 0.5, Y_FLOOR, w.first - 0.5, 1.0) for w in state.walks]
    fig.add_trace(segment_trace("walk start", starts, color="#757575", dash="dot", width=1))
    _thresholds(fig, thresholds)
    _legend(fig, running=(rows["state"] == "RUNNING").any())
    fig.update_layout(
        title="The walk: each trial's objective (min connectivity_R2 over seeds; FAIL at 0)",
        xaxis={"title": {"text": "trial number"}},
        yaxis={"title": {"text": f"objective (below {Y_FLOOR:g} drawn at it)"}},
        height=500,
    )
    return fig


def parallel_figure(
    frame: pd.DataFrame, state: ProtocolState, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> go.Figure:
    """Parallel coordinates of the finished trials, coloured by the objective's class bands."""
    rows = _rows(frame, state.params, running=False)
    dims = [
        {
            "label": p.label,
            "values": [_position(p, v) for v in rows[column(p)]],
            "tickvals": _grid(p),
            "ticktext": [value_text(v) for v in p.values],
            "range": [min(_grid(p)), max(_grid(p))],
        }
        for p in state.params
    ]
    dims.append({"label": "objective", "values": rows["y"], "range": [Y_FLOOR, 1.0]})
    lo, hi = thresholds.failed, thresholds.converged
    colors = [CLASS_COLORS[c] for c in (FAILED, PARTIAL, CONVERGED)]
    scale = [
        [0, colors[0]],
        [lo, colors[0]],
        [lo, colors[1]],
        [hi, colors[1]],
        [hi, colors[2]],
        [1, colors[2]],
    ]
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            name="trials",
            line={
                "color": rows["y"].clip(lower=0),
                "colorscale": scale,
                "cmin": 0,
                "cmax": 1,
                "showscale": True,
                "colorbar": {"title": {"text": "objective"}},
            },
        )
    )
    n_running = int((frame["state"] == "RUNNING").sum())
    fig.update_layout(
        title=f"All {len(rows)} finished trials ({n_running} running not shown), "
        "coloured by class; FAIL at 0",
        height=500,
    )
    return fig


def data_figure(
    data: StudyData, state: ProtocolState, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> go.Figure:
    """connectivity_R2 of every run at a config judged inside against its dataset's statistics,
    one subplot per statistic: runs on hard datasets as red x, the others coloured by class; the
    class thresholds, and a threshold that separates the hard datasets, as lines."""
    datasets = {d.data_seed: d for d in data.datasets}
    runs = [
        (config, run)
        for config, ev in state.evidence.items()
        if ev.inside
        for run in ev.runs
        if run.data_seed in datasets
    ]
    fig = make_subplots(rows=1, cols=len(STATS), shared_yaxes=True, subplot_titles=STATS)
    for col, stat in enumerate(STATS, start=1):
        for hard, name in ((False, "run (colour: class)"), (True, "run on a hard dataset")):
            part = [(c, r) for c, r in runs if datasets[r.data_seed].hard == hard]
            fig.add_trace(
                go.Scatter(
                    x=[datasets[r.data_seed].stats[stat] for _, r in part],
                    y=[0.0 if r.value is None else max(r.value, Y_FLOOR) for _, r in part],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    hoverinfo="x+text",
                    hovertext=[_run_hover(state, datasets[r.data_seed], c, r) for c, r in part],
                    marker={
                        "symbol": "x" if hard else "circle",
                        "size": 10 if hard else 7,
                        "color": CLASS_COLORS[FAILED]
                        if hard
                        else [CLASS_COLORS[r.outcome] for _, r in part],
                        "opacity": 0.8,
                    },
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text=stat, row=1, col=col)
    for col, s in enumerate(data.separations, start=1):
        if s.side is not None:
            fig.add_vline(
                x=s.threshold,
                row=1,
                col=col,
                line={"dash": "dot", "color": "#616161"},
                annotation_text=f"hard {s.side} {short_text(s.threshold)}",
            )
    _thresholds(fig, thresholds)
    fig.update_layout(
        title=f"connectivity_R2 of the {len(runs)} runs at configs judged inside, against "
        "their dataset's statistics (x: a hard dataset, failed at every inside config)",
        yaxis={"title": {"text": f"connectivity_R2 (below {Y_FLOOR:g} drawn at it; none at 0)"}},
        height=500,
    )
    return fig


def _run_hover(state: ProtocolState, dataset: Dataset, config: Any, run: Run) -> str:
    """Dataset (hard or not) and its runs at inside configs, the run and its config."""
    values = state.values(config)
    lines = [
        f"{dataset.inside_converged}/{dataset.inside_runs} runs converged at "
        f"{dataset.inside_configs} inside configs",
        f"trial {run.trial}, seed {run.seed}: "
        f"connectivity_R2 {short_text(run.value)} ({run.outcome})",
        ", ".join(f"{p.label}={value_text(values[p.name])}" for p in state.params),
    ]
    body = "<br>".join(escape(line, quote=False) for line in lines)
    hard = " (hard)" if dataset.hard else ""
    return f"<b>dataset {dataset.data_seed}{hard}</b><br>{body}"
