#!/usr/bin/env bash
# evo's default search on LeNet-5 base models pretrained with other seeds: does the lead over the
# best uniform policy hold beyond the one base model every study uses (pretraining seed 0)?
# For each base seed B of BASES: `evo pretrain --seed B` (the same recipe and the same held-out
# validation split as seed 0's; cached), then `evo search --weights <that checkpoint>` at BUDGET
# for each search seed of SEEDS, each run's final table printed as it ends. Compare one base's runs
# with `evo compare STORAGE/<METHOD>-<tag>-base<B>-s*` (runs on different bases are not one method).
#
# Usage: benchmarks/base_seeds.sh [STORAGE]        (default: runs/bases)
#   BASES="1 2" SEEDS="0 1 2" BUDGET=bops=1/512 benchmarks/base_seeds.sh runs/bases
#   CONFIG=benchmarks/size_long_final_fill.yaml METHOD=evo-long-final-fill benchmarks/base_seeds.sh
# CONFIG: a YAML of search settings passed as --config (default: none, the embedded default);
# METHOD: the run names' prefix, METHOD-<tag>-base<B>-s<S> (default: evo).
# A finished run is skipped; one that stopped part-way is resumed (--resume).
set -euo pipefail
STORAGE=${1:-runs/bases}
EVO=${EVO:-.venv/bin/evo}
BASES=${BASES:-"1 2"}
SEEDS=${SEEDS:-"0 1 2"}
BUDGET=${BUDGET:-bops=1/512}
METHOD=${METHOD:-evo}
CONFIG=${CONFIG:-}
config=(); [ -n "$CONFIG" ] && config=(--config "$CONFIG")
DATA=(--model lenet5 --dataset fashion-mnist)
tag=${BUDGET/=1\//}  # bops=1/512 -> bops512
mkdir -p "$STORAGE"
for base in $BASES; do
  line=$($EVO pretrain "${DATA[@]}" --seed "$base" | tail -1)  # "... (trained: PATH)" or "(cached: PATH)"
  echo "== base seed $base: $line"
  weights=$(sed -E 's/.*\((trained|cached): (.*)\)$/\2/' <<<"$line")
  for seed in $SEEDS; do
    name=$METHOD-$tag-base$base-s$seed
    if [ -e "$STORAGE/$name/.study-done" ]; then echo "== $name: done"; continue; fi
    resume=(); [ -e "$STORAGE/$name/run.yaml" ] && resume=(--resume)
    echo "== $name: ${resume[*]:-starting} ($(date -u +%H:%M:%S))"
    t0=$SECONDS
    $EVO search "${config[@]}" "${DATA[@]}" --budget "$BUDGET" --seed "$seed" --weights "$weights" --storage "$STORAGE" \
      --name "$name" "${resume[@]}" | sed -n '/^final policies/,$p'
    touch "$STORAGE/$name/.study-done"
    echo "== $name: finished in $((SECONDS - t0)) s"
  done
done
