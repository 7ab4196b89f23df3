#!/usr/bin/env bash
# CPG settings sweep on SynthCity (docs/experiments.md, "Which CPG settings help"): lambda,
# kernel size, ignore mode, and CE at equal compute, 3 seeds each, one run at a time.
#
# Usage: [SEEDS="0 1 2"] scripts/experiments/run_sweep.sh [RUNS_DIR] [DATA_DIR]
#   defaults: /work/runs/sweep and /work/runs/data/synthcity (both outside git).
# Resume-safe: a run whose eval.json exists is skipped; a killed run resumes from last.pt.
# Runs at nice 19 on one thread (OMP_NUM_THREADS=1 threads=1 workers=0), so other work on a
# shared machine keeps a core. Each run writes RUNS_DIR/<arm>_seed<N>/eval.json when it
# finishes (scripts/experiments/eval_run.py: tolerances 1, 3, 5 px and Cheng et al.).
# The packages `training` and `zoo` run from a snapshot of the commit checked out when the
# sweep first started (RUNS/src, via PYTHONPATH; its commit in RUNS/src/COMMIT), so edits in
# the working tree during the sweep change no run.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-/work/runs/sweep}
DATA=${2:-/work/runs/data/synthcity}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$RUNS"

SRC="$RUNS/src"
if [ ! -f "$SRC/COMMIT" ]; then
  rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
  git archive HEAD training zoo | tar -x -C "$SRC.tmp"
  git rev-parse HEAD > "$SRC.tmp/COMMIT"
  rm -rf "$SRC" && mv "$SRC.tmp" "$SRC"
fi
export PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}"
COMMIT=$(cat "$SRC/COMMIT")

if [ ! -f "$DATA/.complete" ]; then
  nice -n 19 zoo data synthcity "$DATA" --train 500 --val 100 --workers 1
  touch "$DATA/.complete"
fi

# Per-iteration cost of CE vs CPG (k = 3, 5, 7), measured interleaved; sets the CE
# equal-compute budget (iterations = 600 x cost ratio of CPG k = 3 to CE).
if [ ! -f "$RUNS/budget.json" ]; then
  nice -n 19 python scripts/experiments/step_cost.py --data-root "$DATA" --out "$RUNS/budget.json" --rounds 20
fi
CE_EQ_ITERS=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['ce_equal_compute_iterations'])" "$RUNS/budget.json")
# CE at the budget of the most expensive CPG arm (k = 7): 600 x its cost ratio to CE.
CE_EQ_K7_ITERS=$(python -c "import json,sys; b=json.load(open(sys.argv[1])); print(round(b['iterations'] * b['ratio_to_ce']['cpg_k7']))" "$RUNS/budget.json")

# arm name -> "recipe overrides..." (the recipe name first)
declare -A ARMS=(
  [cpg_l0.25_k3]="lraspp_mbv3_synthcity_cpg cpg_lambda=0.25"
  [cpg_l0.5_k3]="lraspp_mbv3_synthcity_cpg cpg_lambda=0.5"
  [cpg_l1_k3]="lraspp_mbv3_synthcity_cpg cpg_lambda=1.0"
  [cpg_l2_k3]="lraspp_mbv3_synthcity_cpg cpg_lambda=2.0"
  [cpg_l4_k3]="lraspp_mbv3_synthcity_cpg cpg_lambda=4.0"
  [cpg_l1_k5]="lraspp_mbv3_synthcity_cpg cpg_kernel_size=5"
  [cpg_l1_k7]="lraspp_mbv3_synthcity_cpg cpg_kernel_size=7"
  [cpg_l1_k3_reference]="lraspp_mbv3_synthcity_cpg cpg_ignore_mode=reference"
  [ce]="lraspp_mbv3_synthcity_ce"
  [ce_equal_compute]="lraspp_mbv3_synthcity_ce iterations=$CE_EQ_ITERS"
  [ce_equal_compute_k7]="lraspp_mbv3_synthcity_ce iterations=$CE_EQ_K7_ITERS"
)
# Order: per seed, the equal-compute pair and the informative extremes first, then the rest.
ORDER=(cpg_l0.25_k3 ce_equal_compute cpg_l1_k3 cpg_l4_k3 cpg_l1_k7 cpg_l1_k3_reference
       cpg_l0.5_k3 cpg_l2_k3 cpg_l1_k5 ce ce_equal_compute_k7)

# SEEDS="1" and SEEDS="2" in two processes split the work between two workers.
for seed in ${SEEDS:-0 1 2}; do
  for arm in "${ORDER[@]}"; do
    out="$RUNS/${arm}_seed${seed}"
    [ -f "$out/eval.json" ] && continue
    read -r -a spec <<< "${ARMS[$arm]}"
    # A run killed before its first checkpoint cannot resume: start it again.
    if [ -d "$out" ] && [ ! -f "$out/last.pt" ] && [ ! -f "$out/last.prev.pt" ]; then
      rm -rf "$out"
    fi
    echo "$(date -u +%FT%TZ) start $arm seed $seed: ${spec[*]}"
    start=$(date +%s)
    # eval_interval above the schedule: one evaluation, at the end (none mid-run).
    nice -n 19 zoo train "${spec[0]}" "${spec[@]:1}" seed="$seed" threads=1 workers=0 \
      device=cpu eval_interval=100000 --data-root "$DATA" --out "$out" --no-progress --resume
    seconds=$(( $(date +%s) - start ))
    nice -n 19 python scripts/experiments/eval_run.py "$out/last.pt" --data-root "$DATA" \
      --arm "$arm" --seed "$seed" --train-seconds "$seconds" --source-commit "$COMMIT" \
      --out "$out/eval.json"
    echo "$(date -u +%FT%TZ) done $arm seed $seed (${seconds}s training)"
  done
done
echo "$(date -u +%FT%TZ) sweep complete"
