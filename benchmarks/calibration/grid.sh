#!/usr/bin/env bash
# The measured cells the sampler benchmark's world is calibrated on: the default problem
# (simulation=chaotic, training=default) on 6 fresh datasets per cell, simulation seeds
# 800000-800005 (training seeds 0-5), the same datasets in every cell. Four grids through
# Hydra's basic sweeper, each trained as populations by hydra/launcher=population:
#   the lr_W column 1e-4..1e-2 at the start's other values (lr 5e-4, coeff_W_L1 5e-6, batch 8);
#   slices along lr, coeff_W_L1 and batch_size at lr_W 2e-3 and 1e-2.
# Usage: bash benchmarks/calibration/grid.sh OUT_DIR   (then benchmarks/calibration/cells.py)
set -euo pipefail
out=${1:?usage: grid.sh OUT_DIR}
py=${PYTHON:-python}
grid() {
  "$py" -m gnn_convergence.train -m hydra/sweeper=basic hydra/launcher=population \
    progress=false threads=0 hydra.sweep.dir="$out/$1" \
    "training.seeds=[0,1,2,3,4,5]" \
    "training.data_seeds=[800000,800001,800002,800003,800004,800005]" "${@:2}"
}
grid lr_W training.learning_rate_W_start=1e-4,2e-4,5e-4,1e-3,2e-3,5e-3,1e-2
grid lr training.learning_rate_W_start=2e-3,1e-2 training.learning_rate_start=1e-4,2e-4,1e-3
grid coeff_W_L1 training.learning_rate_W_start=2e-3,1e-2 training.coeff_W_L1=0,2e-5,5e-5,1e-4
grid batch_size training.learning_rate_W_start=2e-3,1e-2 training.batch_size=4,16
