"""The previous protocol's searches (commit a6313db, before the answer stage), run in a
subprocess with that commit's package first on sys.path.

The parent calls :func:`previous_records`; the subprocess is this file run as a script, which
writes every study's trial records and boundary claims as JSON. It imports nothing of the
current package beyond what that commit also has.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import optuna
from sampler_studies import cache_prob_above, run_previous
from sampler_world import World, scenarios

PREVIOUS_COMMIT = "a6313db"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def previous_records(
    scenario_names: list[str], seeds: range, trials: int, rule
) -> dict[str, list[dict]]:
    """Per scenario, per seed: {"records": [...], "claims": [...]} of a search of ``trials``
    trials with the rule's level, credibility and max_runs."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", ROOT, "archive", PREVIOUS_COMMIT, "gnn_convergence"],
            check=True,
            capture_output=True,
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        path = os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")])
        out = os.path.join(tmp, "previous.json")
        command = [
            sys.executable,
            os.path.abspath(__file__),
            out,
            tmp,
            str(seeds.start),
            str(len(seeds)),
            str(trials),
            str(rule.level),
            str(rule.credibility),
            str(rule.max_runs),
            *scenario_names,
        ]
        subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": path})
        with open(out) as f:
            return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description="(subprocess of sampler_benchmark.py)")
    for name in ("out", "expect"):
        parser.add_argument(name)
    for name in ("first", "count", "trials"):
        parser.add_argument(name, type=int)
    parser.add_argument("level", type=float)
    parser.add_argument("credibility", type=float)
    parser.add_argument("max_runs", type=int)
    parser.add_argument("scenarios", nargs="+")
    args = parser.parse_args()
    import gnn_convergence

    if not os.path.abspath(gnn_convergence.__file__).startswith(args.expect):
        raise SystemExit(f"previous package not first on sys.path: {gnn_convergence.__file__}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cache_prob_above()
    _, models = scenarios()
    out: dict[str, list] = {}
    for model in (m for m in models if m.name in args.scenarios):
        out[model.name] = []
        for seed in range(args.first, args.first + args.count):
            world = World(seed, model)
            records, claims = run_previous(
                world, args.trials, args.level, args.credibility, args.max_runs
            )
            out[model.name].append(
                {"records": [r.__dict__ for r in records], "claims": [c.__dict__ for c in claims]}
            )
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
