"""The rate network PDE_N4: connectivity, neuron types, Euler integration with optional
process and measurement noise, data statistics.

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


def chaotic_matrix(n: int, rng: np.random.Generator) -> np.ndarray:
    """i.i.d. Normal(0, 1/N) entries (the diagonal not yet cleared): (N, N)."""
    return rng.normal(0.0, 1.0 / np.sqrt(n), size=(n, n))


def low_rank_matrix(n: int, rank: int, rng: np.random.Generator) -> np.ndarray:
    """U V / sqrt(r N) with U (N, r) then V (r, N) drawn i.i.d. Normal(0, 1): rank r, entry
    variance 1/N (the diagonal not yet cleared): (N, N)."""
    u = rng.normal(size=(n, rank))
    v = rng.normal(size=(rank, n))
    return u @ v / np.sqrt(rank * n)


def connectivity(
    n: int,
    dale: bool,
    dale_factor: float,
    rng: np.random.Generator,
    kind: str = "chaotic",
    rank: int = 1,
    filling_factor: float = 1.0,
) -> np.ndarray:
    """W (N, N), W[post, pre]: chaotic_matrix or (kind low_rank) low_rank_matrix, zero
    diagonal; with Dale's law every entry's absolute value, the first int(N * dale_factor)
    columns (presynaptic neurons) positive and the others negative; then, for
    filling_factor < 1, only the entries with rho_ij <= filling_factor kept (rho i.i.d.
    uniform in [0, 1), drawn after W), the others 0, the kept ones not rescaled."""
    if kind == "chaotic":
        w = chaotic_matrix(n, rng)
    elif kind == "low_rank":
        w = low_rank_matrix(n, rank, rng)
    else:
        raise ValueError(f"unknown connectivity type {kind!r}: chaotic or low_rank")
    if dale:  # before the diagonal is cleared: the same W, the diagonal +0.0
        n_exc = int(n * dale_factor)
        w = np.abs(w)
        w[:, n_exc:] *= -1.0
    np.fill_diagonal(w, 0.0)
    if filling_factor < 1.0:
        w = np.where(rng.random((n, n)) <= filling_factor, w, 0.0)
    return w


@dataclass
class Neurons:
    """PDE_N4 parameters of every neuron: (N,) arrays, each neuron's value from its type."""

    a: np.ndarray
    b: np.ndarray
    g: np.ndarray
    s: np.ndarray
    w: np.ndarray
    h: np.ndarray


def neuron_types(cfg: SimulationConfig) -> list[NeuronType]:
    """The type rows: simulation.neuron_types, or [simulation.neuron] when that is empty."""
    return list(cfg.neuron_types) or [cfg.neuron]


