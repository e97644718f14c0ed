# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A convergence study
#
# Loads the study named by `GNN_STUDY_NAME` from the storage URL `GNN_STUDY_STORAGE` (for
# example `sqlite:///outputs/studies.db` and `convergence`); without them, builds a tiny
# synthetic study on the fly (the real protocol sampler, no training). Open it in Jupyter with
# `jupytext --to notebook notebooks/study.py`, or run it as a script: `python notebooks/study.py`.
# The same figures, as self-contained pages, come from
# `python -m gnn_convergence.report STORAGE_URL STUDY_NAME`.

# %%
import os

import optuna
import plotly.io as pio

from gnn_convergence.study import pages
from gnn_convergence.study.answer_report import summary_tables
from gnn_convergence.study.datasets import study_data
from gnn_convergence.study.demo import demo_study
from gnn_convergence.study.records import trials_frame
from gnn_convergence.study.replay import protocol_state

optuna.logging.set_verbosity(optuna.logging.WARNING)
if "get_ipython" not in globals():  # a plain script: show() must not open a browser
    pio.renderers.default = ""

# %%
storage, name = os.environ.get("GNN_STUDY_STORAGE"), os.environ.get("GNN_STUDY_NAME")
if storage and name:
    study = pages.load_study(storage, name)
    params = pages.study_params(study)
else:
    study, params = demo_study(n_trials=36)
thresholds, rule = pages.study_thresholds(study), pages.study_rule(study)
state = protocol_state(study.get_trials(deepcopy=False), params, thresholds, rule)
frame = trials_frame(study, params, thresholds, rule)
print(f"study {study.study_name}: {len(frame)} trials, {len(state.walks)} walks")

# %% [markdown]
# ## Trials

# %%
labels = [p.label for p in params]
frame[["number", "state", "class", "verdict", "role", "change", *labels, "value"]]

# %% [markdown]
# ## Robust configs, configs with converged runs, boundaries and regions

# %%
tables = summary_tables(state)
for title, table in tables.items():
    print(f"{title}:\n{table.to_string(index=False) if len(table) else 'none'}\n")

# %%
tables["Robust configs"]

# %% [markdown]
# ## Figures: the walk, the pairwise maps (lr_W x lr first), one slice per parameter,
# ## parallel coordinates, connectivity_R2 against each dataset statistic

# %%
data = study_data(state, study.get_trials(deepcopy=False))
figures = pages.study_figures(frame, state, data, thresholds)
for page in pages.PAGES:
    for fig in figures[page]:
        fig.show()
