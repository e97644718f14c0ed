"""The study's answer from four samplers, scored on a world calibrated on measured runs.

Usage::

    python benchmarks/sampler_benchmark.py [--seeds 200] [--budget 40] [--answer-budget 12]
        [--level 0.6] [--credibility 0.9] [--max-runs 12] [--probe-min-runs 6]
        [--select-seeds 1000 100] [--only current previous tpe random]

No training: every run comes from benchmarks/sampler_world.py (its docstring is the world),
in two scenarios, "measured" and "hypothetical 2nd region". Samplers, one in-memory study per
scenario and benchmark seed, each trial 3 runs, ``--budget`` trials in all (the default
study's 40):

- current: the ProtocolSampler of the package on PYTHONPATH for all the budget; its race and
  probes are part of its flow; its answer is ``state(study).answer``.
- previous: the ProtocolSampler of commit a6313db (before the answer stage), run in a
  subprocess with that commit's package first on sys.path;
- tpe, random: Optuna's TPESampler and RandomSampler from the start config, snapped to the grid.

The three baselines search for ``budget - answer_budget`` trials, then the same answer stage
(benchmarks/sampler_answer.py: the package's race and recommendation, with at most
``--answer-budget`` race trials). Scores: benchmarks/sampler_scores.py.

Several values of --level, --credibility, --max-runs or --probe-min-runs make a grid of rules:
the current protocol runs each on the selection seeds (measured scenario), and the rule chosen
(at most 10% of robust labels below level, at least 90% of reported crossings right, then the
highest mean true rate of the recommendation) is the one every sampler is reported with.
A row ``current*`` adds the current protocol with today's defaults when the chosen rule differs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import subprocess
import sys
import time
from typing import Any

import numpy as np
import optuna
from machine import machine_line
from sampler_answer import answer_stage
from sampler_previous import PREVIOUS_COMMIT, previous_records
from sampler_scores import HEADS, Score, Told
from sampler_studies import (
    Claim,
    TrialRecord,
    band_claims,
    cache_prob_above,
    rule_of,
    run_current,
    run_search,
)
from sampler_world import Model, World, check_lines, region2, scenarios, summary_lines

SAMPLERS = ("current", "previous", "tpe", "random")
DEFAULTS = (0.6, 0.9, 12, 6)  # the protocol's rule today: level, credibility, max_runs, probe_min


def runs_of(records: list[TrialRecord]) -> int:
    return sum(len(r.values) for r in records)


def told_current(world: World, args: argparse.Namespace, rule: Any) -> Told:
    records, state = run_current(world, args.budget, rule)
    answer = state.answer
    return Told(
        answer.recommended,
        list(state.robust_configs()),
        band_claims(answer.bands),
        runs_of(records),
    )


def told_baseline(
    world: World, records: list[TrialRecord], claims: list[Claim] | None, args, rule
) -> Told:
    """The answer stage after a baseline's search; its claims are its own (previous) or the
    answer's bands."""
    records, answer, robust = answer_stage(world, records, rule, args.answer_budget)
    own = claims if claims is not None else band_claims(answer.bands)
    return Told(answer.recommended, robust, own, runs_of(records))


def search_trials(args: argparse.Namespace) -> int:
    return args.budget - args.answer_budget


def told_search(kind: str, world: World, args: argparse.Namespace, rule: Any) -> Told:
    return told_baseline(world, run_search(world, search_trials(args), kind), None, args, rule)


def score_rows(args, rule, models: list[Model], seeds: range) -> dict[str, list[str]]:
    """Per scenario, one table line per sampler."""
    previous = {}
    if "previous" in args.only:
        names = [m.name for m in models]
        previous = previous_records(names, seeds, search_trials(args), rule)
    rows = [(name, rule) for name in SAMPLERS if name in args.only]
    default = rule_of(*DEFAULTS)
    if "current" in args.only and rule != default:
        rows.insert(1, ("current", default))
    lines: dict[str, list[str]] = {}
    for model in models:
        lines[model.name] = []
        for name, row_rule in rows:
            began, score = time.perf_counter(), Score(row_rule.level, region2(model))
            for i, seed in enumerate(seeds):
                world = World(seed, model)
                score.add(model, told_of(name, world, args, row_rule, previous, model, i))
            wall = time.perf_counter() - began
            label = name if row_rule == rule else "current*"
            lines[model.name].append(row(label, score.cells(), f"[{wall:.0f} s]"))
            print(f"{model.name}: {lines[model.name][-1]}", flush=True, file=sys.stderr)
    return lines


def told_of(name, world, args, rule, previous, model, i) -> Told:
    if name == "current":
        return told_current(world, args, rule)
    if name == "previous":
        study = previous[model.name][i]
        records = [TrialRecord.from_json(r) for r in study["records"]]
        claims = [Claim.from_json(c) for c in study["claims"]]
        return told_baseline(world, records, claims, args, rule)
    return told_search(name, world, args, rule)


def row(label: str, cells: list[str], *extra: str) -> str:
    return f"{label:10s}" + "".join(f"{c:>8s}" for c in cells) + "".join(f" {e}" for e in extra)


