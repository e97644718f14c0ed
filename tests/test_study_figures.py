"""Study maps, pages, the report command and the notebooks, on synthetic studies in storage."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import urllib.request
from dataclasses import replace
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from gnn_convergence.figures import CLASS_COLORS, PLOTLY_JS
from gnn_convergence.study import maps, pages
from gnn_convergence.study.boundary_estimate import converged_share
from gnn_convergence.study.datasets import STATS, study_data
from gnn_convergence.study.demo import demo_study
from gnn_convergence.study.records import trials_frame
from gnn_convergence.study.replay import protocol_state
from gnn_convergence.study.sampler import ProtocolSampler
from gnn_convergence.study.space import parse_space, record_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


class Demo:
    """A synthetic study with its parameters, trial table and protocol state."""

    def __init__(self, study: optuna.Study, params: list) -> None:
        self.study, self.params = study, params
        self.frame = trials_frame(study, params)
        self.state = protocol_state(study.get_trials(deepcopy=False), params)
        self.data = study_data(self.state, study.get_trials(deepcopy=False))
        self.param = {p.label: p for p in params}


def with_fail_and_running(n_trials: int) -> optuna.Study:
    """A demo study, then a FAIL trial (an error) and a RUNNING one, asked as the sweeper does."""
    study, params = demo_study(n_trials=n_trials)
    distributions = {p.name: p.distribution for p in params}
    trial = study.ask(distributions)
    trial.set_user_attr("error", "RuntimeError: boom <here>")
    study.tell(trial, state=TrialState.FAIL)
    study.ask(distributions)
    return study


@pytest.fixture(scope="module")
def demo() -> Demo:
    return Demo(*demo_study(n_trials=36))


@pytest.fixture(scope="module")
def mixed() -> Demo:
    study = with_fail_and_running(10)
    return Demo(study, pages.study_params(study))


def by_name(fig, name: str):
    return next(t for t in fig.data if t.name == name)


def points(trace) -> list:
    return [x for x in trace.x if x is not None]


def test_the_demo_study_has_robust_configs_and_probe_boundaries(demo: Demo) -> None:
    assert demo.state.robust_configs()
    assert any(b.outside is not None for b in demo.state.boundaries)
    assert pages.study_params(demo.study) == demo.params


def test_a_slice_has_every_seed_each_minimum_thresholds_and_probe_boundaries(demo: Demo) -> None:
    param = demo.param["lr_W"]
    fig = maps.slice_figure(demo.frame, demo.state, param)
    names = {t.name for t in fig.data}
    assert {"seed", "trial minimum", "probe boundary", "converged", "partial", "failed"} <= names
    assert sorted(s.y0 for s in fig.layout.shapes) == [0.1, 0.9]
    assert len(by_name(fig, "seed").x) == 3 * len(demo.frame)
    minimum = by_name(fig, "trial minimum")
    assert list(minimum.marker.color) == [CLASS_COLORS[c] for c in demo.frame["class"]]
    expected = sorted(
        math.sqrt(param.values[b.inside] * param.values[b.outside])
        for b in demo.state.boundaries
        if b.param == param.name and b.outside is not None
    )
    drawn = sorted(set(points(by_name(fig, "probe boundary"))))
    assert expected and drawn == pytest.approx(expected)
    assert fig.layout.xaxis.type == "log"


def test_axes_are_log_where_the_grid_is_with_a_leading_zero_a_decade_below(demo: Demo) -> None:
    l1 = maps.axis(demo.param["coeff_W_L1"])
    assert l1["type"] == "log" and l1["ticktext"][:2] == ["0", "1e-06"]
    assert l1["tickvals"][0] == pytest.approx(1e-7)
    batch = maps.axis(demo.param["batch_size"])
    assert batch["type"] == "linear" and batch["ticktext"] == ["1", "4", "8", "16"]


def test_pairwise_maps_start_with_lr_w_x_lr_and_show_the_estimate_and_probes(demo: Demo) -> None:
    pairs = maps.ordered_pairs(demo.params)
    assert len(pairs) == 6 and (pairs[0][0].label, pairs[0][1].label) == ("lr_W", "lr")
    fig = maps.pair_figure(demo.frame, demo.state, *pairs[0])
    estimate = by_name(fig, "boundary estimate")
    assert estimate.type == "contour" and estimate.contours.start == 0.5
    z = np.array(estimate.z, dtype=float)
    assert np.nanmin(z) < 0.5 < np.nanmax(z)
    assert "Gaussian-kernel" in fig.layout.annotations[0].text
    robust = demo.state.robust_configs()
    assert len(by_name(fig, "robust config").x) == len(robust)
    along = [
        b
        for b in demo.state.boundaries
        if b.param in (pairs[0][0].name, pairs[0][1].name) and b.outside is not None
    ]
    assert len(points(by_name(fig, "probe boundary"))) == 2 * len(along)
    trials = by_name(fig, "trial (colour: class)")
    assert len(trials.x) == len(demo.frame)
    hover = trials.hovertext[0]
    assert "lr_W=" in hover and "coeff_W_L1=" in hover and "seed 0: test_R2" in hover
    assert "folder: demo/demo/trial_0" in hover


def test_converged_share_averages_cells_and_is_blank_far_from_every_trial() -> None:
    cells = np.array([[0.0, 0.0], [1.0, 0.0]])
    share = converged_share(cells, np.array([1.0, 0.0]), np.array([[0.5, 0], [0, 0], [9, 9]]))
    assert share[0] == pytest.approx(0.5) and share[1] > 0.5 and math.isnan(share[2])


def test_the_walk_shows_roles_parent_links_and_walk_starts(demo: Demo) -> None:
    fig = maps.walk_figure(demo.frame, demo.state)
    names = {t.name for t in fig.data}
    assert set(demo.frame["role"]) <= names
    n_links = demo.frame["parent"].notna().sum()
    assert len(by_name(fig, "from parent").x) == 3 * n_links
    assert len(points(by_name(fig, "walk start"))) == 2 * len(demo.state.walks)
    assert sorted(s.y0 for s in fig.layout.shapes) == [0.1, 0.9]


def test_parallel_coordinates_have_every_parameter_and_the_objective(demo: Demo) -> None:
    fig = maps.parallel_figure(demo.frame, demo.state)
    dims = fig.data[0].dimensions
    assert [d.label for d in dims] == [*demo.param, "objective"]
    assert len(dims[-1]["values"]) == len(demo.frame)


def test_failed_and_running_trials_are_drawn_at_zero(mixed: Demo) -> None:
    fig = maps.slice_figure(mixed.frame, mixed.state, mixed.param["lr"])
    running = by_name(fig, "running (no value yet)")
    assert list(running.y) == [0.0] and list(running.marker.color) == [maps.PENDING_COLOR]
    minimum = by_name(fig, "trial minimum")
    fail = next(h for h in minimum.hovertext if "boom" in h)
    assert "FAIL: RuntimeError: boom &lt;here&gt;" in fail
    assert minimum.y[list(minimum.hovertext).index(fail)] == 0.0
    walk = maps.walk_figure(mixed.frame, mixed.state)
    assert "running" in {t.name for t in walk.data}
    pair = maps.pair_figure(mixed.frame, mixed.state, mixed.param["lr_W"], mixed.param["lr"])
    assert list(by_name(pair, "trial (colour: class)").marker.symbol).count("circle-open") == 1
    parallel = maps.parallel_figure(mixed.frame, mixed.state)
    assert len(parallel.data[0].dimensions[0]["values"]) == len(mixed.frame) - 1


def test_a_running_trial_without_params_yet_draws_on_no_map_axis() -> None:
    """Another worker's trial between its ask and its sampler's decision has no params: every
    study figure still draws, with that trial off the parameter axes."""
    study, params = demo_study(n_trials=10)
    study.ask()
    demo = Demo(study, params)
    figures = pages.study_figures(demo.frame, demo.state, demo.data, maps.DEFAULT_THRESHOLDS)
    assert sum(len(group) for group in figures.values()) > 0
    pair = maps.pair_figure(demo.frame, demo.state, demo.param["lr_W"], demo.param["lr"])
    trials = by_name(pair, "trial (colour: class)")
    assert (trials.x[-1], trials.y[-1]) == (None, None)
    assert all(v is not None for v in trials.y[:-1])


def test_the_data_page_has_one_scatter_per_statistic_with_hard_datasets_marked(tmp_path):
    study, params = demo_study(n_trials=60)
    demo = Demo(study, params)
    fig = maps.data_figure(demo.data, demo.state)
    assert [fig.layout[f"xaxis{i}"].title.text for i in ("", "2", "3")] == list(STATS)
    datasets = {d.data_seed: d for d in demo.data.datasets}
    runs = [r for ev in demo.state.evidence.values() if ev.inside for r in ev.runs]
    hard = [r for r in runs if datasets[r.data_seed].hard]
    assert hard and len(hard) < len(runs)
    for name, drawn in (
        ("run (colour: class)", len(runs) - len(hard)),
        ("run on a hard dataset", len(hard)),
    ):
        traces = [t for t in fig.data if t.name == name]
        assert [t.xaxis for t in traces] == ["x", "x2", "x3"]
        assert all(len(t.x) == drawn for t in traces)
    marked = [t for t in fig.data if t.name == "run on a hard dataset"]
    assert all(t.marker.symbol == "x" and t.marker.color == CLASS_COLORS["failed"] for t in marked)
    assert sorted(marked[2].x) == sorted(datasets[r.data_seed].stats[STATS[2]] for r in hard)
    assert f"<b>dataset {hard[0].data_seed} (hard)</b>" in marked[0].hovertext[0]
    assert "lr_W=" in marked[0].hovertext[0] and f"trial {hard[0].trial}" in marked[0].hovertext[0]
    assert sorted(s.y0 for s in fig.layout.shapes) == [0.1] * 3 + [0.9] * 3
    rule = replace(demo.data.separations[2], side="below", threshold=30.5)
    ruled = replace(demo.data, separations=(*demo.data.separations[:2], rule))
    line = maps.data_figure(ruled, demo.state).layout.shapes[0]
    assert (line.x0, line.x1, line.xref) == (30.5, 30.5, "x3")
    pages.write_study(study, params, tmp_path)
    html = (tmp_path / "data.html").read_text()
    assert f'<script src="{PLOTLY_JS}"></script>' in html and "plotly.js v" not in html
    assert html.count('class="plotly-graph-div"') == 1
    assert "Datasets that failed at every config judged inside: " in html
    assert "<br>- no threshold on effective_rank_99 separates them</p>" in html
    assert html.index('class="plotly-graph-div"') < html.index("<h2>Datasets</h2>")
    assert html.count("<tr") == 1 + len(demo.data.datasets)


def test_pages_load_one_local_plotlyjs_and_the_dashboard_gets_the_map(tmp_path):
    study, params = demo_study(n_trials=30)
    path = pages.write_study(study, params, tmp_path)
    assert path == tmp_path / pages.REPORT_HTML
    assert (tmp_path / PLOTLY_JS).read_text().startswith("/**\n* plotly.js v")
    for name in [*pages.PAGES, "report"]:
        html = (tmp_path / f"{name}.html").read_text()
        assert f'<script src="{PLOTLY_JS}"></script>' in html
        assert "plotly.js v" not in html and '<script src="http' not in html
        assert len(html) < 1_000_000
    page = path.read_text()
    assert page.count('class="plotly-graph-div"') == 1 + 6 + 4 + 1 + 1
    assert "<h2>Robust configs</h2>" in page and "<h2>Regions" in page
    answer = page.index("<h2>Answer</h2>\n<pre>Recommended: ")
    assert answer < page.index("<h2>Robust configs</h2>")
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert any(key.startswith("dashboard:plot_data:boundary_map:") for key in attrs)


def sweeper_study(storage: str, space: dict[str, str], n_trials: int = 6) -> optuna.Study:
    """A study over ``space`` as the sweeper makes it (real sampler, space attributes, per-run
    records), without training: a trial's runs converge at odd trial numbers."""
    params = parse_space(space)
    study = optuna.create_study(
        study_name="sweep",
        storage=storage,
        sampler=ProtocolSampler(params, seed=0),
        direction="maximize",
    )
    record_space(study, space, params)
    for _ in range(n_trials):
        trial = study.ask({p.name: p.distribution for p in params})
        value = 0.95 if trial.number % 2 else 0.3
        pairs = zip(trial.user_attrs["seeds"], trial.user_attrs["data_seeds"], strict=True)
        runs = [{"seed": s, "data_seed": d, "connectivity_R2": value} for s, d in pairs]
        trial.set_user_attr("per_seed", runs)
        study.tell(trial, value)
    return study