def type_index(n: int, k: int) -> np.ndarray:
    """Type of each neuron: contiguous blocks, type_i = floor(i / floor(N / K)), the remainder
    N - K floor(N / K) in the last type: (N,) integers in 0 .. K - 1."""
    block = max(n // k, 1)
    return np.minimum(np.arange(n) // block, k - 1)


def neuron_parameters(cfg: SimulationConfig) -> NeuronType | Neurons:
    """The parameters the simulation integrates: the one row itself with one type, else
    Neurons, each neuron's parameters from its type (type_index)."""
    rows = neuron_types(cfg)
    if len(rows) == 1:
        return rows[0]
    t = type_index(cfg.n_neurons, len(rows))
    table = {
        f: np.array([getattr(row, f) for row in rows])[t] for f in ("a", "b", "g", "s", "w", "h")
    }
    return Neurons(**table)


def true_curves(u: np.ndarray, neuron: NeuronType | Neurons) -> tuple[np.ndarray, np.ndarray]:
    """The network's two functions at values u (any shape): the presynaptic signal
    psi(u) = tanh((u - h) / w) and the self-dynamics phi(u) = -a u + b + s tanh(u), which the
    GNN's psi* and phi* learn (psi* up to the scale of W). With Neurons, u's last axis is the
    neuron i and each takes its own a_i, b_i, s_i, w_i, h_i."""
    p = neuron
    return np.tanh((u - p.h) / p.w), -p.a * u + p.b + p.s * np.tanh(u)


def derivative(u: np.ndarray, w: np.ndarray, neuron: NeuronType | Neurons) -> np.ndarray:
    """du/dt = phi(u_i) + g sum_j W[i, j] psi(u_j)
    = -a u_i + b + s tanh(u_i) + g sum_j W[i, j] tanh((u_j - h) / w), for u (..., N); with
    Neurons a, b, g, s are the postsynaptic neuron i's and w, h the presynaptic neuron j's."""
    psi, phi = true_curves(u, neuron)
    return phi + neuron.g * (psi @ w.T)


def simulate(cfg: SimulationConfig) -> Dataset:
    """Draw W and the initial state from `cfg.seed`, burn in, then store n_frames + 1 frames;
    process noise after every Euler step, measurement noise on the stored frames at the end.

    Raises:
        SimulationError: The activity or its derivative turned non-finite (the Euler scheme
            blew up: dt too large for the dynamics, or g too strong); names the step.
    """
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_neurons
    w = connectivity(
        n,
        cfg.dale,
        cfg.dale_factor,
        rng,
        kind=cfg.connectivity_type,
        rank=cfg.connectivity_rank,
        filling_factor=cfg.connectivity_filling_factor,
    )
    neurons = neuron_parameters(cfg)
    u = cfg.init_scale * rng.normal(size=n)  # (N,)
    activity = np.empty((cfg.n_frames + 1, n))  # (T, N)
    deriv = np.empty_like(activity)

    def euler(u: np.ndarray, y: np.ndarray) -> np.ndarray:
        """u + dt f(u), plus sigma_p xi (xi ~ Normal(0, I), no dt scaling) if noise_model_level."""
        u = u + cfg.dt * y
        if cfg.noise_model_level > 0:
            u = u + cfg.noise_model_level * rng.normal(size=n)
        return u

    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by step
        for step in range(1, cfg.burn_in + 1):
            u = euler(u, derivative(u, w, neurons))
            if not np.isfinite(u).all():
                raise SimulationError.at(cfg, step, f"burn-in step {step}")
        for k in range(cfg.n_frames + 1):
            y = derivative(u, w, neurons)  # the stored derivative excludes the process noise
            activity[k], deriv[k] = u, y
            if not np.isfinite(y).all():  # also when u is not (unless a = s = 0: see below)
                break
            if k < cfg.n_frames:
                u = euler(u, y)
    bad = ~(np.isfinite(activity).all(axis=1) & np.isfinite(deriv).all(axis=1))
    if bad.any():
        k = int(np.argmax(bad))  # the first frame with a non-finite value
        where = f"frame {k}" if not np.isfinite(activity[k]).all() else f"derivative, frame {k}"
        raise SimulationError.at(cfg, cfg.burn_in + k, where)
    if cfg.measurement_noise_level > 0:
        activity = activity + rng.normal(0.0, cfg.measurement_noise_level, size=activity.shape)
        # frames 1 .. T-2 take the finite difference of the noisy activity; 0 and T-1 keep f(u)
        deriv[1:-1] = (activity[2:] - activity[1:-1]) / cfg.dt
    return Dataset(w=w, activity=activity, derivative=deriv)


class SimulationError(RuntimeError):
    """The simulated activity turned non-finite; the message says where and what to change."""

    @classmethod
    def at(cls, cfg: SimulationConfig, step: int, where: str) -> SimulationError:
        """The error for a blow-up found after Euler step `step` (`where`: burn-in or frame)."""
        rows = neuron_types(cfg)
        key = "simulation.neuron" if len(rows) == 1 else "simulation.neuron_types[*]"
        g, a = (
            (rows[0].g, rows[0].a)
            if len(rows) == 1
            else ([r.g for r in rows], [r.a for r in rows])
        )
        return cls(
            f"the simulated activity is not finite after Euler step {step} of "
            f"{cfg.burn_in + cfg.n_frames} ({where}): the Euler scheme blew up with "
            f"simulation.dt={cfg.dt}, {key}.g={g}, {key}.a={a}; choose a smaller simulation.dt "
            f"(explicit Euler needs dt * a < 2; the default is 0.01) or a smaller {key}.g"
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
