"""trials.csv and analysis.md regenerated from real Optuna storages."""

from __future__ import annotations

import html
import json
import math
import re
from collections import Counter
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.trial import FrozenTrial, Trial, TrialState, create_trial

from gnn_convergence.outcome import Thresholds, classify, run_value
from gnn_convergence.study.records import (
    ANALYSIS_MD,
    ANSWER_JSON,
    TRIALS_CSV,
    trials_frame,
    write_records,
)
from gnn_convergence.study.sampler import ProtocolSampler
from gnn_convergence.study.space import index_of, parse_space
from gnn_convergence.study.study_log import iteration_entry

optuna.logging.set_verbosity(optuna.logging.WARNING)

PARAMS = parse_space(
    {
        "training.learning_rate_W_start": "tag(log, interval(1e-4, 1e-2))",
        "training.learning_rate_start": "tag(log, interval(1e-4, 1e-3))",
        "training.coeff_W_L1": "interval(0, 1e-4)",
        "training.batch_size": "choice(1, 4, 8, 16)",
    }
)
DISTRIBUTIONS = {p.name: p.distribution for p in PARAMS}
START = {"lr_W": 1e-3, "lr": 5e-4, "coeff_W_L1": 5e-6, "batch_size": 8}
START_PARAMS = {p.name: START[p.label] for p in PARAMS}
# lr_W is 1e-3 at index 3 of 7; one step up (2e-3) converges only from its second run on
UNSTABLE_CONFIG = (4, 2, 3, 2)
FLAT = ("connectivity_R2", "test_R2", "test_pearson", "final_loss")
NUM = r"-?\d+(\.\d+)?(e[-+]\d+)?|nan"


def seed_record(seed: int, conn: float | None, **extra: Any) -> dict[str, Any]:
    """One per_seed record as the sweeper stores it."""
    record = {
        "seed": seed,
        "data_seed": 0,
        "connectivity_R2": conn,
        "test_R2": 0.9,
        "test_pearson": 0.8,
        "final_loss": 1000.0,
        "class": classify(conn),
        "diverged_at_step": None,
        "spectral_radius": 1.1,
        "effective_rank_90": 20,
        "effective_rank_99": 40,
    }
    return record | extra


