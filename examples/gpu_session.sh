#!/usr/bin/env bash
# The GPU measurements of the README (bench, NAS-Bench-201 compare, retrain), one stage per call on an
# offline GPU machine that has Python and PyTorch but not this package's other dependencies.
# Each stage fits one 10-minute command, resumes what an earlier call left in runs/, and packs its
# results into one file under $OUT (default: out/). See docs/gpu-runbook.md for the whole plan.
#
#   bash examples/gpu_session.sh setup          # wheels + this package into /tmp/site, CIFAR-10 unpacked
#   bash examples/gpu_session.sh bench-darts    # DARTS space, bf16 then fp32: the 15x target
#   bash examples/gpu_session.sh bench-nb201    # NAS-Bench-201 space: the 60 steps/s target
#   bash examples/gpu_session.sh compare        # NAS-Bench-201 search quality (resumable; repeat until done)
#   bash examples/gpu_session.sh retrain        # short-protocol retraining (resumable; repeat until done)
#
# Needs, in the checkout: .whl/ (from ../shared/tools/device-wheels.sh; nni and its small needs suffice
# for setup to bench), .data/cifar10-jpeg.npz and .data/unpack_cifar10.py, and for compare
# .data/nas-bench-201-cifar10.csv. Settings can be overridden from the environment (EPOCHS, SEEDS, ...).
set -euo pipefail
stage=${1:?usage: gpu_session.sh setup|bench-darts|bench-nb201|compare|retrain}
OUT=${OUT:-out}
mkdir -p "$OUT" runs
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export PATH=/tmp/site/bin:$PATH
DATA=${DATA:-/tmp/cifar10}
run() { echo "+ $*" >&2; "$@"; }
pack() { tar czf "$OUT/$1.tgz" --exclude='*.ckpt' --exclude='tensorboard' "${@:2}"; echo "packed $OUT/$1.tgz" >&2; }

case "$stage" in
setup)
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .
    [ -d "$DATA/train" ] || run python3 .data/unpack_cifar10.py "$DATA" --npz .data/cifar10-jpeg.npz
    python3 -c "import torch, nas_estimators, nni; print(torch.__version__, torch.cuda.get_device_name(0), nni.__version__)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.csv"
    ;;
bench-darts)
    run nas-estimators bench --device cuda --data-root "$DATA" --repeats 2 --json runs/bench-darts-bf16.json
    run nas-estimators bench --device cuda --data-root "$DATA" --precision fp32 --strategies sf,relax,ram,nni-darts \
        --json runs/bench-darts-fp32.json
    cp runs/bench-darts-*.json "$OUT/"
    ;;
bench-nb201)
    run nas-estimators bench --device cuda --data-root "$DATA" --space nb201 --repeats 2 \
        --strategies sf,relax,ram,nni-darts --json runs/bench-nb201.json
    run nas-estimators bench --device cuda --data-root "$DATA" --space nb201 --labels-per-step all --strategies sf,ram \
        --json runs/bench-nb201-ram-all.json
    cp runs/bench-nb201*.json "$OUT/"
    ;;
compare)
    # 9 minutes, then stop cleanly: the next call continues from the checkpoints.
    run timeout -s TERM "${BUDGET_SECONDS:-540}" nas-estimators compare --no-progress \
        --methods "${METHODS:-sf,relax,ram,nni-darts,nni-evolution,nni-random-search,nni-tpe}" \
        --seeds "${SEEDS:-0,1,2}" --space nb201 --dataset cifar10 --data-root "$DATA" --device cuda \
        --epochs "${EPOCHS:-20}" --warmup-epochs "${WARMUP_EPOCHS:-5}" --arc-learning-rate "${ARC_LR:-0.003}" \
        --benchmark-table .data/nas-bench-201-cifar10.csv --budget 100 --output runs/nb201-compare || true
    pack nb201-compare runs/nb201-compare
    ;;
retrain)
    for cell in ${CELLS:-darts-v2 random:0 random:1}; do
        name=retrain-${cell//:/-}
        [ -f "runs/$name/result.json" ] && continue
        resume=(); [ -f "runs/$name/checkpoint.ckpt" ] && resume=(--resume)
        run timeout -s TERM "${BUDGET_SECONDS:-540}" nas-estimators retrain --architecture "$cell" --data-root "$DATA" \
            --epochs "${EPOCHS:-30}" --output "runs/$name" "${resume[@]}" || break
    done
    pack retrain runs/retrain-*
    ;;
*)
    echo "gpu_session.sh: unknown stage '$stage'; expected setup, bench-darts, bench-nb201, compare or retrain" >&2
    exit 2
    ;;
esac
