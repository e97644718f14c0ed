"""What a run produces: per-seed records, the run's result, its training curve and the arrays
of its figure. Plain types (numpy, no torch): run.py fills them, artifacts.py writes them,
figures.py draws them, and the sweeper stores `RunResult.to_dict()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn_convergence.outcome import classify, run_value, worst

# The metrics of a run, in the order every record lists them (metrics.json, analysis.log,
# trials.csv, analysis.md's Metrics line, the maps' hover text)
METRICS = ("test_R2", "test_pearson", "connectivity_R2", "final_loss")


@dataclass
class SeedResult:
    """One training seed: its metrics, class, divergence and its dataset's statistics."""

    seed: int
    data_seed: int  # simulation seed of the dataset it trained on
    connectivity_R2: float
    test_R2: float
    test_pearson: float
    final_loss: float
    class_: str  # converged | partial | failed, from connectivity_R2
    diverged_at_step: int | None  # step where its loss turned non-finite
    data: dict[str, float]  # statistics of its dataset (spectral_radius, effective_rank_...)

    def to_dict(self) -> dict[str, Any]:
        """The plain record the sweeper stores in per_seed: metrics, class, divergence step,
        then the data statistics as top-level keys."""
        return {
            "seed": self.seed,
            "data_seed": self.data_seed,
            **{key: getattr(self, key) for key in METRICS},
            "class": self.class_,
            "diverged_at_step": self.diverged_at_step,
            **self.data,
        }


@dataclass
class TrainingCurve:
    """What the trainer logs every training.log_interval steps (and after the last step).

    step: (R,) step counts; loss_per_n: (K, R) mean of ||pred - y||_2 / N over the interval;
    connectivity_R2: (K, R) at that step. NaN from the step a seed diverged.
    """

    step: np.ndarray
    loss_per_n: np.ndarray
    connectivity_R2: np.ndarray

    def to_dict(self) -> dict[str, list]:
        """Plain lists, one per seed for the two metrics (NaN kept: metrics.json nulls it)."""
        return {
            "step": [int(s) for s in self.step],
            "loss_per_n": self.loss_per_n.tolist(),
            "connectivity_R2": self.connectivity_R2.tolist(),
        }


@dataclass
class Recovery:
    """The arrays of the run figure: learned against true W and the learned functions.

    true_w, learned_w: (K, N, N); u: (G,) grid over the activity's range; psi: (K, G) psi*
    scaled by each seed's W fit slope and divided by g (estimates the true psi); phi: (K, G);
    true_psi, true_phi: (G,) the functions the simulator integrates.
    """

    true_w: np.ndarray
    learned_w: np.ndarray
    u: np.ndarray
    psi: np.ndarray
    phi: np.ndarray
    true_psi: np.ndarray
    true_phi: np.ndarray


@dataclass
class RunResult:
    """Per-seed records and the run's summary numbers; `curve` is kept for metrics.json."""

    seeds: list[SeedResult]
    data: dict[int, dict[str, float]]  # statistics of each dataset, by simulation seed
    training_time_min: float
    n_steps: int
    device: str
    curve: TrainingCurve | None = None

    @property
    def objective(self) -> float:
        """Minimum connectivity_R2 over the seeds; NaN if a seed diverged."""
        return run_value(s.connectivity_R2 for s in self.seeds)

    @property
    def worst_seed(self) -> SeedResult:
        """The seed with the lowest connectivity_R2 (the one the objective comes from); a seed
        without a finite value (diverged) counts as the lowest."""
        return worst(self.seeds, lambda s: s.connectivity_R2)

    def summary(self) -> dict[str, float]:
        """min and mean over seeds of each metric, e.g. connectivity_R2_min."""
        out = {}
        for key in METRICS:
            values = np.array([getattr(s, key) for s in self.seeds], dtype=float)
            out[f"{key}_min"] = float(np.min(values))
            out[f"{key}_mean"] = float(np.mean(values))
        return out

    def to_dict(self) -> dict[str, Any]:
        """What the task function returns to the sweeper, as plain values: objective, class,
        min/mean of each metric, `seeds` (the per_seed records), data, time, steps, device."""
        return {
            "objective": self.objective,
            "class": classify(self.objective),
            **self.summary(),
            "seeds": [s.to_dict() for s in self.seeds],
            "data": {str(k): v for k, v in self.data.items()},
            "training_time_min": self.training_time_min,
            "n_steps": self.n_steps,
            "device": self.device,
        }