def run_attrs(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The user attributes the sweeper stores for a finished run."""
    attrs: dict[str, Any] = {
        "seed_mode": "rerun",
        "seeds": [r["seed"] for r in records],
        "data_seeds": [r["data_seed"] for r in records],
        "folder": "/tmp/study/trial_0",
        "per_seed": records,
        "training_time_min": 1.5,
    }
    for key in FLAT:
        values = [r[key] for r in records if r[key] is not None]
        attrs[f"{key}_min"] = min(values)
        attrs[f"{key}_mean"] = sum(values) / len(values)
    value = run_value(r["connectivity_R2"] or math.nan for r in records)
    return attrs | {"class": classify(value)}


def record_run(trial: Trial, values: list[float]) -> float:
    """Store attributes for the trial's runs with these connectivity_R2 values."""
    seeds, data = trial.user_attrs["seeds"], trial.user_attrs["data_seeds"]
    records = [seed_record(s, v, data_seed=d) for s, d, v in zip(seeds, data, values)]
    for key, value in run_attrs(records).items():
        trial.set_user_attr(key, value)
    return min(values)


def suggest_config(trial: Trial) -> tuple[int, ...]:
    config = []
    for p in PARAMS:
        if p.is_choice:
            value = trial.suggest_categorical(p.name, p.values)
        else:
            dist = p.distribution
            value = trial.suggest_float(p.name, dist.low, dist.high, log=dist.log)
        config.append(index_of(p, value))
    return tuple(config)


class Box:
    """Converged within one grid step of the start, failed outside; one config converges in
    one of its first three runs only."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[int, ...]] = Counter()

    def __call__(self, trial: Trial) -> float:
        config = suggest_config(trial)
        self.seen[config] += 1
        inside = all(abs(i - s) <= 1 for i, s in zip(config, (3, 2, 3, 2), strict=True))
        if config == UNSTABLE_CONFIG and self.seen[config] == 1:
            return record_run(trial, [0.97, 0.5, 0.03])
        return record_run(trial, [0.97, 0.95, 0.96] if inside else [0.02, 0.5, 0.03])


def complete(number_values: list[float], **attrs: Any) -> FrozenTrial:
    """A COMPLETE trial at the start config with these per-seed connectivity_R2 values."""
    records = [seed_record(i, v) for i, v in enumerate(number_values)]
    user = run_attrs(records) | {"role": "start", "parent": None, "change": "start: ..."}
    return create_trial(
        params=START_PARAMS,
        distributions=DISTRIBUTIONS,
        value=min(number_values),
        user_attrs=user | attrs,
    )


def stored(trial: FrozenTrial) -> FrozenTrial:
    """The trial as stored (number 0) in a fresh in-memory study."""
    study = optuna.create_study()
    study.add_trial(trial)
    return study.trials[0]


@pytest.fixture(scope="module")
def protocol_study() -> optuna.Study:
    sampler = ProtocolSampler(PARAMS, start=START, seed=0)
    study = optuna.create_study(sampler=sampler, direction="maximize", study_name="box")
    study.optimize(Box(), n_trials=70)
    return study


def test_an_entry_has_exactly_the_five_lines_of_the_log_format() -> None:
    records = [
        seed_record(0, 0.95),
        seed_record(
            1, 0.7415, test_R2=0.95517, test_pearson=0.89089, final_loss=1525.5, data_seed=3
        ),
        seed_record(2, 0.93, effective_rank_99=55),
    ]
    user = run_attrs(records) | {"role": "move", "parent": 4, "change": "lr_W: 0.0005 -> 0.001"}
    trial = create_trial(
        params=START_PARAMS, distributions=DISTRIBUTIONS, value=0.7415, user_attrs=user
    )
    assert iteration_entry(stored(trial), PARAMS).splitlines() == [
        "## Iter 0: partial",
        "Config: lr_W=0.001, lr=0.0005, coeff_W_L1=5e-06, batch_size=8",
        "Metrics: test_R2=0.9552, test_pearson=0.8909, connectivity_R2=0.7415, final_loss=1525.5",
        "Observation: 2/3 runs converged (connectivity_R2 0.9500, 0.7415, 0.9300 on datasets "
        "0, 3, 0); data effective_rank_99 40 where not converged, 40, 55 where converged; "
        "move from trial 4",
        "Change: lr_W: 0.0005 -> 0.001",
    ]


def test_a_start_trial_without_per_run_records_has_the_five_lines() -> None:
    trial = create_trial(
        params=START_PARAMS,
        distributions=DISTRIBUTIONS,
        value=0.95,
        user_attrs={"role": "start", "change": "start: lr_W=0.001"},
    )
    lines = iteration_entry(stored(trial), PARAMS).splitlines()
    assert lines[0] == "## Iter 0: converged"
    assert (
        lines[2]
        == "Metrics: test_R2=nan, test_pearson=nan, connectivity_R2=0.9500, final_loss=nan"
    )
    assert lines[3:] == [
        "Observation: connectivity_R2 0.9500; start config",
        "Change: none (start)",
    ]


def test_a_fail_trial_names_its_error_and_diverged_seed() -> None:
    records = [seed_record(0, 0.95), seed_record(1, None, diverged_at_step=1234)]
    user = run_attrs(records) | {"error": "loss is NaN\n  at step 1234", "role": "retry"}
    user |= {"parent": 2, "change": "retry of trial 2"}
    trial = create_trial(
        state=TrialState.FAIL, params=START_PARAMS, distributions=DISTRIBUTIONS, user_attrs=user
    )
    lines = iteration_entry(stored(trial), PARAMS).splitlines()
    assert len(lines) == 5
    assert lines[0] == "## Iter 0: failed"
    assert lines[2] == "Metrics: none (error: loss is NaN at step 1234)"
    assert lines[3].startswith("Observation: 1/2 runs converged (connectivity_R2 0.9500, nan ")
    assert "seed 1 diverged at step 1234" in lines[3] and "retry of trial 2" in lines[3]
    assert lines[4] == "Change: retry of trial 2"


def test_classes_follow_the_study_thresholds(tmp_path) -> None:
    study = optuna.create_study(direction="maximize", study_name="lenient")
    study.add_trial(complete([0.85, 0.86, 0.87]))
    lenient = Thresholds(converged=0.8, failed=0.1)
    write_records(study, PARAMS, tmp_path, lenient)
    assert "## Iter 0: converged" in (tmp_path / ANALYSIS_MD).read_text()
    assert "3/3 runs converged" in (tmp_path / ANALYSIS_MD).read_text()
    assert pd.read_csv(tmp_path / TRIALS_CSV).loc[0, "class"] == "converged"
    write_records(study, PARAMS, tmp_path)
    assert "## Iter 0: partial" in (tmp_path / ANALYSIS_MD).read_text()


def test_a_running_trial_has_no_entry() -> None:
    with pytest.raises(ValueError, match="RUNNING"):
        iteration_entry(create_trial(state=TrialState.RUNNING), PARAMS)


def test_running_trials_are_in_the_csv_but_not_in_the_analysis(tmp_path) -> None:
    study = optuna.create_study(direction="maximize", study_name="mixed")
    study.add_trial(complete([0.95, 0.96, 0.97]))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"error": "boom"}))
    running = study.ask({p.name: p.distribution for p in PARAMS})
    study.add_trial(create_trial(value=0.5))  # a trial without any of our attributes
    write_records(study, PARAMS, tmp_path)
    text = (tmp_path / ANALYSIS_MD).read_text()
    assert re.findall(r"^## Iter (\d+): (\w+)$", text, re.M) == [
        ("0", "converged"),
        ("1", "failed"),
        ("3", "partial"),
    ]
    assert "Metrics: none (error: boom)" in text
    frame = pd.read_csv(tmp_path / TRIALS_CSV)
    assert frame["state"].tolist() == ["COMPLETE", "FAIL", "RUNNING", "COMPLETE"]
    assert frame.loc[running.number, "lr_W"] == pytest.approx(running.params[PARAMS[0].name])
    assert pd.isna(frame.loc[running.number, "class"])


def test_the_summary_lists_configs_evidence_and_probed_boundaries(protocol_study, tmp_path):
    write_records(protocol_study, PARAMS, tmp_path)
    text = (tmp_path / ANALYSIS_MD).read_text().split("# Iterations", 1)[0]
    sections = dict(re.findall(r"^## (.+?)\n\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    robust = sections["Robust configs"].splitlines()
    assert robust[0] == (
        "| lr_W | lr | coeff_W_L1 | batch_size | trials | converged | fresh | rate "
        "| rate 90% > | verdict |"
    )
    assert robust[2] == (
        "| 0.001 | 0.0005 | 5e-06 | 8 | 0, 10, 11, 14, 16 | 15/15 | 12/12 | 0.93 | 0.84 | robust |"
    )
    seen = sections["Configs with converged runs"]
    assert re.search(
        r"^\| 0\.002 \| 0\.0005 \| 5e-06 \| 8 \| 2, 3, [\d, ]+ \| 16/18 \| 12/12 "
        r"\| 0\.93 \| 0\.84 \| robust, unstable \|$",
        seen,
        re.M,
    )
    bounds = sections["Boundary bands around the recommended config (rate crossing 0.5)"]
    assert "| 0 | lr_W | high | 0.002 | 12/12 converged |  | 0.005 | 0/6 converged |" in bounds
    assert "| 0 | lr_W | low | 0.0005 | 12/12 converged |  | 0.0002 | 0/6 converged |" in bounds
    assert "| 0 | batch_size | high | 16 | 6/6 converged |  | no boundary in range |  |" in bounds
    regions = sections["Regions (configs judged inside, joined by one-step moves)"]
    assert "| 1 | 10 | 0.0005..0.002 | 0.0002..0.001 | 2e-06..1e-05 | 4..16 | " in regions
    assert "Robust: P(rate > 0.6) >= 0.9 under the Beta posterior of a config's fresh runs" in text
    counts = Counter(t.state for t in protocol_study.trials)
    assert f"Trials: 70 (complete {counts[TrialState.COMPLETE]})" in text


def test_the_answer_comes_first_with_the_command_that_trains_it(protocol_study, tmp_path):
    write_records(protocol_study, PARAMS, tmp_path)
    text = (tmp_path / ANALYSIS_MD).read_text()
    assert text.startswith("# Convergence study: box\n\n## Answer\n\n")
    answer = text.split("## Answer\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert answer[0] == "Recommended: lr_W=0.001, lr=0.0005, coeff_W_L1=5e-06, batch_size=8"
    assert answer[1].startswith("Runs: 12 on fresh datasets, 12 converged; rate 0.93 (90% > 0.84)")
    assert answer[1].endswith("(robust claims rate > 0.6 with 90% credibility)")
    assert answer[-3] == (  # every candidate converged on every race dataset: tied at 2 rounds
        "Race: 4 candidates on common fresh datasets, dropped: none; race ended tied: the "
        "candidates agreed on all 6 common datasets"
    )
    assert answer[-2] == (
        "Train it: python -m gnn_convergence.train training.learning_rate_W_start=0.001 "
        "training.learning_rate_start=0.0005 training.coeff_W_L1=5e-06 training.batch_size=8"
    )
    assert answer[-1] == (
        "Datasets that failed at every config judged inside: none; 0 of 69 datasets run at "
        "inside configs (90% interval 0.00-0.04)"
    )
    record = json.loads((tmp_path / "answer.json").read_text())
    assert record["recommended"]["params"] == {
        "training.learning_rate_W_start": 0.001,
        "training.learning_rate_start": 0.0005,
        "training.coeff_W_L1": 5e-06,
        "training.batch_size": 8,
    }
    assert (record["recommended"]["runs"], record["recommended"]["converged"]) == (12, 12)
    assert record["race"] == {"candidates": 4, "dropped": [], "tied": True, "common_datasets": 6}
    assert record["reason"] is None and record["runner_up"] is not None
    lr_w_high = [
        b
        for b in record["boundaries"]
        if b["param"] == "training.learning_rate_W_start" and b["side"] == "high"
    ]
    assert lr_w_high == [
        {
            "param": "training.learning_rate_W_start",
            "side": "high",
            "inside": 0.002,
            "outside": 0.005,
            "band": [0.002, 0.005],
        }
    ]
    assert len(record["regions"]) == 1 and record["regions"][0]["configs"] == 10
    assert record["hard_datasets"] == [] and record["datasets_inside"] == 69


def test_a_study_where_nothing_converges_recommends_none_with_the_reason(tmp_path) -> None:
    sampler = ProtocolSampler(PARAMS, start=START)
    study = optuna.create_study(sampler=sampler, direction="maximize", study_name="none")

    def failing(trial: Trial) -> float:
        suggest_config(trial)
        return record_run(trial, [0.02, 0.5, 0.03])

    study.optimize(failing, n_trials=12)
    write_records(study, PARAMS, tmp_path)
    text = (tmp_path / ANALYSIS_MD).read_text()
    reason = "no config converged in a share of its runs >= level 0.6, so none was validated"
    assert f"## Answer\n\nRecommended: none\nReason: {reason}\n" in text
    record = json.loads((tmp_path / "answer.json").read_text())
    assert record["recommended"] is None and record["reason"] == reason


def test_entries_report_validation_and_config_evidence(protocol_study, tmp_path) -> None:
    write_records(protocol_study, PARAMS, tmp_path)
    text = (tmp_path / ANALYSIS_MD).read_text()
    assert text.startswith("# Convergence study: box\n\n## Answer\n")
    iterations = text.split("# Iterations\n", 1)[1]
    assert iterations.count("## Iter ") == 70
    assert (
        "Observation: 3/3 runs converged (connectivity_R2 0.9700, 0.9500, 0.9600 on datasets "
        "33, 34, 35); validation of trial 0 on fresh data (3/3 fresh runs converged so far); "
        "config 6/6 fresh runs converged, rate 0.88 (90% > 0.72): robust\n"
    ) in iterations
    assert re.search(
        r"config 4/6 runs converged, rate 0\.62 \(90% > [\d.]+\): undecided, "
        r"unstable\n",
        iterations,
    )


def test_the_csv_round_trips_with_the_expected_columns(protocol_study, tmp_path) -> None:
    write_records(protocol_study, PARAMS, tmp_path)
    frame = pd.read_csv(tmp_path / TRIALS_CSV)
    expected = trials_frame(protocol_study, PARAMS)
    assert list(frame.columns) == list(expected.columns)
    assert list(frame.columns[:12]) == [
        "number",
        "state",
        "value",
        "class",
        "verdict",
        "rate_runs",
        "rate_converged",
        "rate_mean",
        "rate_lower90",
        "role",
        "parent",
        "change",
    ]
    for column in ("lr_W", "lr", "coeff_W_L1", "batch_size", "seed_2_diverged_at_step"):
        assert column in frame.columns
    assert frame["number"].tolist() == list(range(70))
    assert frame.loc[0, ["verdict", "rate_runs", "rate_converged"]].tolist() == [
        "robust",
        12,
        12,
    ]
    assert frame.loc[0, "rate_mean"] == pytest.approx(13 / 14)
    assert frame.loc[0, "seeds"] == "[0, 1, 2]" and frame.loc[1, "data_seeds"] == "[0, 1, 2]"
    assert frame.loc[0, "seed_1_connectivity_R2"] == 0.95
    pd.testing.assert_series_equal(frame["value"], expected["value"])
    assert frame["role"].iloc[:4].tolist() == ["start", "move", "move", "retry"]


def test_a_sqlite_study_is_rewritten_after_reloading(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    sampler = ProtocolSampler(PARAMS, start=START, seed=0)
    study = optuna.create_study(storage=storage, sampler=sampler, direction="maximize")
    study.optimize(Box(), n_trials=5)
    write_records(study, PARAMS, tmp_path / "records")
    before = (tmp_path / "records" / ANALYSIS_MD).read_text()
    reloaded = optuna.load_study(study_name=study.study_name, storage=storage)
    write_records(reloaded, PARAMS, tmp_path / "records")
    assert (tmp_path / "records" / ANALYSIS_MD).read_text() == before
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == [
        ANALYSIS_MD,
        ANSWER_JSON,
        TRIALS_CSV,
    ]


def test_an_empty_study_writes_valid_files(tmp_path) -> None:
    study = optuna.create_study(study_name="empty")
    write_records(study, PARAMS, tmp_path)
    text = (tmp_path / ANALYSIS_MD).read_text()
    assert text.startswith(
        "# Convergence study: empty\n\n## Answer\n\nRecommended: none\n"
        "Reason: no run has finished yet\n\n# Summary\n\nTrials: 0\n"
    )
    assert text.rstrip().endswith("# Iterations")
    assert "## Robust configs\n\nnone\n" in text
    frame = pd.read_csv(tmp_path / TRIALS_CSV)
    assert frame.empty and {"number", "state", "verdict", "lr_W"} <= set(frame.columns)


def test_the_study_name_is_literal_text_in_analysis_md(tmp_path) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    name = 'x <img src=x onerror="alert(1)"> *b* [l](http://e) `c` _u_ \\ & #\n# injected'
    write_records(optuna.create_study(study_name=name), PARAMS, tmp_path)
    rendered = markdown_it.MarkdownIt().render((tmp_path / ANALYSIS_MD).read_text())
    assert not re.search(r"<(img|em|a|code)\b", rendered)
    first = rendered.splitlines()[0]
    assert html.unescape(first) == f"<h1>Convergence study: {' '.join(name.split())}</h1>"


def data_study(name: str, failing, stats, n_trials: int = 60) -> optuna.Study:
    """Box's working region, where every run on a dataset ``failing`` picks fails; each run's
    record carries ``stats(data_seed)``, the dataset's statistics."""

    def objective(trial: Trial) -> float:
        config = suggest_config(trial)
        inside = all(abs(i - s) <= 1 for i, s in zip(config, (3, 2, 3, 2), strict=True))
        seeds, data = trial.user_attrs["seeds"], trial.user_attrs["data_seeds"]
        values = [0.96 if inside and not failing(d) else 0.03 for d in data]
        records = [
            seed_record(s, v, data_seed=d, **stats(d)) for s, d, v in zip(seeds, data, values)
        ]
        for key, value in run_attrs(records).items():
            trial.set_user_attr(key, value)
        return min(values)

    sampler = ProtocolSampler(PARAMS, start=START, seed=0)
    study = optuna.create_study(sampler=sampler, direction="maximize", study_name=name)
    study.optimize(objective, n_trials=n_trials)
    return study


def low_rank(data_seed: int) -> bool:
    return data_seed % 7 == 3


def rank_stats(data_seed: int) -> dict[str, Any]:
    """Low effective ranks on the low-rank datasets; a spectral radius unrelated to them."""
    rank = 12 if low_rank(data_seed) else 30 + data_seed % 11
    radius = 0.9 + (data_seed % 4) / 10
    return {"spectral_radius": radius, "effective_rank_90": rank // 3, "effective_rank_99": rank}


def data_section(folder) -> tuple[list[dict[str, str]], list[str]]:
    """The ``## Data`` section's table rows (by column) and the lines after the table."""
    text = (folder / ANALYSIS_MD).read_text()
    section = text.split("\n## Data\n\n", 1)[1].split("# Iterations", 1)[0]
    table, rest = section.split("\n\n", 1)
    head, _, *rows = table.splitlines()
    names = [c.strip() for c in head.strip("|").split("|")]
    cells = [dict(zip(names, (c.strip() for c in r.strip("|").split("|")))) for r in rows]
    return cells, [line for line in rest.splitlines() if line]


@pytest.fixture(scope="module")
def low_rank_study() -> optuna.Study:
    return data_study("low_rank", low_rank, rank_stats)


def test_the_data_section_lists_each_dataset_with_its_statistics_and_counts(
    low_rank_study, tmp_path
) -> None:
    _, _, data = write_records(low_rank_study, PARAMS, tmp_path)
    text = (tmp_path / ANALYSIS_MD).read_text()
    assert text.index("## Regions") < text.index("\n## Data\n") < text.index("# Iterations")
    rows, _ = data_section(tmp_path)
    runs = Counter(r["data_seed"] for t in low_rank_study.trials for r in t.user_attrs["per_seed"])
    assert [int(r["data seed"]) for r in rows] == sorted(runs)
    for row in rows:
        seed = int(row["data seed"])
        stats = rank_stats(seed)
        assert row["spectral_radius"] == f"{stats['spectral_radius']:.4g}"
        assert row["effective_rank_90"] == str(stats["effective_rank_90"])
        assert row["effective_rank_99"] == str(stats["effective_rank_99"])
        assert row["runs"] == str(runs[seed])
    judged = [r for r in rows if r["hard"]]
    assert judged and all(
        r["hard"] == ("yes" if low_rank(int(r["data seed"])) else "no") for r in judged
    )
    for row, dataset in zip(rows, data.datasets, strict=True):
        counts = f"{dataset.inside_converged}/{dataset.inside_runs}" if dataset.inside_runs else ""
        assert row["converged at inside configs"] == counts
        assert row["inside configs"] == str(dataset.inside_configs)
    for row in judged:
        converged, total = map(int, row["converged at inside configs"].split("/"))
        assert (converged == 0) == (row["hard"] == "yes") and total >= int(row["inside configs"])


def test_low_rank_datasets_failing_at_every_inside_config_give_the_rule(
    low_rank_study, tmp_path
) -> None:
    write_records(low_rank_study, PARAMS, tmp_path)
    rows, lines = data_section(tmp_path)
    hard = [r for r in rows if r["hard"] == "yes"]
    others = [r for r in rows if r["hard"] == "no"]
    assert len(hard) >= 2 and others
    assert lines[0].startswith("Datasets that failed at every config judged inside: ")
    assert f"; {len(hard)} of {len(hard) + len(others)} datasets run at inside" in lines[0]
    top = 30 + min(int(r["data seed"]) % 11 for r in others)
    assert lines[2:] == [
        "- no threshold on spectral_radius separates them",
        f"- every dataset with effective_rank_90 below {(4 + top // 3) / 2:.4g} failed at every "
        f"inside config: {len(hard)} of {len(hard)}, and none above it: 0 of {len(others)}",
        f"- every dataset with effective_rank_99 below {(12 + top) / 2:.4g} failed at every "
        f"inside config: {len(hard)} of {len(hard)}, and none above it: 0 of {len(others)}",
    ]


def test_a_study_where_no_threshold_separates_says_so(tmp_path) -> None:
    def mixed_stats(data_seed: int) -> dict[str, Any]:
        return rank_stats(data_seed + 1)  # low ranks on other datasets than the failing ones

    study = data_study("mixed", low_rank, mixed_stats)
    write_records(study, PARAMS, tmp_path)
    rows, lines = data_section(tmp_path)
    assert sum(r["hard"] == "yes" for r in rows) >= 2
    assert lines[2:] == [
        f"- no threshold on {stat} separates them"
        for stat in ("spectral_radius", "effective_rank_90", "effective_rank_99")
    ]


def test_without_a_config_judged_inside_there_is_nothing_to_judge(tmp_path) -> None:
    study = data_study("outside", lambda _: True, rank_stats, n_trials=8)
    write_records(study, PARAMS, tmp_path)
    rows, lines = data_section(tmp_path)
    assert rows and all(r["hard"] == "" and r["inside configs"] == "0" for r in rows)
    assert lines == ["No dataset was run at a config judged inside: there is nothing to judge."]
    empty = optuna.create_study(study_name="empty")
    write_records(empty, PARAMS, tmp_path)
    assert (
        "\n## Data\n\nnone\n\nNo dataset was run at a config judged inside"
        in (tmp_path / ANALYSIS_MD).read_text()
    )


def test_a_study_without_hard_datasets_says_there_is_nothing_to_separate(
    protocol_study, tmp_path
) -> None:
    write_records(protocol_study, PARAMS, tmp_path)
    rows, lines = data_section(tmp_path)
    assert {r["hard"] for r in rows} == {"no", ""} and sum(r["hard"] == "no" for r in rows) == 69
    assert lines == [
        "Datasets that failed at every config judged inside: none; 0 of 69 datasets run at "
        "inside configs (90% interval 0.00-0.04)",
        "Rule: no dataset is hard, so there is nothing to separate.",
    ]
