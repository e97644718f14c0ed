"""ProtocolSampler (new and old) against TPE and random search on a per-run model of the problem.

Usage::

    python benchmarks/sampler_benchmark.py [--seeds 100] [--budget 60] [--noise low high]
        [--only new old tpe random] [--long 300]

No training: every run's connectivity_R2 comes from the world model below, over the study's
default grid (``SEED_SPACE``: lr_W 1e-4..1e-2 in 7 values, lr 1e-4..1e-3 in 4, coeff_W_L1 0
and 1e-6..1e-4 in 8, batch_size 1, 4, 8, 16; 896 configs), start ``SEED_START`` (lr_W 1e-3,
lr 5e-4, coeff_W_L1 5e-6, batch 8).

World model (per run). A config c has a latent quality q(c) = max(q1(c), q2(c)):

- q1, the working band: Q_MAX = 1.645 at lr_W 5e-3, lr 2e-4, coeff_W_L1 1e-6..5e-6, batch 8,
  minus a penalty per parameter: lr_W 2e-3 0.5, 1e-3 2.5 and 2.0 more per step below, 1e-2 1.0;
  lr 1e-4 or 5e-4 0.7, 1e-3 2.2; coeff_W_L1 0 0.6 and 1.2 per step above 1e-5 at lr_W <= 2e-3,
  above 5e-6 at 5e-3, above 2e-6 at 1e-2 (each step of lr_W up is less tolerant of a large L1);
  batch 4 0.3, 16 0.8, 1 0.6 per lr_W step above 5e-4 (at least 0.6; again less tolerant as
  lr_W grows).
- q2, a second, smaller and distant working region: Q2 = 1.1 at lr_W 2e-4, lr 1e-3, coeff_W_L1
  <= 2e-6, batch 4, minus 1.2 per lr_W step, 1.5 / 4 / 6 for lr 5e-4 / 2e-4 / 1e-4, 0.8 per L1
  step above 2e-6, batch 1 0.4, 8 1.0, 16 2.0. Its configs with rate >= 0.5 are REGION2 (10).
- A run of c on dataset (simulation seed) d with training seed s converges when
  q(c) - s_d * h(d) - s_e * e > 0. The dataset difficulty h(d) ~ N(0, 1) is drawn from
  (benchmark seed, d) alone, so a hard dataset is hard for every config; e ~ N(0, 1) is drawn
  per (benchmark seed, config, d, s). Most variance is the dataset's: s_e = 0.32 s_d. The
  per-run convergence rate of c is Phi(q(c) / sigma), sigma = sqrt(s_d^2 + s_e^2), times
  (1 - p_diverge) at lr_W 1e-2, where a run diverges (connectivity_R2 None) with p_diverge 0.25
  (0.5 at batch 1).
- connectivity_R2 of a run, with z = (q - s_d h - s_e e) / sigma: converged 1 - 0.1 exp(-2 z)
  (0.9 .. 1.0); otherwise partial 0.3 + 0.55 exp(z / 2) (0.3 .. 0.85), except 5% of the
  non-converged runs, which fail (0 .. 0.08).
- Noise levels: ``low``, sigma = 1, the best configs converge in 95% of runs; ``high``
  (the seed's "fails 1 in 3"), sigma = 3.82, the best configs converge in 2/3 of runs. The same
  q at both levels; 66 to 68 configs of the band and the 10 of REGION2 have a rate >= 0.5.

Calibration, from the measured runs of this repository and the project's notes:

- the default start (lr_W 1e-3, lr 5e-4, L1 5e-6, batch 8) gave 0.741, 0.746, 0.725 on one
  dataset (benchmarks/README.md): partial, little spread between training seeds (s_e << s_d).
  Here q = -1.555: rate 0.06 (low) / 0.34 (high), typical partial values 0.55 / 0.75;
- lr_W 2e-3 with lr 1e-4 converged on that dataset (0.94 .. 0.96), and lr_W 2e-3 once gave
  0.9999, 0.9999, 0.47 on three datasets: here (2e-3, 1e-4, 5e-6, 8) has rate 0.67 (low);
- a config converging on six of six datasets (0.998+) sits a few grid steps from the start:
  here the best configs (rate 0.95) are 3 steps away (lr_W 5e-3, lr 2e-4);
- datasets of low effective rank fail at every config (the tiny pair on simulation seeds 1, 2,
  3 gave 0.9998, 0.996, 0.35): the dataset term does that (at ``low`` 4% of datasets fail
  everywhere, at ``high`` a third);
- the quick study, with its own dataset per run, reached connectivity_R2 > 0.9 in 34 of 48
  runs (71%), and its failures (0.47, 0.749) were partial, not near 0: the ``high`` level,
  mostly partial non-converged runs, rare failed ones.

Each trial is 3 runs. The new ProtocolSampler writes the seeds and datasets of a trial as its
user attributes ``seeds`` and ``data_seeds``; for the other samplers each trial gets fresh ones,
seeds = data_seeds = [3 * number + i], as the old ``rerun`` seed mode did (datasets are keyed by
the benchmark seed too, so each benchmark seed is a different world and every sampler of one
benchmark seed sees the same datasets, trial number for trial number, where its datasets are
fresh). The objective sets ``per_seed`` (seed, data_seed, connectivity_R2 per run) and tells the
minimum over the runs, or FAIL if a run has no value.

Samplers, one in-memory study per sampler and benchmark seed, driven by ask/tell, 60 trials:

- new: ``ProtocolSampler(PARAMS, start=SEED_START, seed=seed, robust=RobustRule(level,
  credibility), retry=..., jump=...)`` (``seed_mode`` paired, 3 runs a trial); robust = its
  ``state(study).robust_configs()``; boundaries = its ``state(study).boundaries``.
- old: the ProtocolSampler of commit e0e1ed1 (before the rewrite, ``n_validate=3``), run in a
  subprocess with that commit's package first on ``sys.path``; robust = its ROBUST status
  (3 trials whose 3 runs all converged: 9 of 9 runs), boundaries = its ``boundaries``.
- tpe, random: Optuna's ``TPESampler(seed=seed)``, ``RandomSampler(seed=seed)``, first trial the
  start (enqueued), proposals snapped to the grid, told the snapped config's value. Validation
  as in the old benchmark: after every trial, the config with the highest score (minimum value
  over its trials, FAIL 0), if that is converged (> 0.9) and the config was never validated, is
  re-run (enqueued) while the robust rule leaves it undecided and it has fewer than max_runs
  runs. Re-runs count in the budget. A config is labelled robust by the same posterior rule as
  the new protocol, ``RobustRule(level, credibility).verdict`` on all its runs (Beta(1 + c,
  1 + n - c), robust when P(rate > level) >= credibility), so their labels are comparable.

Measures, per sampler and noise level, over benchmark seeds 0..N-1:

- trials, runs to robust: quartiles of the trials (runs = 3 per trial) told when a first config
  was labelled robust; seeds with none within the budget count as infinite (">B");
  none = share of seeds with none.
- robust/seed: configs labelled robust at the end, mean per seed; false = share of those whose
  true rate is below 0.5 (pooled over seeds).
- boundaries: a true boundary is a pair of configs one grid step apart along one parameter with
  true rate >= 0.5 inside and < 0.5 outside. Reported: the protocols' ``boundaries`` with an
  outside index (inside and outside config = origin with that parameter at ``inside``,
  ``outside``); tpe and random: every pair inside = a config with a converged trial (all 3 runs
  converged), outside = its neighbour, run, with none (the old benchmark's pair criterion).
  ok, false = distinct reported pairs per seed that are, are not true boundaries.
- 2nd: share of seeds where a REGION2 config was labelled robust or converged in a majority of
  its runs.
- ms: the new ProtocolSampler's decision (``before_trial``) per trial, mean and max.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import optuna
from machine import machine_line
from optuna.trial import TrialState

from gnn_convergence.study.demo import SEED_SPACE, SEED_START
from gnn_convergence.study.space import parse_space, snap_index

PARAMS = parse_space(SEED_SPACE)
SIZES = tuple(len(p.values) for p in PARAMS)
START_CONFIG = tuple(snap_index(p, SEED_START[p.label]) for p in PARAMS)
OLD_COMMIT = "e0e1ed1"
N_RUNS = 3  # runs per trial
Config = tuple[int, ...]

# ---------------------------------------------------------------------------------------------
# World model (see the module docstring). Indices: lr_W 0..6 (1e-4 .. 1e-2), lr 0..3
# (1e-4 .. 1e-3), coeff_W_L1 0..7 (0, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4), batch 0..3
# (1, 4, 8, 16).

Q_MAX = 1.645  # best band configs: Phi(1.645) = 0.95 at sigma 1
PEN_LR_W = (8.5, 6.5, 4.5, 2.5, 0.5, 0.0, 1.0)
PEN_LR = (0.7, 0.0, 0.7, 2.2)
L1_TOLERATED = (4, 4, 4, 4, 4, 3, 2)  # per lr_W index: the largest L1 index without penalty
PEN_L1_ZERO, PEN_L1_STEP = 0.6, 1.2
PEN_BATCH = (None, 0.3, 0.0, 0.8)  # batch 1: 0.6 per lr_W step above 5e-4, at least 0.6

Q2 = 1.1  # the second region's best: Phi(1.1) = 0.86 at sigma 1
PEN2_LR_W = (1.2, 0.0, 1.2, 3.0, 5.0, 7.0, 9.0)
PEN2_LR = (6.0, 4.0, 1.5, 0.0)
PEN2_L1_STEP = 0.8  # per step above 2e-6
PEN2_BATCH = (0.4, 0.0, 1.0, 2.0)

TRAIN_SHARE = 0.32  # s_e / s_d
P_FAILED = 0.05  # of non-converged runs
P_DIVERGE = (0.5, 0.25, 0.25, 0.25)  # per batch index, at lr_W 1e-2 only
NOISE_RATE = {"low": 0.95, "high": 2 / 3}  # per-run rate of the best configs
DATA_STREAM, RUN_STREAM = 1_000_003, 1_000_033
PHI = NormalDist()


def q_band(c: Config) -> float:
    u, v, w, b = c
    l1 = PEN_L1_ZERO if w == 0 else PEN_L1_STEP * max(0, w - L1_TOLERATED[u])
    batch = max(0.6, 0.6 * (u - 2)) if b == 0 else PEN_BATCH[b]
    return Q_MAX - PEN_LR_W[u] - PEN_LR[v] - l1 - batch


def q_second(c: Config) -> float:
    u, v, w, b = c
    return Q2 - PEN2_LR_W[u] - PEN2_LR[v] - PEN2_L1_STEP * max(0, w - 2) - PEN2_BATCH[b]


def quality(c: Config) -> float:
    return max(q_band(c), q_second(c))


def p_diverge(c: Config) -> float:
    return P_DIVERGE[c[3]] if c[0] == SIZES[0] - 1 else 0.0


@dataclass
class World:
    """One benchmark seed's world at one noise level."""

    seed: int
    noise: str
    s_data: float = field(init=False)
    s_train: float = field(init=False)
    sigma: float = field(init=False)
    _h: dict[int, float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.sigma = Q_MAX / PHI.inv_cdf(NOISE_RATE[self.noise])
        self.s_data = self.sigma / math.sqrt(1 + TRAIN_SHARE**2)
        self.s_train = TRAIN_SHARE * self.s_data

    def difficulty(self, data_seed: int) -> float:
        if data_seed not in self._h:
            rng = np.random.default_rng([self.seed, data_seed, DATA_STREAM])
            self._h[data_seed] = float(rng.standard_normal())
        return self._h[data_seed]

    def run(self, c: Config, data_seed: int, seed: int) -> float | None:
        """connectivity_R2 of one run, None when it diverged."""
        rng = np.random.default_rng([self.seed, data_seed, seed, *c, RUN_STREAM])
        e, u_fail, u_div, u_value = rng.standard_normal(), *rng.random(3)
        if u_div < p_diverge(c):
            return None
        z = (quality(c) - self.s_data * self.difficulty(data_seed) - self.s_train * e) / self.sigma
        if z > 0:
            return float(1 - 0.1 * math.exp(-2 * z))
        if u_fail < P_FAILED:
            return float(0.08 * u_value)
        return float(0.3 + 0.55 * math.exp(z / 2))

    def rate(self, c: Config) -> float:
        """The true per-run convergence rate."""
        return PHI.cdf(quality(c) / self.sigma) * (1 - p_diverge(c))


GRID = list(itertools.product(*(range(s) for s in SIZES)))
REGION2 = frozenset(c for c in GRID if q_second(c) > q_band(c) and q_second(c) >= 0)

# ---------------------------------------------------------------------------------------------
# Harness: the objective, the samplers, what each study leaves behind.


def values_of(c: Config) -> dict[str, Any]:
    return {p.name: p.values[i] for p, i in zip(PARAMS, c, strict=True)}


def config_of(trial: optuna.trial.BaseTrial) -> Config:
    return tuple(snap_index(p, trial.params[p.name]) for p in PARAMS)


def evaluate(world: World, study: optuna.Study, trial: optuna.Trial) -> tuple[Config, list]:
    """Run the trial's 3 runs, set ``per_seed``, tell min or FAIL; its config and R2 values."""
    config = config_of(trial)
    attrs = trial.user_attrs
    seeds, data = attrs.get("seeds"), attrs.get("data_seeds")
    if seeds is None or data is None:
        seeds = data = [N_RUNS * trial.number + i for i in range(N_RUNS)]
    values = [world.run(config, int(d), int(s)) for s, d in zip(seeds, data, strict=True)]
    per_seed = [
        {"seed": int(s), "data_seed": int(d), "connectivity_R2": v}
        for s, d, v in zip(seeds, data, values, strict=True)
    ]
    trial.set_user_attr("per_seed", per_seed)
    if any(v is None for v in values):
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, min(values))
    return config, values


