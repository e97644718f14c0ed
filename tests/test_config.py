"""Every group option composes; invalid values fail before any work, naming the key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import compose_config
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from gnn_convergence.config import ConfigError, RunConfig, steps_per_epoch, to_run_config

CONF = Path(__file__).resolve().parents[1] / "conf"
OPTIONS = sorted(
    (f.parent.name, f.stem)
    for group in ("simulation", "model", "training")
    for f in (CONF / group).glob("*.yaml")
)


def _leaves(node, prefix=""):
    for key, value in node.items():
        if key == "defaults":
            continue
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_group_option_composes_with_its_own_values(group, option, make_config):
    """Each option file of conf/ composes into a valid run whose keys hold the file's values."""
    cfg = OmegaConf.structured(to_run_config(make_config([f"{group}={option}"])))
    own = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml"))
    for key, value in _leaves(own):
        assert OmegaConf.select(cfg, f"{group}.{key}") == value, key


def test_the_options_are_found() -> None:
    assert {("simulation", "chaotic_dale"), ("training", "quick"), ("model", "default")} <= set(
        OPTIONS
    )


def test_default_is_the_seed_start_point(make_config):
    cfg = to_run_config(make_config())
    tr, sim = cfg.training, cfg.simulation
    assert (tr.learning_rate_W_start, tr.learning_rate_start) == (1e-3, 5e-4)
    assert (tr.learning_rate_embedding_start, tr.coeff_W_L1, tr.batch_size) == (2.5e-4, 5e-6, 8)
    assert tr.coeff_edge_diff == 100.0 and len(tr.seeds) == 3
    assert tr.n_epochs * steps_per_epoch(tr, sim) == 25_000
    assert (sim.n_neurons, sim.n_frames, sim.dt, sim.neuron.g, sim.dale) == (
        100,
        10000,
        0.01,
        7.0,
        False,
    )
    dale = to_run_config(make_config(["simulation=chaotic_dale"])).simulation
    assert (dale.neuron.g, dale.dale, dale.dale_factor) == (10.0, True, 0.3)


def test_batch_size_scales_the_step_count_like_the_reference(make_config):
    cfg = to_run_config(make_config(["training.batch_size=16"]))
    assert cfg.training.n_epochs * steps_per_epoch(cfg.training, cfg.simulation) == 12_500


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ("training.learning_rate_W_start=0", "training.learning_rate_W_start", "> 0"),
        ("training.learning_rate_start=-1e-3", "training.learning_rate_start", "> 0"),
        ("training.batch_size=0", "training.batch_size", ">= 1"),
        ("training.seeds=[]", "training.seeds", "non-empty"),
        ("training.seeds=[1,1]", "training.seeds", "distinct"),
        ("training.data_seeds=[1]", "training.data_seeds", "as long as training.seeds"),
        ("simulation.n_neurons=1", "simulation.n_neurons", ">= 2"),
        ("simulation.dale_factor=1.5", "simulation.dale_factor", "[0, 1]"),
        ("simulation.dt=0", "simulation.dt", "> 0"),
        ("device=tpu", "device", "auto, cpu, cuda"),
        ("device=cuda:x", "device", "auto, cpu, cuda"),
        ("device=cuda:7", "device='cuda:7' is invalid", "auto"),  # no machine here has 8 GPUs
        ("training.coeff_W_L1=-1", "training.coeff_W_L1", ">= 0"),
        ("threads=-1", "threads", ">= 0"),
        ("training.compile_mode=max", "training.compile_mode", "default or reduce-overhead"),
        (
            "simulation.connectivity_type=ring",
            "simulation.connectivity_type",
            "chaotic or low_rank",
        ),
        ("simulation.connectivity_rank=0", "simulation.connectivity_rank=0", "from 1 to"),
        ("simulation.connectivity_rank=101", "connectivity_rank=101", "n_neurons (100)"),
        ("simulation.connectivity_filling_factor=0", "connectivity_filling_factor", "(0, 1]"),
        ("simulation.connectivity_filling_factor=1.5", "connectivity_filling_factor", "(0, 1]"),
        ("simulation.noise_model_level=-0.1", "simulation.noise_model_level", ">= 0"),
        ("simulation.measurement_noise_level=-1", "measurement_noise_level", ">= 0"),
        ("simulation.n_neuron_types=0", "simulation.n_neuron_types", "from 1 to"),
        ("simulation.n_neuron_types=4", "neuron_types rows=0", "n_neuron_types=4 rows"),
    ],
)
def test_invalid_value_names_key_and_allowed_range(override, key, allowed, make_config):
    with pytest.raises(ConfigError) as err:
        to_run_config(make_config([override]))
    assert key in str(err.value) and allowed in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["simulation.n_neuron_types=3"], "simulation.neuron_types rows=4 is invalid"),
        (["simulation.n_neuron_types=1"], "simulation.neuron_types rows=4 is invalid"),
        (["simulation.neuron_types=[{a: 1}]"], "simulation.neuron_types rows=1 is invalid"),
        (["simulation.neuron_types.0.w=0"], "simulation.neuron_types[0].w=0.0 is invalid"),
        (
            ["simulation.neuron_types.3.g=nan"],
            "neuron_types[3].g=nan is invalid: allowed is a fin",
        ),
        (["simulation.n_neurons=3"], "simulation.n_neuron_types=4 is invalid"),
    ],
)
def test_neuron_types_must_match_their_rows(overrides, message, make_config):
    """simulation=types_4 has K = 4 rows; a K or a row count that does not match, a row with
    w = 0 or a non-finite value, or more types than neurons fail naming the key."""
    with pytest.raises(ConfigError) as err:
        to_run_config(make_config(["simulation=types_4", *overrides]))
    assert message in str(err.value)
    assert "allowed is" in str(err.value)


