"""The posterior of a config's convergence rate and the robust rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gnn_convergence.outcome import CONVERGED
from gnn_convergence.study.evidence import (
    NOT_ROBUST,
    PENDING,
    ROBUST,
    UNDECIDED,
    Evidence,
    RobustRule,
    Run,
    Visit,
    better,
    lower_bound,
    posterior_mean,
    prob_above,
    tied,
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


def evidence_of(values: list[float]) -> Evidence:
    """A config's evidence: one walk trial with one run per dataset 0, 1, 2..."""
    runs = tuple(
        Run(0, "move", i, i, v, CONVERGED if v >= 0.9 else "partial") for i, v in enumerate(values)
    )
    return Evidence((Visit(0, "move", (0,), None, None, runs, False),), RobustRule())


def test_near_one_a_config_with_a_third_of_the_error_beats_its_parent() -> None:
    """Measured on the Dale problem's panel (lr_W 2e-3 and 5e-3 at batch 8): both converge and
    connectivity_R2 differs by 0.043, within TIE, but 1 - R2 is 50 times smaller."""
    edge, inner = evidence_of([0.9697, 0.9418, 0.9573]), evidence_of([0.9994, 0.9991, 0.9995])
    assert better(inner, edge) and not better(edge, inner) and not tied(inner, edge)


def test_configs_within_a_factor_three_of_error_near_one_are_tied() -> None:
    """Measured on the default problem's panel (lr_W 2e-3 and 5e-3): 0.38 decades apart."""
    a, b = evidence_of([0.9175, 1.0, 1.0]), evidence_of([0.9949, 0.9999, 0.9999])
    assert tied(a, b) and not better(a, b) and not better(b, a)


def test_far_from_one_the_connectivity_R2_difference_decides() -> None:
    low, high = evidence_of([0.3, 0.35, 0.4]), evidence_of([0.4, 0.45, 0.5])
    assert better(high, low) and not better(low, high)
