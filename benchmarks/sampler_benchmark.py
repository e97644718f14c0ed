"""ProtocolSampler against Optuna's TPESampler and RandomSampler on a synthetic working region.

Usage::

    python benchmarks/sampler_benchmark.py [--seeds 200] [--budgets 30 60] [--noise 0.2 0.33]
        [--reruns 2 3] [--trials 100 300 1000]

No training. The objective is synthetic, over the study's default grid (``SEED_SPACE``: lr_W 7
values, lr 4, coeff_W_L1 8, batch_size 4; 896 configs). It is converged (0.95) inside ``BOX``, a
box of grid indices, and 0.85 - 0.1 per grid step (L1 distance in indices) outside it, floored at
0: partial (0.75 .. 0.15) up to 7 steps away, failed from 8 steps on. A run inside the box fails
(0.02) with probability ``noise``, drawn from ``numpy.random.default_rng([seed, trial number,
NOISE_STREAM])``: every sampler faces the same noise law and, trial number for trial number, the
same draws; the extra stream word keeps them apart from ProtocolSampler's own draws, which use
``default_rng([seed, trial number])``. Outside the box the objective is deterministic.

The box is lr_W 2e-3..5e-3, lr 2e-4..5e-4, coeff_W_L1 1e-5..5e-5, batch_size 4..8 (24 of the
896 configs). The start config, the default training values lr_W=1e-3, lr=5e-4,
coeff_W_L1=5e-6, batch_size=8, lies outside it: one grid step below the box in lr_W and one in
coeff_W_L1 (value 0.65, partial).

Samplers, one study per sampler and seed, in-memory storage, driven by ask/tell:

- protocol: ``ProtocolSampler(PARAMS, start=START, seed=seed, n_validate=reruns + 1)``; it
  retries, validates and probes by itself.
- tpe, random: ``TPESampler(seed=seed)`` and ``RandomSampler(seed=seed)`` with Optuna's default
  settings, asked for each parameter's ``Param.distribution``. Their first trial is the start
  config (enqueued), as for the protocol. They propose off-grid floats (and coeff_W_L1 uniformly
  on the linear interval [0, 1e-4]); each proposal is snapped to the grid with ``space.snap``
  before it is evaluated, and the sampler is told the snapped config's value.
  Validation: after every trial, the best config so far is the one with the highest score (the
  minimum value over its runs, as ``ProtocolState.score``; earliest first run on ties). If its
  score is converged and it has never been validated, the next trials of the budget re-run it
  (enqueued) until it has ``reruns`` re-runs or a re-run does not converge. Re-runs count in the
  budget.

Definitions, the same for all three samplers, read from the trial history of each study:

- validated-robust config: one with at least ``reruns + 1`` runs, all converged (for the
  protocol, its ROBUST status with ``n_validate = reruns + 1``). ``--reruns 3`` is the issue's
  "validated by three re-runs" (4 converged runs); ``--reruns 2`` is ProtocolSampler's default
  ``n_validate=3``.
- trials to robust: the number of trials run (re-runs included) when the first config became
  validated-robust. Seeds with none within the largest budget are counted as infinite, so the
  median and 90th percentile are order statistics of all seeds (">B" when they fall there).
- true boundary: the box edges along each parameter and side whose outside neighbour exists on
  the grid (all 8 here). A run of a budget's first trials finds an edge when it holds a pair of
  configs one grid step apart along that parameter, the inside one converged in at least one run
  and the outside one run and never converged. A false claim is such a pair whose "outside"
  config lies in the box (every one of its runs failed by noise); claims are counted as distinct
  (parameter, side, inside index).
- own boundaries (protocol only): the boundaries ``protocol_state(...).boundaries`` reports,
  matched on (parameter, side, inside index, outside index) against the true edges; those not
  matching are false.

A further section gives ProtocolSampler's decision time on longer studies (mean and max over
the last 50 trials, which replay the longest history) on the same objective with noise 0.2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import optuna
from machine import machine_line
from optuna.distributions import CategoricalDistribution

from gnn_convergence.outcome import CONVERGED, classify
from gnn_convergence.study.demo import SEED_SPACE
from gnn_convergence.study.protocol import ROBUST, protocol_state
from gnn_convergence.study.sampler import ProtocolSampler
from gnn_convergence.study.space import parse_space, snap_index

PARAMS = parse_space(SEED_SPACE)
BOX = ((4, 5), (1, 2), (4, 6), (1, 2))
START = {"lr_W": 1e-3, "lr": 5e-4, "coeff_W_L1": 5e-6, "batch_size": 8}
START_CONFIG = tuple(snap_index(p, START[p.label]) for p in PARAMS)
NOISE_STREAM = 1_000_003
SAMPLERS = ("protocol", "tpe", "random")
SIDES = ((-1, "low"), (1, "high"))

Config = tuple[int, ...]
Edge = tuple[int, str, int]  # parameter index, side, inside index


def box_distance(config: Config) -> int:
    """Grid steps (L1 in indices) from ``config`` to the box."""
    return sum(max(lo - i, 0, i - hi) for i, (lo, hi) in zip(config, BOX, strict=True))


def region_value(config: Config, seed: int, number: int, noise: float) -> float:
    """The synthetic objective of trial ``number`` running ``config``."""
    distance = box_distance(config)
    if distance:
        return max(0.0, 0.85 - 0.1 * distance)
    failed = np.random.default_rng([seed, number, NOISE_STREAM]).random() < noise
    return 0.02 if failed else 0.95


def true_edges() -> dict[Edge, int]:
    """Box edges whose outside neighbour is on the grid: edge -> outside index."""
    edges = {}
    for p, (param, (lo, hi)) in enumerate(zip(PARAMS, BOX, strict=True)):
        if lo > 0:
            edges[p, "low", lo] = lo - 1
        if hi < len(param.values) - 1:
            edges[p, "high", hi] = hi + 1
    return edges


TRUE_EDGES = true_edges()


def values_of(config: Config) -> dict[str, object]:
    return {p.name: p.values[i] for p, i in zip(PARAMS, config, strict=True)}


def shift(config: Config, p: int, step: int) -> Config:
    return config[:p] + (config[p] + step,) + config[p + 1 :]


def make_sampler(kind: str, seed: int, reruns: int) -> optuna.samplers.BaseSampler:
    if kind == "protocol":
        return ProtocolSampler(PARAMS, start=START, seed=seed, n_validate=reruns + 1)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def best_config(history: Sequence[tuple[Config, float]]) -> Config | None:
    """The converged config with the highest minimum value (earliest first run on ties)."""
    scores: dict[Config, float] = {}
    for config, value in history:
        scores[config] = min(value, scores.get(config, value))
    best = max(scores, key=scores.__getitem__, default=None)  # first maximum: earliest config
    return best if best is not None and classify(scores[best]) == CONVERGED else None


def run_study(
    kind: str, seed: int, noise: float, reruns: int, budget: int
) -> tuple[list[tuple[Config, float]], optuna.Study]:
    """One study of ``budget`` trials; the (config, value) of each trial in number order."""
    study = optuna.create_study(sampler=make_sampler(kind, seed, reruns), direction="maximize")
    distributions = {p.name: p.distribution for p in PARAMS}
    history: list[tuple[Config, float]] = []
    validating: Config | None = None
    left = 0
    validated: set[Config] = set()
    if kind != "protocol":
        study.enqueue_trial(values_of(START_CONFIG))
    for _ in range(budget):
        if validating is not None:
            study.enqueue_trial(values_of(validating))
        trial = study.ask(distributions)
        config = tuple(snap_index(p, trial.params[p.name]) for p in PARAMS)
        value = region_value(config, seed, trial.number, noise)
        study.tell(trial, value)
        history.append((config, value))
        if kind == "protocol":
            continue
        if validating is not None:
            left -= 1
            if left == 0 or classify(value) != CONVERGED:
                validating = None
        if validating is None:
            best = best_config(history)
            if best is not None and best not in validated:
                validated.add(best)
                validating, left = best, reruns
    return history, study


def first_robust(history: Sequence[tuple[Config, float]], n_runs: int) -> int | None:
    """Trials run when a config first had ``n_runs`` runs, all converged (None: never)."""
    outcomes: dict[Config, list[str]] = {}
    for count, (config, value) in enumerate(history, start=1):
        runs = outcomes.setdefault(config, [])
        runs.append(classify(value))
        if len(runs) >= n_runs and all(o == CONVERGED for o in runs):
            return count
    return None


def edge_claims(history: Sequence[tuple[Config, float]]) -> set[Edge]:
    """(parameter, side, inside index) of every pair: converged once | run, never converged."""
    run = {config for config, _ in history}
    converged = {config for config, value in history if classify(value) == CONVERGED}
    never = run - converged
    claims = set()
    for config in converged:
        for p in range(len(PARAMS)):
            for step, side in SIDES:
                if shift(config, p, step) in never:
                    claims.add((p, side, config[p]))
    return claims


def own_claims(study: optuna.Study, budget: int, reruns: int) -> set[tuple[Edge, int]]:
    """The protocol's finished boundaries within ``budget`` trials, with their outside index."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.number < budget]
    state = protocol_state(trials, PARAMS, n_validate=reruns + 1)
    index = {p.name: i for i, p in enumerate(PARAMS)}
    return {
        ((index[b.param], b.side, b.inside), b.outside)
        for b in state.boundaries
        if b.outside is not None
    }


