"""End to end: the tiny pair really recovers W; the run folder holds what it promises."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from gnn_convergence import artifacts, figures
from gnn_convergence.config import ModelConfig, NeuronType
from gnn_convergence.model import ConnectivityGNN
from gnn_convergence.outcome import classify
from gnn_convergence.results import METRICS, Recovery, RunResult, SeedResult
from gnn_convergence.run import data_seeds, load_data, recovery, run, stack_data, train_population
from gnn_convergence.simulation import true_curves
from gnn_convergence.trainer import loss_terms
from hydra_plugins.gnn_convergence_sweeper._impl import trial_attrs

STATS = (
    "spectral_radius",
    "effective_rank_90",
    "effective_rank_99",
    "effective_rank_centred_90",
    "effective_rank_centred_99",
)
# what the task function returns to the sweeper, which stores `seeds` as the trial's per_seed
SEED_KEYS = [
    "seed",
    "data_seed",
    *METRICS,
    "class",
    "diverged_at_step",
    *STATS,
]
RUN_KEYS = {
    "objective",
    "class",
    *(f"{m}_{s}" for m in METRICS for s in ("min", "mean")),
    "seeds",
    "data",
    "training_time_min",
    "n_steps",
    "device",
}


@pytest.mark.slow  # trains
def test_runs_trained_as_one_population_equal_their_solo_runs(tiny_config, tmp_path):
    """Two runs with their own seeds, datasets, learning rates and coefficients, trained as one
    population, give what each gives alone (float32: the stacked kernels round differently)."""
    short = dataclasses.replace(tiny_config.training, data_augmentation_loop=1, log_interval=100)
    a = dataclasses.replace(
        tiny_config, training=dataclasses.replace(short, seeds=[0, 1], data_seeds=[42, 43])
    )
    b = dataclasses.replace(
        tiny_config,
        training=dataclasses.replace(
            short,
            learning_rate_W_start=3e-3,
            coeff_edge_diff=0.0,
            seeds=[0, 5],
            data_seeds=[43, 44],
        ),
    )
    members = train_population([a, b])
    for cfg, member, name in zip((a, b), members, "ab"):
        together = member.write(tmp_path / f"population_{name}")
        alone = run(cfg, tmp_path / f"alone_{name}")
        for s_together, s_alone in zip(together.seeds, alone.seeds):
            assert (s_together.seed, s_together.data_seed) == (s_alone.seed, s_alone.data_seed)
            for key in ("connectivity_R2", "test_R2", "test_pearson", "final_loss"):
                assert getattr(s_together, key) == pytest.approx(getattr(s_alone, key), abs=1e-3)
        assert together.data == alone.data and together.n_steps == alone.n_steps == 500
        files = {p.name for p in (tmp_path / f"alone_{name}").iterdir()}
        assert {p.name for p in (tmp_path / f"population_{name}").iterdir()} == files
        saved = torch.load(tmp_path / f"population_{name}" / artifacts.WEIGHTS)
        assert saved["seeds"] == cfg.training.seeds
        assert saved["state_dict"]["w"].shape == (2, 50, 50)
    first, second = (m.result.seeds[1].connectivity_R2 for m in members)
    assert first != pytest.approx(second, abs=1e-2)  # lr_W 1e-2 against 3e-3 on dataset 43
    other_batch = dataclasses.replace(a, training=dataclasses.replace(short, batch_size=4))
    with pytest.raises(ValueError, match="differ in more than seeds"):
        train_population([a, other_batch])


@pytest.mark.slow  # trains
def test_a_diverged_seed_records_nan_metrics_never_zero(tiny_config, tmp_path):
    """A huge lr_W makes every seed's loss non-finite within a few steps; training stops at
    the next report, before the last epoch. Its metrics are NaN (null in metrics.json, nan in
    analysis.log), not 0, the best possible loss."""
    training = dataclasses.replace(
        tiny_config.training,
        learning_rate_W_start=1e38,
        data_augmentation_loop=1,
        log_interval=10,
        seeds=[0, 1],
    )
    result = run(dataclasses.replace(tiny_config, training=training), tmp_path)
    assert all(s.diverged_at_step is not None for s in result.seeds)
    saved = json.loads((tmp_path / artifacts.METRICS_JSON).read_text())
    for record in saved["seeds"]:
        assert [record[key] for key in METRICS] == [None] * 4
    assert saved["objective"] is None and saved["class"] == "failed"
    lines = (tmp_path / artifacts.ANALYSIS_LOG).read_text().splitlines()
    for key in METRICS:
        assert f"seed_0.{key}: nan" in lines and f"{key}_min: nan" in lines
        assert f"{key}: nan" in lines


@pytest.mark.slow
def test_tiny_pair_recovers_w_for_every_seed(tiny_config, tmp_path):
    out = tmp_path / "run"
    result = run(tiny_config, out)
    r2 = [s.connectivity_R2 for s in result.seeds]
    assert len(r2) == len(tiny_config.training.seeds) == 3
    assert min(r2) > 0.9, r2
    assert all(s.class_ == "converged" and s.diverged_at_step is None for s in result.seeds)
    assert result.objective == min(r2)

    logged = artifacts.read_analysis_log(out / artifacts.ANALYSIS_LOG)
    for key in (*STATS, "training_time_min"):
        assert key in logged
    for record in result.seeds:
        for key in ("test_R2", "test_pearson", "final_loss", "connectivity_R2"):
            assert logged[f"seed_{record.seed}.{key}"] == pytest.approx(
                getattr(record, key), rel=1e-5
            )
    assert logged["connectivity_R2_min"] == pytest.approx(min(r2), rel=1e-5)
    worst = min(result.seeds, key=lambda s: s.connectivity_R2)
    for key in ("test_R2", "test_pearson", "connectivity_R2", "final_loss"):
        assert logged[key] == pytest.approx(getattr(worst, key), rel=1e-5)

    saved = json.loads((out / artifacts.METRICS_JSON).read_text())
    assert set(saved) == RUN_KEYS | {"curve"}
    assert saved["objective"] == pytest.approx(min(r2))
    assert saved["class"] == "converged"
    assert [s["seed"] for s in saved["seeds"]] == list(tiny_config.training.seeds)
    assert all(list(s) == SEED_KEYS for s in saved["seeds"])

    # the training curve: what the trainer logs every log_interval steps, per seed
    curve, every = saved["curve"], tiny_config.training.log_interval
    assert curve["step"] == list(range(every, result.n_steps + 1, every))
    for key in ("loss_per_n", "connectivity_R2"):
        assert [len(values) for values in curve[key]] == [len(curve["step"])] * 3
    for k, record in enumerate(result.seeds):  # the last point is the final weights
        assert curve["connectivity_R2"][k][-1] == pytest.approx(record.connectivity_R2)
        assert curve["loss_per_n"][k][-1] < curve["loss_per_n"][k][0]

    weights = torch.load(out / artifacts.WEIGHTS)
    n = tiny_config.simulation.n_neurons
    assert weights["state_dict"]["w"].shape == (3, n, n)
    assert weights["data_seeds"] == [s.data_seed for s in result.seeds]
    model = ConnectivityGNN(tiny_config.model, n, weights["seeds"])
    model.load_state_dict(weights["state_dict"])

    # the figure opens offline from plotly.min.js beside it, written once, not inlined
    html = (out / artifacts.FIGURE).read_text()
    assert "learned W" in html and "training connectivity_R2" in html
    assert "loss\\u002fN seed 0" in html and "connectivity_R2 seed 2" in html  # the curve
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in html
    assert '<script src="http' not in html
    assert (out / artifacts.FIGURE).stat().st_size < 1_000_000
    assert (out / figures.PLOTLY_JS).read_text().startswith("/**\n* plotly.js v")


def _result(r2: list[float]) -> RunResult:
    stats = {"spectral_radius": 1.0, "effective_rank_90": 7, "effective_rank_99": 27}
    seeds = [
        SeedResult(
            seed=seed,
            data_seed=42,
            connectivity_R2=value,
            test_R2=0.5 + seed / 10,
            test_pearson=0.6 + seed / 10,
            final_loss=100.0 + seed,
            class_=classify(value),
            diverged_at_step=None if math.isfinite(value) else 7,
            data=stats,
        )
        for seed, value in enumerate(r2)
    ]
    return RunResult(seeds, {42: stats}, training_time_min=1.0, n_steps=10, device="cpu")


def test_run_result_dict_is_what_the_sweeper_stores():
    """to_dict: the objective, its class, min/mean of each metric and one plain dict per seed
    (its metrics, class, divergence step and its dataset's statistics), JSON-ready."""
    result = _result([0.95, 0.5, math.nan])
    out = result.to_dict()
    assert set(out) == RUN_KEYS
    assert math.isnan(out["objective"]) and out["class"] == "failed"
    assert out["connectivity_R2_min"] != out["connectivity_R2_min"]  # NaN: a seed diverged
    assert out["test_R2_mean"] == pytest.approx(0.6) and out["final_loss_min"] == 100.0
    assert out["data"] == {"42": result.data[42]}
    assert [list(s) for s in out["seeds"]] == [SEED_KEYS[:8] + list(result.data[42])] * 3
    assert out["seeds"][1] == {
        "seed": 1,
        "data_seed": 42,
        "connectivity_R2": 0.5,
        "test_R2": 0.6,
        "test_pearson": 0.7,
        "final_loss": 101.0,
        "class": "partial",
        "diverged_at_step": None,
        **result.data[42],
    }
    per_seed = trial_attrs(out)["per_seed"]
    assert per_seed[0] == out["seeds"][0] and per_seed[2]["connectivity_R2"] is None
    assert result.worst_seed.seed == 2  # the diverged seed counts lowest
    json.dumps(per_seed, allow_nan=False)


def test_result_types_need_neither_run_nor_torch():
    """results.py is the one home of the result types: artifacts and figures import it, and
    none of them imports run.py (nor does results.py pull in torch)."""
    code = (
        "import sys; import gnn_convergence.results;"
        "assert 'torch' not in sys.modules, 'torch';"
        "import gnn_convergence.artifacts, gnn_convergence.figures;"
        "assert 'gnn_convergence.run' not in sys.modules, 'run'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_analysis_log_bare_keys_are_the_worst_seed(tmp_path):
    """test_R2, test_pearson, connectivity_R2, final_loss without prefix: the values of the
    seed with the lowest connectivity_R2 (seed 1 here), next to per-seed and min/mean keys."""
    path = tmp_path / artifacts.ANALYSIS_LOG
    path.write_text("\n".join(artifacts.analysis_lines(_result([0.8, 0.5, 0.9]))) + "\n")
    logged = artifacts.read_analysis_log(path)
    assert logged["connectivity_R2"] == 0.5
    assert logged["test_R2"] == 0.6 and logged["test_pearson"] == 0.7
    assert logged["final_loss"] == 101.0
    assert logged["seed_2.test_R2"] == 0.7 and logged["test_R2_min"] == 0.5
    assert logged["effective_rank_99"] == 27
    # a seed without a finite connectivity_R2 (diverged) is the worst
    lines = artifacts.analysis_lines(_result([0.8, 0.5, math.nan]))
    assert "connectivity_R2: nan" in lines and "final_loss: 102" in lines


def _recovery(k: int = 3, n: int = 4, g: int = 5) -> Recovery:
    rng = np.random.default_rng(0)
    return Recovery(
        true_w=rng.normal(size=(k, n, n)),
        learned_w=rng.normal(size=(k, n, n)),
        u=np.linspace(-1, 1, g),
        psi=rng.normal(size=(k, g)),
        phi=rng.normal(size=(k, g)),
        true_psi=np.tanh(np.linspace(-1, 1, g)),
        true_phi=-np.linspace(-1, 1, g),
    )


def test_run_folder_files_are_replaced_whole(tmp_path):
    """Each file is written beside its place and renamed into it: a reader that opened it
    before a rewrite (the atlas reading metrics.json) reads the whole old file, and a write
    failing midway (weights that cannot be pickled) leaves the old file and no temporary one."""
    names = [artifacts.ANALYSIS_LOG, artifacts.METRICS_JSON, artifacts.WEIGHTS, artifacts.FIGURE]
    artifacts.write_run(tmp_path, _result([0.8, 0.5, 0.9]), _recovery(), {"w": torch.ones(3)})
    old = {name: (tmp_path / name).read_bytes() for name in names}
    readers = {name: open(tmp_path / name, "rb") for name in names}
    artifacts.write_run(tmp_path, _result([0.1, 0.2, 0.3]), _recovery(), {"w": torch.zeros(3)})
    for name, reader in readers.items():
        with reader:
            assert reader.read() == old[name], name
        assert (tmp_path / name).read_bytes() != old[name], name
    written = (tmp_path / artifacts.WEIGHTS).read_bytes()
    with pytest.raises(Exception, match="pickle"):
        artifacts.write_run(tmp_path, _result([0.1, 0.2, 0.3]), _recovery(), {"f": lambda: 0})
    assert (tmp_path / artifacts.WEIGHTS).read_bytes() == written
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow  # trains
def test_cli_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gnn_convergence.train",
            "simulation=tiny",
            "training=tiny",
            "training.n_epochs=1",
            "training.data_augmentation_loop=1",
            "progress=false",
            f"hydra.run.dir={out}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name in (
        artifacts.ANALYSIS_LOG,
        artifacts.METRICS_JSON,
        artifacts.WEIGHTS,
        artifacts.FIGURE,
        "train.log",
    ):
        assert (out / name).exists(), name
    saved = json.loads((out / artifacts.METRICS_JSON).read_text())
    assert math.isfinite(saved["objective"]) and saved["class"] in ("partial", "failed")
    assert 'src="plotly.min.js"' in (out / artifacts.FIGURE).read_text()
    assert (out / figures.PLOTLY_JS).exists()


@pytest.mark.slow  # trains
def test_study_trials_share_one_plotlyjs(tmp_path):
    """In a study every trial's run.html loads ../plotly.min.js, written once in the study
    folder; the trial folders hold no copy."""
    study = tmp_path / "study"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gnn_convergence.train",
            "-m",
            "sweeps=quick",
            "hydra.sweeper.n_trials=2",
            "training.n_epochs=1",
            "training.data_augmentation_loop=1",
            "progress=false",
            f"hydra.sweeper.storage=sqlite:///{tmp_path}/studies.db",
            f"hydra.sweep.dir={study}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (study / figures.PLOTLY_JS).read_text().startswith("/**\n* plotly.js v")
    for trial in ("trial_0", "trial_1"):
        html = (study / trial / artifacts.FIGURE).read_text()
        assert '<script charset="utf-8" src="../plotly.min.js"></script>' in html
        assert not (study / trial / figures.PLOTLY_JS).exists()


def test_plotlyjs_is_written_only_when_missing_or_stale(tmp_path):
    path = figures.write_plotlyjs(tmp_path / "pages")
    assert path == tmp_path / "pages" / figures.PLOTLY_JS
    stamp, size = path.stat().st_mtime_ns, path.stat().st_size
    assert size > 1_000_000
    assert figures.write_plotlyjs(tmp_path / "pages") == path
    assert path.stat().st_mtime_ns == stamp
    path.write_text("/**\n* plotly.js v0.0.1\n*/")  # another plotly's bundle: replaced
    figures.write_plotlyjs(tmp_path / "pages")
    assert path.stat().st_size == size
    assert sorted(p.name for p in path.parent.iterdir()) == [figures.PLOTLY_JS]


def test_compiled_loss_equals_eager():
    torch.manual_seed(0)
    model = ConnectivityGNN(ModelConfig(), n_neurons=20, seeds=[0, 1])
    u, y = torch.randn(2, 4, 20) * 3, torch.randn(2, 4, 20)
    kwargs = {
        "u": u,
        "y": y,
        "delta": torch.tensor([0.06, 0.06]),
        "coeff_w_l1": 5e-6,
        "coeff_edge_diff": 100.0,
    }
    grads = []
    for fn in (loss_terms, torch.compile(loss_terms, dynamic=False)):
        model.zero_grad()
        loss, data = fn(model, **kwargs)
        loss.sum().backward()
        grads.append((loss.detach(), data.detach(), [p.grad.clone() for p in model.parameters()]))
    (l0, d0, g0), (l1, d1, g1) = grads
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d1, d0, rtol=1e-5, atol=1e-5)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_the_run_figure_compares_node_0s_type_curves(tiny_config):
    """With neuron_types rows, the true psi, phi and g drawn are those of node 0's type (the
    first row), not simulation.neuron."""
    rows = [NeuronType(s=0.5, w=2.0, g=5.0), NeuronType(g=9.0)]
    sim = dataclasses.replace(tiny_config.simulation, n_neuron_types=2, neuron_types=rows)
    cfg = dataclasses.replace(tiny_config, simulation=sim)
    datasets = load_data(cfg)
    data = stack_data(datasets, data_seeds(cfg), torch.device("cpu"))
    model = ConnectivityGNN(cfg.model, sim.n_neurons, cfg.training.seeds)
    drawn = recovery(model, data, list(datasets.values()), cfg)
    true_psi, true_phi = true_curves(drawn.u.astype(np.float64), rows[0])
    np.testing.assert_allclose(drawn.true_psi, true_psi)
    np.testing.assert_allclose(drawn.true_phi, true_phi)
