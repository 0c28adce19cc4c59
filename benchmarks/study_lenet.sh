#!/usr/bin/env bash
# The README's comparison study for LeNet-5 on Fashion-MNIST (CPU, local Ray): evo against the
# uniform sweep, random search, Optuna's constrained NSGA-II and ADMM (Yang et al., CVPR 2020),
# SEEDS seeds each, at every budget of BUDGETS; then one `evo compare` over all of it.
#
# evo, uniform, random and optuna run the embedded default's settings (evo/runs/presets/
# default.yaml: 10 x 4 generations of 80-step screens, the top 2 fine-tuned 500 steps with 2 seeds;
# evo also fine-tunes its in-run uniform reference, 2 uniform policies, which is not counted), so the
# searches get the same fine-tune samples; `evo compare`
# counts each method's samples and trial seconds and flags a method that got >10 % more.
# ADMM runs its own CPU recipe (4 ADMM + 2 fine-tune epochs), one trial per budget x seed; the method
# admm-equal runs it longer (8 + 4 epochs), at the searches' fine-tune samples; admm-uniform
# runs it with the evolved policies' uniform per-channel grid in place of its k-means codebook.
#
# Usage: benchmarks/study_lenet.sh [STORAGE] [SEEDS]          (default: runs/study, 3)
#   BUDGETS="bops=1/128 bops=1/512" METHODS="evo random optuna admm" benchmarks/study_lenet.sh
# narrows it (the defaults: all four budgets, the five methods; add admm-equal to METHODS for ADMM at
# the searches' compute, admm-uniform for ADMM on evo's uniform grid, evo-long-final for evo with a
# short search and one long final, benchmarks/size_long_final.yaml, evo-long-final-fill for the same
# with the final policy grown to the budget, evo-surrogate for evo with the offspring pre-screen,
# benchmarks/surrogate.yaml, evo-val20 for evo on a 20 % validation split,
# benchmarks/val_fraction_0.2.yaml). A finished run is skipped, so
# the script can be re-run to continue; an evo or ADMM run that stopped part-way is resumed (--resume),
# a uniform, random or optuna run (they do not resume) is moved to STORAGE/.stopped/ and started again.
set -euo pipefail
STORAGE=${1:-runs/study}
SEEDS=${2:-3}
EVO=${EVO:-.venv/bin/evo}
BUDGETS=${BUDGETS:-"bops=1/512 bops=1/128 size=1/100 size=1/200"}
METHODS=${METHODS:-"evo uniform random optuna admm"}
DATA=(--model lenet5 --dataset fashion-mnist)
mkdir -p "$STORAGE"

# finished: the command exited 0 (this script then leaves .study-done in the run folder)
finished() { [ -e "$STORAGE/$1/.study-done" ]; }
started() { [ -e "$STORAGE/$1/run.yaml" ]; }

run() {  # run NAME COMMAND...: skip when finished, resume when started, else start
  local name=$1; shift
  if finished "$name"; then echo "== $name: done"; return; fi
  echo "== $name: $(started "$name" && echo resuming || echo starting) ($(date -u +%H:%M:%S))"
  local t0=$SECONDS
  if started "$name"; then "$@" --storage "$STORAGE" --name "$name" --resume
  else "$@" --storage "$STORAGE" --name "$name"; fi
  touch "$STORAGE/$name/.study-done"
  echo "== $name: finished in $((SECONDS - t0)) s"
}

restart() {  # restart NAME COMMAND...: as run, for a method that cannot resume
  local name=$1
  if started "$name" && ! finished "$name"; then
    local aside="$STORAGE/.stopped/$name-$(date -u +%Y%m%dT%H%M%S)"
    mkdir -p "$STORAGE/.stopped" && mv "$STORAGE/$name" "$aside"
    echo "== $name: stopped part-way before and cannot resume; moved to $aside, starting again"
  fi
  run "$@"
}

for budget in $BUDGETS; do
  tag=${budget/=1\//}  # bops=1/512 -> bops512
  for method in $METHODS; do
    case $method in
      admm) run "admm-$tag" $EVO baseline admm "${DATA[@]}" --budget "$budget" --seeds "$SEEDS" ;;
      # ADMM given the searches' fine-tune samples: evo's 40 x 80 + 2 x 2 x 500 steps of 128 are
      # 665,600 samples, ADMM's 8 + 4 epochs of 54,000 training images (batch 256) 648,000
      admm-equal) run "admm-equal-$tag" $EVO baseline admm "${DATA[@]}" --budget "$budget" --seeds "$SEEDS" \
                    --epochs "${ADMM_EQUAL_EPOCHS:-8}" --fine-tune-epochs "${ADMM_EQUAL_FINE_TUNE_EPOCHS:-4}" ;;
      # ADMM on the evolved policies' uniform per-channel grid instead of its k-means codebook:
      # tells the quantizer's share of a gap from the search's
      admm-uniform) run "admm-uniform-$tag" $EVO baseline admm "${DATA[@]}" --budget "$budget" --seeds "$SEEDS" \
                      --quantizer uniform ;;
      evo) for seed in $(seq 0 $((SEEDS - 1))); do
             run "evo-$tag-s$seed" $EVO search "${DATA[@]}" --budget "$budget" --seed "$seed"; done ;;
      # evo with a short search and one long final (benchmarks/size_long_final.yaml): 645,120 samples
      evo-long-final) for seed in $(seq 0 $((SEEDS - 1))); do
             run "evo-long-final-$tag-s$seed" $EVO search "${DATA[@]}" --budget "$budget" --seed "$seed" \
               --config benchmarks/size_long_final.yaml; done ;;
      # the same with the final policy grown to the budget (benchmarks/size_long_final_fill.yaml)
      evo-long-final-fill) for seed in $(seq 0 $((SEEDS - 1))); do
             run "evo-long-final-fill-$tag-s$seed" $EVO search "${DATA[@]}" --budget "$budget" --seed "$seed" \
               --config benchmarks/size_long_final_fill.yaml; done ;;
      # evo with the offspring pre-screen (benchmarks/surrogate.yaml): the default's samples
      evo-surrogate) for seed in $(seq 0 $((SEEDS - 1))); do
             run "evo-surrogate-$tag-s$seed" $EVO search "${DATA[@]}" --budget "$budget" --seed "$seed" \
               --config benchmarks/surrogate.yaml; done ;;
      # evo on a validation split of 20 % (benchmarks/val_fraction_0.2.yaml): the default's samples
      evo-val20) for seed in $(seq 0 $((SEEDS - 1))); do
             run "evo-val20-$tag-s$seed" $EVO search "${DATA[@]}" --budget "$budget" --seed "$seed" \
               --config benchmarks/val_fraction_0.2.yaml; done ;;
      uniform|random|optuna) for seed in $(seq 0 $((SEEDS - 1))); do
             restart "$method-$tag-s$seed" $EVO baseline "$method" "${DATA[@]}" --budget "$budget" --seed "$seed"; done ;;
      *) echo "unknown method $method; valid: evo evo-long-final evo-long-final-fill evo-surrogate evo-val20 uniform random optuna admm admm-equal admm-uniform" >&2; exit 2 ;;
    esac
  done
done
shopt -s nullglob
runs=("$STORAGE"/*-s[0-9]* "$STORAGE"/admm-*)
$EVO compare "${runs[@]}" --out "$STORAGE/report"
echo "report: $STORAGE/report/report.md"
