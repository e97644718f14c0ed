"""Typed run configuration: the schemas behind `conf/` and the check that names a bad key."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

COMPILE_MODES = ("default", "reduce-overhead")  # torch.compile modes of training.compile_mode
CONNECTIVITY_TYPES = ("chaotic", "low_rank")  # simulation.connectivity_type
FRAME_INDEX_BYTES = 8  # an int64 frame index of the trainer's frame table


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and what is allowed."""


@dataclass
class NeuronType:
    """PDE_N4 parameters of one neuron type (docs/model.md, "Simulation")."""

    a: float = 1.0
    b: float = 0.0
    g: float = 7.0
    s: float = 0.0
    w: float = 1.0
    h: float = 0.0


@dataclass
class SimulationConfig:
    """The simulated rate network; every field enters the dataset's cache key (the options
    after `seed` only where they differ from their neutral default, see dataset.cache_key)."""

    n_neurons: int = 100
    n_frames: int = 10000
    dt: float = 0.01
    burn_in: int = 100
    init_scale: float = 5.0
    neuron: NeuronType = field(default_factory=NeuronType)
    dale: bool = False
    dale_factor: float = 0.3
    seed: int = 42
    connectivity_type: str = "chaotic"  # chaotic | low_rank
    connectivity_rank: int = 1  # r of low_rank: W = U V / sqrt(r N)
    connectivity_filling_factor: float = 1.0  # share of W's entries kept (sparse W)
    noise_model_level: float = 0.0  # process noise added after every Euler step
    measurement_noise_level: float = 0.0  # noise added to the stored activity
    n_neuron_types: int = 1  # K; above 1, neuron_types gives one row per type
    neuron_types: list[NeuronType] = field(default_factory=list)  # [] : `neuron` for all


@dataclass
class ModelConfig:
    """The connectivity GNN (docs/model.md, "Model")."""

    hidden_dim: int = 64
    n_layers: int = 3
    embedding_dim: int = 2
    single_type: bool = True
    w_init_std: float = 1.0
    hidden_init_std: float = 0.1


@dataclass
class TrainingConfig:
    """Optimisation settings (docs/model.md, "Training"); `seeds` are trained together."""

    learning_rate_W_start: float = 1.0e-3
    learning_rate_start: float = 5.0e-4
    learning_rate_embedding_start: float = 2.5e-4
    coeff_W_L1: float = 5.0e-6
    coeff_edge_diff: float = 100.0
    batch_size: int = 8
    n_epochs: int = 2
    data_augmentation_loop: int = 50
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    data_seeds: list[int] | None = None
    log_interval: int = 500
    compile: bool = False
    compile_mode: str = "default"  # default | reduce-overhead (CUDA graphs on a GPU)


@dataclass
class PathsConfig:
    """Where datasets are cached (absolute after `to_run_config`)."""

    cache_dir: str = "outputs/cache"


@dataclass
class RunConfig:
    """Everything one run needs."""

    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    device: str = "auto"
    threads: int = 1
    progress: bool = True


