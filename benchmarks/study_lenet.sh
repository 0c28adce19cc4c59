#!/usr/bin/env bash
# The README's reproduction study for LeNet-5 on Fashion-MNIST (CPU, local Ray):
#   1. ADMM (Yang et al.) at model-size budgets 1/50, 1/100, 1/200 of the float model;
#   2. evo vs ADMM vs uniform vs random at BOPs budgets 1/128 and 1/512, SEEDS seeds each;
#   3. evo compare over all of them.
# Every method gets the same fine-tune steps per screened policy and per final policy.
# Usage: benchmarks/study_lenet.sh [STORAGE] [SEEDS]     (default: runs/study, 3)
set -euo pipefail
STORAGE=${1:-runs/study}
SEEDS=${2:-3}
EVO=${EVO:-.venv/bin/evo}
# A study-sized search: 8 x 5 generations = 40 trials of 100 steps; 400-step final fine-tunes.
COMMON=(--model lenet5 --dataset fashion-mnist --population 8 --generations 5 --fine-tune-steps 100
        --storage "$STORAGE")
mkdir -p "$STORAGE"
[ -e "$STORAGE/admm-size/run.yaml" ] || \
  $EVO baseline admm --model lenet5 --dataset fashion-mnist --budget size=1/50 --budget size=1/100 \
      --budget size=1/200 --seeds 1 --storage "$STORAGE" --name admm-size
for budget in 1/512 1/128; do
  tag=${budget#1/}
  [ -e "$STORAGE/admm-bops$tag/run.yaml" ] || \
    $EVO baseline admm --model lenet5 --dataset fashion-mnist --budget "bops=$budget" --seeds "$SEEDS" \
        --storage "$STORAGE" --name "admm-bops$tag"
  for seed in $(seq 0 $((SEEDS - 1))); do
    [ -e "$STORAGE/evo-bops$tag-s$seed/run.yaml" ] || \
      $EVO search "${COMMON[@]}" --budget "bops=$budget" --seed "$seed" --name "evo-bops$tag-s$seed"
    for method in uniform random; do
      [ -e "$STORAGE/$method-bops$tag-s$seed/run.yaml" ] || \
        $EVO baseline "$method" "${COMMON[@]}" --budget "bops=$budget" --seed "$seed" --name "$method-bops$tag-s$seed"
    done
  done
done
$EVO compare "$STORAGE"/admm-bops* "$STORAGE"/evo-bops* "$STORAGE"/uniform-bops* "$STORAGE"/random-bops* \
    --out "$STORAGE/report"
echo "report: $STORAGE/report/report.md"