@dataclass
class Seeded:
    """One sampler's results on one seed."""

    first: int | None
    found: dict[int, float]  # per budget: share of the true edges found (pair criterion)
    false: dict[int, int]  # per budget: false claims (pair criterion)
    own_found: dict[int, float]
    own_false: dict[int, int]


def evaluate(kind: str, seed: int, noise: float, reruns: int, budgets: Sequence[int]) -> Seeded:
    history, study = run_study(kind, seed, noise, reruns, max(budgets))
    result = Seeded(first_robust(history, reruns + 1), {}, {}, {}, {})
    for budget in budgets:
        claims = edge_claims(history[:budget])
        result.found[budget] = len(claims & TRUE_EDGES.keys()) / len(TRUE_EDGES)
        result.false[budget] = len(claims - TRUE_EDGES.keys())
        if kind == "protocol":
            own = own_claims(study, budget, reruns)
            right = {edge for edge, outside in own if TRUE_EDGES.get(edge) == outside}
            result.own_found[budget] = len(right) / len(TRUE_EDGES)
            result.own_false[budget] = len(own) - len(right)
    return result


def order_statistic(values: Sequence[float], q: float, budget: int) -> str:
    """The q-quantile (an observed value, no interpolation); ``>budget`` when infinite."""
    value = float(np.quantile(np.array(values, dtype=float), q, method="inverted_cdf"))
    return f">{budget}" if value == np.inf else f"{value:.0f}"


