"""Metrics against hand-checkable cases (docs/model.md, "Metrics")."""

from __future__ import annotations

import math

import torch

from gnn_convergence import metrics
from gnn_convergence.outcome import Thresholds, classify, run_value


def test_connectivity_r2_affine_copy_is_one_independent_is_zero():
    gen = torch.Generator().manual_seed(0)
    true = torch.randn(1, 100, 100, generator=gen)
    affine = 3.0 * true - 0.2
    independent = torch.randn(1, 100, 100, generator=gen)
    r2 = metrics.connectivity_r2(torch.cat([affine, independent]), true.expand(2, -1, -1))
    assert r2[0].item() > 1 - 1e-9
    assert abs(r2[1].item()) < 0.005
    noisy = true + 0.5 * torch.randn(1, 100, 100, generator=gen)
    assert abs(metrics.connectivity_r2(noisy, true).item() - 0.8) < 0.02


def test_connectivity_r2_of_non_finite_weights_is_nan():
    true = torch.randn(1, 10, 10)
    learned = true.clone()
    learned[0, 1, 2] = math.nan
    assert math.isnan(metrics.connectivity_r2(learned, true).item())


def test_rollout_is_euler():
    def decay(u):
        return -u

    out = metrics.rollout(decay, torch.ones(1, 3), n_frames=4, dt=0.1)
    expected = torch.tensor([1.0, 0.9, 0.81, 0.729])
    torch.testing.assert_close(out[0, :, 0], expected)


def test_test_r2_and_pearson():
    gen = torch.Generator().manual_seed(1)
    true = torch.cumsum(torch.randn(1, 100, 20, generator=gen), dim=1)
    assert metrics.test_r2(true, true).item() > 0.999
    assert metrics.test_r2(2 * true + 1, true).item() > 0.999
    assert metrics.test_r2(torch.zeros_like(true), true).item() == 0.0
    exploded = true.clone()
    exploded[:, 50:] = 1e12
    assert metrics.test_r2(exploded, true).item() < 0.55
    assert metrics.test_pearson(true, true).item() > 0.999
    assert metrics.test_pearson(torch.zeros_like(true), true).item() == 0.0
    assert metrics.test_pearson(-true, true).item() < -0.999


def test_classes_and_run_value():
    t = Thresholds()
    assert [classify(v, t) for v in (0.95, 0.5, 0.05, math.nan, None)] == [
        "converged",
        "partial",
        "failed",
        "failed",
        "failed",
    ]
    assert classify(0.9) == "partial" and classify(0.1) == "partial"
    assert run_value([0.95, 0.4, 0.99]) == 0.4
    assert math.isnan(run_value([0.95, math.nan]))
