#!/bin/bash
# Long CPU run (issue 15): fine-tune of the shipped 797-step checkpoint on synth:mix, 25-min sessions,
# a weights snapshot after each session.
cd "$(dirname "$0")/../../.."
OUT=${OUT:-runs/fnoreg3d_mix_long}  # resume: copy this folder there (last.pt is weights-only)
for i in $(seq 1 8); do
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/fnoreg-train --resume --model fnoreg --preset 3d-cpu --batch-size 1 \
    --val-every 200 --val-pairs 4 --lr-schedule cosine --data synth:mix --train-res 40x48x56 --loss ncc \
    --reg-weight 1 --dice-weight 1 --lr 5e-4 --synth-option contrast=random --synth-option max_rotation_deg=1 \
    --synth-option max_scaling=0.02 --synth-option max_shift=0.01 --time-budget-min 186 --budget-clock cpu --steps 100000000 \
    --session-minutes 25 --out $OUT --name fnoreg3d --no-progress >> $OUT/train.log 2>&1 || break
  step=$(.venv/bin/python -c "import torch;print(torch.load('$OUT/last.pt',weights_only=True)['step'])")
  cp $OUT/last.pt $OUT/step$step.pt
  echo "session $i done step $step $(date)" >> $OUT/train.log
done
