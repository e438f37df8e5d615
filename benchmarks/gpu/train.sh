#!/usr/bin/env bash
# Continue long fnoreg-train runs on a lent GPU machine (issue 15, part 3), then hand back their checkpoints.
#
# Here (prepares runs/gpu_carry: the wheels the device lacks, the template set's priors, the runs):
#   bash benchmarks/gpu/train.sh --prepare runs/fnoreg3d_long [runs/fnoreg2d_long ...]
# On the device, one call (the `device` tool's run; the machine has PyTorch + CUDA, no internet):
#   run(command="bash benchmarks/gpu/train.sh 7", carry=["runs/gpu_carry"], timeout_s=600)
# It resumes every runs/gpu_carry/runs/NAME/last.pt with the run's own config.json (same recipe), all
# at once on the one GPU (bf16 autocast; the spectral layers stay fp32), DataLoader workers shared over
# the machine's cores (2 per 2-D run, the rest to the 3-D runs), for MINUTES of wall time, and writes
# NAME/{last.pt,best.pt,metrics.csv,config.json,train.log} to $OUT. Back here:
#   bash benchmarks/gpu/train.sh --collect FILES_AT/NAME runs/NAME   (the GPU part joins the run)
# Without a GPU the same command runs on the CPU (that is how it is tested: MINUTES=0.2).
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=runs/gpu_carry

if [ "${1:-}" = "--prepare" ]; then
    shift
    [ $# -ge 1 ] || { echo "usage: train.sh --prepare RUN_DIR [RUN_DIR ...]" >&2; exit 2; }
    PY=${PY:-.venv/bin/python}
    TEMPLATES=${FNOREG_TEMPLATES:-$HOME/.cache/fnoreg/templates}
    for RUN in "$@"; do
        [ -f "$RUN/last.pt" ] || { echo "train.sh: $RUN/last.pt not found: start the run with fnoreg-train first" >&2; exit 2; }
    done
    [ -f "$TEMPLATES/manifest.json" ] || { echo "train.sh: no template set in $TEMPLATES: run fnoreg-data templates" >&2; exit 2; }
    rm -rf "$CARRY"; mkdir -p "$CARRY/wheels" "$CARRY/templates" "$CARRY/runs"
    # pure-Python wheels the device image lacks (it has torch, numpy, scipy, tqdm, pyyaml, tensorboard)
    "$PY" -m pip download -q --no-deps -d "$CARRY/wheels" "nibabel>=5.0" "monai>=1.4"
    # only the training priors (fsaverage, MNI152): Colin27 is never trained on, and the carry is small
    cp "$TEMPLATES/manifest.json" "$CARRY/templates/"
    for GRID in 3d_1mm 2d_axial_1mm; do
        mkdir -p "$CARRY/templates/$GRID"
        cp "$TEMPLATES/$GRID"/fsaverage_* "$TEMPLATES/$GRID"/mni152_* "$CARRY/templates/$GRID/"
    done
    for RUN in "$@"; do
        DEST="$CARRY/runs/$(basename "$RUN")"; mkdir -p "$DEST"
        # weights only (the device has 64 MiB for the tree and the carry): Adam restarts there
        "$PY" -c 'import sys, torch
ck = torch.load(sys.argv[1], map_location="cpu", weights_only=True); ck.pop("optimizer", None)
torch.save(ck, sys.argv[2])' "$RUN/last.pt" "$DEST/last.pt"
        cp "$DEST/last.pt" "$DEST/best.pt"
        "$PY" -c 'import json, sys
cfg = json.load(open(sys.argv[1])); cfg.update(time_budget_min=None, lr_schedule="constant")
json.dump(cfg, open(sys.argv[2], "w"), indent=1)' "$RUN/config.json" "$DEST/config.json"
        if [ -f "$RUN/metrics.csv" ]; then cp "$RUN/metrics.csv" "$DEST/"; fi
    done
    du -sh "$CARRY"
    exit 0
fi

if [ "${1:-}" = "--collect" ]; then
    FROM=${2:?usage: train.sh --collect FILES_AT/NAME RUN_DIR}; RUN=${3:?usage: train.sh --collect FILES_AT/NAME RUN_DIR}
    # best.pt keeps the run's best over both machines (validation Dice recorded in each)
    for f in last.pt metrics.csv config.json; do cp "$FROM/$f" "$RUN/$f"; done
    "${PY:-.venv/bin/python}" -c 'import shutil, sys, torch
new, old = (torch.load(p, map_location="cpu", weights_only=True)["best_val_dice"] for p in sys.argv[1:3])
if new >= old: shutil.copy(sys.argv[1], sys.argv[2])
print(f"best.pt: GPU {new:.4f} vs here {old:.4f}")' "$FROM/best.pt" "$RUN/best.pt"
    cp "$FROM/train.log" "$RUN/gpu_$(date +%Y%m%d_%H%M).log"
    echo "collected into $RUN"
    exit 0
fi

MINUTES=${1:-7}
OUT=${OUT:-/tmp/fnoreg_gpu_out}
mkdir -p "$OUT"
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
PY=${FNOREG_DEVICE_PY:-$PY}

# the data spec of a run's config, pointed at the carried template set
spec_of() {
    "$PY" -c 'import json, sys
cfg = json.load(open(sys.argv[1]))
kind = cfg["data"].split(":")
print(":".join(kind[:2]) + ":runs/gpu_carry/templates" if kind[0] == "synth" and len(kind) > 1 else cfg["data"])' "$1"
}

main() {
    echo "== $(date -u +%FT%TZ) $(hostname) $(nproc) cores"
    if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
    if ! "$PY" -c "import nibabel, monai" 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps "$CARRY"/wheels/*.whl 2>&1 | tail -2 \
            || "$PY" -m pip install -q --no-index --no-deps --target /tmp/fnoreg_pydeps "$CARRY"/wheels/*.whl
    fi
    export PYTHONPATH="$PWD:/tmp/fnoreg_pydeps${PYTHONPATH:+:$PYTHONPATH}"
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
    local CUDA RUNS N2 N3 CORES R NAME WORK SPEC W B RC P
    CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")
    RUNS=("$CARRY"/runs/*/)
    N2=0; N3=0
    for R in "${RUNS[@]}"; do
        if grep -q '"preset": "2d' "$R/config.json"; then N2=$((N2 + 1)); else N3=$((N3 + 1)); fi
    done
    CORES=$(nproc)
    local PIDS=()
    for R in "${RUNS[@]}"; do
        NAME=$(basename "$R"); WORK="/tmp/fnoreg_gpu/$NAME"
        rm -rf "$WORK"; mkdir -p /tmp/fnoreg_gpu "$OUT/$NAME"; cp -r "$R" "$WORK"
        SPEC=$(spec_of "$WORK/config.json")
        if grep -q '"preset": "2d' "$R/config.json"; then W=2; B=${BATCH2D:-16};
        else W=$(( (CORES - 2 * N2 - 1) / (N3 > 0 ? N3 : 1) )); B=${BATCH:-8}; fi
        if [ "$W" -lt 1 ]; then W=1; fi
        local EXTRA
        if [ "$CUDA" = 1 ]; then EXTRA=(--device cuda --amp bf16 --batch-size "$B" --val-every 200);
        else EXTRA=(--device cpu --batch-size 1 --val-every 20); fi
        echo "resuming $NAME: data $SPEC, $W workers, $MINUTES min, ${EXTRA[*]}"
        "$PY" -m fnoreg_core.train --config "$WORK/config.json" --resume --out "$WORK" --data "$SPEC" \
            --workers "$W" --session-minutes "$MINUTES" --steps 100000000 --no-progress "${EXTRA[@]}" \
            > "$OUT/$NAME/train.log" 2>&1 &
        PIDS+=($!)
    done
    RC=0
    for P in "${PIDS[@]}"; do wait "$P" || RC=$?; done
    for R in "${RUNS[@]}"; do
        NAME=$(basename "$R"); WORK="/tmp/fnoreg_gpu/$NAME"
        echo "-- $NAME"; tail -3 "$OUT/$NAME/train.log"
        cp "$WORK"/last.pt "$WORK"/best.pt "$WORK"/metrics.csv "$WORK"/config.json "$OUT/$NAME/" || RC=1
    done
    if [ "$RC" != 0 ]; then echo "train.sh: a run failed (exit $RC); see its train.log"; fi
    echo "== done $(date -u +%FT%TZ)"
    return "$RC"
}

main 2>&1 | tee "$OUT/train.log"
exit "${PIPESTATUS[0]}"
