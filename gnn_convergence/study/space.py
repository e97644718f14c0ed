"""Study parameters: Hydra override grammar turned into ordered grids."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from gnn_convergence.study.vocabulary import SPACE_FINGERPRINT, SPACE_GRIDS, SPACE_TEXTS

LABELS = {
    "learning_rate_W_start": "lr_W",
    "learning_rate_start": "lr",
    "learning_rate_embedding_start": "lr_emb",
    "coeff_W_L1": "coeff_W_L1",
    "batch_size": "batch_size",
}
EMBEDDING_KEY = "training.learning_rate_embedding_start"
MAX_GRID_VALUES = 1000  # values of one parameter's grid: each is validated before any trial
NO_EFFECT = {  # keys a study cannot sweep: they never change a trial's result
    "training.seeds": "the sweeper sets every trial's training seeds (hydra.sweeper.seed_mode)",
    "training.data_seeds": "the sweeper sets every trial's simulation seeds "
    "(hydra.sweeper.seed_mode)",
    "training.log_interval": "it sets only how often the training curve is logged",
    "threads": "it sets only the CPU threads of a run",
    "progress": "it shows only the progress bar",
    "device": "it sets only where a run trains",
    "paths": "it sets only where datasets are cached",
}
LINEAR_POINTS = 7
ZERO_DECADES = 2
_REL_TOL = 1e-9


@dataclass(frozen=True)
class Param:
    """One study parameter and its grid.

    Attributes:
        name: Full config key, e.g. ``training.learning_rate_W_start``.
        values: Grid values, ascending for numbers, in the items' order for a choice.
        log: Whether the grid is log-spaced (a leading 0 is allowed); snapping then uses log space.
        distribution: Optuna distribution containing every grid value.
    """

    name: str
    values: tuple[Any, ...]
    log: bool
    distribution: BaseDistribution

    @property
    def label(self) -> str:
        """Short name used in change descriptions and reports."""
        last = self.name.rsplit(".", 1)[-1]
        return LABELS.get(last, last)

    @property
    def is_choice(self) -> bool:
        """Whether the grid is an unordered choice (exact matches only)."""
        return isinstance(self.distribution, CategoricalDistribution)


def parse_space(params: Mapping[str, str]) -> list[Param]:
    """Parse ``{key: override text}`` (Hydra grammar) into grids, in the mapping's order.

    Raises:
        ValueError: For unparseable text, a non-sweep value, a non-finite number, an empty or
            inverted interval, a log interval reaching 0 or below, a choice or range with fewer
            than 2 or more than MAX_GRID_VALUES values, or a choice item that is a list or a
            mapping.
    """
    parser = OverridesParser.create()
    return [_parse_one(parser, key, str(text)) for key, text in params.items()]


def _parse_one(parser: OverridesParser, key: str, text: str) -> Param:
    try:
        sweep = parser.parse_overrides([f"{key}={text}"])[0].value()
    except HydraException as e:
        raise ValueError(f"{key}: cannot parse {text!r}: {e}") from e
    log = "log" in getattr(sweep, "tags", ())
    if isinstance(sweep, IntervalSweep):
        _check_finite(key, [sweep.start, sweep.end])
        param = _interval(key, float(sweep.start), float(sweep.end), log)
    elif isinstance(sweep, RangeSweep):
        _check_finite(key, [sweep.start, sweep.stop, sweep.step])
        param = _range(key, sweep, log)
    elif isinstance(sweep, ChoiceSweep):
        param = _choice(key, list(sweep.list))
    else:
        raise ValueError(f"{key}: expected a sweep (choice, range or interval), got {text!r}")
    _check_count(key, len(param.values))
    return param


def _check_finite(key: str, numbers: Sequence[Any]) -> None:
    for number in numbers:
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"{key}: {number} is invalid: allowed is a finite number")


def _check_count(key: str, count: int) -> None:
    if count > MAX_GRID_VALUES:
        raise ValueError(
            f"{key}: {count:,} grid values are invalid: allowed is at most {MAX_GRID_VALUES:,}"
        )


def _interval(key: str, lo: float, hi: float, log: bool) -> Param:
    if not lo < hi:
        raise ValueError(f"{key}: interval({lo:g}, {hi:g}) is empty or inverted")
    if log:
        if lo <= 0:
            raise ValueError(f"{key}: a log interval needs a lower bound > 0, got {lo:g}")
        values = _series_125(lo, hi, ends=True)
        return Param(key, values, True, FloatDistribution(lo, hi, log=True))
    if lo == 0:
        values = (0.0, *_series_125(hi / 10**ZERO_DECADES, hi, ends=False))
        return Param(key, values, True, FloatDistribution(0.0, hi))
    step = (hi - lo) / (LINEAR_POINTS - 1)
    values = tuple(_round(lo + i * step) for i in range(LINEAR_POINTS))
    return Param(key, values, False, FloatDistribution(lo, hi))


def _series_125(lo: float, hi: float, ends: bool) -> tuple[float, ...]:
    """The 1-2-5 series per decade within [lo, hi], plus both ends if ``ends``."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    series = [float(f"{m}e{e}") for e in range(first, last + 1) for m in (1, 2, 5)]
    inside = [v for v in series if lo * (1 - _REL_TOL) <= v <= hi * (1 + _REL_TOL)]
    if ends:
        inside += [v for v in (lo, hi) if not any(_close(v, s) for s in inside)]
    return tuple(sorted(inside))


