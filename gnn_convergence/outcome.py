"""Convergence classes of a seed, a run and a trial (thresholds of the study protocol)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

CONVERGED = "converged"
PARTIAL = "partial"
FAILED = "failed"
T = TypeVar("T")


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


def worst(seeds: Sequence[T], value: Callable[[T], float | None]) -> T:
    """The seed with the lowest ``value`` (its connectivity_R2: the one the objective comes
    from); a seed without a finite value (diverged, missing) counts as the lowest, the first
    of equal ones wins."""
    return min(seeds, key=lambda s: _or_lowest(value(s)))


def _or_lowest(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf
