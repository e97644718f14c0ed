"""The simulator follows docs/model.md, "Simulation"; the cache is reused and self-healing."""

from __future__ import annotations

import dataclasses
import logging
import subprocess

import numpy as np
import pytest

from gnn_convergence import dataset, simulation
from gnn_convergence.config import NeuronType, SimulationConfig
from gnn_convergence.dataset import cache_key, cache_path, load_or_simulate
from gnn_convergence.simulation import (
    Dataset,
    SimulationError,
    centred_effective_rank,
    connectivity,
    derivative,
    effective_rank,
    simulate,
    true_curves,
)

SMALL = SimulationConfig(n_neurons=20, n_frames=1000, seed=3)


def test_connectivity_zero_diagonal_and_scale():
    w = connectivity(200, dale=False, dale_factor=0.3, rng=np.random.default_rng(0))
    assert np.all(np.diag(w) == 0)
    off = w[~np.eye(200, dtype=bool)]
    assert abs(off.std() - 1 / np.sqrt(200)) < 0.005
    assert (off > 0).mean() == pytest.approx(0.5, abs=0.02)


def test_dale_signs_by_presynaptic_column():
    n, factor = 50, 0.3
    w = connectivity(n, dale=True, dale_factor=factor, rng=np.random.default_rng(1))
    n_exc = int(n * factor)
    off = ~np.eye(n, dtype=bool)
    assert np.all(np.diag(w) == 0)
    assert np.all(w[:, :n_exc][off[:, :n_exc]] > 0)
    assert np.all(w[:, n_exc:][off[:, n_exc:]] < 0)


def test_one_euler_step_is_the_formula():
    p = NeuronType(a=1.0, b=0.0, g=7.0, s=0.0, w=1.0, h=0.0)
    data = simulate(SMALL)
    u, w = data.activity[5], data.w
    expected = -u + 7.0 * (w @ np.tanh(u))
    np.testing.assert_allclose(data.derivative[5], expected, rtol=1e-12)
    np.testing.assert_allclose(derivative(u, w, p), expected, rtol=1e-12)
    np.testing.assert_allclose(data.activity[6], u + SMALL.dt * data.derivative[5], rtol=1e-12)


def test_frames_shape_and_general_neuron_parameters():
    p = NeuronType(a=0.5, b=0.1, g=3.0, s=0.2, w=2.0, h=0.3)
    u = np.linspace(-1, 1, 4)
    w = np.arange(16.0).reshape(4, 4) / 20
    expected = -0.5 * u + 0.1 + 0.2 * np.tanh(u) + 3.0 * w @ np.tanh((u - 0.3) / 2.0)
    np.testing.assert_allclose(derivative(u, w, p), expected)
    data = simulate(SMALL)
    assert data.activity.shape == data.derivative.shape == (1001, 20)


def test_true_curves_make_the_derivative():
    """psi(u) = tanh((u - h) / w) and phi(u) = -a u + b + s tanh(u): the functions the GNN's
    psi* and phi* learn, the same ones the simulator integrates (and the run figure draws)."""
    p = NeuronType(a=0.5, b=0.1, g=3.0, s=0.2, w=2.0, h=0.3)
    u = np.linspace(-3, 3, 7)
    psi, phi = true_curves(u, p)
    np.testing.assert_allclose(psi, np.tanh((u - 0.3) / 2.0))
    np.testing.assert_allclose(phi, -0.5 * u + 0.1 + 0.2 * np.tanh(u))
    w = np.random.default_rng(0).normal(size=(7, 7))
    np.testing.assert_array_equal(derivative(u, w, p), phi + 3.0 * (psi @ w.T))


def test_same_seed_same_data_other_seed_other_data():
    a, b = simulate(SMALL), simulate(SMALL)
    np.testing.assert_array_equal(a.activity, b.activity)
    np.testing.assert_array_equal(a.w, b.w)
    c = simulate(SimulationConfig(n_neurons=20, n_frames=1000, seed=4))
    assert not np.allclose(a.w, c.w)


