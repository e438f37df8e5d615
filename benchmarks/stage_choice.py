"""How the pipeline's affine and refinement stages were chosen: measured side by side, same process.

Affine stage candidates on the real template pairs at 2 mm (every ordered pair sharing labels):
SimpleITK (moments + affine, correlation or Mattes MI, pyramid shrink 4/2 or 8/4/2), picsl-greedy
(``-a -dof 12 -m NCC 2x2x2``, several iteration schedules) and ANTsPy (``type_of_transform="Affine"``).
Refinement settings (``fnoreg_core.refine``) after the chosen affine, from a zero field or from a
model's field (``--model model.onnx``). Prints a markdown table and writes
``benchmarks/results/stage_choice.md``.

    python benchmarks/stage_choice.py                 # both studies, 2 threads
    python benchmarks/stage_choice.py --part refine --model assets/models/fnoreg3d/model.onnx
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results"


def _pull(volume, aff, world_map, ddf_vox=None, order=1):
    """``volume`` pulled at world_map(grid(p + ddf(p))) on its own grid (recipe_study's resampling)."""
    from recipe_study import _resample

    return _resample(volume, aff, world_map, ddf_vox, order)


def affine_candidates(threads: int):
    """name -> function(fixed, moving, aff) -> (4, 4) RAS fixed->moving."""
    from fnoreg_core.affine import affine_register

    def ours(shrink):
        return lambda f, m, a: affine_register(f, m, a, threads=threads, shrink=shrink).fixed_to_moving_ras

    from peers import _sitk_image

    out = {"SimpleITK corr 4/2 (chosen)": ours((4, 2)), "SimpleITK corr 8/4/2": ours((8, 4, 2))}
    try:
        from picsl_greedy import Greedy3D

        def greedy(schedule):
            def run(f, m, a):
                g = Greedy3D()
                g.execute(f"-i fixed moving -a -dof 12 -m NCC 2x2x2 -n {schedule} -ia-image-centers -o aff "
                          f"-threads {threads}", fixed=_sitk_image(f, a), moving=_sitk_image(m, a), aff=None)
                return np.asarray(g["aff"], float)  # greedy's matrices are RAS, fixed -> moving
            return run

        out["greedy NCC 100x50x10"] = greedy("100x50x10")
        out["greedy NCC 50x20x0"] = greedy("50x20x0")
    except ImportError:
        print("stage_choice: picsl-greedy not installed (pip install picsl-greedy); skipped", file=sys.stderr)
    try:
        import ants

        def antspy(f, m, a):
            fi = ants.from_numpy(f.astype(np.float32), spacing=(2.0, 2.0, 2.0))
            mi = ants.from_numpy(m.astype(np.float32), spacing=(2.0, 2.0, 2.0))
            reg = ants.registration(fi, mi, type_of_transform="Affine")
            tx = ants.read_transform(reg["fwdtransforms"][0])
            p = np.asarray(tx.parameters, float)
            c = np.asarray(tx.fixed_parameters, float)
            m4 = np.eye(4)
            m4[:3, :3] = p[:9].reshape(3, 3)
            m4[:3, 3] = p[9:12] + c - m4[:3, :3] @ c
            # ants.from_numpy: identity direction, origin 0 -> its physical space is index * spacing
            s = np.diag([2.0, 2.0, 2.0, 1.0])
            to_scaled = s @ np.linalg.inv(a)
            return np.linalg.inv(to_scaled) @ m4 @ to_scaled

        out["ANTsPy Affine"] = antspy
    except ImportError:
        print("stage_choice: antspyx not installed (pip install antspyx); skipped", file=sys.stderr)
    return out


def affine_study(threads: int) -> list[str]:
    from fnoreg_core.data.templates import TemplatePairs, grid_affine
    from fnoreg_core.metrics import mean_dice

    pairs = TemplatePairs(dims=3, split="test", resolution="2mm")
    aff = grid_affine("2mm")
    lines = ["## Affine stage (2 mm, every ordered template pair sharing labels)", "",
             "| method | " + " | ".join(pairs.pair_name(i) for i in range(len(pairs))) + " | mean Dice | mean time (s) |",
             "|---|" + "---|" * (len(pairs) + 2)]
    samples = [pairs[i] for i in range(len(pairs))]
    none = [mean_dice(s["moving_labels"][0], s["fixed_labels"][0]) for s in samples]
    lines.append("| none | " + " | ".join(f"{d:.4f}" for d in none) + f" | {np.mean(none):.4f} | - |")
    for name, fn in affine_candidates(threads).items():
        dice, secs = [], []
        for s in samples:
            t0 = time.perf_counter()
            m = fn(s["fixed"][0], s["moving"][0], aff)
            secs.append(time.perf_counter() - t0)
            dice.append(mean_dice(_pull(s["moving_labels"][0], aff, m, order=0), s["fixed_labels"][0]))
        lines.append(f"| {name} | " + " | ".join(f"{d:.4f}" for d in dice) + f" | {np.mean(dice):.4f} | {np.mean(secs):.2f} |")
        print(lines[-1], flush=True)
    return lines


def refine_study(threads: int, model: Path | None) -> list[str]:
    from fnoreg_core.affine import affine_register
    from fnoreg_core.data.templates import TemplatePairs, grid_affine
    from fnoreg_core.metrics import folding_fraction, jacobian_determinant, mean_dice
    from fnoreg_core.refine import RefineSettings, refine_field

    net = None
    if model is not None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]

        def net(moving, fixed):
            from fnoreg_core.fields import ddf_norm_to_vox

            out = sess.run(None, dict(zip(names, (moving[None, None], fixed[None, None]))))[0][0]
            return ddf_norm_to_vox(out, fixed.shape)
    pairs = TemplatePairs(dims=3, split="test", resolution="2mm")
    aff = grid_affine("2mm")
    settings = {"(40, 0) lambda 0.5": RefineSettings(iterations=(40, 0)),
                "(40, 3) lambda 0.5": RefineSettings(iterations=(40, 3)),
                "(20, 3) lambda 0.5": RefineSettings(iterations=(20, 3)),
                "(40, 3) lambda 0.25": RefineSettings(iterations=(40, 3), reg_weight=0.25),
                "(40, 3) lambda 1": RefineSettings(iterations=(40, 3), reg_weight=1.0),
                "(40, 10) lambda 0.5": RefineSettings(iterations=(40, 10))}
    start = f"the network's field ({model})" if model else "a zero field"
    lines = ["", f"## Refinement (2 mm, after the SimpleITK affine, from {start})", "",
             "| settings | " + " | ".join(pairs.pair_name(i) for i in range(len(pairs))) +
             " | mean Dice | mean % J<=0 | mean time (s) |", "|---|" + "---|" * (len(pairs) + 3)]
    prepared = []
    for i in range(len(pairs)):
        s = pairs[i]
        a = affine_register(s["fixed"][0], s["moving"][0], aff, threads=threads).fixed_to_moving_ras
        moved = _pull(s["moving"][0], aff, a).astype(np.float32)
        u0 = net(moved, s["fixed"][0]) if net is not None else None
        prepared.append((s, a, moved, u0))
    row = ["start"]
    dice = []
    for s, a, moved, u0 in prepared:
        dice.append(mean_dice(_pull(s["moving_labels"][0], aff, a, u0, order=0), s["fixed_labels"][0]))
    lines.append("| start (no refinement) | " + " | ".join(f"{d:.4f}" for d in dice) + f" | {np.mean(dice):.4f} | - | 0 |")
    for name, st in settings.items():
        dice, fold, secs = [], [], []
        for s, a, moved, u0 in prepared:
            r = refine_field(s["fixed"][0], moved, u0, st)
            secs.append(r.seconds)
            dice.append(mean_dice(_pull(s["moving_labels"][0], aff, a, r.ddf_vox, order=0), s["fixed_labels"][0]))
            fold.append(folding_fraction(jacobian_determinant(r.ddf_vox))["nonpositive_pct"])
        lines.append(f"| {name} | " + " | ".join(f"{d:.4f}" for d in dice) +
                     f" | {np.mean(dice):.4f} | {np.mean(fold):.3f} | {np.mean(secs):.2f} |")
        print(lines[-1], flush=True)
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("all", "affine", "refine"), default="all")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", type=Path, help="ONNX model whose field the refinement starts from (default: zero)")
    p.add_argument("--out", type=Path, default=RESULTS / "stage_choice.md")
    args = p.parse_args(argv)
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(args.threads))
    head = [f"# Pipeline stage choices", "",
            f"`python benchmarks/stage_choice.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
            f"({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, {args.threads} threads; load average "
            f"{os.getloadavg()[0]:.1f} at the start).", ""]
    lines = []
    if args.part in ("all", "affine"):
        lines += affine_study(args.threads)
    if args.part in ("all", "refine"):
        lines += refine_study(args.threads, args.model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(head + lines) + "\n")
    print("\n".join(head + lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
