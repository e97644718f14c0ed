"""The evidence of runs: a config's runs, its convergence rate, the robust rule, comparisons.

A config's runs are Bernoulli trials of its per-run convergence rate r. With a flat prior, after
c converged runs out of n the posterior of r is Beta(1 + c, 1 + n - c), and for integer
parameters its tail is a binomial sum: P(r > x) = P(Binomial(n + 1, x) <= c). No SciPy needed.
Two configs are compared run for run on the datasets both were run on (:func:`paired`,
:func:`discordant` with :func:`sign_test`): a dataset that is hard is hard for both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gnn_convergence.outcome import CONVERGED
from gnn_convergence.study.vocabulary import PROBE, RACE, VALIDATE

FRESH_ROLES = (VALIDATE, PROBE, RACE)  # roles whose runs are on datasets no walk chose
TIE = 0.05  # paired mean difference of connectivity_R2 within which two configs are tied
TIE_NINES = 0.5  # ... and of nines, -log10(1 - connectivity_R2): a factor 3 in 1 - R2
NINES_FLOOR = 1e-4  # 1 - connectivity_R2 below this counts as this: 4 nines at most
HALF = 0.5  # the convergence rate at which a boundary lies
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
        probe_runs: Fresh runs after which a probe point still undecided about one half is
            left in the transition band.
        probe_min_runs: Fresh runs a probe point needs before it is judged inside or outside.
        race_candidates: Configs that race for the recommendation at once.
        race_rounds: Race rounds (one trial on the round's common datasets) per candidate.
        race_tie_runs: After complete rounds, the race ends tied once every candidate has at
            least this many common race datasets with the leader and disagrees with it on
            none (0: never; the race then runs all ``race_rounds``).
    """

    level: float = 0.6
    credibility: float = 0.9
    max_runs: int = 12
    probe_runs: int = 12
    probe_min_runs: int = 6
    race_candidates: int = 4
    race_rounds: int = 4
    race_tie_runs: int = 6

    def __post_init__(self) -> None:
        checks = (
            ("level", 0.0 < self.level < 1.0, "0 < level < 1"),
            ("credibility", 0.5 < self.credibility < 1.0, "0.5 < credibility < 1"),
            ("max_runs", self.max_runs >= 1, "an integer >= 1"),
            ("probe_min_runs", self.probe_min_runs >= 1, "an integer >= 1"),
            ("race_candidates", self.race_candidates >= 1, "an integer >= 1"),
            ("race_rounds", self.race_rounds >= 1, "an integer >= 1"),
            ("race_tie_runs", self.race_tie_runs >= 0, "an integer >= 0"),
            (
                "probe_runs",
                self.probe_runs >= self.probe_min_runs,
                f"an integer >= probe_min_runs ({self.probe_min_runs})",
            ),
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

    @property
    def claim(self) -> str:
        """What a robust verdict claims, e.g. ``rate > 0.6 with 90% credibility``."""
        return f"rate > {self.level:g} with {self.credibility:.0%} credibility"


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


def sign_test(wins: int, losses: int) -> float:
    """One-sided exact sign test: P(at least ``losses`` of ``wins + losses`` discordant
    datasets go against a config when both configs are equally good)."""
    n = wins + losses
    return sum(math.comb(n, k) for k in range(losses, n + 1)) / 2**n if n else 1.0


def prob_better(a: tuple[int, int], b: tuple[int, int], points: int = 2000) -> float:
    """P(rate_a > rate_b) for independent Beta posteriors of (converged, runs) pairs."""
    grid = [(i + 0.5) / points for i in range(points)]
    density = [_beta_pdf(x, *a) / points for x in grid]
    above = [prob_above(b[0], b[1], x) for x in grid]  # P(rate_b > x)
    return sum(d * (1.0 - p) for d, p in zip(density, above, strict=True))


def _beta_pdf(x: float, converged: int, runs: int) -> float:
    a, b = 1 + converged, 1 + runs - converged
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    return math.exp(log_norm + (a - 1) * math.log(x) + (b - 1) * math.log1p(-x))


@dataclass(frozen=True)
class Run:
    """One training run of a trial: its role, seeds, connectivity_R2 (None: none) and class."""

    trial: int
    role: str
    seed: int | None
    data_seed: int | None
    value: float | None
    outcome: str

    @property
    def converged(self) -> bool:
        """Whether the run converged."""
        return self.outcome == CONVERGED

    @property
    def fresh(self) -> bool:
        """Whether its dataset was drawn fresh, not chosen by a walk."""
        return self.role in FRESH_ROLES


@dataclass(frozen=True)
class Visit:
    """One decided trial: its role, config, parent, planned datasets and finished runs."""

    number: int
    role: str
    config: tuple[int, ...]
    parent: int | None
    data_seeds: tuple[int, ...] | None
    runs: tuple[Run, ...]
    pending: bool
    round: int | None = None  # a race trial's round of the common validation stream

    @property
    def converged(self) -> int:
        """Converged runs of the trial."""
        return sum(r.converged for r in self.runs)


@dataclass(frozen=True)
class Evidence:
    """A config's trials and what its runs say about its per-run convergence rate.

    Attributes:
        visits: The config's trials, in number order.
        rule: The robust rule the verdict follows.
    """

    visits: tuple[Visit, ...]
    rule: RobustRule

    @property
    def runs(self) -> tuple[Run, ...]:
        """Every finished run."""
        return tuple(r for v in self.visits for r in v.runs)

    @property
    def fresh(self) -> tuple[Run, ...]:
        """Runs on fresh datasets: validation, probe and race runs."""
        return tuple(r for r in self.runs if r.fresh)

    @property
    def sample(self) -> tuple[Run, ...]:
        """The runs its convergence rate is estimated from: its fresh runs once it has any,
        else all its runs. A walk keeps a config because it converged on the walk's panel, so
        the panel's runs overstate the rate of exactly the configs that get validated; fresh
        datasets do not."""
        return self.fresh or self.runs

    @property
    def n(self) -> int:
        """Number of runs the rate is estimated from."""
        return len(self.sample)

    @property
    def converged(self) -> int:
        """Converged runs among them."""
        return sum(r.converged for r in self.sample)

    @property
    def counts(self) -> tuple[int, int]:
        """(converged, runs) of the sample."""
        return self.converged, self.n

    @property
    def pending(self) -> bool:
        """Whether one of its trials is running."""
        return any(v.pending for v in self.visits)

    @property
    def validated(self) -> bool:
        """Whether it has runs on fresh datasets."""
        return bool(self.fresh)

    @property
    def unstable(self) -> bool:
        """Converged and non-converged runs both seen: a note, never a verdict."""
        return 0 < sum(r.converged for r in self.runs) < len(self.runs)

    @property
    def mean(self) -> float:
        """Posterior mean of the convergence rate."""
        return posterior_mean(self.converged, self.n)

    @property
    def lower(self) -> float:
        """Lower credible bound of the convergence rate, at the rule's credibility."""
        return lower_bound(self.converged, self.n, self.rule.credibility)

    @property
    def verdict(self) -> str:
        """robust (only on fresh runs), not robust, undecided or pending."""
        verdict = self.rule.verdict(self.converged, self.n)
        return UNDECIDED if verdict == ROBUST and not self.validated else verdict

    @property
    def inside(self) -> bool:
        """Judged inside the working region: robust, or P(rate > 1/2) >= credibility on
        fresh runs."""
        return self.validated and (
            self.verdict == ROBUST or self.above(HALF) >= self.rule.credibility
        )

    def above(self, level: float) -> float:
        """P(rate > level)."""
        return prob_above(self.converged, self.n, level)

    def by_data(self, runs: Sequence[Run] | None = None) -> dict[int | None, list[Run]]:
        """Finished runs (all by default) grouped by dataset."""
        out: dict[int | None, list[Run]] = {}
        for run in self.runs if runs is None else runs:
            out.setdefault(run.data_seed, []).append(run)
        return out


def paired(a: Evidence, b: Evidence) -> tuple[float, float, float] | None:
    """(converged difference, mean connectivity_R2 difference, mean nines difference) of a over
    b on their shared datasets, per dataset averaged over its runs; on all runs when they share
    none. None when either has no finished run."""
    runs_a, runs_b = a.by_data(), b.by_data()
    if not runs_a or not runs_b:
        return None
    shared = [d for d in runs_a if d in runs_b and d is not None]
    if shared:
        pairs = [(runs_a[d], runs_b[d]) for d in shared]
    else:
        pairs = [(list(a.runs), list(b.runs))]
    conv = sum(_share(ra) - _share(rb) for ra, rb in pairs)
    mean = sum(_mean(ra) - _mean(rb) for ra, rb in pairs) / len(pairs)
    nines = sum(_nines(ra) - _nines(rb) for ra, rb in pairs) / len(pairs)
    return conv, mean, nines


def better(a: Evidence, b: Evidence) -> bool:
    """Whether a beats b: more converged on shared data, else a paired mean higher by TIE in
    connectivity_R2 or by TIE_NINES in nines (near 1, where R2 differences are small but a
    third of the error is more room on fresh data), and lower by neither."""
    diff = paired(a, b)
    if diff is None:
        return False
    conv, mean, nines = diff
    if abs(conv) > 1e-9:
        return conv > 0
    ahead = mean >= TIE or nines >= TIE_NINES
    behind = mean <= -TIE or nines <= -TIE_NINES
    return ahead and not behind


def tied(a: Evidence, b: Evidence) -> bool:
    """Whether the paired comparison cannot tell a from b."""
    diff = paired(a, b)
    return (
        diff is not None
        and abs(diff[0]) <= 1e-9
        and abs(diff[1]) < TIE
        and abs(diff[2]) < TIE_NINES
    )


def discordant(a: Sequence[Run], b: Sequence[Run]) -> tuple[int, int]:
    """(datasets where only a converged, datasets where only b converged), over the datasets
    both were run on; a dataset's runs count as converged when most of them converged."""
    conv_a, conv_b = _converged_by_data(a), _converged_by_data(b)
    shared = [d for d in conv_a if d in conv_b]
    return (
        sum(conv_a[d] and not conv_b[d] for d in shared),
        sum(conv_b[d] and not conv_a[d] for d in shared),
    )


def _converged_by_data(runs: Sequence[Run]) -> dict[int, bool]:
    groups: dict[int, list[Run]] = {}
    for run in runs:
        if run.data_seed is not None:
            groups.setdefault(run.data_seed, []).append(run)
    return {d: _share(rs) > 0.5 for d, rs in groups.items()}


def _share(runs: Sequence[Run]) -> float:
    return sum(r.converged for r in runs) / len(runs)


def _mean(runs: Sequence[Run]) -> float:
    return sum(r.value or 0.0 for r in runs) / len(runs)


def _nines(runs: Sequence[Run]) -> float:
    return sum(-math.log10(max(1.0 - (r.value or 0.0), NINES_FLOOR)) for r in runs) / len(runs)
