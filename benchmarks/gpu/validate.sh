#!/usr/bin/env bash
# Check the GPU path in one call on a lent GPU machine (issue 17); a dry run anywhere else.
#
# Here, once (optional; wheels the device image lacks: nibabel and monai, and cuda-bindings so that
# the TensorRT backend's cuda-python memory helper is exercised too; ~15 MiB):
#   bash benchmarks/gpu/validate.sh --prepare
# On the device, one call (the device tool's run; PyTorch + CUDA there, no internet, no TensorRT):
#   run(command="bash benchmarks/gpu/validate.sh", carry=["runs/gpu_check_carry"], timeout_s=300)
# It runs benchmarks/gpu/check.py (torch CUDA vs CPU parity, fp16/bf16 error, latency and memory at
# the training size and 160x192x224; the runtime's TensorRTRunner on a stand-in engine running the
# real model on its CUDA buffers; onnxruntime auto/CUDA; TensorRT build + parity when installed),
# under 4 minutes on an H200, and writes gpu_check.md / gpu_check.json / check.log to $OUT.
# Without CUDA (or with --dry) it runs small sizes on the CPU and prints "skipped: ..." for the rest;
# exit 0 unless a check FAILED.
set -uo pipefail
cd "$(dirname "$0")/../.."
CARRY=runs/gpu_check_carry
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
PY=${FNOREG_DEVICE_PY:-$PY}

if [ "${1:-}" = "--prepare" ]; then
    rm -rf "$CARRY"; mkdir -p "$CARRY/wheels"
    "$PY" -m pip download -q --no-deps -d "$CARRY/wheels" "nibabel>=5.0" "monai>=1.4" || exit 1
    # cuda-bindings 12.x runs on CUDA 12 and 13 drivers; one wheel per Python the device may have
    for V in ${PYVERS:-3.10 3.11 3.12}; do
        "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$V" \
            --platform manylinux_2_28_x86_64 -d "$CARRY/wheels" "cuda-bindings~=12.9" "cuda-pathfinder>=1.1" \
            || echo "validate.sh: no cuda-bindings wheel for Python $V (the stand-in then uses torch memory)"
    done
    du -sh "$CARRY"
    exit 0
fi

OUT=${OUT:-/tmp/fnoreg_gpu_check}
mkdir -p "$OUT"
{
    echo "== $(date -u +%FT%TZ) $(hostname) $(nproc) cores"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    else
        echo "skipped: nvidia-smi (no NVIDIA driver here)"
    fi
    if [ -d "$CARRY/wheels" ]; then  # what installs on this Python; the rest is skipped by check.py
        for W in "$CARRY"/wheels/*.whl; do
            "$PY" -m pip install -q --no-index --no-deps --target /tmp/fnoreg_pydeps "$W" >/dev/null 2>&1 \
                || echo "skipped: $(basename "$W") (not for this Python/platform)"
        done
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}:/tmp/fnoreg_pydeps"
    timeout "${CHECK_TIMEOUT:-230}" "$PY" benchmarks/gpu/check.py --out "$OUT" "$@"
    RC=$?
    if [ "$RC" = 124 ]; then echo "validate.sh: check.py ran past ${CHECK_TIMEOUT:-230} s"; fi
    echo "== done $(date -u +%FT%TZ), exit $RC"
    exit "$RC"
} 2>&1 | tee "$OUT/check.log"
exit "${PIPESTATUS[0]}"
