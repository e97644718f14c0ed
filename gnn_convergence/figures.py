"""Plotly figures, arrays in and `go.Figure` out; nothing here computes a metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

CLASS_COLORS = {"converged": "#2ca02c", "partial": "#ff7f0e", "failed": "#d62728"}


def run_figure(
    *,
    seeds: Sequence[dict[str, Any]],
    true_w: np.ndarray,
    learned_w: np.ndarray,
    u: np.ndarray,
    psi: np.ndarray,
    phi: np.ndarray,
    true_psi: np.ndarray,
    true_phi: np.ndarray,
) -> go.Figure:
    """Row 1: learned vs true W per seed; row 2: scaled psi* and phi* against the truth.

    true_w, learned_w: (K, N, N); u: (G,); psi, phi: (K, G); true_psi, true_phi: (G,).
    """
    k = len(seeds)
    titles = [f"seed {s['seed']}: R2={s['connectivity_R2']:.3f} ({s['class']})" for s in seeds]
    fig = make_subplots(
        rows=2, cols=max(k, 2), subplot_titles=titles + ["", ""], vertical_spacing=0.15
    )
    for i, record in enumerate(seeds):
        off_diag = ~np.eye(true_w.shape[1], dtype=bool)
        fig.add_trace(
            go.Scattergl(
                x=true_w[i][off_diag],
                y=learned_w[i][off_diag],
                mode="markers",
                marker={"size": 3, "color": CLASS_COLORS[record["class"]], "opacity": 0.5},
                name=f"W seed {record['seed']}",
                showlegend=False,
            ),
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(title_text="true W", row=1, col=i + 1)
        fig.update_yaxes(title_text="learned W", row=1, col=i + 1)
        fig.add_trace(
            go.Scatter(x=u, y=psi[i], name=f"alpha psi*/g, seed {record['seed']}"), row=2, col=1
        )
        fig.add_trace(go.Scatter(x=u, y=phi[i], name=f"phi*, seed {record['seed']}"), row=2, col=2)
    truth = {"color": "black", "dash": "dash"}
    fig.add_trace(go.Scatter(x=u, y=true_psi, name="true tanh((u-h)/w)", line=truth), row=2, col=1)
    fig.add_trace(
        go.Scatter(x=u, y=true_phi, name="true -a u + b + s tanh(u)", line=truth), row=2, col=2
    )
    fig.update_xaxes(title_text="u", row=2, col=1)
    fig.update_xaxes(title_text="u", row=2, col=2)
    fig.update_yaxes(title_text="psi* scaled by the W fit slope / g", row=2, col=1)
    fig.update_yaxes(title_text="phi*", row=2, col=2)
    fig.update_layout(height=800, width=max(k, 2) * 380, title="Connectivity recovery")
    return fig
