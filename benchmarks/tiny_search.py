"""How small a network still recovers W: connectivity_R2 of 3 seeds every 1,000 steps.

The measurement behind `simulation=tiny training=tiny`:

    python benchmarks/tiny_search.py            # the candidates below, about 2 minutes on 2 cores
"""

from __future__ import annotations

import logging
import time

import torch

from gnn_convergence.config import ModelConfig, SimulationConfig, TrainingConfig
from gnn_convergence.model import ConnectivityGNN
from gnn_convergence.run import stack_data
from gnn_convergence.simulation import simulate
from gnn_convergence.trainer import train

# (n_neurons, n_frames, learning_rate_W_start, learning_rate_start, steps)
CANDIDATES = [
    (100, 10000, 1e-2, 5e-4, 8000),
    (100, 10000, 1e-2, 1e-3, 8000),
    (50, 10000, 1e-2, 5e-4, 8000),
]


class Checkpoints(logging.Handler):
    """Collects the trainer's progress lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("step"):
            self.lines.append(record.getMessage())


def measure(n: int, frames: int, lr_w: float, lr: float, steps: int) -> None:
    """Train seeds 0, 1, 2 on simulation seed 42 and print connectivity_R2 every 1,000 steps."""
    sim = SimulationConfig(n_neurons=n, n_frames=frames)
    data = simulate(sim)
    cfg = TrainingConfig(
        learning_rate_W_start=lr_w,
        learning_rate_start=lr,
        n_epochs=1,
        log_interval=1000,
        compile=False,
    )
    model = ConnectivityGNN(ModelConfig(), n, [0, 1, 2])
    handler = Checkpoints()
    logger = logging.getLogger("gnn_convergence.trainer")
    logger.addHandler(handler)
    start = time.perf_counter()
    train(model, stack_data({42: data}, [42, 42, 42], torch.device("cpu")), cfg, steps)
    logger.removeHandler(handler)
    print(
        f"N={n} frames={frames} lr_W={lr_w:g} lr={lr:g} ({time.perf_counter() - start:.0f} s, "
        f"{data.stats})"
    )
    for line in handler.lines:
        print("   ", line)


def main() -> None:
    logging.getLogger("gnn_convergence.trainer").setLevel(logging.INFO)
    for candidate in CANDIDATES:
        measure(*candidate)


if __name__ == "__main__":
    main()