@dataclass
class Outcome:
    """What one study leaves: first robust (trials, runs), labels, boundaries, runs, timings."""

    first_trials: int | None = None
    first_runs: int | None = None
    robust: list[Config] = field(default_factory=list)
    boundaries: list[tuple[Config, Config]] = field(default_factory=list)
    runs: dict[Config, list[bool]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "first_trials": self.first_trials,
            "first_runs": self.first_runs,
            "robust": [list(c) for c in self.robust],
            "boundaries": [[list(a), list(b)] for a, b in self.boundaries],
            "runs": [[list(c), r] for c, r in self.runs.items()],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Outcome:
        return cls(
            d["first_trials"],
            d["first_runs"],
            [tuple(c) for c in d["robust"]],
            [(tuple(a), tuple(b)) for a, b in d["boundaries"]],
            {tuple(c): r for c, r in d["runs"]},
        )


def converged(value: float | None) -> bool:
    return value is not None and value > 0.9


def drive(
    world: World,
    study: optuna.Study,
    budget: int,
    robust_now: Callable[[Config], bool],
    before_ask: Callable[[], None] | None = None,
    after_tell: Callable[[Config, float | None], None] | None = None,
    out: Outcome | None = None,
) -> Outcome:
    """ask, evaluate, tell ``budget`` trials; the runs per config and the first robust label."""
    out = out if out is not None else Outcome()
    distributions = {p.name: p.distribution for p in PARAMS}
    n_runs = 0
    for number in range(budget):
        if before_ask is not None:
            before_ask()
        trial = study.ask(distributions)
        config, values = evaluate(world, study, trial)
        n_runs += len(values)
        out.runs.setdefault(config, []).extend(converged(v) for v in values)
        if after_tell is not None:
            after_tell(config, None if any(v is None for v in values) else min(values))
        if out.first_trials is None and robust_now(config):
            out.first_trials, out.first_runs = number + 1, n_runs
    return out


def shifted(c: Config, p: int, index: int) -> Config:
    return c[:p] + (index,) + c[p + 1 :]


def protocol_boundaries(boundaries: Sequence[Any]) -> list[tuple[Config, Config]]:
    """(inside config, outside config) of every boundary with an outside index."""
    index = {p.name: i for i, p in enumerate(PARAMS)}
    pairs = {
        (shifted(b.origin, index[b.param], b.inside), shifted(b.origin, index[b.param], b.outside))
        for b in boundaries
        if b.outside is not None
    }
    return sorted(pairs)


def pair_claims(
    runs: dict[Config, list[bool]], inside: set[Config]
) -> list[tuple[Config, Config]]:
    """The old benchmark's pairs: a config with a converged trial, a run neighbour with none."""
    claims = []
    for c in sorted(inside):
        for p, step in itertools.product(range(len(PARAMS)), (-1, 1)):
            if 0 <= c[p] + step < SIZES[p]:
                other = shifted(c, p, c[p] + step)
                if other in runs and other not in inside:
                    claims.append((c, other))
    return claims


@dataclass(frozen=True)
class Variant:
    """Settings of the new ProtocolSampler."""

    level: float
    credibility: float
    retry: str = "undecided"
    jump: str = "far"

    @property
    def label(self) -> str:
        return f"new {self.retry[:5]}/{self.jump[:4]} {self.level:g}/{self.credibility:g}"


def run_new(world: World, budget: int, variant: Variant) -> Outcome:
    from gnn_convergence.study.evidence import RobustRule
    from gnn_convergence.study.sampler import ProtocolSampler

    seconds: list[float] = []

    class Timed(ProtocolSampler):
        def before_trial(self, study: optuna.Study, trial: Any) -> None:
            began = time.perf_counter()
            super().before_trial(study, trial)
            seconds.append(time.perf_counter() - began)

    rule = RobustRule(level=variant.level, credibility=variant.credibility)
    sampler = Timed(
        PARAMS, start=SEED_START, seed=world.seed, robust=rule, retry=variant.retry,
        jump=variant.jump,
    )  # fmt: skip
    study = optuna.create_study(sampler=sampler, direction="maximize")
    out = drive(world, study, budget, lambda _: bool(sampler.state(study).robust_configs()))
    state = sampler.state(study)
    out.robust = [tuple(c) for c in state.robust_configs()]
    out.boundaries = protocol_boundaries(state.boundaries)
    out.seconds = seconds
    return out


def run_old(world: World, budget: int) -> Outcome:
    """The sampler of ``OLD_COMMIT``: only called with that commit's package on sys.path."""
    from gnn_convergence.study.protocol import ROBUST, protocol_state
    from gnn_convergence.study.sampler import ProtocolSampler

    sampler = ProtocolSampler(PARAMS, start=SEED_START, seed=world.seed, n_validate=3)
    study = optuna.create_study(sampler=sampler, direction="maximize")

    def state() -> Any:
        return protocol_state(study.get_trials(deepcopy=False), PARAMS, n_validate=3)

    out = drive(world, study, budget, lambda c: state().status.get(c) == ROBUST)
    final = state()
    out.robust = [c for c, s in final.status.items() if s == ROBUST]
    out.boundaries = protocol_boundaries(final.boundaries)
    return out


def run_baseline(
    world: World, budget: int, kind: str, level: float, credibility: float
) -> Outcome:
    """TPE or random search, snapped to the grid, with the old benchmark's validation."""
    from gnn_convergence.study.evidence import ROBUST, UNDECIDED, RobustRule

    rule = RobustRule(level=level, credibility=credibility)
    sampler_cls = optuna.samplers.TPESampler if kind == "tpe" else optuna.samplers.RandomSampler
    study = optuna.create_study(sampler=sampler_cls(seed=world.seed), direction="maximize")
    study.enqueue_trial(values_of(START_CONFIG))
    out = Outcome()
    runs = out.runs  # filled by drive before after_tell
    scores: dict[Config, float] = {}
    inside: set[Config] = set()  # configs with a converged trial
    validated: set[Config] = set()
    validating: list[Config] = []  # the config being re-run, if any

    def verdict(c: Config) -> str:
        return rule.verdict(sum(runs[c]), len(runs[c]))

    def before_ask() -> None:
        if validating:
            study.enqueue_trial(values_of(validating[0]))

    def after_tell(config: Config, value: float | None) -> None:
        score = value if value is not None else 0.0
        scores[config] = min(score, scores.get(config, score))
        if score > 0.9:
            inside.add(config)
        if validating and (
            verdict(validating[0]) != UNDECIDED or len(runs[validating[0]]) >= rule.max_runs
        ):
            validating.clear()
        if not validating:
            best = max(scores, key=scores.__getitem__)  # first maximum: earliest config
            if scores[best] > 0.9 and best not in validated:
                validated.add(best)
                if verdict(best) == UNDECIDED and len(runs[best]) < rule.max_runs:
                    validating.append(best)

    drive(world, study, budget, lambda c: verdict(c) == ROBUST, before_ask, after_tell, out)
    out.robust = [c for c in runs if verdict(c) == ROBUST]
    out.boundaries = pair_claims(runs, inside)
    return out


# ---------------------------------------------------------------------------------------------
# Measures and tables.


def quartiles(values: Sequence[float], budget: int, width: int) -> str:
    """Quartiles as order statistics (no interpolation); ``>budget`` where infinite."""
    cells = []
    for q in (0.25, 0.5, 0.75):
        v = float(np.quantile(np.array(values, dtype=float), q, method="inverted_cdf"))
        cells.append(f">{budget}" if v == np.inf else f"{v:.0f}")
    return "".join(f"{c:>{width}s}" for c in cells)


COLUMNS = (  # title, width
    ("sampler", 28),
    ("trials to robust", 18),
    ("runs to robust", 18),
    ("none", 6),
    ("robust", 7),
    ("false", 6),
    ("bnd ok", 7),
    ("false", 6),
    ("2nd", 5),
    ("ms mean", 8),
    ("max", 6),
)


def line(cells: Sequence[str]) -> str:
    out = ""
    for (_, width), cell in zip(COLUMNS, cells, strict=False):
        out += f"{cell:{width}s}" if not out else f"{cell:>{width}s}"
    return out + "".join(f" {c}" for c in cells[len(COLUMNS) :])


HEADER = line([title for title, _ in COLUMNS]) + "\n" + line(["", "q1 med q3", "q1 med q3"])


def summary(
    label: str, outcomes: Sequence[Outcome], world: World, budget: int, wall: float
) -> str:
    """One table row (see the module docstring for the measures)."""
    inf = np.inf
    trials = [o.first_trials if o.first_trials is not None else inf for o in outcomes]
    runs = [o.first_runs if o.first_runs is not None else inf for o in outcomes]
    labels = [c for o in outcomes for c in o.robust]
    false = sum(world.rate(c) < 0.5 for c in labels) / len(labels) if labels else math.nan
    ok = [sum(world.rate(a) >= 0.5 > world.rate(b) for a, b in o.boundaries) for o in outcomes]
    bad = [len(o.boundaries) - k for o, k in zip(outcomes, ok, strict=True)]
    second = [
        any(c in o.robust or 2 * sum(o.runs[c]) > len(o.runs[c]) for c in REGION2 & o.runs.keys())
        for o in outcomes
    ]
    seconds = [s for o in outcomes for s in o.seconds]
    ms = [f"{1e3 * np.mean(seconds):.1f}", f"{1e3 * max(seconds):.1f}"] if seconds else ["-"] * 2
    return line(
        [
            label,
            quartiles(trials, budget, 6),
            quartiles(runs, N_RUNS * budget, 6),
            f"{np.mean([t == inf for t in trials]):.0%}",
            f"{len(labels) / len(outcomes):.2f}",
            "-" if math.isnan(false) else f"{false:.0%}",
            f"{np.mean(ok):.2f}",
            f"{np.mean(bad):.2f}",
            f"{np.mean(second):.0%}",
            *ms,
            f"[{wall:.0f} s]",
        ]
    )


def random_hit() -> float:
    """Chance that one snapped RandomSampler proposal has a true rate >= 0.5 (low noise),
    by quadrature over each parameter's distribution."""
    shares = []
    u = (np.arange(4000) + 0.5) / 4000
    for param in PARAMS:
        dist = param.distribution
        if param.is_choice:
            shares.append(np.full(len(param.values), 1 / len(param.values)))
            continue
        x = (
            dist.low * (dist.high / dist.low) ** u
            if dist.log
            else dist.low + (dist.high - dist.low) * u
        )
        idx = np.array([snap_index(param, v) for v in x])
        shares.append(np.bincount(idx, minlength=len(param.values)) / len(idx))
    world = World(0, "low")
    return sum(
        math.prod(float(s[i]) for s, i in zip(shares, c, strict=True))
        for c in GRID
        if world.rate(c) >= 0.5
    )


def world_line(noise: str) -> str:
    w = World(0, noise)
    band = sum(w.rate(c) >= 0.5 for c in GRID if c not in REGION2)
    second = max(w.rate(c) for c in REGION2)
    return (
        f"noise {noise}: s_d {w.s_data:.2f}, s_e {w.s_train:.2f} (sigma {w.sigma:.2f}); best rate"
        f" {max(w.rate(c) for c in GRID):.2f}, start {w.rate(START_CONFIG):.2f}; rate >= 0.5:"
        f" {band} band configs, {len(REGION2)} in REGION2 (best {second:.2f})"
    )


def package_line() -> str:
    """Where the new protocol's package comes from: this checkout (its commit) or elsewhere."""
    import gnn_convergence

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    where = os.path.dirname(os.path.dirname(os.path.abspath(gnn_convergence.__file__)))
    if where != root:
        return f"new protocol: the gnn_convergence package in {where}"
    git = ["git", "-C", root]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "gnn_convergence"], capture_output=True, text=True
    )
    note = " plus uncommitted changes" if dirty.stdout.strip() else ""
    return f"new protocol: gnn_convergence of this checkout at {head.stdout.strip()}{note}"


