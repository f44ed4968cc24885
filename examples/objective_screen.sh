#!/usr/bin/env bash
# Screen objectives on the CPU NAS-Bench-201 proxy's supernets (issue "Past the trivial cell").
# Stage 1 trains a supernet: C=8, N=1, 20 epochs, every epoch weights-only on uniformly drawn paths
# (what the search recipe's weights see). Stage 2 runs frozen-search on it with each objective and
# estimator. A run's search seconds are stage 1's plus stage 2's (history.csv's seconds of each).
# Resumable at run granularity: finished runs are skipped.
#
# Usage: examples/objective_screen.sh CIFAR10_DIR TABLE_CSV SEEDS ESTIMATOR OBJECTIVE [OBJECTIVE ...]
#   e.g. examples/objective_screen.sh data/cifar10 nb201.csv 0,1,2 sf supernet=1 synflow=1,naswot=1,params=1
# Writes runs/screen/supernet-sSEED and runs/screen/supernet-sSEED/frozen-ESTIMATOR-eEPOCHS-OBJECTIVE
# (ESTIMATOR sf4: SF scoring 4 architectures a step; FROZEN_EPOCHS sets the passes, default 4).
set -euo pipefail
data=${1:?CIFAR10_DIR}; table=${2:?TABLE_CSV}; seeds=${3:?SEEDS}; estimator=${4:?ESTIMATOR}; shift 4
root=${SCREEN_ROOT:-runs/screen}
epochs=${FROZEN_EPOCHS:-4}  # passes of frozen-search over the architecture half
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for seed in ${seeds//,/ }; do
  supernet="$root/supernet-s$seed"
  if [ ! -f "$supernet/architecture.json" ]; then
    resume=(); [ -f "$supernet/checkpoint.ckpt" ] && resume=(--resume)
    nas-estimators search --space nb201 --dataset cifar10 --data-root "$data" --width 8 --cells 1 --epochs 20 \
      --warmup-epochs 20 --device cpu --seed "$seed" --panel-images 0 --benchmark-table "$table" --no-progress \
      --output "$supernet" "${resume[@]}"
  fi
  for objective in "$@"; do
    out="$supernet/frozen-$estimator-e$epochs-${objective//[=,]/_}"
    [ -d "$out" ] && continue
    extra=(); [ "$estimator" = sf4 ] && extra=(--samples-per-step 4)
    nas-estimators frozen-search "$supernet" --estimator "${estimator%4}" "${extra[@]}" --epochs "$epochs" --seed "$seed" \
      --objective "$objective" --benchmark-table "$table" --output "$out" --quiet
  done
done