def test_a_one_parameter_study_writes_every_record_and_page(tmp_path) -> None:
    space = {"training.learning_rate_W_start": "tag(log, interval(1e-4, 1e-2))"}
    study = sweeper_study(f"sqlite:///{tmp_path}/studies.db", space)
    pages.write_study(study, pages.study_params(study), tmp_path / "out")
    for name in ("report.html", "analysis.md", "trials.csv", *(f"{p}.html" for p in pages.PAGES)):
        assert (tmp_path / "out" / name).is_file(), name
    assert "no pair of parameters to map" in (tmp_path / "out" / "maps.html").read_text()
    assert "## Iter 5: converged" in (tmp_path / "out" / "analysis.md").read_text()
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert any(key.startswith("dashboard:plot_data:boundary_map:") for key in attrs)


@pytest.mark.filterwarnings("ignore:Choices for a categorical distribution:UserWarning")
class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def test_optuna_dashboard_serves_the_boundary_map_from_sqlite(tmp_path) -> None:
    from optuna_dashboard import wsgi

    storage = sqlite_copy(demo_study(n_trials=8)[0], tmp_path)
    study = optuna.load_study(study_name="demo", storage=storage)
    pages.write_study(study, pages.study_params(study), tmp_path / "out")
    server = make_server("127.0.0.1", 0, wsgi(storage), handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/studies/{study._study_id}?after=0"
        detail = json.load(urllib.request.urlopen(url, timeout=30))
    finally:
        server.shutdown()
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    names = {trace.get("name") for trace in graphs[pages.DASHBOARD_MAP_ID]["data"]}
    assert {"boundary estimate", "robust config", "probe boundary"} <= names


def sqlite_copy(study: optuna.Study, folder: Path) -> str:
    storage = f"sqlite:///{folder}/studies.db"
    optuna.copy_study(
        from_study_name=study.study_name, from_storage=study._storage, to_storage=storage
    )
    return storage


def run_report(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gnn_convergence.report", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_report_without_out_writes_only_where_the_study_keeps_its_records(tmp_path) -> None:
    storage = sqlite_copy(demo_study(n_trials=20)[0], tmp_path)  # trials in demo/demo/trial_<n>
    for folder in (None, tmp_path / "demo" / "demo"):  # not here; here without records
        if folder:
            folder.mkdir(parents=True)
        proc = run_report(storage, "demo", cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == (
            "error: the folder of study demo, demo/demo, holds no records of it here "
            "(no analysis.md of this study): pass --out DIR\n"
        )
        assert sorted(tmp_path.rglob("*.*")) == [tmp_path / "studies.db"]
    assert run_report(storage, "demo", "--out", "demo/demo", cwd=tmp_path).returncode == 0
    proc = run_report(storage, "demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == Path("demo/demo/report.html")
    folder = tmp_path / "demo" / "demo"
    for name in ("report.html", "analysis.md", "trials.csv", *(f"{p}.html" for p in pages.PAGES)):
        assert (folder / name).is_file(), name
    assert "# Summary" in (folder / "analysis.md").read_text()


def test_report_writes_into_the_folder_recorded_on_the_study(tmp_path) -> None:
    study = demo_study(n_trials=3)[0]
    pages.record_folder(study, tmp_path / "mine")
    storage = sqlite_copy(study, tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "analysis.md").write_text("# Convergence study: other\n")
    proc = run_report(storage, "demo", cwd=tmp_path)
    assert proc.returncode == 2 and f"demo, {tmp_path}/mine, holds no records" in proc.stderr
    pages.write_study(study, pages.study_params(study), tmp_path / "mine")
    proc = run_report(storage, "demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{tmp_path}/mine/report.html\n"


def test_a_study_folder_is_the_recorded_one_else_the_one_of_all_trials() -> None:
    study = demo_study(n_trials=2)[0]
    assert pages.study_folder(study) == Path("demo/demo")
    trial = study.ask()
    trial.set_user_attr("folder", "elsewhere/trial_2")
    assert pages.study_folder(study) is None
    pages.record_folder(study, "outputs/studies/demo")
    assert pages.study_folder(study) == Path("outputs/studies/demo").absolute()


def test_report_command_on_a_study_with_failed_and_running_trials(tmp_path) -> None:
    storage = sqlite_copy(with_fail_and_running(10), tmp_path)
    proc = run_report(storage, "demo", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "out" / "report.html").read_text()
    assert "RUNNING" in page and "running (no value yet)" in page and "boom" in page
    csv = (tmp_path / "out" / "trials.csv").read_text()
    assert ",FAIL," in csv and ",RUNNING," in csv


def test_report_help_keeps_the_usage_line(tmp_path) -> None:
    proc = run_report("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    usage = "    python -m gnn_convergence.report STORAGE_URL STUDY_NAME [--out DIR]\n"
    assert usage in proc.stdout


def test_report_command_names_a_missing_study_or_file(tmp_path) -> None:
    storage = sqlite_copy(demo_study(n_trials=2)[0], tmp_path)
    proc = run_report(storage, "other", cwd=tmp_path)
    assert proc.returncode == 2 and "no study 'other'" in proc.stderr and "demo" in proc.stderr
    proc = run_report(f"sqlite:///{tmp_path}/none.db", "demo", cwd=tmp_path)
    assert proc.returncode == 2 and "no SQLite file" in proc.stderr
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(
    "notebook", sorted((ROOT / "notebooks").glob("*.py")), ids=lambda p: p.name
)
def test_every_notebook_runs_on_its_tiny_default(notebook: Path, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GNN_STUDY_")}
    proc = subprocess.run(
        [sys.executable, str(notebook)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_report_renders_in_headless_chromium() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "render_report.py")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
