"""2-D models in the pipeline: every ordered template slice pair (axial and coronal, 1 mm, 160x192),
Dice after the affine stage alone, after affine + network, and the network alone.

    python benchmarks/pipeline_2d.py assets/models/fnoreg2d/model.onnx [other.onnx ...]

Writes ``benchmarks/results/pipeline_2d.md`` (2 threads). The ship rule of issue 15: a model
replaces the bundled one only if affine + network beats the affine alone on every pair.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from fnoreg_core.data.templates import TemplatePairs
    from fnoreg_core.geometry import warp_vox
    from fnoreg_core.metrics import mean_dice
    from fnoreg_export.runtime import NETWORK_ONLY, PipelineOptions, Registrator

    models = [Path(a) for a in (argv if argv is not None else sys.argv[1:])] or [
        ROOT / "assets" / "models" / "fnoreg2d" / "model.onnx"]
    lines = ["# 2-D models in the pipeline", "",
             f"`python benchmarks/pipeline_2d.py {' '.join(str(m) for m in models)}` ({time.strftime('%Y-%m-%d %H:%M')},"
             " 2 threads). Mean Dice over the labels both slices hold.", "",
             "| model | plane | pair | none | affine | affine + network | network alone | beats affine |",
             "|---|---|---|---|---|---|---|---|"]
    for model in models:
        reg = Registrator.load(model, threads=2)
        wins = 0
        total = 0
        for plane in ("axial", "coronal"):
            src = TemplatePairs(dims=2, split="test", resolution="1mm", plane=plane)
            for i in range(len(src)):
                s = src[i]
                fixed, moving = s["fixed"][0], s["moving"][0]
                scores = []
                for opts in (PipelineOptions(network=False, threads=2), PipelineOptions(threads=2), NETWORK_ONLY):
                    res = reg.register(fixed=fixed, moving=moving, pipeline=opts)
                    scores.append(mean_dice(warp_vox(s["moving_labels"][0], res.ddf_vox, 0), s["fixed_labels"][0]))
                none = mean_dice(s["moving_labels"][0], s["fixed_labels"][0])
                ok = scores[1] > scores[0]
                wins, total = wins + ok, total + 1
                lines.append(f"| {model.parent.name} | {plane} | {src.pair_name(i)} | {none:.4f} | {scores[0]:.4f} | "
                             f"{scores[1]:.4f} | {scores[2]:.4f} | {'yes' if ok else 'no'} |")
                print(lines[-1], flush=True)
        lines.append(f"| {model.parent.name} | all | {wins} of {total} pairs improved over the affine | | | | | "
                     f"{'yes' if wins == total else 'no'} |")
    out = ROOT / "benchmarks" / "results" / "pipeline_2d.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