def test_statistics():
    data = simulate(SMALL)
    stats = data.stats
    assert stats["spectral_radius"] == pytest.approx(np.abs(np.linalg.eigvals(data.w)).max())
    assert 1 <= stats["effective_rank_90"] <= stats["effective_rank_99"] <= 19
    assert 1 <= stats["effective_rank_centred_90"] <= stats["effective_rank_centred_99"] <= 20
    assert stats["effective_rank_99"] == effective_rank(data.activity, 0.99)
    assert stats["effective_rank_centred_99"] == centred_effective_rank(data.activity, 0.99)
    rank_one = np.outer(np.sin(np.arange(100)), np.ones(7))
    assert effective_rank(rank_one, 0.99) == centred_effective_rank(rank_one, 0.99) == 1


def test_effective_rank_counts_over_the_largest_singular_values_only():
    """Singular values 3, 2, 1, 1 (squares 9, 4, 1, 1) of a (50, 4) matrix: the count runs over
    the largest min(T, N) - 1 = 3 (cumulative 0.64, 0.93, 1), not over all 4 (0.6, 0.87, 0.93,
    1); and never over more than the largest 100."""
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(50, 4)))
    v, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    activity = u @ np.diag([3.0, 2.0, 1.0, 1.0]) @ v.T
    assert effective_rank(activity, 0.90) == 2
    assert effective_rank(activity, 0.99) == 3
    # 150 neurons, singular values 99 x 1 then 51 x 0.1: over the largest 100 (total 99.01)
    # 99.9 % takes 99 of them and 99.99 % takes 100; over all 150 they would take 140 and 148
    u, _ = np.linalg.qr(rng.normal(size=(400, 150)))
    wide = u * np.r_[np.ones(99), np.full(51, 0.1)]  # (400, 150)
    assert effective_rank(wide, 0.999) == 99
    assert effective_rank(wide, 0.9999) == 100


def test_effective_rank_is_of_the_activity_as_stored_not_centred():
    """Two zero-mean oscillations (variance 2 and 0.5) on neurons 0, 1 and a constant 4 on
    neurons 2, 3. As stored the second moments are 32 (the offset), 2, 0.5: cumulative 0.93,
    0.986, 1. Centred only the oscillations remain: 0.8, 1."""
    t = np.arange(1000)
    activity = np.full((1000, 4), 4.0)
    activity[:, 0] = 2.0 * np.cos(2 * np.pi * t / 100)
    activity[:, 1] = np.sin(2 * np.pi * t / 100)
    assert effective_rank(activity, 0.90) == 1
    assert effective_rank(activity, 0.99) == 3
    assert centred_effective_rank(activity, 0.90) == 2
    assert centred_effective_rank(activity, 0.99) == 2


