"""Speed of populations: ms per member-step and members per second against population size.

For K = 1, 3, 24, 96, 384 members (N = 100, batch 8, the default model), times the real
training loop (`trainer.train`: frame gather, loss, backward, Adam, bookkeeping) in three
settings, eager and compiled:

- `mixed`: runs of 3 members (3 seeds, as the population launcher's jobs), each run its own
  learning rates and loss coefficients (a population);
- `distinct`: every member its own learning rates and loss coefficients (the worst case for the
  CPU's Adam, one fused call per member and learning rate);
- `uniform`: every member the default training config (K seeds of one config);
- `before`: K seeds of one config with the trainer of commit f98f92a (torch's fused Adam, one
  learning rate per parameter group), loaded from git: what a run cost before populations.

A figure is (time of S2 steps - time of S1 steps) / (S2 - S1), so compilation and warm-up drop
out. CUDA rows come from the same script on a GPU (`--device cuda`).

    python benchmarks/population_benchmark.py [--device cpu|cuda] [--sizes 1 3 24 96 384]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine_line  # benchmarks/machine.py

from gnn_convergence.config import ModelConfig, SimulationConfig, TrainingConfig
from gnn_convergence.model import ConnectivityGNN
from gnn_convergence.run import stack_data
from gnn_convergence.simulation import simulate
from gnn_convergence.trainer import Hyper, train

BEFORE = "f98f92a"  # the last commit before populations
SIM = SimulationConfig(n_frames=2000)


def before_trainer():
    """trainer.py of commit BEFORE as a module."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:gnn_convergence/trainer.py"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    ).stdout
    path = Path(tempfile.mkdtemp()) / "trainer_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("trainer_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def mixed_configs(k: int, base: TrainingConfig, run: int) -> list[TrainingConfig]:
    """k member configs, `run` consecutive members sharing learning rates and coefficients
    drawn from the default study's grids."""
    rng = np.random.default_rng(k)
    configs = [
        dataclasses.replace(
            base,
            learning_rate_W_start=float(rng.choice([1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2])),
            learning_rate_start=float(rng.choice([1e-4, 2e-4, 5e-4, 1e-3])),
            coeff_W_L1=float(rng.choice([0.0, 1e-6, 5e-6, 1e-5, 1e-4])),
        )
        for _ in range(0, k, run)
    ]
    return [configs[i // run] for i in range(k)]


def seconds(setting: str, k: int, steps: int, compiled: bool, data, device, before) -> float:
    """Wall time of one training of `steps` steps for k members."""
    cfg = TrainingConfig(n_epochs=1, log_interval=steps, compile=compiled)
    model = ConnectivityGNN(ModelConfig(), SIM.n_neurons, list(range(k))).to(device)
    if setting == "before":
        return before.train(model, data(k), cfg, steps).seconds
    runs = {"mixed": 3, "distinct": 1}
    configs = mixed_configs(k, cfg, runs[setting]) if setting in runs else [cfg] * k
    hyper = Hyper.of(configs, torch.float32, device)
    return train(model, data(k), cfg, steps, hyper=hyper).seconds


def ms_per_step(setting, k, compiled, data, device, before, budget: float) -> float:
    """Steady-state ms per step: two trainings of different lengths, differenced (after one
    warm-up training: a process's first compilation is slower than the next)."""
    short = 10
    seconds(setting, k, short, compiled, data, device, before)
    first = seconds(setting, k, short, compiled, data, device, before)
    probe = seconds(setting, k, 2 * short, compiled, data, device, before) - first
    per_step = max(probe / short, 1e-4)
    long = short + max(20, min(2000, int(budget / per_step)))
    return (seconds(setting, k, long, compiled, data, device, before) - first) / (long - short)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 24, 96, 384])
    parser.add_argument("--budget", type=float, default=8.0, help="seconds of timed steps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(machine_line(torch, np))
    print(f"device {device}", torch.cuda.get_device_name() if device.type == "cuda" else "")
    print(f"torch threads {torch.get_num_threads()}; N {SIM.n_neurons}, batch 8")
    dataset = simulate(SIM)
    stacked = stack_data({SIM.seed: dataset}, [SIM.seed], device)

    def data(k: int):
        return dataclasses.replace(stacked, index=stacked.index[:1].expand(k).contiguous())

    before = before_trainer()
    print(f"{'mode':9}{'setting':9}{'K':>5}{'ms/step':>10}{'ms/member-step':>16}{'members/s':>11}")
    for compiled in (False, True):
        for k in args.sizes:
            for setting in ("mixed", "distinct", "uniform", "before"):
                start = time.perf_counter()
                ms = 1000 * ms_per_step(setting, k, compiled, data, device, before, args.budget)
                mode = "compiled" if compiled else "eager"
                print(
                    f"{mode:9}{setting:9}{k:5d}{ms:10.2f}{ms / k:16.3f}{1000 * k / ms:11.0f}"
                    f"   ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())