def row(kind: str, results: Sequence[Seeded], budgets: Sequence[int]) -> str:
    last = max(budgets)
    firsts = [r.first if r.first is not None else np.inf for r in results]
    none = "".join(f"{np.mean([f > b for f in firsts]):9.0%}" for b in budgets)
    found = "".join(f"{np.mean([r.found[b] for r in results]):10.2f}" for b in budgets)
    false = f"{np.mean([r.false[last] for r in results]):7.2f}"
    own = f"{'-':>6s}{'-':>6s}"
    if kind == "protocol":
        own = (
            f"{np.mean([r.own_found[last] for r in results]):6.2f}"
            f"{np.mean([r.own_false[last] for r in results]):6.2f}"
        )
    median, p90 = order_statistic(firsts, 0.5, last), order_statistic(firsts, 0.9, last)
    return f"{kind:9s}{none}{median:>8s}{p90:>6s}{found}{false}{own}"


def header(budgets: Sequence[int]) -> str:
    none = "".join(f"{f'none@{b}':>9s}" for b in budgets)
    edges = "".join(f"{f'edges@{b}':>10s}" for b in budgets)
    tail = f"{'false':>7s}{'own':>6s}{'false':>6s}"
    return f"{'sampler':9s}{none}{'median':>8s}{'p90':>6s}{edges}{tail}"


def box_share_random() -> float:
    """Chance that one RandomSampler proposal, snapped, lands in the box (exact quadrature)."""
    share = 1.0
    u = (np.arange(20000) + 0.5) / 20000
    for param, (lo, hi) in zip(PARAMS, BOX, strict=True):
        dist = param.distribution
        if isinstance(dist, CategoricalDistribution):
            share *= (hi - lo + 1) / len(param.values)
            continue
        if dist.log:
            x = dist.low * (dist.high / dist.low) ** u
        else:
            x = dist.low + (dist.high - dist.low) * u
        indices = np.array([snap_index(param, v) for v in x])
        share *= float(np.mean((indices >= lo) & (indices <= hi)))
    return share


