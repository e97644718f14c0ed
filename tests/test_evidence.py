"""The posterior of a config's convergence rate and the robust rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gnn_convergence.study.evidence import (
    NOT_ROBUST,
    PENDING,
    ROBUST,
    UNDECIDED,
    RobustRule,
    lower_bound,
    posterior_mean,
    prob_above,
)


def beta_tail(converged: int, runs: int, level: float) -> float:
    """P(rate > level) under Beta(1 + c, 1 + n - c), by numerical integration."""
    a, b = 1 + converged, 1 + runs - converged
    x = np.linspace(level, 1.0, 200_001)
    pdf = (
        x ** (a - 1)
        * (1 - x) ** (b - 1)
        / math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    )
    return float(np.trapezoid(pdf, x))


@pytest.mark.parametrize(("converged", "runs"), [(0, 0), (3, 3), (5, 6), (2, 9), (11, 12)])
@pytest.mark.parametrize("level", [0.3, 0.56, 0.7])
def test_the_binomial_sum_is_the_beta_tail(converged: int, runs: int, level: float) -> None:
    assert prob_above(converged, runs, level) == pytest.approx(
        beta_tail(converged, runs, level), abs=1e-6
    )


def test_three_of_three_with_a_flat_prior_is_the_old_rule() -> None:
    assert prob_above(3, 3, 0.56) == pytest.approx(1 - 0.56**4)
    assert prob_above(3, 3, 0.56) == pytest.approx(0.9, abs=0.002)


def test_the_lower_bound_inverts_the_tail() -> None:
    for converged, runs in [(0, 3), (3, 3), (5, 6), (9, 12)]:
        x = lower_bound(converged, runs, 0.9)
        assert prob_above(converged, runs, x) == pytest.approx(0.9, abs=1e-6)
        assert 0 < x < posterior_mean(converged, runs)


def test_the_rule_decides_both_ways_and_waits_in_between() -> None:
    rule = RobustRule(level=0.6, credibility=0.9)
    assert rule.verdict(0, 0) == PENDING
    assert rule.verdict(6, 6) == ROBUST
    assert rule.verdict(3, 3) == UNDECIDED
    assert rule.verdict(5, 6) == UNDECIDED
    assert rule.verdict(3, 9) == NOT_ROBUST
    assert rule.verdict(0, 3) == NOT_ROBUST


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"level": 1.0}, "hydra.sweeper.robust.level=1.0 is invalid: allowed is 0 < level < 1"),
        ({"credibility": 0.4}, "robust.credibility=0.4 is invalid"),
        ({"max_runs": 0}, "robust.max_runs=0 is invalid: allowed is an integer >= 1"),
        ({"probe_runs": 0}, "robust.probe_runs=0 is invalid"),
        ({"race_tie_runs": -1}, "robust.race_tie_runs=-1 is invalid: allowed is an integer >= 0"),
    ],
)
def test_bad_rules_name_the_key_and_the_range(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RobustRule(**kwargs)
