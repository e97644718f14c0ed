"""What a study told its user, scored against the world's true rates.

- recommended: the recommended config's TRUE rate; "none" when there is no recommendation.
- robust labels: the configs labelled robust at the end; false when the true rate is below the
  rule's level.
- boundaries: along one parameter from a config, the true crossing is the first grid point
  (stepping away from it) whose true rate is below 0.5. A reported crossing (a band with an
  outside point or transition points) is right when the true crossing lies after its last
  inside point and at or before its first outside point (the grid's end when it has none),
  else wrong (also when there is no true crossing). missed: rays from the recommended config
  with a true crossing and no crossing reported on them (a ray unfinished or reported as "no
  boundary in range").
- 2nd: share of studies with a robust label or the recommendation in the hypothetical second
  region (its configs of rate >= 0.5; none in the measured scenario).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sampler_studies import Claim
from sampler_world import PARAMS, SIZES, Config, Model, shifted

HALF = 0.5


@dataclass
class Told:
    """What one study told: the recommendation, robust labels, boundary claims, runs used."""

    recommended: Config | None
    robust: list[Config]
    claims: list[Claim]
    runs: int


def true_crossing(model: Model, origin: Config, p: int, step: int) -> int | None:
    """The first index from ``origin`` along p (origin included) with true rate < 0.5."""
    index = origin[p]
    while 0 <= index < SIZES[p]:
        if model.rate(shifted(origin, p, index)) < HALF:
            return index
        index += step
    return None


def claim_right(model: Model, claim: Claim) -> bool:
    truth = true_crossing(model, claim.origin, claim.p, claim.step)
    if truth is None:
        return False
    end = (
        claim.outside
        if claim.outside is not None
        else (SIZES[claim.p] - 1 if claim.step > 0 else 0)
    )
    return claim.step * (truth - claim.inside) > 0 and claim.step * (end - truth) >= 0


def missed(model: Model, told: Told) -> int:
    if told.recommended is None:
        return 0
    reported = {(c.p, c.step) for c in told.claims if c.origin == told.recommended and c.in_range}
    return sum(
        true_crossing(model, told.recommended, p, step) is not None and (p, step) not in reported
        for p in range(len(PARAMS))
        for step in (-1, 1)
    )


@dataclass
class Score:
    """Scores of one sampler on one scenario, over benchmark seeds."""

    level: float
    region2: frozenset = frozenset()
    rec_rates: list[float] = field(default_factory=list)  # true rate, per study with one
    none: int = 0
    labels: int = 0
    false_labels: int = 0
    right: int = 0
    wrong: int = 0
    missed: int = 0
    runs: list[int] = field(default_factory=list)
    second: int = 0

    def add(self, model: Model, told: Told) -> None:
        if told.recommended is None:
            self.none += 1
        else:
            self.rec_rates.append(model.rate(told.recommended))
        self.labels += len(told.robust)
        self.false_labels += sum(model.rate(c) < self.level for c in told.robust)
        crossings = [c for c in told.claims if c.in_range]
        ok = sum(claim_right(model, c) for c in crossings)
        self.right, self.wrong = self.right + ok, self.wrong + len(crossings) - ok
        self.missed += missed(model, told)
        self.runs.append(told.runs)
        self.second += bool(self.region2 & {told.recommended, *told.robust})

    @property
    def studies(self) -> int:
        return len(self.runs)

    @property
    def mean_rate(self) -> float:
        """Mean true rate of the recommendation, a study without one counting 0."""
        return sum(self.rec_rates) / self.studies

    @property
    def false_share(self) -> float:
        return self.false_labels / self.labels if self.labels else 0.0

    @property
    def right_share(self) -> float:
        return self.right / (self.right + self.wrong) if self.right + self.wrong else 1.0

    def cells(self) -> list[str]:
        rates = np.array(self.rec_rates)
        n = self.studies
        return [
            f"{np.median(rates):.2f}" if len(rates) else "-",
            f"{np.mean(rates < 0.9):.0%}" if len(rates) else "-",
            f"{self.mean_rate:.2f}",
            f"{self.none / n:.0%}",
            f"{self.labels / n:.2f}",
            f"{self.false_share:.0%}" if self.labels else "-",
            f"{self.right / n:.2f}",
            f"{self.wrong / n:.2f}",
            f"{self.missed / n:.2f}",
            f"{self.right_share:.0%}" if self.right + self.wrong else "-",
            f"{np.mean(self.runs):.0f}",
            f"{self.second / n:.0%}",
        ]


HEADS = (
    "rec med",
    "<0.9",
    "mean",
    "none",
    "robust",
    "false",
    "right",
    "wrong",
    "missed",
    "right%",
    "runs",
)
