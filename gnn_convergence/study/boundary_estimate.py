"""The pairwise maps' estimated working-region boundary: a Gaussian-kernel average of the
converged share of each grid cell, drawn by :mod:`gnn_convergence.study.maps` as the line
where it is 0.5. The protocol's own boundaries (found by probing) are
:attr:`~gnn_convergence.study.replay.ProtocolState.boundaries`; this estimate decides nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

BANDWIDTH = 1.0  # of the Gaussian kernel, in grid steps
MIN_WEIGHT = math.exp(-2)  # the estimate is blank where no trial is within about 2 bandwidths
MESH = 60  # mesh points along each axis


def converged_share(points: np.ndarray, shares: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """Gaussian-kernel average of the points' converged shares at each mesh point.

    Args:
        points: (n, d) distinct trial positions (grid cells), in grid steps.
        shares: (n,) share of converged trials in each cell, so each cell weighs the same.
        mesh: (m, d) positions to estimate at, in grid steps.

    Returns:
        (m,) estimates, NaN where the kernel weight is below MIN_WEIGHT (no cell near).
    """
    d2 = ((mesh[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)
    weight = np.exp(-0.5 * d2 / BANDWIDTH**2)
    total = weight.sum(axis=1)
    share = weight @ shares / np.maximum(total, 1e-300)
    return np.where(total >= MIN_WEIGHT, share, np.nan)


def share_map(
    cells: Mapping[tuple[float, float], Sequence[bool]],
    steps: tuple[float, float],
    extents: tuple[tuple[float, float], tuple[float, float]],
) -> tuple[list[np.ndarray], np.ndarray]:
    """The estimate on a MESH x MESH mesh over two axes.

    Args:
        cells: Per grid cell (x, y on the axes' scale), whether each of its runs converged.
        steps: The grid step of each axis on its scale.
        extents: (min, max) grid position of each axis; the mesh reaches half a step beyond.

    Returns:
        The mesh positions along x and y, and the (MESH, MESH) estimate (rows: y), rounded to
        3 decimals.
    """
    step = np.array(steps)
    axes = [np.linspace(lo - s / 2, hi + s / 2, MESH) for (lo, hi), s in zip(extents, steps)]
    gx, gy = np.meshgrid(*axes)
    mesh = np.stack([gx.ravel(), gy.ravel()], axis=1)
    points, shares = np.array(list(cells)), np.array([np.mean(c) for c in cells.values()])
    share = converged_share(points / step, shares, mesh / step).reshape(gx.shape).round(3)
    return axes, share
