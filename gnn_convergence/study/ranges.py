"""Each study's operating range per parameter, read from its boundary bands, and the figure
that puts several studies' ranges on shared axes.

Seen from the recommended config along one parameter, a grid value is **inside** (from the
recommended value out to each band's last inside point), **transition** (left undecided at the
probe's full runs) or **outside** (the first point judged outside); values beyond, and sides not
probed yet, are not judged. The colours are the study pages' class colours: inside as converged,
transition as partial, outside as failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import plotly.graph_objects as go
from optuna.distributions import CategoricalDistribution, FloatDistribution
from plotly.subplots import make_subplots

from gnn_convergence.figures import CLASS_COLORS
from gnn_convergence.outcome import CONVERGED, FAILED, PARTIAL
from gnn_convergence.study import maps
from gnn_convergence.study.answer import INSIDE, OUTSIDE, TRANSITION, Band
from gnn_convergence.study.replay import Config, ProtocolState
from gnn_convergence.study.space import Param, value_text

KIND_COLORS = {
    INSIDE: CLASS_COLORS[CONVERGED],
    TRANSITION: CLASS_COLORS[PARTIAL],
    OUTSIDE: CLASS_COLORS[FAILED],
}
GRID_COLOR = "#d0d0d0"
RECOMMENDED = "recommended"


@dataclass(frozen=True)
class Point:
    """A judged grid value: its index in the study's grid, its kind, (converged, runs)."""

    index: int
    kind: str
    runs: tuple[int, int] | None


@dataclass(frozen=True)
class Range:
    """One parameter's operating range around the recommended config.

    Attributes:
        param: The study's own parameter (its grid).
        recommended: Index of the recommended value.
        points: Judged values in grid order (the recommended one among the inside points).
        low, high: The band on each side; None while that side is not probed yet.
    """

    param: Param
    recommended: int
    points: tuple[Point, ...]
    low: Band | None
    high: Band | None


def operating_range(state: ProtocolState, p: int) -> Range | None:
    """The range of parameter ``p`` around the recommended config; None without one."""
    origin = state.answer.recommended
    if origin is None:
        return None
    param = state.params[p]
    bands = {b.side: b for b in state.answer.bands if b.param == param.name}
    low, high = bands.get("low"), bands.get("high")
    first = low.inside if low is not None else origin[p]
    last = high.inside if high is not None else origin[p]
    kinds = {i: INSIDE for i in range(first, last + 1)}
    for band in (low, high):
        if band is not None:
            kinds.update({i: TRANSITION for i in band.transition})
            if band.outside is not None:
                kinds[band.outside] = OUTSIDE
    points = tuple(Point(i, kind, _runs(state, origin, p, i)) for i, kind in sorted(kinds.items()))
    return Range(param, origin[p], points, low, high)


def _runs(state: ProtocolState, origin: Config, p: int, index: int) -> tuple[int, int] | None:
    """(converged, runs) the point was judged on: all the recommended config's runs that its
    rate rests on, the fresh runs elsewhere."""
    config = origin[:p] + (index,) + origin[p + 1 :]
    ev = state.evidence.get(config)
    if ev is None:
        return None
    if config == origin:
        return ev.converged, ev.n
    return sum(r.converged for r in ev.fresh), len(ev.fresh)


def range_text(r: Range | None) -> str:
    """``inside 0.0005..0.002; low: outside 0.0002; high: transition 0.005, grid end``."""
    if r is None:
        return "no recommended config"
    inside = [p.index for p in r.points if p.kind == INSIDE]
    values = [value_text(r.param.values[i]) for i in (min(inside), max(inside))]
    text = "inside " + (values[0] if values[0] == values[1] else "..".join(values))
    return f"{text}; low: {_side_text(r.param, r.low)}; high: {_side_text(r.param, r.high)}"


def _side_text(param: Param, band: Band | None) -> str:
    if band is None:
        return "not probed yet"
    if not band.in_range:
        return "no boundary in range"
    values = [value_text(param.values[i]) for i in band.transition]
    parts = [f"transition {', '.join(values)}"] if values else []
    if band.outside is None:
        return ", ".join([*parts, "grid end"])
    return ", ".join([*parts, f"outside {value_text(param.values[band.outside])}"])


