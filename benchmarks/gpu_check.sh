#!/usr/bin/env bash
# The GPU checks, in one call on a machine with CUDA; every result goes to ${OUT:-gpu_check}/:
# the card, the `cuda` tests, the population benchmark (CUDA eager and compiled), one default
# run with device=cuda (eager-compiled and with CUDA graphs) and a quick study with 8 trials at a
# time through the population launcher.
#   bash benchmarks/gpu_check.sh
# Where the project is not installed (a bare GPU machine with torch, numpy and pandas), run it
# from the repository root with PYTHONPATH=. after installing, from wheels if it is offline:
# hydra-core, omegaconf, antlr4-python3-runtime (4.9.3), optuna, alembic, sqlalchemy, greenlet,
# colorlog, mako, plotly, narwhals, pyyaml, pytest, pluggy, iniconfig.
set -u
out=${OUT:-gpu_check}
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
step() { echo "== $1 ($(date +%T))" | tee -a "$out/summary.txt"; }
timed() {
    local start=$SECONDS
    "$@"
    echo "exit $?, wall $((SECONDS - start)) s: $*" >>"$out/summary.txt"
}

step "card"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$out/summary.txt"

step "cuda tests"
timed python -m pytest -m cuda tests/test_cuda.py -q -rs -p no:cacheprovider \
    >"$out/cuda_tests.txt" 2>&1
tail -n 3 "$out/cuda_tests.txt" | tee -a "$out/summary.txt"

step "population benchmark, CUDA"
timed python benchmarks/population_benchmark.py --device cuda --budget 3 \
    >"$out/population_benchmark_cuda.txt" 2>&1
cat "$out/population_benchmark_cuda.txt" >>"$out/summary.txt"

for mode in default reduce-overhead; do
    step "default run, device=cuda, compile_mode=$mode"
    timed python -m gnn_convergence.train device=cuda progress=false \
        training.compile_mode=$mode paths.cache_dir="$out/cache" \
        hydra.run.dir="$out/default_run_$mode" >"$out/default_run_$mode.txt" 2>&1
    tail -n 1 "$out/default_run_$mode.txt" | tee -a "$out/summary.txt"
    grep -h '"training_time_min"\|"connectivity_R2_min"' "$out/default_run_$mode/metrics.json" \
        | tee -a "$out/summary.txt"
done

step "quick study, 12 trials, n_jobs 8, population launcher"
timed python -m gnn_convergence.train -m sweeps=quick device=cuda progress=false \
    hydra/launcher=population hydra.sweeper.n_jobs=8 \
    hydra.sweeper.storage="sqlite:///$out/studies.db" hydra.sweep.dir="$out/quick_study" \
    paths.cache_dir="$out/cache" >"$out/quick_study.txt" 2>&1
tail -n 2 "$out/quick_study.txt" | tee -a "$out/summary.txt"
