"""Hydra override grammar -> grids, snapping, fingerprints and config checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from gnn_convergence.study.demo import DEFAULT_SPACE
from gnn_convergence.study.space import (
    MAX_GRID_VALUES,
    check_space,
    fingerprint,
    index_of,
    parse_space,
    snap,
    value_text,
)


def one(text: str, key: str = "training.x"):
    return parse_space({key: text})[0]


def test_log_interval_is_the_125_series() -> None:
    param = one("tag(log, interval(1e-4, 1e-2))", "training.learning_rate_W_start")
    assert param.values == (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)
    assert param.log
    assert param.distribution == FloatDistribution(1e-4, 1e-2, log=True)
    assert param.label == "lr_W"


def test_log_interval_adds_ends_off_the_series() -> None:
    param = one("tag(log, interval(3e-4, 0.07))")
    assert param.values == (3e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.07)


def test_interval_from_zero_is_zero_plus_two_decades() -> None:
    param = one("interval(0, 1e-4)", "training.coeff_W_L1")
    assert param.values == (0.0, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4)
    assert param.distribution == FloatDistribution(0.0, 1e-4)
    assert param.label == "coeff_W_L1"


def test_linear_interval_has_seven_even_points() -> None:
    param = one("interval(0.1, 0.7)")
    assert param.values == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    assert not param.log
    assert param.distribution == FloatDistribution(0.1, 0.7)


def test_ranges() -> None:
    ints = one("range(1, 10, 3)")
    assert ints.values == (1, 4, 7)
    assert ints.distribution == IntDistribution(1, 7, step=3)
    floats = one("range(0, 1, 0.25)")
    assert floats.values == (0.0, 0.25, 0.5, 0.75)
    assert floats.distribution == FloatDistribution(0.0, 0.75, step=0.25)


def test_choice_keeps_item_order() -> None:
    param = one("choice(16, 1, 8)", "training.batch_size")
    assert param.values == (16, 1, 8)
    assert param.distribution == CategoricalDistribution((16, 1, 8))
    assert param.label == "batch_size"
    assert one("choice(adam, sgd)", "model.optimizer").label == "optimizer"


def test_labels() -> None:
    labels = [p.label for p in parse_space(DEFAULT_SPACE)]
    assert labels == ["lr_W", "lr", "coeff_W_L1", "batch_size"]
    emb = one("tag(log, interval(1e-4, 1e-3))", "training.learning_rate_embedding_start")
    assert emb.label == "lr_emb"


def test_every_value_is_plain_and_inside_its_distribution() -> None:
    space = {**DEFAULT_SPACE, "a.b": "interval(0.1, 0.7)", "a.c": "range(1, 10, 3)"}
    for param in parse_space(space):
        for value in param.values:
            assert type(value) in (float, int)
            assert param.distribution._contains(param.distribution.to_internal_repr(value))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("interval(1, 1)", "empty or inverted"),
        ("interval(3, 1)", "empty or inverted"),
        ("tag(log, interval(0, 1))", "lower bound > 0"),
        ("tag(log, interval(-1, 1))", "lower bound > 0"),
        ("choice(1)", "at least 2 items"),
        ("choice(1, 1)", "distinct"),
        ("range(1, 2)", "at least 2 values"),
        ("interval(1", "cannot parse"),
        ("5", "expected a sweep"),
        ("choice(inf, 1e-2)", "inf is invalid: allowed is a finite number"),
        ("choice(1e-2, -inf)", "-inf is invalid: allowed is a finite number"),
        ("choice(nan, 1)", "nan is invalid: allowed is a finite number"),
        ("interval(1e-4, inf)", "inf is invalid: allowed is a finite number"),
        ("interval(-inf, 1)", "-inf is invalid: allowed is a finite number"),
        ("interval(nan, 1)", "nan is invalid: allowed is a finite number"),
        ("tag(log, interval(1e-4, inf))", "inf is invalid: allowed is a finite number"),
        ("range(1, inf)", "inf is invalid: allowed is a finite number"),
        ("range(0, 1, nan)", "nan is invalid: allowed is a finite number"),
        ("choice([0,1,2],[3,4,5])", r"item \[0, 1, 2\] is invalid: allowed is a number, a string"),
        ("choice({a: 1}, {a: 2})", "item {'a': 1} is invalid: allowed is a number"),
        ("choice(1, [2, 3])", r"item \[2, 3\] is invalid"),
        ("range(1, 100000)", "99,999 grid values are invalid: allowed is at most 1,000"),
        ("range(1, 1e12)", "999,999,999,999 grid values are invalid"),
        ("tag(log, interval(1e-300, 1e300))", "grid values are invalid: allowed is at most 1,000"),
        (f"choice({', '.join(map(str, range(MAX_GRID_VALUES + 1)))})", "1,001 grid values"),
    ],
)
def test_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        one(text, "training.some_key")
    assert "training.some_key" in str(info.value)


def test_the_largest_grid_is_allowed() -> None:
    assert len(one(f"range(0, {MAX_GRID_VALUES})").values) == MAX_GRID_VALUES == 1000


def test_snap_log_grid() -> None:
    lr_w = parse_space(DEFAULT_SPACE)[0]
    assert snap(lr_w, 1.5e-3) == 2e-3
    assert snap(lr_w, 1.2e-3) == 1e-3
    assert snap(lr_w, 1.0) == 1e-2
    assert snap(lr_w, 0.0) == 1e-4


def test_snap_zero_plus_log_grid() -> None:
    coeff = parse_space(DEFAULT_SPACE)[2]
    assert snap(coeff, 0) == 0.0
    assert snap(coeff, 3e-7) == 0.0
    assert snap(coeff, 8e-7) == 1e-6
    assert snap(coeff, 3e-6) == 2e-6
    assert snap(coeff, 5e-6) == 5e-6


def test_snap_linear_and_choice() -> None:
    assert snap(one("interval(0.1, 0.7)"), 0.26) == 0.3
    batch = parse_space(DEFAULT_SPACE)[3]
    assert snap(batch, 8) == 8
    with pytest.raises(ValueError, match=r"training.batch_size.*\[1, 4, 8, 16\]"):
        snap(batch, 3)


def test_index_of_is_exact() -> None:
    lr_w, _, coeff, batch = parse_space(DEFAULT_SPACE)
    assert index_of(lr_w, 0.001) == 3
    assert index_of(lr_w, 0.0015) is None
    assert index_of(coeff, 0) == 0
    assert index_of(batch, 16) == 3
    assert index_of(batch, 3) is None


def test_fingerprint_is_stable_and_sensitive() -> None:
    space = parse_space(DEFAULT_SPACE)
    assert fingerprint(space) == fingerprint(parse_space(dict(DEFAULT_SPACE)))
    assert fingerprint(space) == "f6a6f36e73fc"
    wider = {**DEFAULT_SPACE, "training.coeff_W_L1": "interval(0, 1e-3)"}
    assert fingerprint(parse_space(wider)) != fingerprint(space)
    renamed = {k.replace("training.", "train."): v for k, v in DEFAULT_SPACE.items()}
    assert fingerprint(parse_space(renamed)) != fingerprint(space)


CONFIG = {
    "simulation": {"n_neurons": 100, "seed": 42},
    "model": {"single_type": True},
    "training": {
        "learning_rate_W_start": 1e-3,
        "learning_rate_start": 5e-4,
        "learning_rate_embedding_start": 2.5e-4,
        "coeff_W_L1": 5e-6,
        "batch_size": 8,
        "seeds": [0, 1, 2],
        "data_seeds": None,
        "log_interval": 500,
    },
    "paths": {"cache_dir": "outputs/cache"},
    "device": "auto",
    "threads": 1,
    "progress": True,
}


@pytest.mark.parametrize("seed_mode", ["paired", "rerun", "fixed_data", "cross"])
def test_check_space_accepts_the_study_space(seed_mode: str) -> None:
    check_space(parse_space(DEFAULT_SPACE), CONFIG, seed_mode)


@pytest.mark.parametrize(
    ("key", "seed_mode", "why"),
    [
        ("simulation.seed", "paired", "seed_mode paired gives every trial its simulation seeds"),
        ("simulation.seed", "rerun", "seed_mode rerun gives every trial its simulation seeds"),
        ("simulation.seed", "cross", "seed_mode cross gives every trial its simulation seeds"),
        ("training.seeds", "fixed_data", "the sweeper sets every trial's training seeds"),
        ("training.data_seeds", "paired", "the sweeper sets every trial's simulation seeds"),
        ("training.log_interval", "paired", "it sets only how often the training curve"),
        ("threads", "paired", "it sets only the CPU threads"),
        ("progress", "paired", "it shows only the progress bar"),
        ("device", "paired", "it sets only where a run trains"),
        ("paths.cache_dir", "paired", "it sets only where datasets are cached"),
    ],
)
def test_check_space_rejects_keys_that_cannot_change_a_trial(key, seed_mode, why) -> None:
    with pytest.raises(ValueError, match=f"^{key} cannot change a trial: {why}"):
        check_space([one("choice(1, 2)", key)], CONFIG, seed_mode)


def test_fixed_data_sweeps_the_simulation_seed() -> None:
    check_space([one("choice(1, 2)", "simulation.seed")], CONFIG, "fixed_data")


def test_check_space_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown parameter training.foo; known: .*batch_size"):
        check_space([one("choice(1, 2)", "training.foo")], CONFIG, "paired")
    with pytest.raises(
        ValueError, match="unknown parameter optim.lr; known: device, model.single"
    ):
        check_space([one("choice(1, 2)", "optim.lr")], CONFIG, "paired")


def test_check_space_rejects_frozen_embeddings() -> None:
    emb = one("tag(log, interval(1e-4, 1e-3))", "training.learning_rate_embedding_start")
    with pytest.raises(ValueError, match="embeddings are frozen while model.single_type is true"):
        check_space([emb], CONFIG, "paired")
    check_space([emb], {**CONFIG, "model": {"single_type": False}}, "paired")


def test_value_text() -> None:
    assert [value_text(v) for v in (1e-3, 5e-6, 0.0, 8, "adam")] == [
        "0.001",
        "5e-06",
        "0",
        "8",
        "adam",
    ]


def test_the_default_study_file_sweeps_the_seed_space():
    import yaml

    path = Path(__file__).parents[1] / "conf" / "hydra" / "sweeper" / "convergence.yaml"
    study = yaml.safe_load(path.read_text())
    assert study["sweeper"]["params"] == DEFAULT_SPACE
