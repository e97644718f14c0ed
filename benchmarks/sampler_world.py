"""The sampler benchmark's world: every run's connectivity_R2 on the study's default grid,
calibrated on the measured cells of benchmarks/calibration/runs.csv.

The grid is the default study's (``DEFAULT_SPACE``: lr_W 1e-4..1e-2 in 7 values, lr 1e-4..1e-3 in
4, coeff_W_L1 0 and 1e-6..1e-4 in 8, batch_size 1, 4, 8, 16; 896 configs). The measured cells
(benchmarks/calibration/grid.sh, every cell 6 runs on the same 6 datasets): the lr_W column at
the start's other values (lr 5e-4, coeff_W_L1 5e-6, batch 8), and slices along lr, coeff_W_L1
and batch_size at lr_W 2e-3 and 1e-2.

A run of config c on dataset d with training seed s converges when
``q(c) > s_d * h(d) + s_e * e`` with h(d), e ~ N(0, 1): h is drawn from (benchmark seed, d)
alone, so a hard dataset is hard for every config; e from (benchmark seed, c, d, s). Units:
s_d^2 + s_e^2 = 1, so the true per-run rate of c is Phi(q(c)).

- q at a measured cell is Phi^-1 of its smoothed rate (k + 1/2) / (n + 1): 0 of 6 is 0.07,
  6 of 6 is 0.93 (a cell's rate is known to within its 6 runs, no better).
- Along the lr_W column, a cell without a converged run beyond another such cell (away from
  the converging cells) lies one probit unit lower per step: 0 of 6 only says "rate below
  about 0.3", and the measured connectivity_R2 keeps falling away from the transition.
- Elsewhere q is additive in probit units: the lr_W column's q(lr_W), plus for lr, coeff_W_L1
  and batch_size each the step from the column's value to the slice's (its q minus the
  column's q, measured at lr_W 2e-3 and at 1e-2).
- Assumptions where the data are silent: (1) a slice's effect at lr_W 5e-3 is interpolated
  between 2e-3 and 1e-2 in log lr_W; below 2e-3 it is the effect at 2e-3 (no slice was measured
  there); (2) an unmeasured value of a parameter (coeff_W_L1 1e-6, 2e-6, 1e-5) is interpolated
  on the grid index between its measured neighbours; (3) batch 1 was not measured: it takes
  batch 4's effect (the nearest measured value; no extrapolation); (4) parameters do not
  interact except through lr_W (each slice's effect depends on lr_W only); (5) no config is
  better than the best measured cell: q is capped at the largest measured q; (6) a slice not
  (yet) measured has no effect: the output names the cells each slice has.
- s_e / s_d is fitted by maximum likelihood on the measured runs, the datasets' h integrated out
  (the same 6 datasets run in every cell, so a dataset that fails everywhere shows as a large
  s_d), with the cells' q as above.
- A diverged run (connectivity_R2 None) happens, among non-converged runs, at the measured share
  of the non-converged runs that diverged at the same lr_W (0 where none did).
- connectivity_R2: with z = q(c) - s_d h - s_e e, a converged run takes the measured converged
  values' quantile at 2 Phi(z) - 1, a non-converged one the measured non-converged values'
  quantile at 2 Phi(z): the measured distributions, ordered so that a run closer to
  converging has the higher value.

The hypothetical scenario adds a second working region far from the measured cells (lr_W 2e-4,
lr 1e-3, coeff_W_L1 <= 2e-6, batch 4; best rate 0.86): no measurement is behind it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np

from gnn_convergence.study import demo
from gnn_convergence.study.demo import SEED_START
from gnn_convergence.study.space import parse_space, snap_index

# sampler_previous.py imports this module against the previous protocol's package (commit
# a6313db), where the default space is named SEED_SPACE
PARAMS = parse_space(getattr(demo, "DEFAULT_SPACE", None) or demo.SEED_SPACE)
SIZES = tuple(len(p.values) for p in PARAMS)
GRID = [tuple(int(i) for i in c) for c in np.ndindex(*SIZES)]
START = tuple(snap_index(p, SEED_START[p.label]) for p in PARAMS)
RUNS_CSV = Path(__file__).with_name("calibration") / "runs.csv"
COLUMNS = ("lr_W", "lr", "coeff_W_L1", "batch_size")
ANCHORS = (4, 6)  # lr_W indices of the slices: 2e-3, 1e-2
CONVERGED = 0.9  # connectivity_R2 above which a run converged
FALL_STEP = 1.0  # probit units per lr_W step between two column cells without a converged run
PHI = NormalDist()
Config = tuple[int, ...]


@dataclass(frozen=True)
class Cell:
    """A measured cell: its config and, per run, dataset, converged and connectivity_R2."""

    config: Config
    data_seeds: tuple[int, ...]
    values: tuple[float | None, ...]

    @property
    def converged(self) -> tuple[bool, ...]:
        return tuple(v is not None and v > CONVERGED for v in self.values)

    @property
    def rate(self) -> float:
        return sum(self.converged) / len(self.values)

    @property
    def z(self) -> float:
        """Phi^-1 of the smoothed rate (k + 1/2) / (n + 1)."""
        return PHI.inv_cdf((sum(self.converged) + 0.5) / (len(self.values) + 1))


def read_cells(path: Path = RUNS_CSV) -> dict[Config, Cell]:
    """The measured cells of runs.csv (a cell's runs in data_seed order)."""
    with path.open() as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    grouped: dict[Config, list[tuple[int, float | None]]] = {}
    for row in rows:
        config = tuple(snap_index(p, float(row[k])) for p, k in zip(PARAMS, COLUMNS, strict=True))
        value = float(row["connectivity_R2"]) if row["connectivity_R2"] else None
        grouped.setdefault(config, []).append((int(row["data_seed"]), value))
    return {
        c: Cell(c, tuple(d for d, _ in sorted(runs)), tuple(v for _, v in sorted(runs)))
        for c, runs in grouped.items()
    }


def column_config(u: int) -> Config:
    return (u, *START[1:])


def shifted(c: Config, p: int, index: int) -> Config:
    return c[:p] + (index,) + c[p + 1 :]


def slice_effect(cells: dict[Config, Cell], anchor: int, p: int) -> list[float]:
    """Per index of parameter p, q minus the column's q at lr_W index ``anchor``: measured
    indices as measured, others interpolated on the grid index, the nearest beyond the ends."""
    base = cells[column_config(anchor)].z
    known = {START[p]: 0.0}
    for i in range(SIZES[p]):
        cell = cells.get(shifted(column_config(anchor), p, i))
        if cell is not None and i != START[p]:
            known[i] = cell.z - base
    xs = sorted(known)
    return list(np.interp(range(SIZES[p]), xs, [known[x] for x in xs]))


def lr_w_weight(u: int) -> float:
    """Weight of the 1e-2 slice at lr_W index u (log lr_W between 2e-3 and 1e-2)."""
    values = PARAMS[0].values
    lo, hi = ANCHORS
    if u <= lo:
        return 0.0
    return min(1.0, math.log(values[u] / values[lo]) / math.log(values[hi] / values[lo]))


def column_q(cells: dict[Config, Cell]) -> list[float]:
    """q along the lr_W column: each cell's smoothed probit, except that a cell with no
    converged run next to another such cell on the side of the converging cells lies
    FALL_STEP below it (0 of 6 says "rate below about 0.3"; the connectivity_R2 keeps
    falling away from the transition: 0.49, 0.13, 0.04 at lr_W 5e-4, 2e-4, 1e-4)."""
    column = [cells[column_config(u)].z for u in range(SIZES[0])]
    some = [u for u in range(SIZES[0]) if any(cells[column_config(u)].converged)]
    distance = [min((abs(u - v) for v in some), default=0) for u in range(SIZES[0])]
    for u in sorted(range(SIZES[0]), key=distance.__getitem__):
        inner = [v for v in (u - 1, u + 1) if 0 <= v < SIZES[0] and distance[v] < distance[u]]
        if distance[u] > 1 and inner:
            column[u] = min(column[u], column[inner[0]] - FALL_STEP)
    return column


def additive_q(cells: dict[Config, Cell]) -> dict[Config, float]:
    """q of every config (see the module docstring), the measured cells as measured."""
    column = column_q(cells)
    effects = {a: [slice_effect(cells, a, p) for p in range(1, 4)] for a in ANCHORS}
    cap = max(cell.z for cell in cells.values())
    q = {}
    for c in GRID:
        t = lr_w_weight(c[0])
        step = sum(
            (1 - t) * effects[ANCHORS[0]][p - 1][c[p]] + t * effects[ANCHORS[1]][p - 1][c[p]]
            for p in range(1, 4)
        )
        q[c] = min(column[c[0]] + step, cap)
    return q | {c: cell.z for c, cell in cells.items() if c[1:] != START[1:]}


def log_likelihood(cells: Iterable[Cell], q: dict[Config, float], share: float) -> float:
    """log P(measured converged/not per (cell, dataset)) with s_e = share * s_d, each
    dataset's h integrated out (datasets are the cells' common data_seeds)."""
    cells = list(cells)
    s_d = 1 / math.sqrt(1 + share**2)
    s_e = share * s_d
    h = np.linspace(-6, 6, 481)
    weight = np.exp(-(h**2) / 2)
    weight /= weight.sum()
    seeds = sorted({d for cell in cells for d in cell.data_seeds})
    total = 0.0
    for d in seeds:
        like = np.ones_like(h)
        for cell in cells:
            if d in cell.data_seeds:
                up = _phi((q[cell.config] - s_d * h) / s_e)
                like *= up if cell.converged[cell.data_seeds.index(d)] else 1 - up
        total += math.log(max(float((weight * like).sum()), 1e-300))
    return total


def _phi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def fit_share(cells: dict[Config, Cell], q: dict[Config, float]) -> float:
    """s_e / s_d of maximum likelihood on a grid 0.05..3."""
    grid = np.exp(np.linspace(math.log(0.05), math.log(3.0), 40))
    return float(max(grid, key=lambda s: log_likelihood(cells.values(), q, float(s))))


def diverge_share(cells: dict[Config, Cell]) -> list[float]:
    """Per lr_W index, the share of measured non-converged runs that diverged (0 if none)."""
    out = []
    for u in range(SIZES[0]):
        other = [
            v
            for c, cell in cells.items()
            if c[0] == u
            for v, ok in zip(cell.values, cell.converged, strict=True)
            if not ok
        ]
        out.append(sum(v is None for v in other) / len(other) if other else 0.0)
    return out


@dataclass
class Model:
    """A scenario: the true quality of every config, the noise split and the value pools."""

    name: str
    q: dict[Config, float]
    share: float  # s_e / s_d
    converged_values: np.ndarray
    other_values: np.ndarray
    diverge: list[float]
    s_d: float = field(init=False)
    s_e: float = field(init=False)

    def __post_init__(self) -> None:
        self.s_d = 1 / math.sqrt(1 + self.share**2)
        self.s_e = self.share * self.s_d

    def rate(self, c: Config) -> float:
        """The true per-run convergence rate."""
        return PHI.cdf(self.q[c])


def measured_model(cells: dict[Config, Cell]) -> Model:
    values = [
        (v, ok)
        for cell in cells.values()
        for v, ok in zip(cell.values, cell.converged, strict=True)
        if v is not None
    ]
    q = additive_q(cells)
    return Model(
        name="measured",
        q=q,
        share=fit_share(cells, q),
        converged_values=np.sort([v for v, ok in values if ok]),
        other_values=np.sort([v for v, ok in values if not ok]),
        diverge=diverge_share(cells),
    )


# The hypothetical second region: Q2 at its centre minus a penalty per grid step away.
Q2 = 1.08  # rate Phi(1.08) = 0.86
CENTRE2 = (1, 3, 2, 1)  # lr_W 2e-4, lr 1e-3, coeff_W_L1 2e-6, batch 4
STEP2 = (1.2, 1.5, 0.8, 1.0)  # per grid step along lr_W, lr, coeff_W_L1 (above 2e-6), batch


def q_second(c: Config) -> float:
    u, v, w, b = c
    steps = (abs(u - CENTRE2[0]), CENTRE2[1] - v, max(0, w - CENTRE2[2]), abs(b - CENTRE2[3]))
    return Q2 - sum(s * k for s, k in zip(STEP2, steps, strict=True))


def hypothetical_model(measured: Model, cells: dict[Config, Cell]) -> Model:
    """The measured world plus the second region; it must leave every measured cell as it
    was (checked)."""
    for c in cells:
        if PHI.cdf(q_second(c)) > 0.05:
            raise ValueError(f"the hypothetical region reaches the measured cell {c}")
    q = {c: max(measured.q[c], q_second(c)) for c in GRID}
    return Model(
        "hypothetical 2nd region",
        q,
        measured.share,
        measured.converged_values,
        measured.other_values,
        measured.diverge,
    )


def scenarios(path: Path = RUNS_CSV) -> tuple[dict[Config, Cell], list[Model]]:
    """The measured cells and the two scenarios: measured, hypothetical 2nd region."""
    cells = read_cells(path)
    measured = measured_model(cells)
    return cells, [measured, hypothetical_model(measured, cells)]


def region2(model: Model) -> frozenset[Config]:
    """Configs of the second region with rate >= 0.5 (empty in the measured world)."""
    return frozenset(c for c in GRID if q_second(c) > model.q[c] - 1e-12 and model.rate(c) >= 0.5)


DATA_STREAM, RUN_STREAM = 1_000_003, 1_000_033


@dataclass
class World:
    """One benchmark seed's world of one scenario: datasets and runs."""

    seed: int
    model: Model
    _h: dict[int, float] = field(default_factory=dict, init=False, repr=False)

    def difficulty(self, data_seed: int) -> float:
        if data_seed not in self._h:
            rng = np.random.default_rng([self.seed, data_seed, DATA_STREAM])
            self._h[data_seed] = float(rng.standard_normal())
        return self._h[data_seed]

    def run(self, c: Config, data_seed: int, seed: int) -> float | None:
        """connectivity_R2 of one run, None when it diverged."""
        m = self.model
        rng = np.random.default_rng([self.seed, data_seed, seed, *c, RUN_STREAM])
        e, u_div = rng.standard_normal(), rng.random()
        z = m.q[c] - m.s_d * self.difficulty(data_seed) - m.s_e * e
        if z > 0:
            return _quantile(m.converged_values, 2 * PHI.cdf(z) - 1)
        if u_div < m.diverge[c[0]]:
            return None
        return _quantile(m.other_values, 2 * PHI.cdf(z))

    def rate(self, c: Config) -> float:
        return self.model.rate(c)


def _quantile(values: np.ndarray, level: float) -> float:
    return float(np.quantile(values, min(max(level, 0.0), 1.0)))


def check_lines(cells: dict[Config, Cell], model: Model) -> list[str]:
    """Measured against world, per cell: runs, converged, measured rate, world rate, and
    whether the measured count is within sampling error (two-sided binomial p >= 0.05)."""
    lines = [
        f"{'cell (lr_W, lr, coeff_W_L1, batch)':38s} {'conv/runs':>9s} {'measured':>8s}"
        f" {'world':>6s} {'p':>6s}"
    ]
    for c, cell in sorted(cells.items()):
        k, n, r = sum(cell.converged), len(cell.values), model.rate(c)
        p = _binomial_p(k, n, r)
        values = ", ".join(f"{p_.values[i]:g}" for p_, i in zip(PARAMS, c, strict=True))
        lines.append(
            f"{values:38s} {f'{k}/{n}':>9s} {cell.rate:8.2f} {r:6.2f} {p:6.2f}"
            + ("" if p >= 0.05 else "  OUTSIDE")
        )
    return lines


def _binomial_p(k: int, n: int, r: float) -> float:
    pmf = [math.comb(n, j) * r**j * (1 - r) ** (n - j) for j in range(n + 1)]
    return min(1.0, 2 * min(sum(pmf[: k + 1]), sum(pmf[k:])))


SLICES = {
    "lr_W column": (0, 7),
    "lr slice": (1, 6),
    "coeff_W_L1 slice": (2, 8),
    "batch_size slice": (3, 4),
}  # parameter index, cells planned by grid.sh


def coverage_line(cells: dict[Config, Cell]) -> str:
    """Measured cells per grid of grid.sh (a cell is in the grid of the one parameter by which
    it differs from the column)."""
    counts = []
    for name, (p, planned) in SLICES.items():
        found = sum(
            all(c[i] == START[i] for i in range(1, 4) if i != p) and (p == 0 or c[p] != START[p])
            for c in cells
        )
        counts.append(f"{name} {found}/{planned}")
    return f"measured cells: {len(cells)} ({', '.join(counts)})"


def summary_lines(cells: dict[Config, Cell], model: Model) -> list[str]:
    """The fitted noise split, the datasets failing everywhere and the value pools."""
    seeds = sorted({d for cell in cells.values() for d in cell.data_seeds})
    never = [
        d
        for d in seeds
        if not any(
            cell.converged[cell.data_seeds.index(d)]
            for cell in cells.values()
            if d in cell.data_seeds
        )
    ]
    world_never = _share_never(cells, model)
    conv, other = model.converged_values, model.other_values
    best = max(GRID, key=model.rate)
    return [
        coverage_line(cells),
        f"s_e / s_d = {model.share:.2f} (maximum likelihood): s_d {model.s_d:.2f}, s_e"
        f" {model.s_e:.2f}; datasets failing in every measured cell: {len(never)} of"
        f" {len(seeds)} measured, {world_never:.0%} expected in the world",
        f"connectivity_R2 pools: {len(conv)} converged (median {np.median(conv):.3f}),"
        f" {len(other)} not (median {np.median(other):.3f}); diverged share of non-converged"
        f" runs per lr_W: {', '.join(f'{d:.2f}' for d in model.diverge)}",
        f"{model.name}: best {best} rate {model.rate(best):.2f}; start {START} rate"
        f" {model.rate(START):.2f}; configs with rate >= 0.5: {_count(model, 0.5)},"
        f" >= 0.9: {_count(model, 0.9)} of {len(GRID)}",
    ]


def _count(model: Model, level: float) -> int:
    return sum(model.rate(c) >= level for c in GRID)


def _share_never(cells: dict[Config, Cell], model: Model) -> float:
    """P(a fresh dataset fails at every measured cell) in the world."""
    h = np.linspace(-6, 6, 481)
    weight = np.exp(-(h**2) / 2)
    weight /= weight.sum()
    fail = np.ones_like(h)
    for c in cells:
        fail *= 1 - _phi((model.q[c] - model.s_d * h) / model.s_e)
    return float((weight * fail).sum())
