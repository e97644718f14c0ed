"""Plotly figures, arrays in and `go.Figure` out; nothing here computes a metric."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.offline import get_plotlyjs, get_plotlyjs_version
from plotly.subplots import make_subplots

from gnn_convergence.files import write_atomic
from gnn_convergence.outcome import CONVERGED, FAILED, PARTIAL
from gnn_convergence.results import Recovery, SeedResult, TrainingCurve

PLOTLY_JS = "plotly.min.js"

CLASS_COLORS = {CONVERGED: "#2ca02c", PARTIAL: "#ff7f0e", FAILED: "#d62728"}
SEED_COLORS = qualitative.Plotly  # one color per seed in the curve panels


def run_figure(
    seeds: Sequence[SeedResult], recovery: Recovery, curve: TrainingCurve | None = None
) -> go.Figure:
    """Row 1: learned vs true W per seed; row 2: scaled psi* and phi* against the truth;
    row 3 (with a curve): loss/N and connectivity_R2 per seed against the training step."""
    k, r = len(seeds), recovery
    cols = max(k, 2)
    titles = [f"seed {s.seed}: R2={s.connectivity_R2:.3f} ({s.class_})" for s in seeds]
    titles += [""] * (cols - k) + ["psi*", "phi*"] + [""] * (cols - 2)
    if curve is not None:
        titles += ["training loss/N", "training connectivity_R2"]
    fig = make_subplots(
        rows=3 if curve is not None else 2,
        cols=cols,
        subplot_titles=titles,
        vertical_spacing=0.1,
    )
    off_diag = ~np.eye(r.true_w.shape[1], dtype=bool)
    for i, record in enumerate(seeds):
        color = SEED_COLORS[i % len(SEED_COLORS)]
        fig.add_trace(
            go.Scattergl(
                x=r.true_w[i][off_diag],
                y=r.learned_w[i][off_diag],
                mode="markers",
                marker={"size": 3, "color": CLASS_COLORS[record.class_], "opacity": 0.5},
                name=f"W seed {record.seed}",
                showlegend=False,
            ),
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(title_text="true W", row=1, col=i + 1)
        fig.update_yaxes(title_text="learned W", row=1, col=i + 1)
        line = {"color": color}
        fig.add_trace(
            go.Scatter(x=r.u, y=r.psi[i], name=f"alpha psi*/g, seed {record.seed}", line=line),
            row=2,
            col=1,
        )
        fig.add_trace(
            go.Scatter(x=r.u, y=r.phi[i], name=f"phi*, seed {record.seed}", line=line),
            row=2,
            col=2,
        )
        if curve is not None:
            panels = (("loss/N", curve.loss_per_n), ("connectivity_R2", curve.connectivity_R2))
            for col, (name, values) in enumerate(panels, start=1):
                fig.add_trace(
                    go.Scatter(
                        x=curve.step, y=values[i], name=f"{name} seed {record.seed}", line=line
                    ),
                    row=3,
                    col=col,
                )
    truth = {"color": "black", "dash": "dash"}
    fig.add_trace(
        go.Scatter(x=r.u, y=r.true_psi, name="true tanh((u-h)/w)", line=truth), row=2, col=1
    )
    fig.add_trace(
        go.Scatter(x=r.u, y=r.true_phi, name="true -a u + b + s tanh(u)", line=truth),
        row=2,
        col=2,
    )
    fig.update_xaxes(title_text="u", row=2, col=1)
    fig.update_xaxes(title_text="u", row=2, col=2)
    fig.update_yaxes(title_text="psi* scaled by the W fit slope / g", row=2, col=1)
    fig.update_yaxes(title_text="phi*", row=2, col=2)
    height = 800
    if curve is not None:
        fig.update_xaxes(title_text="step", row=3, col=1)
        fig.update_xaxes(title_text="step", row=3, col=2)
        fig.update_yaxes(title_text="loss/N", type="log", row=3, col=1)
        fig.update_yaxes(title_text="connectivity_R2", row=3, col=2)
        height = 1200
    fig.update_layout(height=height, width=cols * 380, title="Connectivity recovery")
    return fig


def write_plotlyjs(folder: str | Path) -> Path:
    """Write the installed plotly's plotly.min.js into `folder` unless a file of that version
    is already there, and return its path. Pages in and below the folder load it with a
    relative <script src>, so they open offline without inlining 4.6 MB each."""
    path = Path(folder) / PLOTLY_JS
    header = f"plotly.js v{get_plotlyjs_version()}\n"
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as f:
            if header in f.read(200):
                return path
    write_atomic(path, get_plotlyjs())
    return path
