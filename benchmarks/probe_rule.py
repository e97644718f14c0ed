"""Exact operating characteristic of a probe point (docs/protocol.md, "One step", probes).

A probe point of true per-run convergence rate p gets fresh runs in trials of ``--step`` runs;
from ``--min-runs`` on, after every trial, it is judged inside when P(rate > 0.5) >=
credibility, outside when P(rate > 0.5) <= 1 - credibility, and it is a transition point when
still undecided at ``--max-runs``. Prints P(inside), P(outside), P(transition) per p, computed
exactly (binomial sums over the converged count), and for a crossing between an inside point
of rate a and an outside point of rate b the probability that its band is wrong (the inside
point judged outside or the outside point judged inside).

    python benchmarks/probe_rule.py [--min-runs 6] [--max-runs 12]
"""

from __future__ import annotations

import argparse
from math import comb

from machine import machine_line

from gnn_convergence.study.evidence import HALF, prob_above

RATES = (0.3, 0.4, 0.5, 0.6, 0.67, 0.7, 0.8, 0.9)
CROSSINGS = ((0.67, 0.4), (0.7, 0.3), (0.8, 0.4), (0.6, 0.4))


def judged(p: float, min_runs: int, max_runs: int, step: int, credibility: float) -> dict:
    """P(inside), P(outside), P(transition) of a point of true rate p."""
    dist, n, out = {0: 1.0}, 0, {"inside": 0.0, "outside": 0.0}
    while n < max_runs:
        grown: dict[int, float] = {}
        for c, w in dist.items():
            for k in range(step + 1):
                grown[c + k] = grown.get(c + k, 0.0) + w * comb(step, k) * p**k * (1 - p) ** (
                    step - k
                )
        dist, n = grown, n + step
        if n < min_runs:
            continue
        undecided = {}
        for c, w in dist.items():
            above = prob_above(c, n, HALF)
            if above >= credibility:
                out["inside"] += w
            elif above <= 1 - credibility:
                out["outside"] += w
            else:
                undecided[c] = w
        dist = undecided
    out["transition"] = sum(dist.values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-runs", type=int, default=6)
    parser.add_argument("--max-runs", type=int, default=12)
    parser.add_argument("--step", type=int, default=3)
    parser.add_argument("--credibility", type=float, default=0.9)
    args = parser.parse_args()
    rule = (args.min_runs, args.max_runs, args.step, args.credibility)
    print(machine_line())
    print(
        f"min_runs {args.min_runs}, max_runs {args.max_runs}, step {args.step}, "
        f"credibility {args.credibility}"
    )
    print("rate  inside  outside  transition")
    for p in RATES:
        r = judged(p, *rule)
        print(f"{p:4.2f}  {r['inside']:6.3f}  {r['outside']:7.3f}  {r['transition']:10.3f}")
    print("crossing (inside rate / outside rate): P(band wrong)")
    for a, b in CROSSINGS:
        wrong = judged(a, *rule)["outside"] + judged(b, *rule)["inside"]
        print(f"{a:.2f} / {b:.2f}: {wrong:.3f}")


if __name__ == "__main__":
    main()
