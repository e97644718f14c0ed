"""The chaotic rate network PDE_N4: connectivity, Euler integration, data statistics.

Implements docs/model.md, "Simulation". Every random draw takes a numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gnn_convergence.config import NeuronType, SimulationConfig

MAX_RANK_COMPONENTS = 100  # effective_rank counts over at most this many singular values
# Version of what simulate() produces; it enters the dataset cache key (dataset.cache_key).
# Bump it whenever a change to this module changes the arrays simulate() returns for a config.
SIMULATION_VERSION = 1


@dataclass
class Dataset:
    """One simulated network: true W (N, N), activity u and exact derivatives y (T, N)."""

    w: np.ndarray
    activity: np.ndarray
    derivative: np.ndarray

    @property
    def stats(self) -> dict[str, float]:
        """Spectral radius of W and effective ranks of the activity at 90 % and 99 %:
        `effective_rank_*` of the activity as stored (over its largest singular values),
        `effective_rank_centred_*` of the activity minus each neuron's mean."""
        return {
            "spectral_radius": spectral_radius(self.w),
            "effective_rank_90": effective_rank(self.activity, 0.90),
            "effective_rank_99": effective_rank(self.activity, 0.99),
            "effective_rank_centred_90": centred_effective_rank(self.activity, 0.90),
            "effective_rank_centred_99": centred_effective_rank(self.activity, 0.99),
        }


def connectivity(n: int, dale: bool, dale_factor: float, rng: np.random.Generator) -> np.ndarray:
    """Chaotic W: i.i.d. Normal(0, 1/N), zero diagonal; with Dale's law the first
    int(N * dale_factor) columns (presynaptic neurons) positive, the others negative."""
    w = rng.normal(0.0, 1.0 / np.sqrt(n), size=(n, n))  # (N, N), W[post, pre]
    if dale:
        n_exc = int(n * dale_factor)
        w = np.abs(w)
        w[:, n_exc:] *= -1.0
    np.fill_diagonal(w, 0.0)
    return w


def true_curves(u: np.ndarray, neuron: NeuronType) -> tuple[np.ndarray, np.ndarray]:
    """The network's two functions at values u (any shape): the presynaptic signal
    psi(u) = tanh((u - h) / w) and the self-dynamics phi(u) = -a u + b + s tanh(u), which the
    GNN's psi* and phi* learn (psi* up to the scale of W)."""
    p = neuron
    return np.tanh((u - p.h) / p.w), -p.a * u + p.b + p.s * np.tanh(u)


def derivative(u: np.ndarray, w: np.ndarray, neuron: NeuronType) -> np.ndarray:
    """du/dt = phi(u_i) + g sum_j W[i, j] psi(u_j)
    = -a u_i + b + s tanh(u_i) + g sum_j W[i, j] tanh((u_j - h) / w), for u (..., N)."""
    psi, phi = true_curves(u, neuron)
    return phi + neuron.g * (psi @ w.T)


def simulate(cfg: SimulationConfig) -> Dataset:
    """Draw W and the initial state from `cfg.seed`, burn in, then store n_frames + 1 frames.

    Raises:
        SimulationError: The activity or its derivative turned non-finite (the Euler scheme
            blew up: dt too large for the dynamics, or g too strong); names the step.
    """
    rng = np.random.default_rng(cfg.seed)
    w = connectivity(cfg.n_neurons, cfg.dale, cfg.dale_factor, rng)
    u = cfg.init_scale * rng.normal(size=cfg.n_neurons)  # (N,)
    activity = np.empty((cfg.n_frames + 1, cfg.n_neurons))  # (T, N)
    deriv = np.empty_like(activity)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by step
        for step in range(1, cfg.burn_in + 1):
            u = u + cfg.dt * derivative(u, w, cfg.neuron)
            if not np.isfinite(u).all():
                raise SimulationError.at(cfg, step, f"burn-in step {step}")
        for k in range(cfg.n_frames + 1):
            y = derivative(u, w, cfg.neuron)
            activity[k], deriv[k] = u, y
            if not np.isfinite(y).all():  # also when u is not (unless a = s = 0: see below)
                break
            u = u + cfg.dt * y
    bad = ~(np.isfinite(activity).all(axis=1) & np.isfinite(deriv).all(axis=1))
    if bad.any():
        k = int(np.argmax(bad))  # the first frame with a non-finite value
        where = f"frame {k}" if not np.isfinite(activity[k]).all() else f"derivative, frame {k}"
        raise SimulationError.at(cfg, cfg.burn_in + k, where)
    return Dataset(w=w, activity=activity, derivative=deriv)


class SimulationError(RuntimeError):
    """The simulated activity turned non-finite; the message says where and what to change."""

    @classmethod
    def at(cls, cfg: SimulationConfig, step: int, where: str) -> SimulationError:
        """The error for a blow-up found after Euler step `step` (`where`: burn-in or frame)."""
        return cls(
            f"the simulated activity is not finite after Euler step {step} of "
            f"{cfg.burn_in + cfg.n_frames} ({where}): the Euler scheme blew up with "
            f"simulation.dt={cfg.dt}, simulation.neuron.g={cfg.neuron.g}, "
            f"simulation.neuron.a={cfg.neuron.a}; choose a smaller simulation.dt (explicit Euler "
            f"needs dt * a < 2; the default is 0.01) or a smaller simulation.neuron.g"
        )


def spectral_radius(w: np.ndarray) -> float:
    """Largest eigenvalue modulus of W."""
    return float(np.max(np.abs(np.linalg.eigvals(w))))


def effective_rank(activity: np.ndarray, level: float) -> int:
    """Number of singular values of the (T, N) activity as stored (not centred) that reach
    `level` of the cumulative variance (sum of squared singular values), counted over the
    largest min(MAX_RANK_COMPONENTS, min(T, N) - 1) singular values only, 99 of them for
    N = 100 (docs/model.md, "Data statistics")."""
    k = min(MAX_RANK_COMPONENTS, min(activity.shape) - 1)
    return _rank_at(np.linalg.svd(activity, compute_uv=False)[:k], level)


def centred_effective_rank(activity: np.ndarray, level: float) -> int:
    """Number of singular values of the centred (T, N) activity (each neuron's mean removed)
    that reach `level` of the cumulative variance, over all of them. Gives other numbers than
    effective_rank: 13 / 35 against 7 / 27 at 90 % / 99 % on the default g = 7 dataset."""
    centred = activity - activity.mean(axis=0)
    return _rank_at(np.linalg.svd(centred, compute_uv=False), level)


def _rank_at(s: np.ndarray, level: float) -> int:
    """How many of the descending singular values s reach `level` of sum(s**2)."""
    share = np.cumsum(s**2) / np.sum(s**2)
    return int(np.searchsorted(share, level) + 1)