def union_param(params: Sequence[Param]) -> Param:
    """One parameter whose grid is the union of the studies' grids of the same key: numbers
    sorted (equal within 1e-9 relative), choice items in first-seen order; log where every
    study's grid is."""
    first = params[0]
    values: list = []
    for param in params:
        for v in param.values:
            if not any(_same(v, u) for u in values):
                values.append(v)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        values.sort()
    if any(p.is_choice for p in params) or not numeric:
        distribution = CategoricalDistribution(values)
    else:
        distribution = FloatDistribution(float(values[0]), float(values[-1]))
    return Param(first.name, tuple(values), all(p.log for p in params), distribution)


def _same(a, b) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return math.isclose(a, b, rel_tol=1e-9) if numbers else repr(a) == repr(b)


def ranges_figure(
    labels: Sequence[str], states: Sequence[ProtocolState], axes: Sequence[Param]
) -> go.Figure:
    """One subplot row per parameter on its shared axis (``axes``: the union grids, in the
    first study's order), one marker row per study: its grid values, the inside, transition
    and outside values around its recommended config, and the recommended value."""
    fig = make_subplots(rows=len(axes), cols=1, vertical_spacing=0.5 / len(axes))
    for row, axis in enumerate(axes, start=1):
        traces = _row_traces(labels, states, axis)
        for trace in traces:
            trace.showlegend = row == 1
            fig.add_trace(trace, row=row, col=1)
        fig.update_xaxes(**maps.axis(axis), row=row, col=1)
        fig.update_yaxes(
            type="category", categoryorder="array", categoryarray=list(reversed(labels)),
            range=[-0.5, len(labels) - 0.5], row=row, col=1,
        )  # fmt: skip
    fig.update_layout(
        title="Operating range of each parameter around each study's recommended config "
        "(shared axes: the union of the studies' grids)",
        height=120 + len(axes) * (90 + 35 * len(labels)),
        legend={"orientation": "h", "y": -0.04, "yanchor": "top"},
    )
    return fig


def _row_traces(
    labels: Sequence[str], states: Sequence[ProtocolState], axis: Param
) -> list[go.Scatter]:
    marks: dict[str, tuple[list, list, list]] = {
        k: ([], [], []) for k in ("grid value", INSIDE, TRANSITION, OUTSIDE, RECOMMENDED)
    }

    def mark(kind: str, label: str, value, text: str) -> None:
        xs, ys, texts = marks[kind]
        xs.append(maps.place(axis, value))
        ys.append(label)
        texts.append(f"<b>{escape(label)}</b><br>{escape(axis.label)}={value_text(value)}: {text}")

    for label, state in zip(labels, states, strict=True):
        p = next(i for i, q in enumerate(state.params) if q.name == axis.name)
        param, r = state.params[p], operating_range(state, p)
        judged = {pt.index for pt in r.points} if r is not None else set()
        for i, value in enumerate(param.values):
            if i not in judged:
                mark("grid value", label, value, "a grid value of this study, not judged")
        if r is None:
            continue
        for pt in r.points:
            runs = "" if pt.runs is None else f" ({pt.runs[0]}/{pt.runs[1]} runs converged)"
            mark(pt.kind, label, param.values[pt.index], pt.kind + runs)
        mark(RECOMMENDED, label, param.values[r.recommended], "the recommended value")
    styles = {
        "grid value": {"color": GRID_COLOR, "size": 7},
        **{k: {"color": c, "size": 12} for k, c in KIND_COLORS.items()},
        RECOMMENDED: {"color": "black", "size": 20, "symbol": "diamond-open",
                      "line": {"width": 2}},
    }  # fmt: skip
    return [
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            name=kind,
            legendgroup=kind,
            hovertext=texts,
            hoverinfo="text",
            marker=styles[kind],
        )
        for kind, (xs, ys, texts) in marks.items()
    ]
