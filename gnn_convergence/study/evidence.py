"""The evidence of runs: a config's convergence rate, its posterior, and the robust rule.

A config's runs are Bernoulli trials of its per-run convergence rate r. With a flat prior, after
c converged runs out of n the posterior of r is Beta(1 + c, 1 + n - c), and for integer
parameters its tail is a binomial sum: P(r > x) = P(Binomial(n + 1, x) <= c). No SciPy needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ROBUST, NOT_ROBUST, UNDECIDED, PENDING = "robust", "not robust", "undecided", "pending"


def prob_above(converged: int, runs: int, level: float) -> float:
    """P(rate > level) under the Beta(1 + converged, 1 + runs - converged) posterior."""
    if not 0 <= converged <= runs:
        raise ValueError(f"converged={converged} must lie in [0, runs={runs}]")
    n = runs + 1
    return sum(math.comb(n, j) * level**j * (1 - level) ** (n - j) for j in range(converged + 1))


def posterior_mean(converged: int, runs: int) -> float:
    """The posterior mean of the rate, (1 + converged) / (2 + runs)."""
    return (1 + converged) / (2 + runs)


def lower_bound(converged: int, runs: int, mass: float = 0.9) -> float:
    """The rate x with P(rate > x) = mass: a one-sided credible lower bound (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if prob_above(converged, runs, mid) > mass:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class RobustRule:
    """When a config is robust: P(rate > level) >= credibility after at most max_runs runs.

    It is not robust once P(rate > level) <= 1 - credibility, and undecided in between; a
    config still undecided after ``max_runs`` runs is left undecided. With a flat prior, "3 of 3
    runs converged" is P(rate > 0.56) = 0.9.

    Attributes:
        level: The per-run convergence rate a robust config must exceed.
        credibility: The posterior probability that decides.
        max_runs: Validation runs after which a config is no longer validated.
        probe_runs: Runs after which a probe point still undecided about one half is placed
            by its posterior mean.
    """

    level: float = 0.6
    credibility: float = 0.9
    max_runs: int = 12
    probe_runs: int = 6

    def __post_init__(self) -> None:
        checks = (
            ("level", 0.0 < self.level < 1.0, "0 < level < 1"),
            ("credibility", 0.5 < self.credibility < 1.0, "0.5 < credibility < 1"),
            ("max_runs", self.max_runs >= 1, "an integer >= 1"),
            ("probe_runs", self.probe_runs >= 1, "an integer >= 1"),
        )
        for key, ok, allowed in checks:
            if not ok:
                raise ValueError(
                    f"hydra.sweeper.robust.{key}={getattr(self, key)} is invalid: "
                    f"allowed is {allowed}"
                )

    def verdict(self, converged: int, runs: int) -> str:
        """robust, not robust, undecided, or pending (no run yet)."""
        return decide(converged, runs, self.level, self.credibility)


def decide(converged: int, runs: int, level: float, credibility: float) -> str:
    """robust when P(rate > level) >= credibility, not robust when <= 1 - credibility."""
    if runs == 0:
        return PENDING
    p = prob_above(converged, runs, level)
    if p >= credibility:
        return ROBUST
    if p <= 1.0 - credibility:
        return NOT_ROBUST
    return UNDECIDED
