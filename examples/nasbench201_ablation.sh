#!/usr/bin/env bash
# The search-quality ablation of docs/search-quality.md, on the CPU NAS-Bench-201 proxy (C=8, N=1, batch 64,
# 20 epochs, one thread a run). Every arm is a `compare` run: resumable (rerun the same line after an
# interruption), and its results.csv/summary.csv are what the research log quotes.
#
# Usage: examples/nasbench201_ablation.sh CIFAR10_DIR TABLE_CSV ARM [SEEDS]
#   ARM: uniform0 | uniform1 | late-wlr0.025 | late-wlr0.1 | late-wlr0.025-ram | late-wlr0.025-relax |
#        late-wlr0.025-noaffine | late-wlr0.025-sf4 | long-sf4 | table |
#        final-sf4 | final-relax | final-ram | final-nni | final-nni-darts | final-nni-gumbel | final-nni-random
#        (the late recipe, and NNI's strategies, on fresh seeds; default seeds 10,11,12)
#   SEEDS: comma-separated (default 0: a tuning seed; the final table uses 10,11,12)
# CIFAR10_DIR: an image-folder tree (python ../shared/tools/unpack_cifar10.py CIFAR10_DIR) or torchvision's files.
set -euo pipefail
data=${1:?CIFAR10_DIR}; table=${2:?TABLE_CSV}; arm=${3:?ARM}; seeds=${4:-0}
case "$arm" in final-*) seeds=${4:-10,11,12} ;; esac
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
proxy=(--space nb201 --dataset cifar10 --data-root "$data" --width 8 --cells 1 --epochs 20 --device cpu
       --benchmark-table "$table" --seeds "$seeds" --no-progress)
case "$arm" in
  uniform0 | uniform1)  # which paths train the weights: the distribution's (0) or uniform ones (1)
    nas-estimators compare --methods sf "${proxy[@]}" --warmup-epochs 4 --arc-learning-rate 0.01 \
      --uniform-weight-paths "${arm#uniform}" --output "runs/abl-$arm" ;;
  late-wlr0.025 | late-wlr0.1)  # the architecture waits 12 epochs for a uniformly trained supernet
    nas-estimators compare --methods sf "${proxy[@]}" --warmup-epochs 12 --arc-learning-rate 0.03 \
      --weight-learning-rate "${arm#late-wlr}" --uniform-weight-paths 1 --output "runs/abl-$arm" ;;
  late-wlr0.025-ram | late-wlr0.025-relax)
    nas-estimators compare --methods "${arm##*-}" "${proxy[@]}" --warmup-epochs 12 --arc-learning-rate 0.03 \
      --weight-learning-rate 0.025 --uniform-weight-paths 1 --output "runs/abl-$arm" ;;
  late-wlr0.025-noaffine)  # the same with batch statistics only, no affine parameters, in the supernet
    nas-estimators compare --methods sf "${proxy[@]}" --warmup-epochs 12 --arc-learning-rate 0.03 \
      --weight-learning-rate 0.025 --batch-norm no-affine --uniform-weight-paths 1 --output "runs/abl-$arm" ;;
  late-wlr0.025-sf4)  # SF scoring 4 architectures a step, each against the mean of the other 3 (leave-one-out)
    nas-estimators compare --methods sf "${proxy[@]}" --warmup-epochs 12 --arc-learning-rate 0.03 \
      --weight-learning-rate 0.025 --samples-per-step 4 --uniform-weight-paths 1 --output "runs/abl-$arm" ;;
  long-sf4)  # the same, with 10 more weights-only epochs (30 in all, 22 weights-only) for a better-ranking supernet
    nas-estimators compare --methods sf "${proxy[@]}" --epochs 30 --warmup-epochs 22 --arc-learning-rate 0.03 \
      --weight-learning-rate 0.025 --samples-per-step 4 --uniform-weight-paths 1 --output "runs/abl-$arm" ;;
  final-sf4 | final-relax | final-ram)  # the recipe chosen on seeds 0-2, on fresh seeds; SF scores 4 a step
    nas-estimators compare --methods "$(m=${arm#final-}; echo ${m%4})" "${proxy[@]}" --warmup-epochs 12 --arc-learning-rate 0.03 \
      --weight-learning-rate 0.025 --samples-per-step 4 --uniform-weight-paths 1 --output "runs/$arm" ;;
  final-nni)  # NNI's one-shot strategies under the same proxy (their own recipe: no warm-up), 20 epochs
    nas-estimators compare --methods nni-darts,nni-gumbel,nni-random "${proxy[@]}" --output "runs/$arm" ;;
  final-nni-darts | final-nni-gumbel)  # at about the same search seconds as ours: a DARTS epoch runs every op
    # (4.3 times an SF epoch on this CPU), so 8 epochs take about what our 20 do (docs/results/nb201-cpu-c8n1)
    nas-estimators compare --methods "${arm#final-}" "${proxy[@]}" --epochs 8 --output "runs/$arm" ;;
  final-nni-random)  # NNI's RandomOneShot (uniform single paths, like our weight training), 20 epochs
    nas-estimators compare --methods nni-random "${proxy[@]}" --output "runs/$arm" ;;
  table)  # the estimators without a supernet, beside NNI's multi-trial strategies, at equal query budgets
    for budget in 100 1000; do
      for noise in 0 0.05; do
        nas-estimators compare --methods sf-table,relax-table,ram-table,nni-evolution,nni-random-search \
          --seeds "$seeds" --benchmark-table "$table" --budget "$budget" --table-noise "$noise" \
          --output "runs/table-b$budget-n$noise" --no-progress
      done
    done ;;
  *) echo "unknown arm: $arm" >&2; exit 2 ;;
esac
