"""Convergence classes of a seed, a run and a trial (thresholds of the study protocol)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

CONVERGED = "converged"
PARTIAL = "partial"
FAILED = "failed"


@dataclass(frozen=True)
class Thresholds:
    """connectivity_R2 above `converged` is converged, below `failed` is failed."""

    converged: float = 0.9
    failed: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.failed < self.converged <= 1.0:
            raise ValueError(
                f"thresholds must satisfy 0 <= failed < converged <= 1, "
                f"got failed={self.failed}, converged={self.converged}"
            )


def classify(value: float | None, thresholds: Thresholds = Thresholds()) -> str:
    """Class of one connectivity_R2; a missing or non-finite value is failed."""
    if value is None or not math.isfinite(value):
        return FAILED
    if value > thresholds.converged:
        return CONVERGED
    if value < thresholds.failed:
        return FAILED
    return PARTIAL


def run_value(values: Iterable[float]) -> float:
    """The run's objective: the minimum over its seeds, NaN if any seed has no finite value."""
    values = list(values)
    if not values or any(not math.isfinite(v) for v in values):
        return math.nan
    return min(values)