def steps_per_epoch(training: TrainingConfig, simulation: SimulationConfig) -> int:
    """Training steps per epoch: int((n_frames * data_augmentation_loop // batch_size) * 0.2)
    (docs/model.md, "Training")."""
    frames = simulation.n_frames * training.data_augmentation_loop
    return int((frames // training.batch_size) * 0.2)


def register_configs() -> None:
    """Store the schemas so each group's YAML can extend `base_<group>`."""
    cs = ConfigStore.instance()
    cs.store(group="simulation", name="base_simulation", node=SimulationConfig)
    cs.store(group="model", name="base_model", node=ModelConfig)
    cs.store(group="training", name="base_training", node=TrainingConfig)
    cs.store(name="base_run", node=RunConfig)


def _finite_rules(node: Any, prefix: str = "") -> list[tuple[str, Any, bool, str]]:
    """Every float field, nested ones included, must be finite (no nan, inf or -inf)."""
    rules = []
    for f in fields(node):
        value = getattr(node, f.name)
        if is_dataclass(value):
            rules += _finite_rules(value, f"{prefix}{f.name}.")
        elif isinstance(value, float):
            rules.append((f"{prefix}{f.name}", value, math.isfinite(value), "a finite number"))
    return rules


def _rules(cfg: RunConfig) -> list[tuple[str, Any, bool, str]]:
    sim, model, tr = cfg.simulation, cfg.model, cfg.training
    rules = [
        ("simulation.n_neurons", sim.n_neurons, sim.n_neurons >= 2, "an integer >= 2"),
        ("simulation.n_frames", sim.n_frames, sim.n_frames >= 1000, "an integer >= 1000"),
        ("simulation.dt", sim.dt, sim.dt > 0, "a number > 0"),
        ("simulation.burn_in", sim.burn_in, sim.burn_in >= 0, "an integer >= 0"),
        ("simulation.init_scale", sim.init_scale, sim.init_scale >= 0, "a number >= 0"),
        ("simulation.neuron.w", sim.neuron.w, sim.neuron.w != 0, "a non-zero number"),
        ("simulation.dale_factor", sim.dale_factor, 0 <= sim.dale_factor <= 1, "in [0, 1]"),
        (
            "simulation.connectivity_type",
            sim.connectivity_type,
            sim.connectivity_type in CONNECTIVITY_TYPES,
            " or ".join(CONNECTIVITY_TYPES),
        ),
        (
            "simulation.connectivity_rank",
            sim.connectivity_rank,
            1 <= sim.connectivity_rank <= sim.n_neurons,
            f"an integer from 1 to simulation.n_neurons ({sim.n_neurons})",
        ),
        (
            "simulation.connectivity_filling_factor",
            sim.connectivity_filling_factor,
            0 < sim.connectivity_filling_factor <= 1,
            "in (0, 1]",
        ),
        (
            "simulation.noise_model_level",
            sim.noise_model_level,
            sim.noise_model_level >= 0,
            "a number >= 0",
        ),
        (
            "simulation.measurement_noise_level",
            sim.measurement_noise_level,
            sim.measurement_noise_level >= 0,
            "a number >= 0",
        ),
        *_neuron_type_rules(sim),
        ("model.hidden_dim", model.hidden_dim, model.hidden_dim >= 1, "an integer >= 1"),
        ("model.n_layers", model.n_layers, model.n_layers >= 2, "an integer >= 2"),
        ("model.embedding_dim", model.embedding_dim, model.embedding_dim >= 1, "an integer >= 1"),
        ("model.w_init_std", model.w_init_std, model.w_init_std > 0, "a number > 0"),
        ("model.hidden_init_std", model.hidden_init_std, model.hidden_init_std > 0, "> 0"),
        ("training.coeff_W_L1", tr.coeff_W_L1, tr.coeff_W_L1 >= 0, "a number >= 0"),
        ("training.coeff_edge_diff", tr.coeff_edge_diff, tr.coeff_edge_diff >= 0, ">= 0"),
        ("training.batch_size", tr.batch_size, tr.batch_size >= 1, "an integer >= 1"),
        ("training.n_epochs", tr.n_epochs, tr.n_epochs >= 1, "an integer >= 1"),
        (
            "training.data_augmentation_loop",
            tr.data_augmentation_loop,
            tr.data_augmentation_loop >= 1,
            "an integer >= 1",
        ),
        ("training.seeds", tr.seeds, len(tr.seeds) >= 1, "a non-empty list of integers"),
        ("training.seeds", tr.seeds, len(set(tr.seeds)) == len(tr.seeds), "distinct seeds"),
        ("training.log_interval", tr.log_interval, tr.log_interval >= 1, "an integer >= 1"),
        (
            "training.compile_mode",
            tr.compile_mode,
            tr.compile_mode in COMPILE_MODES,
            " or ".join(COMPILE_MODES),
        ),
        ("threads", cfg.threads, cfg.threads >= 0, "an integer >= 0 (0: torch's default)"),
        (
            "device",
            cfg.device,
            re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device) is not None,
            "auto, cpu, cuda or cuda:<index>",
        ),
    ]
    for key in ("learning_rate_W_start", "learning_rate_start", "learning_rate_embedding_start"):
        value = getattr(tr, key)
        rules.append((f"training.{key}", value, value > 0, "a number > 0"))
    if tr.data_seeds is not None:
        rules.append(
            (
                "training.data_seeds",
                tr.data_seeds,
                len(tr.data_seeds) == len(tr.seeds),
                f"null or a list as long as training.seeds ({len(tr.seeds)})",
            )
        )
    return rules


def _neuron_type_rules(sim: SimulationConfig) -> list[tuple[str, Any, bool, str]]:
    """K = n_neuron_types in 1 .. N; neuron_types empty (every neuron is `neuron`, K = 1) or
    K rows; every row finite with w != 0."""
    k, rows = sim.n_neuron_types, sim.neuron_types
    rules = [
        (
            "simulation.n_neuron_types",
            k,
            1 <= k <= sim.n_neurons,
            f"an integer from 1 to simulation.n_neurons ({sim.n_neurons})",
        ),
        (
            "simulation.neuron_types rows",
            len(rows),
            len(rows) == k or (not rows and k == 1),
            f"simulation.n_neuron_types={k} rows, one {{a, b, g, s, w, h}} per type (or none, "
            "every neuron then being simulation.neuron, when simulation.n_neuron_types=1)",
        ),
    ]
    for i, row in enumerate(rows):
        rules += _finite_rules(row, f"simulation.neuron_types[{i}].")
        rules.append((f"simulation.neuron_types[{i}].w", row.w, row.w != 0, "a non-zero number"))
    return rules


def _memory_bytes() -> int | None:
    """This machine's physical memory (os.sysconf); None where unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _memory_rules(cfg: RunConfig) -> list[tuple[str, Any, bool, str]]:
    """The frame table (int64 frame indices of every step and seed, drawn before training)
    must fit in a quarter of this machine's memory: it is held twice while it is drawn."""
    memory = _memory_bytes()
    if memory is None:
        return []
    tr = cfg.training
    n_steps = tr.n_epochs * steps_per_epoch(tr, cfg.simulation)
    frame_bytes = FRAME_INDEX_BYTES * len(tr.seeds) * tr.batch_size
    max_steps = memory // 4 // frame_bytes
    allowed = (
        f"at most {max_steps:,} steps for {len(tr.seeds)} seeds at training.batch_size="
        f"{tr.batch_size}, whose frame table ({FRAME_INDEX_BYTES} bytes a frame) fits in a "
        f"quarter of this machine's memory ({memory / 2**30:.1f} GiB); steps per epoch are "
        "int((simulation.n_frames * training.data_augmentation_loop // training.batch_size)"
        " * 0.2)"
    )
    return [("training.n_epochs x steps per epoch", n_steps, n_steps <= max_steps, allowed)]


def _derived_rules(cfg: RunConfig) -> list[tuple[str, Any, bool, str]]:
    sim, tr = cfg.simulation, cfg.training
    return [
        (
            "training.batch_size",
            tr.batch_size,
            steps_per_epoch(tr, sim) >= 1,
            "small enough for at least one step per epoch",
        ),
        (
            "simulation.n_frames",
            sim.n_frames,
            sim.n_frames > tr.batch_size + 4,
            "larger than training.batch_size + 4",
        ),
    ]


def _device_rules(cfg: RunConfig) -> list[tuple[str, Any, bool, str]]:
    """A CUDA device must exist on this machine (checked before any data are loaded)."""
    if not cfg.device.startswith("cuda"):
        return []
    import torch  # here, not at the top: the other checks need no torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = 0 if cfg.device == "cuda" else int(cfg.device.split(":")[1])
    if n == 0:
        why = "torch is built without CUDA" if torch.version.cuda is None else "none is visible"
        allowed = f"auto or cpu (this machine has no CUDA device: {why})"
    else:
        allowed = f"auto, cpu, cuda or cuda:0 to cuda:{n - 1} (the CUDA devices of this machine)"
    return [("device", cfg.device, index < n, allowed)]


def validate(cfg: RunConfig) -> RunConfig:
    """Raise ConfigError naming the first invalid key; return the config unchanged."""
    for rules in (_finite_rules, _rules, _derived_rules, _memory_rules, _device_rules):
        for key, value, ok, allowed in rules(cfg):
            if not ok:
                raise ConfigError(f"{key}={value!r} is invalid: allowed is {allowed}")
    return cfg


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Convert a composed Hydra config to a validated RunConfig, or raise ConfigError."""
    return _from_typed(_typed(cfg))


def check_grid(cfg: DictConfig, key: str, values: Sequence[Any]) -> None:
    """Validate `cfg` with `key` set to each of `values` in turn (interpolations followed),
    or raise ConfigError naming the first invalid value; about 1 ms a value."""
    typed = _typed(cfg)  # one typed copy, each value set on it: no merge per value
    for value in values:
        try:
            OmegaConf.update(typed, key, value, merge=False)  # type-checked against the schema
            _from_typed(typed)
        except (ConfigError, OmegaConfBaseException) as err:
            raise ConfigError(f"search space {key}: value {value!r} is invalid: {err}") from err


def _typed(cfg: DictConfig) -> DictConfig:
    """The run's sections of a composed config merged into the RunConfig schema."""
    sections = {f.name: cfg[f.name] for f in fields(RunConfig) if f.name in cfg}
    try:
        return OmegaConf.merge(OmegaConf.structured(RunConfig), sections)
    except OmegaConfBaseException as err:
        raise ConfigError(str(err)) from err


def _from_typed(typed: DictConfig) -> RunConfig:
    try:
        run_cfg = OmegaConf.to_object(typed)
    except OmegaConfBaseException as err:
        raise ConfigError(str(err)) from err
    return validate(run_cfg)
