"""Headless demo: register the bundled demo pair with the bundled model and print the report.

``make demo`` runs this when no display is available (with a display it opens ``fnoreg-gui``); installed
as ``fnoreg-demo`` (the same as ``python -m fnoreg_export.demo``)::

    python -m fnoreg_export.demo                  # Colin27 -> fsaverage, 3-D 2 mm, bundled fnoreg3d
    python -m fnoreg_export.demo --pair 3d_1mm    # the same pair at 1 mm (160x192x224)
    python -m fnoreg_export.demo --pair 2d --out demo-out/   # also write the outputs of fnoreg-register

Torch-free: the model runs through the runtime (:class:`fnoreg_export.runtime.Registrator`).
Exit codes: 0 done, 2 missing model or demo files (with what to do).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PAIRS = ("3d_2mm", "3d_1mm", "2d")


def _label_names() -> dict[int, str]:
    from fnoreg_core.data.templates import HARMONISED_LABELS

    return dict(HARMONISED_LABELS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fnoreg-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--pair", choices=PAIRS, default="3d_2mm",
                   help="demo pair (assets/demo/PAIR, found by fnoreg_export.bundled.demo_dir). Default: 3d_2mm")
    p.add_argument("--model", help="exported model (.onnx / .engine). Default: the bundled model")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads. Default: all cores")
    p.add_argument("--out", type=Path, default=None,
                   help="also write moved image, warp, Jacobian, moved labels and report.json here")
    p.add_argument("--affine", default="auto", help="affine stage, as fnoreg-register. Default: auto")
    p.add_argument("--refine", default=None, help="refinement, as fnoreg-register. Default: its default")
    p.add_argument("--work-res", default="auto", help="working grid, as fnoreg-register. Default: auto")
    args = p.parse_args(argv)

    import nibabel as nib

    from fnoreg_core.metrics import dice_per_label
    from fnoreg_export.bundled import BundledModelError, default_model, demo_dir
    from fnoreg_export.runtime import Registrator, warp_labels

    try:
        folder = demo_dir() / args.pair
    except BundledModelError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    files = {k: folder / f"{k}.nii.gz" for k in ("fixed", "moving", "fixed_labels", "moving_labels")}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        print(f"demo: error: missing demo files {missing}; restore assets/demo from the repository "
              "(or rebuild it with `fnoreg-data demo`)", file=sys.stderr)
        return 2
    try:
        model = args.model or str(default_model(3 if args.pair.startswith("3d") else 2))
    except BundledModelError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    from fnoreg_export.register_cli import InputError, pipeline_from_args, stage_dice

    try:
        args.refine_time = None
        pipeline = pipeline_from_args(args)
    except InputError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        from fnoreg_export.register_cli import main as register_main

        code = register_main([str(files["fixed"]), str(files["moving"]), "--model", model, "-o", str(args.out),
                              "--moving-labels", str(files["moving_labels"]), "--fixed-labels",
                              str(files["fixed_labels"]), "--overwrite", "-q", "--affine", args.affine,
                              "--work-res", args.work_res] + (["--refine", args.refine] if args.refine else [])
                             + (["--threads", str(args.threads)] if args.threads else []))
        if code != 0:
            return code
    reg = Registrator.load(model, threads=args.threads)
    fixed, moving = nib.load(str(files["fixed"])), nib.load(str(files["moving"]))
    reg.register(fixed=fixed, moving=moving, pipeline=pipeline)  # warm-up: session start and caches (not timed)
    result = reg.register(fixed=fixed, moving=moving, pipeline=pipeline, keep_stages=True)
    fixed_labels = np.asarray(nib.load(str(files["fixed_labels"])).dataobj).astype(np.int32)
    moving_labels = np.asarray(nib.load(str(files["moving_labels"])).dataobj).astype(np.int32)
    moved_labels = warp_labels(nib.load(str(files["moving_labels"])), result)
    before = dice_per_label(moving_labels, fixed_labels) if moving_labels.shape == fixed_labels.shape else {}
    after = dice_per_label(moved_labels, fixed_labels)
    names = _label_names()

    shape = "x".join(map(str, fixed.shape))
    print(f"FNOReg demo: Colin27 (moving) -> fsaverage (fixed), {args.pair} ({shape})")
    print(f"model {reg.card.name} {reg.card.version} ({Path(model).name}) on {reg.backend}"
          f"{f', {args.threads} threads' if args.threads else ''}")
    print(f"{'structure':<20} {'Dice before':>12} {'Dice after':>11}")
    for k in sorted(after):
        print(f"{names.get(k, str(k)):<20} {before.get(k, float('nan')):>12.3f} {after[k]:>11.3f}")
    mean_before = float(np.mean(list(before.values()))) if before else float("nan")
    print(f"{'mean':<20} {mean_before:>12.3f} {float(np.mean(list(after.values()))):>11.3f}")
    per_stage = stage_dice(result, nib.load(str(files["moving_labels"])), nib.load(str(files["fixed_labels"])))
    print()
    print(f"{'stage':<10} {'mean Dice':>10} {'time (s)':>9}  note")
    print(f"{'none':<10} {per_stage['none']:>10.3f} {'-':>9}")
    for row in result.stages:
        if row["stage"] == "working_grid":
            continue
        note = "" if row.get("applied", True) else f"not applied: {row.get('note', '')}"
        if row["stage"] == "affine" and row.get("mode") not in (None, "none") and row.get("applied"):
            note = f"{row['mode']}, similarity {row['similarity_before']:.3f} -> {row['similarity_after']:.3f}"
        if row["stage"] == "refine":
            note = f"{row['iterations']} iterations, LNCC {row['lncc_before']:.3f} -> {row['lncc_after']:.3f}"
        dice = per_stage.get(row["stage"], float("nan"))
        print(f"{row['stage']:<10} {dice:>10.3f} {row['seconds']:>9.2f}  {note}")
    grid = next(r for r in result.stages if r["stage"] == "working_grid")
    print(f"folded voxels (J <= 0): {result.folding['nonpositive_pct']:.3f} %   SDlogJ: {result.sdlogj:.3f}")
    t = result.timings
    print(f"time: {t['total']:.2f} s per pair (working grid {'x'.join(map(str, grid['shape']))}; "
          f"network {t.get('inference', 0.0):.2f} s)")
    if args.out is not None:
        print(f"outputs: {args.out} (moved.nii.gz, warp.nii.gz, jacobian.nii.gz, moved_labels.nii.gz, report.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