def _range(key: str, sweep: RangeSweep, log: bool) -> Param:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if step == 0:
        raise ValueError(f"{key}: range step must not be 0")
    count = max(0, math.ceil((stop - start) / step - _REL_TOL))
    _check_count(key, count)
    values = tuple(sorted(_round(start + i * step) for i in range(count)))
    if len(values) < 2:
        raise ValueError(f"{key}: range needs at least 2 values, got {list(values)}")
    if log and values[0] <= 0:
        raise ValueError(f"{key}: a log range needs values > 0, got {values[0]:g}")
    lo, hi = values[0], values[-1]
    if all(isinstance(v, int) for v in values):
        dist: BaseDistribution = IntDistribution(lo, hi, step=abs(step))
    else:
        values = tuple(float(v) for v in values)
        dist = FloatDistribution(float(lo), float(hi), step=abs(float(step)))
    return Param(key, values, log, dist)


def _choice(key: str, items: list[Any]) -> Param:
    for item in items:
        if not isinstance(item, (int, float, str)):  # bool is an int
            raise ValueError(
                f"{key}: choice item {item!r} is invalid: allowed is a number, a string or a "
                "boolean (a grid value is one config value; lists and mappings cannot be "
                "compared or mapped)"
            )
    _check_finite(key, items)
    if len(items) < 2:
        raise ValueError(f"{key}: a choice needs at least 2 items, got {items}")
    if len(set(map(repr, items))) != len(items):
        raise ValueError(f"{key}: choice items must be distinct, got {items}")
    return Param(key, tuple(items), False, CategoricalDistribution(items))


def _round(value: float) -> float | int:
    if isinstance(value, int):
        return value
    return float(f"{value:.12g}")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL_TOL)


def index_of(param: Param, value: Any) -> int | None:
    """Index of the grid value equal to ``value`` (floats within 1e-9 relative), else None."""
    if param.is_choice:
        return next((i for i, v in enumerate(param.values) if v == value), None)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return next((i for i, v in enumerate(param.values) if _close(x, float(v))), None)


def snap_index(param: Param, value: Any) -> int:
    """Index of the grid value nearest to ``value`` (log space for log grids).

    Raises:
        ValueError: For a choice that does not contain ``value``, or a non-numeric value.
    """
    if param.is_choice:
        for i, item in enumerate(param.values):
            if item == value:
                return i
        raise ValueError(f"{param.name}: {value!r} is not one of {list(param.values)}")
    try:
        x = float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{param.name}: {value!r} is not a number") from e
    grid = [float(v) for v in param.values]
    positive = [v for v in grid if v > 0]
    if param.log and x > 0 and positive and x >= positive[0] / 2:
        return grid.index(min(positive, key=lambda v: abs(math.log(v / x))))
    return min(range(len(grid)), key=lambda i: abs(grid[i] - x))


def snap(param: Param, value: Any) -> Any:
    """The grid value nearest to ``value`` (see :func:`snap_index`)."""
    return param.values[snap_index(param, value)]


def check_space(params: Sequence[Param], config: Mapping[str, Any], seed_mode: str) -> None:
    """Check that every parameter exists in ``config`` and can change a trial's result under
    the study's ``seed_mode`` (hydra.sweeper.seed_mode).

    Raises:
        ValueError: For an unknown key, a key of NO_EFFECT, ``simulation.seed`` unless the
            seed mode is fixed_data (the others give every trial its simulation seeds), or the
            embedding learning rate while ``model.single_type`` is true (frozen embeddings).
    """
    for param in params:
        _lookup(param.name, config)
        why = _no_effect(param.name, config, seed_mode)
        if why:
            raise ValueError(f"{param.name} cannot change a trial: {why}")


def _no_effect(key: str, config: Mapping[str, Any], seed_mode: str) -> str | None:
    """Why sweeping ``key`` cannot change a trial's result, or None."""
    if key == EMBEDDING_KEY and config.get("model", {}).get("single_type"):
        return "embeddings are frozen while model.single_type is true"
    if key == "simulation.seed" and seed_mode != "fixed_data":
        return (
            f"seed_mode {seed_mode} gives every trial its simulation seeds "
            "(only fixed_data runs on simulation.seed)"
        )
    return NO_EFFECT.get(key) or NO_EFFECT.get(key.split(".", 1)[0])


def _lookup(key: str, config: Mapping[str, Any]) -> Any:
    node: Any = config
    prefix: list[str] = []
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            known = _leaf_keys(node, ".".join(prefix)) if isinstance(node, Mapping) else []
            raise ValueError(f"unknown parameter {key}; known: {', '.join(known) or 'none'}")
        node = node[part]
        prefix.append(part)
    return node


def _leaf_keys(node: Mapping[str, Any], prefix: str) -> list[str]:
    keys = []
    for name, value in node.items():
        full = f"{prefix}.{name}" if prefix else str(name)
        keys += _leaf_keys(value, full) if isinstance(value, Mapping) else [full]
    return sorted(keys)


def fingerprint(params: Sequence[Param]) -> str:
    """Short stable hash of the parameters' names and grid values."""
    payload = json.dumps([[p.name, [repr(v) for v in p.values]] for p in params])
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def value_text(value: Any) -> str:
    """Compact text of a grid value (``0.001``, ``5e-06``, ``8``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def record_space(study: Any, texts: Mapping[str, str], params: Sequence[Param]) -> None:
    """Store the search space on an Optuna study: its grammar text (``params``, what
    :func:`parse_space` reads back), its grids (``space``) and ``space_fingerprint``."""
    study.set_user_attr(SPACE_TEXTS, dict(texts))
    study.set_user_attr(SPACE_GRIDS, {p.name: list(p.values) for p in params})
    study.set_user_attr(SPACE_FINGERPRINT, fingerprint(params))