HEADER = row("sampler", list(HEADS)) + "\n" + row("", ["true", "share", "rate"])


def rules_of(args: argparse.Namespace) -> list[Any]:
    grid = itertools.product(args.level, args.credibility, args.max_runs, args.probe_min_runs)
    return [rule_of(*r) for r in grid]


def rule_label(rule: Any) -> str:
    return (
        f"level {rule.level:g}, credibility {rule.credibility:g}, max_runs {rule.max_runs},"
        f" probe_min_runs {rule.probe_min_runs}"
    )


def select(args: argparse.Namespace, rules: list[Any], model: Model) -> Any:
    """Run the current protocol with every rule on the selection seeds; the chosen rule."""
    first, count = args.select_seeds
    print(
        f"\n== Rule selection: current protocol, {model.name} scenario, benchmark seeds"
        f" {first}..{first + count - 1}, {args.budget} trials =="
    )
    print(
        f"{'level cred max_runs probe_min':28s}{'false':>7s}{'right%':>8s}{'mean':>7s}"
        f"{'median':>8s}{'none':>6s}  meets"
    )
    scored = []
    for rule in rules:
        score = Score(rule.level)
        for seed in range(first, first + count):
            score.add(model, told_current(World(seed, model), args, rule))
        meets = score.false_share <= 0.10 and score.right_share >= 0.90
        scored.append((meets, (score.mean_rate, score.right_share, -score.false_share), rule))
        median = np.median(score.rec_rates) if score.rec_rates else float("nan")
        print(
            f"{rule.level:5g} {rule.credibility:4g} {rule.max_runs:8d} {rule.probe_min_runs:9d}"
            f"    {score.false_share:7.0%}{score.right_share:8.0%}{score.mean_rate:7.2f}"
            f"{median:8.2f}{score.none / score.studies:6.0%}  {'yes' if meets else 'no'}",
            flush=True,
        )
    meeting = [s for s in scored if s[0]]
    if not meeting:
        print("no rule meets both bounds: the highest mean rate is chosen among all")
    chosen = max(meeting or scored, key=lambda s: s[1])[2]
    print(f"chosen: {rule_label(chosen)}")
    return chosen


def package_line() -> str:
    import gnn_convergence

    where = os.path.dirname(os.path.dirname(os.path.abspath(gnn_convergence.__file__)))
    git = ["git", "-C", where]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "gnn_convergence"], capture_output=True, text=True
    )
    note = " plus uncommitted changes" if dirty.stdout.strip() else ""
    return (
        f"current protocol: gnn_convergence in {where} at {head.stdout.strip() or '?'}{note};"
        f" previous protocol: commit {PREVIOUS_COMMIT}"
    )


def calibration(cells, models: list[Model]) -> None:
    print("\n== The world: measured cells against the measured scenario ==")
    print("\n".join(check_lines(cells, models[0])))
    print("\n".join(summary_lines(cells, models[0])))
    for model in models[1:]:
        print(summary_lines(cells, model)[-1] + f" (region 2: {len(region2(model))} configs)")


def report(args, rule, models: list[Model]) -> None:
    seeds = range(args.seeds)
    print(
        f"\n== {rule_label(rule)}; benchmark seeds 0..{args.seeds - 1}; {args.budget} trials"
        f" of 3 runs; baselines: {search_trials(args)} search + at most"
        f" {args.answer_budget} race trials =="
    )
    lines = score_rows(args, rule, models, seeds)
    for model in models:
        print(
            f"\n{model.name}"
            + (" (HYPOTHETICAL: no measurement behind region 2)" if model is not models[0] else "")
        )
        print(HEADER)
        print("\n".join(lines[model.name]))
    if any("current*" in line for ls in lines.values() for line in ls):
        print(f"\ncurrent*: the current protocol with {rule_label(rule_of(*DEFAULTS))}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="report on seeds 0..N-1")
    parser.add_argument("--budget", type=int, default=40, help="trials per study")
    parser.add_argument(
        "--answer-budget",
        type=int,
        default=12,
        help="race trials of the baselines' answer stage (within --budget)",
    )
    parser.add_argument("--level", type=float, nargs="+", default=[0.6])
    parser.add_argument("--credibility", type=float, nargs="+", default=[0.9])
    parser.add_argument("--max-runs", type=int, nargs="+", default=[12])
    parser.add_argument("--probe-min-runs", type=int, nargs="+", default=[6])
    parser.add_argument(
        "--select-seeds",
        type=int,
        nargs=2,
        default=[1000, 100],
        metavar=("FIRST", "COUNT"),
        help="seeds the rule is chosen on",
    )
    parser.add_argument("--only", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    return parser.parse_args()


def main() -> None:
    args = parse()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cache_prob_above()
    began = time.perf_counter()
    env = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    print(f"$ {env}python " + shlex.join(["benchmarks/sampler_benchmark.py", *sys.argv[1:]]))
    print(machine_line(optuna, np))
    print(package_line())
    cells, models = scenarios()
    calibration(cells, models)
    rules = rules_of(args)
    rule = select(args, rules, models[0]) if len(rules) > 1 else rules[0]
    report(args, rule, models)
    print(f"\ntotal run time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