def comparison(args: argparse.Namespace) -> None:
    budgets = sorted(args.budgets)
    box_configs = int(np.prod([hi - lo + 1 for lo, hi in BOX]))
    grid = int(np.prod([len(p.values) for p in PARAMS]))
    box = ", ".join(
        f"{p.label} {p.values[lo]:g}..{p.values[hi]:g}"
        for p, (lo, hi) in zip(PARAMS, BOX, strict=True)
    )
    print(f"box: {box} ({box_configs}/{grid} configs = {box_configs / grid:.1%} of the grid)")
    print(f"one snapped RandomSampler proposal lands in the box with p = {box_share_random():.1%}")
    print(f"start {START} = indices {START_CONFIG}, {box_distance(START_CONFIG)} steps outside")
    print(f"{args.seeds} seeds (0..{args.seeds - 1}) per sampler; budgets {budgets} trials")
    last = budgets[-1]
    print(
        "columns: none@B = share of seeds with no validated-robust config within B trials;"
        "\n  median, p90 = trials to the first validated-robust config (re-runs included),"
        f"\n  over all seeds, those without one within {last} counting as >{last};"
        "\n  edges@B = mean share of the 8 true box edges found within B trials (pair criterion);"
        f"\n  false = mean false edge claims within {last} trials (pair criterion);"
        f"\n  own, false = protocol_state boundaries within {last} trials: mean share of the"
        " true edges, mean false ones;"
        f"\n  a share over {args.seeds} seeds has a standard error of at most"
        f" {0.5 / np.sqrt(args.seeds):.3f}; [s] = wall time of the row"
    )
    for noise in args.noise:
        for reruns in args.reruns:
            print(
                f"\nnoise {noise:g} (a run inside the box fails with this probability); "
                f"robust = {reruns + 1} converged runs (first + {reruns} re-runs)"
            )
            print(header(budgets))
            for kind in SAMPLERS:
                began = time.perf_counter()
                results = [evaluate(kind, s, noise, reruns, budgets) for s in range(args.seeds)]
                print(row(kind, results, budgets), f" [{time.perf_counter() - began:.0f} s]")
                sys.stdout.flush()


class TimedSampler(ProtocolSampler):
    """ProtocolSampler that records how long each decision took."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seconds: list[float] = []

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        began = time.perf_counter()
        super().before_trial(study, trial)
        self.seconds.append(time.perf_counter() - began)


def decision_time(n_trials: int, seed: int) -> str:
    sampler = TimedSampler(PARAMS, start=START, seed=seed)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    distributions = {p.name: p.distribution for p in PARAMS}
    for _ in range(n_trials):
        trial = study.ask(distributions)
        config = tuple(snap_index(p, trial.params[p.name]) for p in PARAMS)
        study.tell(trial, region_value(config, seed, trial.number, 0.2))
    state = sampler.state(study)
    robust = [r for r in state.runs if state.status[r.config] == ROBUST]
    first = robust[0].number if robust else None
    tail = np.array(sampler.seconds[-50:]) * 1e3
    n_robust = sum(s == ROBUST for s in state.status.values())
    return (
        f"{n_trials:6d} {tail.mean():9.1f} {tail.max():8.1f} {first!s:>12} "
        f"{n_robust:7d} {len(state.boundaries):11d} {len(state.walks):6d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="seeds 0..N-1 per sampler")
    parser.add_argument("--budgets", type=int, nargs="+", default=[30, 60])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.2, 0.33])
    parser.add_argument("--reruns", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--trials", type=int, nargs="*", default=[100, 300, 1000])
    parser.add_argument("--seed", type=int, default=0, help="seed of the decision-time section")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    began = time.perf_counter()
    print("$ python " + shlex.join(sys.argv))
    print(machine_line(optuna, np))
    print("\n== Trials to the first validated-robust config, and box edges found ==")
    comparison(args)
    if args.trials:
        print(f"\n== ProtocolSampler decision time (noise 0.2, seed {args.seed}) ==")
        print("trials  mean_ms   max_ms first_robust  robust  boundaries  walks")
        for n_trials in args.trials:
            print(decision_time(n_trials, args.seed), flush=True)
    print(f"\ntotal run time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