def old_outcomes(args: argparse.Namespace) -> tuple[dict[str, list[Outcome]], dict[str, float]]:
    """Run ``--only old`` in a subprocess with the package of OLD_COMMIT first on sys.path."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", root, "archive", OLD_COMMIT, "gnn_convergence"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")]),
        }
        out = os.path.join(tmp, "old.json")
        command = [sys.executable, os.path.abspath(__file__), "--only", "old", "--json-out", out,
                   "--seeds", str(args.seeds), "--budget", str(args.budget),
                   "--noise", *args.noise, "--expect-package", tmp]  # fmt: skip
        subprocess.run(command, check=True, env=env)
        with open(out) as f:
            data = json.load(f)
    outcomes = {n: [Outcome.from_json(d) for d in data["outcomes"][n]] for n in args.noise}
    return outcomes, data["wall"]


def old_child(args: argparse.Namespace) -> None:
    import gnn_convergence

    if not os.path.abspath(gnn_convergence.__file__).startswith(args.expect_package):
        raise SystemExit(f"old package not first on sys.path: {gnn_convergence.__file__}")
    outcomes, wall = {}, {}
    for noise in args.noise:
        began = time.perf_counter()
        outcomes[noise] = [
            run_old(World(s, noise), args.budget).to_json() for s in range(args.seeds)
        ]
        wall[noise] = time.perf_counter() - began
    with open(args.json_out, "w") as f:
        json.dump({"outcomes": outcomes, "wall": wall}, f)


def parse_rule(text: str) -> tuple[float, float]:
    level, credibility = text.split("/")
    return float(level), float(credibility)


def comparison(args: argparse.Namespace) -> None:
    rules = [parse_rule(r) for r in args.rules]
    old, old_wall = old_outcomes(args) if "old" in args.only else ({}, {})
    for noise in args.noise:
        print(f"\n{world_line(noise)}")
        print(HEADER)
        world0 = World(0, noise)
        rows: list[tuple[str, Callable[[World], Outcome]]] = []
        for level, cred in rules:
            if "new" in args.only:
                for retry, jump in itertools.product(args.retry, args.jump):
                    v = Variant(level, cred, retry, jump)
                    rows.append((v.label, lambda w, v=v: run_new(w, args.budget, v)))
            for kind in ("tpe", "random"):
                if kind in args.only:
                    rows.append(
                        (
                            f"{kind} {level:g}/{cred:g}",
                            lambda w, k=kind, a=level, c=cred: run_baseline(
                                w, args.budget, k, a, c
                            ),
                        )
                    )
        for label, runner in rows:
            began = time.perf_counter()
            outcomes = [runner(World(s, noise)) for s in range(args.seeds)]
            wall = time.perf_counter() - began
            print(summary(label, outcomes, world0, args.budget, wall), flush=True)
        if noise in old:
            print(summary("old (9 of 9 runs)", old[noise], world0, args.budget, old_wall[noise]))


def long_study(args: argparse.Namespace) -> None:
    level, cred = parse_rule(args.rules[0])
    variant = Variant(level, cred, args.retry[0], args.jump[0])
    out = run_new(World(args.long_seed, "low"), args.long, variant)
    tail = np.array(out.seconds[-50:]) * 1e3
    every = np.array(out.seconds) * 1e3
    print(
        f"{variant.label}, noise low, seed {args.long_seed}, {args.long} trials: decision ms mean"
        f" {every.mean():.1f}, max {every.max():.1f}; last 50 trials mean {tail.mean():.1f},"
        f" max {tail.max():.1f}; robust configs {len(out.robust)}, boundaries"
        f" {len(out.boundaries)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="benchmark seeds 0..N-1")
    parser.add_argument("--budget", type=int, default=60, help="trials per study")
    parser.add_argument("--noise", nargs="+", default=list(NOISE_RATE), choices=list(NOISE_RATE))
    parser.add_argument("--only", nargs="+", default=["new", "old", "tpe", "random"])
    parser.add_argument(
        "--rules",
        nargs="+",
        default=["0.6/0.9", "0.56/0.9", "0.7/0.9", "0.7/0.8"],
        help="robust rules level/credibility; the first one for --long",
    )
    parser.add_argument("--retry", nargs="+", default=["undecided", "all"])
    parser.add_argument("--jump", nargs="+", default=["far", "farthest"])
    parser.add_argument("--long", type=int, default=300, help="trials of the decision-time study")
    parser.add_argument("--long-seed", type=int, default=0)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    parser.add_argument("--expect-package", help=argparse.SUPPRESS)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.json_out:
        old_child(args)
        return
    began = time.perf_counter()
    env = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    print(f"$ {env}python " + shlex.join(sys.argv))
    print(machine_line(optuna, np))
    print(f"{package_line()}; old protocol: commit {OLD_COMMIT}")
    print(
        f"start {SEED_START} = indices {START_CONFIG}; one snapped RandomSampler proposal"
        f" has a true rate >= 0.5 (low noise) with p = {random_hit():.1%}"
    )
    print(
        f"\n== {args.seeds} benchmark seeds (0..{args.seeds - 1}), {args.budget} trials of"
        f" {N_RUNS} runs per study =="
    )
    comparison(args)
    if args.long and "new" in args.only:
        print("\n== New ProtocolSampler decision time on a longer study ==")
        long_study(args)
    print(f"\ntotal run time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
