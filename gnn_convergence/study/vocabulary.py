"""The study's words: trial and study attribute keys, roles, finished states, and what counts
as a number.

Every module of the study (protocol, sampler, records, maps, report) and the sweeper read and
write trials through these names, so a key is spelled in one place.
"""

from __future__ import annotations

import math
from typing import Any

from optuna.trial import TrialState

# The decision a trial runs (system attribute, written by the sampler): a dict with ROLE,
# PARENT and DATA_SEEDS below and these keys
DECISION = "protocol:decision"
CONFIG, FINGERPRINT, ON_GRID, ROUND = "config", "fingerprint", "on_grid", "round"
# User attributes: the sampler's decision, as shown in optuna-dashboard
ROLE, PARENT, CHANGE = "role", "parent", "change"
SEEDS, DATA_SEEDS = "seeds", "data_seeds"
# User attributes: written by the sweeper around the job
SEED_MODE, FOLDER, OVERRIDES, ERROR = "seed_mode", "folder", "overrides", "error"
REPORTED = "reported"  # False on a launched trial until its evidence is stored
WORKER = "worker"  # host:pid of the sweeper process that launched the trial
PER_SEED = "per_seed"  # one record per run: seed, data_seed, metrics, data statistics
# Study user attributes: the study's identity (also in its folder's study.json); its search
# space as grammar text, as grids and as a fingerprint; the thresholds and robust rule it runs
STUDY_UUID = "uuid"
SPACE_TEXTS, SPACE_GRIDS, SPACE_FINGERPRINT = "params", "space", "space_fingerprint"
THRESHOLDS, RULE = "thresholds", "robust"

START, MOVE, RETRY, VALIDATE, PROBE, JUMP, RACE, ENQUEUED = (
    "start",
    "move",
    "retry",
    "validate",
    "probe",
    "jump",
    "race",
    "enqueued",
)

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
FINISHED_NAMES = tuple(s.name for s in FINISHED)


def finite(value: Any) -> float | None:
    """A finite number as float, else None (bools, strings, NaN, infinities)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
