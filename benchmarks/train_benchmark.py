"""Training speed and quality, side by side on one machine.

Prints ms per training step of the dense trainer (1, 3 and 8 seeds, eager and compiled) and of
the per-edge torch_geometric formulation, N = 100, batch 8; the ratio per seed-step; then the
wall time, training time, peak memory and connectivity_R2 of one full default run
(`python -m gnn_convergence.train`, 3 seeds, 25,000 steps).

    python benchmarks/train_benchmark.py [--device cpu|cuda] [--steps 200] [--no-full-run]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gnn_convergence.config import ModelConfig, SimulationConfig, TrainingConfig
from gnn_convergence.model import ConnectivityGNN
from gnn_convergence.reference import PerEdgeGNN
from gnn_convergence.run import stack_data
from gnn_convergence.simulation import simulate
from gnn_convergence.trainer import Hyper, loss_terms, make_optimizer

BATCH = 8


def time_dense(data, device, n_seeds: int, steps: int, compiled: bool) -> float:
    """ms per step of the dense loss + backward + Adam for n_seeds seeds."""
    model = ConnectivityGNN(ModelConfig(), 100, list(range(n_seeds))).to(device)
    optimizer = make_optimizer(
        model, Hyper.of([TrainingConfig()] * n_seeds, torch.float32, device)
    )
    loss_fn = torch.compile(loss_terms, dynamic=False) if compiled else loss_terms
    idx = torch.randint(0, 9990, (n_seeds, BATCH), device=device)
    u = data.activity[torch.zeros_like(idx[:, :1]), idx]  # (K, B, N)
    y = data.derivative[torch.zeros_like(idx[:, :1]), idx]
    delta = data.delta[:1].expand(n_seeds)

    def step() -> None:
        loss, _ = loss_fn(model, u=u, y=y, delta=delta, coeff_w_l1=5e-6, coeff_edge_diff=100.0)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()

    return _time(step, steps, device)


def time_per_edge(data, device, steps: int) -> float:
    """ms per step with psi* evaluated on every edge (torch_geometric MessagePassing)."""
    model = ConnectivityGNN(ModelConfig(), 100, [0]).to(device)
    reference = PerEdgeGNN(model, 0)
    optimizer = make_optimizer(model, Hyper.of([TrainingConfig()], torch.float32, device))
    idx = torch.randint(0, 9990, (BATCH,), device=device)
    u, y = data.activity[0, idx], data.derivative[0, idx]  # (B, N)
    delta = data.delta[0]

    def step() -> None:
        pred = reference(u)
        shifted = model.psi_values(torch.cat([u, u + delta])[None])[0]  # (2B, N)
        edge = torch.relu(shifted[:BATCH] - shifted[BATCH:]).norm(dim=1).sum()
        loss = (pred - y).norm() + 5e-6 * model.w.abs().sum() + 100.0 * edge
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return _time(step, steps, device)


def _time(step, steps: int, device) -> float:
    for _ in range(10):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps * 1000


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def full_run(device: str) -> dict:
    """The default run through the real entry point, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gnn_convergence.train",
                "progress=false",
                f"device={device}",
                f"hydra.run.dir={tmp}/run",
            ],
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - start
        metrics = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": wall, "metrics": metrics, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--no-full-run", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, device {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
    )
    data = stack_data({42: simulate(SimulationConfig())}, [42], device)

    per_edge = time_per_edge(data, device, max(args.steps // 10, 5))
    print(f"per-edge (torch_geometric), 1 seed: {per_edge:8.2f} ms/step")
    for compiled in (False, True):
        for k in (1, 3, 8):
            ms = time_dense(data, device, k, args.steps, compiled)
            print(
                f"dense {'compiled' if compiled else 'eager   '}, {k} seeds: {ms:8.2f} ms/step "
                f"= {ms / k:6.2f} ms/seed-step, {per_edge / (ms / k):6.1f}x per-edge"
            )
    if device.type == "cuda":
        print(
            f"peak CUDA memory (timing runs): {torch.cuda.max_memory_allocated() / 2**20:.0f} MB"
        )
    if not args.no_full_run:
        result = full_run(args.device)
        m = result["metrics"]
        r2 = ", ".join(f"{s['connectivity_R2']:.3f}" for s in m["seeds"])
        print(
            f"full default run (3 seeds, {m['n_steps']} steps, compiled): "
            f"{result['wall_s']:.1f} s wall, {m['training_time_min'] * 60:.1f} s training, "
            f"peak RSS {result['peak_rss_mb']:.0f} MB; connectivity_R2 per seed {r2}"
        )


if __name__ == "__main__":
    main()