def test_cache_is_reused(cache_dir):
    first = load_or_simulate(SMALL, cache_dir)
    path = cache_path(SMALL, cache_dir)
    stamp = path.stat().st_mtime_ns
    second = load_or_simulate(SMALL, cache_dir)
    assert path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first.activity, second.activity)
    other = SimulationConfig(n_neurons=20, n_frames=1000, seed=5)
    assert cache_path(other, cache_dir) != path


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_cache_is_rebuilt(cache_dir, damage):
    good = load_or_simulate(SMALL, cache_dir)
    path = cache_path(SMALL, cache_dir)
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    else:
        raw = raw[: len(raw) // 3]
    path.write_bytes(bytes(raw))
    rebuilt = load_or_simulate(SMALL, cache_dir)
    np.testing.assert_array_equal(rebuilt.activity, good.activity)
    assert path.read_bytes() != bytes(raw)
    np.testing.assert_array_equal(load_or_simulate(SMALL, cache_dir).w, good.w)


@pytest.mark.parametrize(
    ("dt", "where"),
    [
        (1e9, r"Euler step 3\d of 1100 \(burn-in step 3\d\)"),  # x 1e9 a step: inf by step 35
        (3.0, r"Euler step 1\d\d\d of 1100 \(frame 9\d\d\)"),  # x -2 a step: inf near 1,030
    ],
)
def test_a_blowing_up_simulation_says_what_to_change_and_caches_nothing(cache_dir, dt, where):
    cfg = dataclasses.replace(SMALL, dt=dt)
    with pytest.raises(SimulationError, match=where) as err:
        load_or_simulate(cfg, cache_dir)
    message = str(err.value)
    assert "not finite" in message and f"simulation.dt={dt}" in message
    assert "simulation.neuron.g=7.0" in message and "\n" not in message
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def test_a_cached_non_finite_dataset_is_never_loaded(cache_dir):
    """A non-finite dataset cached before the check existed is dropped and simulated again;
    here the simulation blows up again, so the run fails with the simulation's error."""
    cfg = dataclasses.replace(SMALL, dt=1e9)
    broken = simulate(dataclasses.replace(SMALL, n_frames=1000))
    broken.activity[500:] = np.nan
    dataset._save(broken, cache_path(cfg, cache_dir))
    with pytest.raises(SimulationError, match="simulation.dt"):
        load_or_simulate(cfg, cache_dir)
    assert not cache_path(cfg, cache_dir).exists()
    # a finite config with a non-finite file in its place is simulated afresh
    dataset._save(Dataset(w=broken.w, activity=broken.activity, derivative=broken.derivative),
                  cache_path(SMALL, cache_dir))  # fmt: skip
    np.testing.assert_array_equal(
        load_or_simulate(SMALL, cache_dir).activity, simulate(SMALL).activity
    )


def test_the_simulation_code_version_enters_the_cache_key(monkeypatch):
    before = cache_key(SMALL)
    monkeypatch.setattr(simulation, "SIMULATION_VERSION", simulation.SIMULATION_VERSION + 1)
    assert cache_key(SMALL) != before


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.fixture
def read_only_cache(cache_dir):
    """The cache folder made immutable (chattr +i): not even root can add a file to it."""
    cache_dir.mkdir()
    if subprocess.run(["chattr", "+i", str(cache_dir)], capture_output=True).returncode:
        pytest.skip("chattr +i is not supported here")
    yield cache_dir
    subprocess.run(["chattr", "-i", str(cache_dir)], check=True)


def test_a_read_only_cache_folder_runs_uncached_with_one_warning(read_only_cache, caplog):
    with caplog.at_level(logging.WARNING, logger=dataset.__name__):
        data = load_or_simulate(SMALL, read_only_cache)
    np.testing.assert_array_equal(data.activity, simulate(SMALL).activity)
    assert not any(read_only_cache.iterdir())
    [warning] = warnings_of(caplog)
    assert str(cache_path(SMALL, read_only_cache)) in warning and "uncached" in warning


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs: a dataset of SMALL (330 kB) fills it midway through its write."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)]
    if subprocess.run(command, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_cache_write_failing_midway_leaves_no_temp_file(full_disk, caplog):
    with caplog.at_level(logging.WARNING, logger=dataset.__name__):
        data = load_or_simulate(SMALL, full_disk)
    np.testing.assert_array_equal(data.w, simulate(SMALL).w)
    assert list(full_disk.iterdir()) == []
    [warning] = warnings_of(caplog)
    assert str(cache_path(SMALL, full_disk)) in warning


def test_an_interrupted_cache_write_leaves_no_temp_file(cache_dir, monkeypatch):
    def interrupted(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)  # Ctrl-C while the file is being written
    with pytest.raises(KeyboardInterrupt):
        load_or_simulate(SMALL, cache_dir)
    assert list(cache_dir.iterdir()) == []


def test_a_directory_at_the_cache_files_path_is_simulated_past(cache_dir, caplog):
    path = cache_path(SMALL, cache_dir)
    path.mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger=dataset.__name__):
        data = load_or_simulate(SMALL, cache_dir)
    np.testing.assert_array_equal(data.w, simulate(SMALL).w)
    assert list(cache_dir.iterdir()) == [path] and path.is_dir()
    assert all(str(path) in warning for warning in warnings_of(caplog))
