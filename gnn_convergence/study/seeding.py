"""Seeds of a trial's runs: distinct for every run, derived from the trial number alone."""

from __future__ import annotations

SEED_MODES = ("rerun", "fixed_data", "cross")


def trial_seeds(
    mode: str, number: int, n_seeds: int, n_data: int = 1
) -> tuple[list[int], list[int] | None]:
    """Training seeds and simulation seeds (None: the config's own) of trial `number`.

    - rerun: each of the n_seeds runs is an independent rerun as the reference made them,
      with its own simulation seed and its own training seed (both n_seeds * number + i);
    - fixed_data: one dataset (simulation.seed) for all runs, n_seeds training seeds;
    - cross: n_data datasets, each trained with n_seeds training seeds.
    """
    if mode not in SEED_MODES:
        raise ValueError(f"seed_mode={mode!r} is invalid: allowed are {', '.join(SEED_MODES)}")
    if n_seeds < 1 or n_data < 1:
        raise ValueError(f"n_seeds={n_seeds} and n_data={n_data} must be >= 1")
    if mode == "rerun":
        seeds = [n_seeds * number + i for i in range(n_seeds)]
        return seeds, list(seeds)
    if mode == "fixed_data":
        return [n_seeds * number + i for i in range(n_seeds)], None
    runs = n_data * n_seeds
    seeds = [runs * number + i for i in range(runs)]
    return seeds, [n_data * number + i // n_seeds for i in range(runs)]
