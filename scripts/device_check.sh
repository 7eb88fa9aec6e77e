#!/usr/bin/env bash
# One prepared check for a machine with NVIDIA GPUs and no internet (run from anywhere):
#
#   OUT=/some/folder bash scripts/device_check.sh
#
# 1. A virtual environment from the project's own files: it reuses the machine's installed
#    PyTorch/torchvision/numpy/rich/tensorboard/scikit-learn (--system-site-packages) and installs
#    seer-torch editable with --no-index --no-deps --no-build-isolation (nothing is fetched).
# 2. The GPU smoke test (tests/integration/test_gpu_smoke.py: the worker on CUDA/NCCL, W=1 then
#    W=2 when two GPUs are there).
# 3. scripts/bench_cifar.py through the real worker on CUDA/NCCL: probes at each W, then one
#    trial trained at W=1 and relaunched from its checkpoint at the next W (a resize 1->2 with two
#    GPUs; with one GPU a relaunch 1->1, the same cost without the change of W). On SYNTHETIC
#    CIFAR-10-format data unless CIFAR10_DIR points at a folder holding cifar-10-batches-py/.
#
# Everything it measures goes under "$OUT": env.txt, smoke.log, bench_cifar.json, bench_cifar.log,
# bench_overhead_resnet.json (worker vs plain loop at W=1 on the GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/device_check_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
VENV="${VENV:-/tmp/seer-venv}"

"$PY" -m venv --system-site-packages "$VENV" || exit 1
"$VENV/bin/python" -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
V="$VENV/bin/python"

{
  nvidia-smi || true
  "$V" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available(), 'gpus', torch.cuda.device_count())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
NGPU=$("$V" -c "import torch; print(torch.cuda.device_count())")
if [ "${NGPU:-0}" -lt 1 ]; then
  echo "no CUDA device visible; nothing to check" | tee -a "$OUT/env.txt"
  exit 1
fi
if [ "$NGPU" -ge 2 ]; then WS=1,2; SEQ=1,2; else WS=1; SEQ=1,1; fi

status=0
timeout 300 "$V" -m pytest -q -m gpu tests/integration/test_gpu_smoke.py 2>&1 | tee "$OUT/smoke.log" || status=1

DATA_ARGS=()
if [ -n "${CIFAR10_DIR:-}" ]; then DATA_ARGS=(--data-dir "$CIFAR10_DIR"); fi
# Standard ResNet-18 width (64), a GPU-sized batch, 45000 training images as CIFAR-10 has.
timeout 420 "$V" scripts/bench_cifar.py "${DATA_ARGS[@]}" --world-sizes "$WS" --train-sequence "$SEQ" \
  --width 64 --global-batch 512 --micro-batch-max 512 --profile-steps 40 \
  --synthetic-train 50000 --synthetic-test 10000 --timeout-s 300 \
  --work-dir /tmp/seer-bench-cifar --out "$OUT/bench_cifar.json" 2>&1 | tee "$OUT/bench_cifar.log" || status=1

timeout 240 "$V" scripts/bench_overhead.py --model resnet18_cifar --width 64 --global-batch 512 --epochs 1 \
  --repeats 2 --synthetic-train 50000 --out "$OUT/bench_overhead_resnet.json" 2>&1 | tee "$OUT/bench_overhead_resnet.log" || status=1
exit $status