def test_the_types_option_rows_and_one_row_for_one_type(make_config):
    sim = to_run_config(make_config(["simulation=types_4"])).simulation
    assert [(r.a, r.s, r.g) for r in sim.neuron_types] == [
        (1.0, 0.0, 7.0),
        (1.0, 1.0, 7.0),
        (2.0, 1.0, 7.0),
        (2.0, 2.0, 7.0),
    ]
    one = to_run_config(make_config(["simulation.neuron_types=[{a: 2}]"])).simulation
    assert one.n_neuron_types == 1 and one.neuron_types[0].a == 2.0


def _float_keys(node, prefix: str = "") -> list[str]:
    """Every float field of the run config, e.g. simulation.neuron.g."""
    keys = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            keys += _float_keys(value, f"{prefix}{f.name}.")
        elif isinstance(value, float):
            keys.append(f"{prefix}{f.name}")
    return keys


def test_the_run_config_has_float_keys():
    keys = _float_keys(RunConfig())
    assert {"training.learning_rate_W_start", "model.w_init_std", "simulation.neuron.g"} <= set(
        keys
    )


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize("key", _float_keys(RunConfig()))
def test_every_float_key_must_be_finite(key, value, make_config):
    with pytest.raises(ConfigError) as err:
        to_run_config(make_config([f"{key}={value}"]))
    assert f"{key}={float(value)!r} is invalid: allowed is a finite number" in str(err.value)


@pytest.mark.parametrize(
    "override",
    [
        "training.n_epochs=1000000000000",
        "training.data_augmentation_loop=1000000000000",
        "simulation.n_frames=1000000000000",
        "training.n_epochs=10000000",  # the tiny pair: 1.5e10 steps, a 2.9 TB frame table
    ],
)
def test_a_run_beyond_memory_fails_naming_its_keys_and_the_limit(override, make_config):
    """The frame table (every step's frames of every seed) must fit in a quarter of memory."""
    with pytest.raises(ConfigError) as err:
        to_run_config(make_config(["simulation=tiny", "training=tiny", override]))
    message = str(err.value)
    for key in ("n_epochs", "data_augmentation_loop", "batch_size", "n_frames", "memory"):
        assert key in message
    assert "is invalid: allowed is at most" in message


def test_a_cuda_device_must_exist_here(make_config):
    """device=cuda or cuda:N fails in the config check, before any data are loaded, naming
    what this machine allows: auto or cpu without CUDA, else the CUDA devices it has."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        for device in ("cuda", "cuda:0"):
            with pytest.raises(ConfigError) as err:
                to_run_config(make_config([f"device={device}"]))
            assert f"device={device!r} is invalid: allowed is auto or cpu" in str(err.value)
            assert "no CUDA device" in str(err.value)
    else:
        assert to_run_config(make_config(["device=cuda"])).device == "cuda"
        assert to_run_config(make_config([f"device=cuda:{n - 1}"])).device == f"cuda:{n - 1}"
        with pytest.raises(ConfigError, match=f"cuda:0 to cuda:{n - 1}"):
            to_run_config(make_config([f"device=cuda:{n}"]))
    assert to_run_config(make_config(["device=auto"])).device == "auto"
    assert to_run_config(make_config(["device=cpu"])).device == "cpu"


def test_wrong_type_names_the_key(make_config):
    with pytest.raises(ConfigCompositionException, match="training.learning_rate_W_start"):
        make_config(["training.learning_rate_W_start=fast"])
    with pytest.raises(ConfigError, match="training.batch_size"):
        to_run_config(OmegaConf.create({"training": {"batch_size": "many"}}))


def test_unknown_group_option_lists_the_available_ones(make_config):
    with pytest.raises(MissingConfigException, match="chaotic_dale"):
        make_config(["simulation=nope"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.batch_size=0", "training.batch_size=0 is invalid"),
        ("device=cuda:7", "device='cuda:7' is invalid: allowed is auto"),
        ("training.learning_rate_W_start=inf", "learning_rate_W_start=inf is invalid"),
        ("training.n_epochs=1000000000000", "steps per epoch=12500000000000000 is invalid"),
        ("simulation.connectivity_rank=101", "simulation.connectivity_rank=101 is invalid"),
        ("simulation.connectivity_filling_factor=0", "connectivity_filling_factor=0.0 is invalid"),
        ("simulation.noise_model_level=-1", "simulation.noise_model_level=-1.0 is invalid"),
        ("simulation.n_neuron_types=2", "simulation.neuron_types rows=0 is invalid"),
    ],
)
def test_cli_fails_before_any_work(tmp_path, override, message):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gnn_convergence.train",
            override,
            f"hydra.run.dir={tmp_path / 'run'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "run" / "analysis.log").exists()


@pytest.mark.parametrize("sweeps", ["convergence", "quick"])
def test_a_grid_of_the_basic_sweeper_drops_the_study_settings(sweeps):
    study = compose_config([f"sweeps={sweeps}"], hydra=True).hydra
    assert study.sweeper.study_name == sweeps and study.sweep.dir == f"outputs/studies/{sweeps}"
    grid = compose_config([f"sweeps={sweeps}", "hydra/sweeper=basic"], hydra=True).hydra
    assert set(grid.sweeper) == {"_target_", "max_batch_size", "params"}
    assert grid.sweep.dir.startswith("outputs/multirun/")
