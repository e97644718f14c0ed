"""The atlas on a real 2x2 grid of the tiny pair, run by Hydra's basic sweeper (sweeps=atlas)."""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from omegaconf import OmegaConf

from gnn_convergence.outcome import Thresholds
from gnn_convergence.study.atlas import (
    X_KEY,
    Y_KEY,
    GridJob,
    atlas_figure,
    cell_table,
    main,
    read_jobs,
    read_study,
)
from gnn_convergence.study.demo import demo_study

LR_W, LR = (3e-3, 1e-1), (5e-4, 5e-2)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A 2x2 atlas of the tiny pair, 500 steps and 2 runs a cell (about 15 s on 2 cores)."""
    root = tmp_path_factory.mktemp("atlas")
    command = [
        sys.executable,
        "-m",
        "gnn_convergence.train",
        "-m",
        "sweeps=atlas",
        f"hydra.sweep.dir={root}/grid",
        f"paths.cache_dir={root}/cache",
        "training.data_augmentation_loop=1",
        "training.seeds=[0,1]",
        "training.data_seeds=[1000,1002]",
        f"training.learning_rate_W_start={LR_W[0]},{LR_W[1]}",
        f"training.learning_rate_start={LR[0]},{LR[1]}",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "grid"


def metrics_values(folder):
    runs = json.loads((folder / "metrics.json").read_text())["seeds"]
    return [run["connectivity_R2"] for run in runs]


@pytest.mark.slow  # trains
def test_the_table_counts_every_run_of_every_cell(grid):
    jobs = read_jobs(grid)
    assert [j.folder.name for j in jobs] == ["0", "1", "2", "3"]
    assert sorted(j.cell for j in jobs) == [(a, b) for a in LR_W for b in LR]
    table = cell_table(jobs)
    assert list(zip(table["lr_W"], table["lr"])) == [(a, b) for a in LR_W for b in LR]
    for job, row in zip(sorted(jobs, key=lambda j: j.cell), table.itertuples()):
        values = metrics_values(job.folder)
        assert job.data_seeds == (1000, 1002)
        assert (row.runs, row.failed_jobs) == (2, 0)
        assert row.converged == sum(v > 0.9 for v in values)
        assert row.rate == row.converged / 2
        assert row.mean_R2 == pytest.approx(np.mean(values))


@pytest.mark.slow  # trains
def test_the_heat_map_shows_each_cells_rate_and_counts(grid):
    table = cell_table(read_jobs(grid))
    heat = atlas_figure(table).data[0]
    assert heat.type == "heatmap"
    assert list(heat.x) == list(LR_W) and list(heat.y) == list(LR)
    rates = table.pivot(index="lr", columns="lr_W", values="rate")
    assert np.array(heat.z).tolist() == rates.to_numpy().tolist()
    counts = [
        [f"{c}/{n}" for c, n in zip(r["converged"], r["runs"])]
        for _, r in table.groupby("lr", sort=True)
    ]
    assert np.array(heat.text).tolist() == counts


@pytest.mark.slow  # trains
def test_a_job_without_metrics_is_a_failed_job_and_the_cli_writes_page_and_table(
    grid, tmp_path, capsys
):
    copy = tmp_path / "grid"
    shutil.copytree(grid, copy)
    (copy / "2" / "metrics.json").unlink()
    lost = read_jobs(copy)[2].cell
    assert main([str(copy)]) == 0
    assert capsys.readouterr().out.strip() == str(copy / "atlas.html")
    table = pd.read_csv(copy / "atlas.csv")
    row = table[(table["lr_W"] == lost[0]) & (table["lr"] == lost[1])].iloc[0]
    assert (row["runs"], row["converged"], row["failed_jobs"]) == (0, 0, 1)
    assert math.isnan(row["rate"])
    assert table["runs"].sum() == 6 and table["failed_jobs"].sum() == 1
    page = (copy / "atlas.html").read_text()
    assert "Failed jobs (no readable metrics.json): 1; 2 (lr_W=" in page
    assert '<script src="plotly.min.js">' in page and (copy / "plotly.min.js").is_file()
    heat = atlas_figure(table).data[0]
    assert sum(math.isnan(z) for row in heat.z for z in row) == 1
    assert "0/0<br>1 failed job(s)" in np.array(heat.text).ravel()


def test_runs_without_a_value_count_as_runs_that_did_not_converge(tmp_path):
    jobs = [
        GridJob(tmp_path, (1e-2, 1e-3), (0.95, None, 0.5)),
        GridJob(tmp_path, (1e-2, 1e-3), None),
    ]
    row = cell_table(jobs, Thresholds(converged=0.4)).iloc[0]
    assert (row["runs"], row["converged"], row["failed_jobs"]) == (3, 2, 1)
    assert row["mean_R2"] == pytest.approx(0.725)


@pytest.mark.slow  # trains
def test_a_study_is_drawn_over_the_atlas(grid, tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path}/studies.db"
    study, _ = demo_study(storage, n_trials=36)  # a walk, validations, a race, then probes
    out = tmp_path / "pages" / "with_study.html"
    assert main([str(grid), "--study", "demo", "--storage", storage, "--out", str(out)]) == 0
    for name in ("with_study.html", "with_study.csv", "plotly.min.js"):
        assert (tmp_path / "pages" / name).is_file()
    view = read_study(storage, "demo")
    fig = atlas_figure(cell_table(read_jobs(grid)), view.thresholds, view)
    assert fig.data[0].type == "heatmap"
    traces = {t.name: t for t in fig.data}
    trials = study.get_trials()
    plane = [[t.params[k] for k in (X_KEY, Y_KEY)] for t in trials]
    links = {
        (*plane[t.user_attrs["parent"]], *plane[t.number])
        for t in trials
        if t.user_attrs["parent"] is not None and plane[t.user_attrs["parent"]] != plane[t.number]
    }
    walk = traces["walk (trial from parent)"]
    drawn = {(*walk.x[i : i + 2], *walk.y[i : i + 2]) for i in range(0, len(walk.x), 3)}
    assert len(links) > 1 and drawn == {(a, c, b, d) for a, b, c, d in links}
    robust = [view.state.values(c) for c in view.state.robust_configs()]
    assert len(robust) == 4
    assert list(traces["robust config"].x) == pytest.approx([r[X_KEY] for r in robust])
    assert len(traces["trial (colour: class)"].x) == len(trials)
    assert len(traces["probe boundary"].x) > 0


def test_the_cli_names_what_is_missing(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no job folders" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--study", "demo"])
    assert exit_info.value.code == 2 and "--storage" in capsys.readouterr().err
    assert main([str(tmp_path), "--study", "x", "--storage", f"sqlite:///{tmp_path}/no.db"]) == 2
    assert "no SQLite file" in capsys.readouterr().err


def job(
    grid: Path, name: str, cell=(LR_W[0], LR[0]), runs=({"connectivity_R2": 0.95, "data_seed": 7},)
):
    """A job folder as Hydra's basic sweeper leaves it: its cell's config and, unless ``runs``
    is None, its metrics.json."""
    (grid / name / ".hydra").mkdir(parents=True)
    config = {"training": {"learning_rate_W_start": cell[0], "learning_rate_start": cell[1]}}
    (grid / name / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(config))
    if runs is not None:
        (grid / name / "metrics.json").write_text(json.dumps({"seeds": list(runs)}))
    return grid / name


def test_damaged_job_files_are_failed_jobs_named_in_a_warning_and_on_the_page(tmp_path, caplog):
    grid = tmp_path / "grid"
    job(grid, "0")
    job(grid, "1", cell=(LR_W[1], LR[1]))
    truncated = job(grid, "2") / "metrics.json"
    truncated.write_text(truncated.read_text()[:12])
    no_data_seed = job(grid, "3", runs=[{"connectivity_R2": 0.95}]) / "metrics.json"
    bad_config = job(grid, "4") / ".hydra" / "config.yaml"
    bad_config.write_text("training: [unclosed\n")
    no_cell = job(grid, "5") / ".hydra" / "config.yaml"
    no_cell.write_text("training: {}\n")
    with caplog.at_level(logging.WARNING):
        assert main([str(grid)]) == 0
    warned = caplog.text
    for path in (truncated, no_data_seed, bad_config, no_cell):
        assert str(path) in warned
    table = pd.read_csv(grid / "atlas.csv")
    assert table[["runs", "failed_jobs"]].values.tolist() == [[1, 2], [1, 0]]
    page = (grid / "atlas.html").read_text()
    for path in ("2/metrics.json", "3/metrics.json", "4/.hydra/config.yaml", "5/.hydra/config"):
        assert path in page
    for name in ("0", "1"):
        (grid / name / ".hydra" / "config.yaml").write_text("")
    shutil.rmtree(grid / "2"), shutil.rmtree(grid / "3")
    assert main([str(grid)]) == 2


def test_the_page_escapes_its_table_name(tmp_path):
    grid = tmp_path / "grid"
    job(grid, "0")
    job(grid, "1", cell=(LR_W[1], LR[1]))
    out = tmp_path / 'x"><img src=x onerror=alert(1)>.html'
    assert main([str(grid), "--out", str(out)]) == 0
    page = out.read_text()
    assert "<img" not in page and escape(out.with_suffix(".csv").name) in page
    assert Path(out.with_suffix(".csv")).is_file()
