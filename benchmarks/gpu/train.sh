#!/usr/bin/env bash
# Continue a long fnoreg-train run on a lent GPU machine (issue 15, part 3), then hand back its checkpoint.
#
# Here (prepares runs/gpu_carry: the wheels the device lacks, the template set's 1 mm priors, the run):
#   bash benchmarks/gpu/train.sh --prepare runs/fnoreg3d_long
# On the device, one call (the `device` tool's run; the machine has PyTorch + CUDA, no internet):
#   run(command="bash benchmarks/gpu/train.sh 7", carry=["runs/gpu_carry"], timeout_s=600)
# It resumes runs/gpu_carry/run/last.pt with the run's own config.json (same recipe), trains on CUDA
# with bf16 autocast and DataLoader workers on the machine's cores for MINUTES of wall time, and
# writes last.pt, best.pt, metrics.csv, config.json and train.log to $OUT. Back here:
#   bash benchmarks/gpu/train.sh --collect FILES_AT runs/fnoreg3d_long   (appends the GPU part to the run)
# Without a GPU the same command runs on the CPU (that is how it is tested: MINUTES=0.2).
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=runs/gpu_carry

if [ "${1:-}" = "--prepare" ]; then
    RUN=${2:?usage: train.sh --prepare RUN_DIR}
    PY=${PY:-.venv/bin/python}
    TEMPLATES=${FNOREG_TEMPLATES:-$HOME/.cache/fnoreg/templates}
    [ -f "$RUN/last.pt" ] || { echo "train.sh: $RUN/last.pt not found: start the run with fnoreg-train first" >&2; exit 2; }
    [ -f "$TEMPLATES/manifest.json" ] || { echo "train.sh: no template set in $TEMPLATES: run fnoreg-data templates" >&2; exit 2; }
    rm -rf "$CARRY"; mkdir -p "$CARRY/wheels" "$CARRY/templates" "$CARRY/run"
    # pure-Python wheels the device image lacks (it has torch, numpy, scipy, tqdm, pyyaml, tensorboard)
    "$PY" -m pip download -q --no-deps -d "$CARRY/wheels" "nibabel>=5.0" "monai>=1.4"
    cp -r "$TEMPLATES/3d_1mm" "$TEMPLATES/manifest.json" "$CARRY/templates/"
    cp "$RUN"/last.pt "$RUN"/best.pt "$RUN"/config.json "$CARRY/run/"
    [ -f "$RUN/metrics.csv" ] && cp "$RUN/metrics.csv" "$CARRY/run/"
    du -sh "$CARRY"
    exit 0
fi

if [ "${1:-}" = "--collect" ]; then
    FROM=${2:?usage: train.sh --collect FILES_AT RUN_DIR}; RUN=${3:?usage: train.sh --collect FILES_AT RUN_DIR}
    for f in last.pt best.pt metrics.csv; do cp "$FROM/$f" "$RUN/$f"; done
    cp "$FROM/train.log" "$RUN/gpu_$(date +%Y%m%d_%H%M).log"
    echo "collected into $RUN"
    exit 0
fi

MINUTES=${1:-7}
OUT=${OUT:-/tmp/fnoreg_gpu_out}
mkdir -p "$OUT"
PY=python3
[ -x .venv/bin/python ] && [ -z "${FNOREG_DEVICE_PY:-}" ] && PY=.venv/bin/python
PY=${FNOREG_DEVICE_PY:-$PY}
LOG="$OUT/train.log"
{
    echo "== $(date -u +%FT%TZ) $(hostname) $(nproc) cores"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
    if ! "$PY" -c "import nibabel, monai" 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps "$CARRY"/wheels/*.whl 2>&1 | tail -2 \
            || "$PY" -m pip install -q --no-index --no-deps --target /tmp/fnoreg_pydeps "$CARRY"/wheels/*.whl
    fi
    export PYTHONPATH="$PWD:/tmp/fnoreg_pydeps${PYTHONPATH:+:$PYTHONPATH}"
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
    WORK=/tmp/fnoreg_gpu_run
    rm -rf "$WORK"; cp -r "$CARRY/run" "$WORK"
    CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")
    WORKERS=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
    if [ "$CUDA" = 1 ]; then EXTRA=(--device cuda --amp bf16 --batch-size "${BATCH:-8}" --val-every 200);
    else EXTRA=(--device cpu --batch-size 1 --val-every 20); fi
    SPEC=$("$PY" - "$WORK/config.json" <<'EOF'
import json, sys
cfg = json.load(open(sys.argv[1]))
kind = cfg["data"].split(":")
print(":".join(kind[:2]) + ":runs/gpu_carry/templates" if kind[0] == "synth" and len(kind) > 1 else cfg["data"])
EOF
)
    echo "resuming $(ls "$WORK") with data $SPEC, ${WORKERS} workers, ${MINUTES} min, ${EXTRA[*]}"
    "$PY" -m fnoreg_core.train --config "$WORK/config.json" --resume --out "$WORK" --data "$SPEC" \
        --workers "$WORKERS" --session-minutes "$MINUTES" --steps 100000000 --no-progress "${EXTRA[@]}"
    cp "$WORK"/last.pt "$WORK"/best.pt "$WORK"/metrics.csv "$WORK"/config.json "$OUT/"
    echo "== done $(date -u +%FT%TZ)"
} 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
