"""Seeds of a trial's runs: training seeds fresh for every run, derived from the trial number
and the study's offset."""

from __future__ import annotations

from collections.abc import Sequence

SEED_MODES = ("paired", "rerun", "fixed_data", "cross")
STUDY_STRIDE = 1_000_000  # seeds of a study with sampler seed s lie in [s, s + 1) * STRIDE
RACE_STREAM = STUDY_STRIDE // 2  # the race's common datasets start here within a study


def study_offset(seed: int) -> int:
    """First seed of the study with sampler seed ``seed``: studies of different seeds share
    no dataset and no training seed (below STUDY_STRIDE / 2 seeds a study)."""
    return seed * STUDY_STRIDE


def race_datasets(offset: int, round_: int, n_seeds: int) -> list[int]:
    """Datasets of race round ``round_``: the same for every candidate of the study."""
    first = offset + RACE_STREAM + round_ * n_seeds
    return list(range(first, first + n_seeds))


def check_seeding(mode: str, n_seeds: int, n_data: int = 1) -> None:
    """Fail with the key and the allowed values on an invalid seeding setting."""
    if mode not in SEED_MODES:
        raise ValueError(
            f"hydra.sweeper.seed_mode={mode!r} is invalid: allowed are {', '.join(SEED_MODES)}"
        )
    if n_seeds < 1 or n_data < 1:
        raise ValueError(
            f"hydra.sweeper.n_seeds={n_seeds} and n_data={n_data} are invalid: allowed is >= 1"
        )


def trial_seeds(
    mode: str,
    number: int,
    n_seeds: int,
    n_data: int = 1,
    panel: Sequence[int] | None = None,
    offset: int = 0,
) -> tuple[list[int], list[int] | None]:
    """Training seeds and simulation seeds (None: the config's own) of trial `number`.

    - paired: n_seeds runs on the walk's ``panel`` of datasets when given (a move, a retry),
      else on fresh datasets n_seeds * number + i (a start or jump, whose datasets become its
      walk's panel; a validation; a probe);
    - rerun: each run an independent rerun, with its own simulation and training seed;
    - fixed_data: one dataset (simulation.seed) for all runs, n_seeds training seeds;
    - cross: n_data datasets, each trained with n_seeds training seeds.
    Training seeds are offset + n_seeds * number + i (n_data * n_seeds * number + i in cross
    mode), so they never repeat across trials or workers; every seed above is shifted by the
    study's ``offset`` (:func:`study_offset`). A race trial passes its round's datasets as
    ``panel`` (:func:`race_datasets`).
    """
    check_seeding(mode, n_seeds, n_data)
    seeds = [offset + n_seeds * number + i for i in range(n_seeds)]
    if mode == "paired":
        use_panel = panel is not None and len(panel) == n_seeds
        return seeds, list(panel) if use_panel else list(seeds)
    if mode == "rerun":
        return seeds, list(seeds)
    if mode == "fixed_data":
        return seeds, None
    runs = n_data * n_seeds
    seeds = [offset + runs * number + i for i in range(runs)]
    return seeds, [offset + n_data * number + i // n_seeds for i in range(runs)]
