#!/bin/bash
# RELAX's start on the supernet proxy: frozen 4-epoch searches on tuning seed 0's warm-up, FLOPs budget.
cd /work/exp
export NAS_ESTIMATORS_CACHE=/work/runs/cache-s10 OMP_NUM_THREADS=1 PYTHONPATH=/work/exp
T=/work/shared/data/nas-bench-201-cifar10.csv
for init in "$@"; do
  out=/work/runs/p18/s0-flops-relax-$init; [ -f $out/architecture.json ] && continue; rm -rf $out
  /work/main/.venv/bin/python -m nas_estimators frozen-search /work/runs/latproxy/warm-s0 --estimator relax --surrogate-init $init \
    --epochs 4 --seed 0 --benchmark-table $T --quiet --cost flops --cost-target 13.840544 --output $out > $out.log 2>&1
done
