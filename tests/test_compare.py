"""The compare command on real SQLite storages holding synthetic studies (the real sampler)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from conftest import compose_config
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution

from gnn_convergence.compare import main
from gnn_convergence.figures import CLASS_COLORS, PLOTLY_JS
from gnn_convergence.study import maps
from gnn_convergence.study.answer_report import config_text
from gnn_convergence.study.comparison import load_studies, shared_axes, study_simulation
from gnn_convergence.study.demo import DEFAULT_SPACE, demo_study
from gnn_convergence.study.pages import load_study, record_folder, study_params
from gnn_convergence.study.ranges import operating_range, ranges_figure, union_param
from gnn_convergence.study.replay import protocol_state
from gnn_convergence.study.space import Param, value_text

optuna.logging.set_verbosity(optuna.logging.WARNING)

ROOT = Path(__file__).resolve().parents[1]
LR_W = "training.learning_rate_W_start"
DALE_SPACE = {  # the same keys, other grids: lr_W up to 2e-2, batch_size 2 instead of 16
    **DEFAULT_SPACE,
    LR_W: "tag(log, interval(1e-4, 2e-2))",
    "training.batch_size": "choice(1, 2, 4, 8)",
}


def multirun_yaml(simulation: str) -> str:
    """The sweep config as the sweeper writes multirun.yaml (hydra node included)."""
    return OmegaConf.to_yaml(compose_config([f"simulation={simulation}"], hydra=True))


def stored_study(url: str, root: Path, name: str, n_trials: int, seed: int, space, sim) -> None:
    """A demo study copied into ``url``; with ``sim``, a study folder holding multirun.yaml."""
    study, _ = demo_study(None, name, n_trials, seed, space)
    if sim is not None:
        folder = root / "studies" / name
        folder.mkdir(parents=True)
        record_folder(study, folder)
        (folder / "multirun.yaml").write_text(multirun_yaml(sim))
    optuna.copy_study(from_study_name=name, from_storage=study._storage, to_storage=url)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, str]:
    """studies.db: chaotic (80 trials), chaotic_dale (60, other grids, sampler seed 1), bare (3
    trials, no folder: no simulation, no answer); other.db: a one-parameter study."""
    root = tmp_path_factory.mktemp("stores")
    main_url, other_url = f"sqlite:///{root}/studies.db", f"sqlite:///{root}/other.db"
    stored_study(main_url, root, "chaotic", 80, 0, DEFAULT_SPACE, "chaotic")
    stored_study(main_url, root, "chaotic_dale", 60, 1, DALE_SPACE, "chaotic_dale")
    stored_study(main_url, root, "bare", 3, 0, DEFAULT_SPACE, None)
    one = {LR_W: DEFAULT_SPACE[LR_W]}
    study = optuna.create_study(study_name="sweep", storage=other_url)
    study.set_user_attr("params", one)
    return {"main": main_url, "other": other_url, "root": str(root)}


def state_of(url: str, name: str):
    study = load_study(url, name)
    return protocol_state(study.get_trials(deepcopy=False), study_params(study))


def test_the_page_and_tables_hold_each_answer_side_by_side(stores, tmp_path, capsys) -> None:
    out = tmp_path / "cmp" / "compare.html"
    names = ["chaotic", "chaotic_dale"]
    assert main(["--storage", stores["main"], *names, "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}\n"
    table = pd.read_csv(out.with_suffix(".csv"), dtype=str, keep_default_na=False)
    markdown, html = out.with_suffix(".md").read_text(), out.read_text()
    assert list(table["study"]) == names
    for name, row in zip(names, table.to_dict("records")):
        state = state_of(stores["main"], name)
        rec, answer = state.answer.recommended, state.answer
        ev = state.evidence[rec]
        values = state.values(rec)
        for param in state.params:
            assert row[param.label] == value_text(values[param.name])
        assert (row["runs"], row["converged"]) == (str(ev.n), str(ev.converged))
        assert row["rate"] == f"{ev.mean:.2f}"
        assert row["rate lower bound"] == f"{ev.lower:.2f} (90%)"
        assert row["verdict"] == ev.verdict
        assert row["runner-up"].startswith(config_text(state, answer.runner_up))
        assert row["regions"] == str(len(answer.regions))
        assert row["hard datasets"].startswith(f"{len(answer.hard)} of {answer.datasets_inside}")
        assert row["simulation"] == name
        line = f"| {name} | {config_text(state, rec)} | {ev.n} | {ev.converged} |"
        assert line in markdown
        assert config_text(state, rec) in html
        for band in answer.bands:  # each band's outside value is in its parameter's range
            param = next(p for p in state.params if p.name == band.param)
            if band.outside is not None:
                assert (
                    f"outside {value_text(param.values[band.outside])}"
                    in row[f"{param.label} range"]
                )
    assert (
        table.loc[0, "lr_W range"]
        == "inside 0.001..0.005; low: outside 0.0005; high: outside 0.01"
    )
    assert table.loc[1, "lr_W range"] == (
        "inside 0.002..0.005; low: transition 0.001, outside 0.0005; high: outside 0.01"
    )
    assert "| neuron.g | 7 | 10 |" in markdown and "| dale | False | True |" in markdown
    assert "| simulation (config group) | chaotic | chaotic_dale |" in markdown
    assert "<td>neuron.g</td>" in html and f'<script src="{PLOTLY_JS}">' in html
    assert (out.parent / PLOTLY_JS).is_file()
    assert '<a href="compare.md">compare.md</a>' in html


def test_ranges_share_the_union_axes_and_colour_as_the_study_pages(stores) -> None:
    studies = load_studies([(stores["main"], "chaotic"), (stores["main"], "chaotic_dale")], "-")
    axes = {a.label: a for a in shared_axes(studies)}
    assert axes["lr_W"].values[-2:] == (1e-2, 2e-2) and axes["lr_W"].log
    assert axes["batch_size"].values == (1, 2, 4, 8, 16)
    fig = ranges_figure(
        [s.label for s in studies], [s.state for s in studies], list(axes.values())
    )
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.ticktext[-1] == "0.02"
    assert list(fig.layout.yaxis.categoryarray) == ["chaotic_dale", "chaotic"]
    # each parameter is named once, under its own row (no subplot title over the axis title)
    assert [fig.layout[f"xaxis{i or ''}"].title.text for i in (0, 2, 3, 4)] == list(axes)
    assert not fig.layout.annotations
    traces = {(t.name, t.xaxis): t for t in fig.data}
    assert traces[("inside", "x")].marker.color == CLASS_COLORS["converged"]
    assert traces[("transition", "x")].marker.color == CLASS_COLORS["partial"]
    assert traces[("outside", "x")].marker.color == CLASS_COLORS["failed"]
    recommended = traces[("recommended", "x")]  # the lr_W row
    for s, x, y in zip(studies, recommended.x, recommended.y, strict=True):
        value = s.state.values(s.state.answer.recommended)[LR_W]
        assert y == s.label and x == maps.place(axes["lr_W"], value)
    dale = studies[1].state
    r = operating_range(dale, 0)
    assert [(dale.params[0].values[p.index], p.kind) for p in r.points] == [
        (5e-4, "outside"), (1e-3, "transition"), (2e-3, "inside"), (5e-3, "inside"),
        (1e-2, "outside"),
    ]  # fmt: skip
    outside = traces[("outside", "x")]
    assert [x for x, y in zip(outside.x, outside.y) if y == "chaotic_dale"] == pytest.approx(
        [5e-4, 1e-2]
    )
    placed = {(y, round(x, 9)) for t in fig.data if t.xaxis == "x" for x, y in zip(t.x, t.y)}
    assert ("chaotic_dale", 0.02) in placed and ("chaotic", 0.02) not in placed  # dale's grid


def test_a_study_without_answer_or_simulation_says_so(stores, tmp_path) -> None:
    out = tmp_path / "bare.html"
    assert main(["--storage", stores["main"], "chaotic", "bare", "--out", str(out)]) == 0
    markdown = out.with_suffix(".md").read_text()
    assert "| bare | none (" in markdown
    assert "bare: simulation not recoverable from storage (no multirun.yaml" in markdown
    assert "shown by study name only" in out.read_text()
    table = pd.read_csv(out.with_suffix(".csv"), keep_default_na=False)
    assert table.loc[1, "lr_W range"] == "no recommended config"


def test_studies_in_two_storages_and_one_study_alone(stores, tmp_path) -> None:
    out = tmp_path / "two.html"
    other = f"{stores['main']}::chaotic_dale"
    assert main(["--storage", stores["main"], "chaotic", other, "--out", str(out)]) == 0
    assert "chaotic_dale" in out.with_suffix(".md").read_text()
    alone = tmp_path / "one.html"
    assert main([f"{stores['main']}::chaotic", "--out", str(alone)]) == 0
    assert "Simulations that differ\n\nnone" in alone.with_suffix(".md").read_text()


def errors(stores) -> list[tuple[list[str], str]]:
    main_url, other = stores["main"], stores["other"]
    missing = f"sqlite:///{stores['root']}/none.db"
    return [
        ([], "error: give at least one study: NAME (with --storage URL) or URL::NAME\n"),
        (["chaotic"], "error: study 'chaotic' names no storage: give --storage URL, "
         "or URL::chaotic\n"),
        (["--storage", main_url, "chaotic", "nope"], f"error: no study 'nope' in {main_url}; "
         "studies: chaotic, chaotic_dale, bare\n"),
        (["--storage", missing, "chaotic"], f"error: no SQLite file at {missing}: give "
         "--storage of an existing study\n"),
        (["--storage", main_url, "chaotic", "chaotic"], f"error: study 'chaotic' in "
         f"{main_url} is given twice\n"),
        (["--storage", main_url, "chaotic", f"{other}::sweep"], "error: the studies sweep "
         f"different parameters: against chaotic ({', '.join(DEFAULT_SPACE)}), sweep lacks "
         "training.learning_rate_start, training.coeff_W_L1, training.batch_size; compare "
         "studies of one search space (their grids may differ)\n"),
    ]  # fmt: skip


def test_bad_input_is_one_line_and_exit_2_before_any_file(stores, tmp_path, capsys) -> None:
    out = tmp_path / "x" / "compare.html"
    for argv, message in errors(stores):
        assert main([*argv, "--out", str(out)]) == 2, argv
        assert capsys.readouterr().err == message
        assert not out.parent.exists()
    assert not Path(stores["root"], "none.db").exists()


def test_the_command_line_exits_2_without_traceback_and_has_help(stores, tmp_path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "gnn_convergence.compare", *args], cwd=tmp_path,
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip

    proc = run("--storage", stores["main"], "chaotic", "nope")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "compare.html").exists()
    proc = run("--help")
    assert proc.returncode == 0
    assert "python -m gnn_convergence.compare --storage STORAGE_URL STUDY [STUDY ...]" in (
        proc.stdout
    )
    assert "URL::NAME" in proc.stdout


def test_union_axes_merge_numbers_in_order_and_choices_as_first_seen() -> None:
    a = Param("x", (1e-4, 1e-3), True, FloatDistribution(1e-4, 1e-3, log=True))
    b = Param("x", (5e-4, 1.0000000001e-3, 1e-2), True, FloatDistribution(5e-4, 1e-2))
    assert union_param([a, b]).values == (1e-4, 5e-4, 1e-3, 1e-2)
    c = Param("m", ("sgd", "adam"), False, CategoricalDistribution(["sgd", "adam"]))
    d = Param("m", ("adam", "lion"), False, CategoricalDistribution(["adam", "lion"]))
    assert union_param([c, d]).values == ("sgd", "adam", "lion")
    assert union_param([c, d]).is_choice


def test_a_resume_with_another_simulation_is_noted(tmp_path) -> None:
    study = optuna.create_study()
    assert study_simulation(study).note == "no study folder is recorded on the study"
    record_folder(study, tmp_path)
    (tmp_path / "multirun.yaml").write_text(multirun_yaml("chaotic"))
    (tmp_path / "multirun_1.yaml").write_text(multirun_yaml("chaotic_dale"))
    simulation = study_simulation(study)
    assert simulation.choice == "chaotic" and simulation.values["neuron.g"] == 7.0
    assert "multirun_1.yaml (a resumed sweep) holds another simulation" in simulation.note
    (tmp_path / "multirun.yaml").write_text("training: {}\n")
    assert "it has no simulation section" in study_simulation(study).note
