"""Resolution-robustness study (the paper's central table, at a scale this machine trains).

FNOReg, FNO, VoxelMorph, TransMorph and Fourier-Net (the paper's five methods, CPU presets) are
each trained twice with the same budget in steps: at full resolution and at half resolution. Every
model is then evaluated at FULL resolution (and at twice full) on held-out pairs; the table gives
the Dice drop of the half-resolution model in %.
The paper's claim: FNO-based models lose <= 3 %, CNNs 6-25 %.

Data: SynthMorph-style synthetic 2D pairs (``--data synth``; the generator draws pairs at any
resolution, so "full", "half" and "2x" are the same distribution of anatomy sampled on different
grids), plus the real 2D template pairs (Colin27 / MNI152 / fsaverage axial slices) when the set is
built (``fnoreg-data templates``).

Examples:
  python benchmarks/resolution_study.py --steps 1500            # about 1 h on 2 cores
  python benchmarks/resolution_study.py --steps 40 --quick      # smoke run, minutes
  python benchmarks/resolution_study.py --steps 3 --eval-pairs 2 --models fourier-net,transmorph \
      --out /tmp/rs --work /tmp/rs/runs                          # check two models, results to /tmp
Runs resume: finished trainings are reused (delete WORK/runs/... to retrain).

``--dims 3`` (issue 15): FNOReg, FNO and VoxelMorph (3d-cpu presets) trained with the chosen 3-D recipe
(recipe_study.py's ``res_ncc_dice_4mm``: synth:brains+real, local NCC + soft Dice + diffusion, residual
affine) at 4 mm (40x48x56) and at 2 mm (80x96x112), the same CPU budget each (``--budget-min``, one
thread, CPU clock), then evaluated the way the pipeline uses them on every real template pair, both
directions: SimpleITK affine (found at 2 mm), then the network at 2 mm (80x96x112) and at 1 mm
(160x192x224). Writes ``resolution_study_3d.{md,json,png}``::

  python benchmarks/resolution_study.py --dims 3 --budget-min 6      # about 1.5 h on one core
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {"fnoreg": "2d-cpu", "fno": "2d-cpu", "voxelmorph": "2d-cpu", "transmorph": "2d-cpu",
          "fourier-net": "2d-cpu"}


def _size(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split("x"))


def train_one(model: str, preset: str, res: tuple[int, ...], full: tuple[int, ...], args, out: Path) -> Path:
    from fnoreg_core.checkpoint import load_checkpoint
    from fnoreg_core.train import TrainConfig, train

    last = out / "last.pt"
    if last.is_file():
        step = load_checkpoint(last)["step"]
        if step >= args.steps:
            print(f"  reuse {last} (step {step})")
            return last
    cfg = TrainConfig(model=model, preset=preset, data="synth", train_res=list(res), val_res=list(full),
                      lr=args.lr, batch_size=args.batch, steps=args.steps, val_every=max(args.steps // 4, 1),
                      val_pairs=4, seed=args.seed, out=str(out), name=f"{model}-{'x'.join(map(str, res))}")
    t0 = time.perf_counter()
    train(cfg, resume=last.is_file(), progress=False)
    print(f"  trained {model} at {'x'.join(map(str, res))}: {args.steps} steps in {time.perf_counter() - t0:.0f} s")
    return last


def evaluate_at(checkpoint: Path, source, max_pairs: int) -> dict[str, float]:
    from fnoreg_core.evaluate import evaluate, summarise, torch_predictor

    predict, info = torch_predictor(checkpoint)
    rows = evaluate({"m": predict}, source, max_pairs, progress=lambda s: None)
    return summarise(rows)["m"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--full", default="160x192")
    p.add_argument("--half", default="80x96")
    p.add_argument("--double", default="320x384")
    p.add_argument("--eval-pairs", type=int, default=32)
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}. Default: all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="write *_quick results (smoke run)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                   help="folder of the table, JSON and plot. Default: benchmarks/results")
    p.add_argument("--work", type=Path, default=None,
                   help="folder of the training runs (checkpoints, reused on the next call). "
                        "Default: runs/resolution_study[_quick]")
    p.add_argument("--dims", type=int, choices=(2, 3), default=2,
                   help="2: the synthetic 2-D study (default); 3: the 3-D study on the real template pairs")
    p.add_argument("--budget-min", type=float, default=6.0,
                   help="--dims 3: CPU minutes of optimisation per training (one thread). Default: 6")
    args = p.parse_args(argv)
    if args.dims == 3:
        return study_3d(args)
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}, expected some of {list(MODELS)}")

    import torch

    from fnoreg_core.data import open_source

    torch.set_num_threads(args.threads)
    full, half, double = _size(args.full), _size(args.half), _size(args.double)
    tag = "resolution_study" + ("_quick" if args.quick else "")
    work = args.work if args.work is not None else ROOT / "runs" / tag  # checkpoints: not committed
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    test_full = open_source("synth", 2, "test", shape=full, seed=args.seed)
    test_double = open_source("synth", 2, "test", shape=double, seed=args.seed)
    real = None
    try:
        real = open_source("templates", 2, "test", shape=full)
    except ValueError as exc:
        print(f"(real 2D template pairs skipped: {exc})")

    results = []
    for model in args.models.split(","):
        preset = MODELS[model]
        for label, res in (("full", full), ("half", half)):
            print(f"{model} trained at {label} ({'x'.join(map(str, res))})")
            ckpt = train_one(model, preset, res, full, args, work / "runs" / f"{model}_{label}")
            row = {"model": model, "trained": label, "train_res": "x".join(map(str, res))}
            s = evaluate_at(ckpt, test_full, args.eval_pairs)
            row.update(dice_full=s["mean_dice"], dice_full_sd=s["mean_dice_sd"], folded_full=s["nonpositive_jac_pct"],
                       sdlogj_full=s["sdlogj"], time_full=s["time_s"])
            s2 = evaluate_at(ckpt, test_double, max(args.eval_pairs // 4, 2))
            row.update(dice_double=s2["mean_dice"], folded_double=s2["nonpositive_jac_pct"])
            if real is not None:
                s3 = evaluate_at(ckpt, real, len(real))
                row.update(dice_real=s3["mean_dice"], folded_real=s3["nonpositive_jac_pct"])
            print("  " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
            results.append(row)
    unregistered = _unregistered(test_full, args.eval_pairs)
    unregistered_double = _unregistered(test_double, max(args.eval_pairs // 4, 2))
    unregistered_real = _unregistered(real, len(real)) if real is not None else math.nan

    lines = [f"# Resolution study ({'quick smoke run' if args.quick else 'full'})", "",
             f"`python benchmarks/resolution_study.py --steps {args.steps}{' --quick' if args.quick else ''}`: 2D synthetic pairs, "
             f"{args.steps} Adam steps (batch {args.batch}, lr {args.lr}) per model, MSE + 0.01 diffusion; "
             f"trained at full {args.full} or half {args.half}; evaluated on {args.eval_pairs} held-out pairs at "
             f"full {args.full} (and at 2x, {args.double}). Unregistered Dice: {unregistered:.4f} at full, "
             f"{unregistered_double:.4f} at 2x" + (f", {unregistered_real:.4f} on the real pairs." if real is not None else "."),
             "Drop = (Dice of the full-trained model - Dice of this model) / Dice of the full-trained model, both at full.", "",
             "| model | trained at | Dice @ full | drop vs full-trained | % J <= 0 @ full | SDlogJ | Dice @ 2x | % J <= 0 @ 2x |"
             + (" Dice real pairs | % J <= 0 real |" if real is not None else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|---|" if real is not None else "")]
    for row in results:
        ref = next(r for r in results if r["model"] == row["model"] and r["trained"] == "full")
        drop = 100.0 * (ref["dice_full"] - row["dice_full"]) / ref["dice_full"]
        row["drop_pct"] = drop
        lines.append(f"| {row['model']} | {row['trained']} ({row['train_res']}) | {row['dice_full']:.4f} +- "
                     f"{row['dice_full_sd']:.4f} | {drop:+.2f} % | {row['folded_full']:.3f} | {row['sdlogj_full']:.3f} | "
                     f"{row['dice_double']:.4f} | {row['folded_double']:.3f} |"
                     + (f" {row['dice_real']:.4f} | {row['folded_real']:.3f} |" if real is not None else ""))
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    (args.out / f"{tag}.md").write_text(table)
    (args.out / f"{tag}.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                      "unregistered_dice": unregistered,
                                                      "unregistered_dice_double": unregistered_double, "rows": results}, indent=1))
    _plot(results, unregistered, args.out / f"{tag}.png", args)
    return 0


def _unregistered(source, n: int) -> float:
    from fnoreg_core.metrics import mean_dice

    vals = [mean_dice(source[i]["moving_labels"][0], source[i]["fixed_labels"][0]) for i in range(min(n, len(source)))]
    return float(np.mean(vals))


def _pyplot():
    """matplotlib.pyplot on the Agg backend, or None (said once) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(plot skipped: pip install matplotlib)")
        return None
    return plt


def _plot(results, unregistered: float, path: Path, args) -> None:
    plt = _pyplot()
    if plt is None:
        return
    models = list(dict.fromkeys(r["model"] for r in results))
    x = np.arange(len(models))
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for k, (label, color) in enumerate((("full", "#2b6cb0"), ("half", "#dd6b20"))):
        vals = [next(r["dice_full"] for r in results if r["model"] == m and r["trained"] == label) for m in models]
        ax[0].bar(x + (k - 0.5) * 0.38, vals, 0.38, label=f"trained at {label}", color=color)
    ax[0].axhline(unregistered, color="gray", ls="--", lw=1, label="unregistered")
    ax[0].set_xticks(x, models)
    ax[0].set_ylabel(f"mean Dice at {args.full}")
    lo = min(unregistered, *(r["dice_full"] for r in results))
    ax[0].set_ylim(max(0.0, lo - 0.05), 1.0)
    ax[0].legend(loc="lower right", fontsize=8)
    drops = [next(r["drop_pct"] for r in results if r["model"] == m and r["trained"] == "half") for m in models]
    ax[1].bar(x, drops, 0.5, color="#805ad5")
    ax[1].axhline(3.0, color="gray", ls="--", lw=1, label="paper: FNO models <= 3 %")
    ax[1].set_xticks(x, models)
    ax[1].set_ylabel("Dice drop of half-res training (%)")
    ax[1].legend(fontsize=8)
    fig.suptitle(f"Trained {args.steps} steps at {args.full} vs {args.half}, evaluated at {args.full}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


# -- 3-D: trained at 4 mm and 2 mm, evaluated at 2 mm and 1 mm on the real template pairs ----------------

MODELS_3D = ("fnoreg", "fno", "voxelmorph")
TRAIN_RES_3D = {"4mm": "40x48x56", "2mm": "80x96x112"}
RECIPE_3D = "res_ncc_dice_4mm"  # the recipe chosen by benchmarks/recipe_study.py
EVAL_RES_3D = ("2mm", "1mm")


def evaluate_3d(checkpoints: dict[str, Path], threads: int = 1) -> dict:
    """Per real pair: Dice after the affine, and per checkpoint Dice / % J <= 0 / seconds at 2 mm and 1 mm.

    The affine is found once at 2 mm (world space) and applied on both grids, so that the two
    resolutions differ only by the network's input grid.
    """
    import torch

    from recipe_study import _load_model, _resample, network_scores

    from fnoreg_core.affine import affine_register
    from fnoreg_core.data.templates import TemplatePairs, grid_affine
    from fnoreg_core.metrics import mean_dice

    torch.set_num_threads(threads)
    models = {key: _load_model(path)[0] for key, path in checkpoints.items()}
    sets = {res: TemplatePairs(dims=3, split="test", resolution=res) for res in EVAL_RES_3D}
    rows = []
    for i in range(len(sets["2mm"])):
        name = sets["2mm"].pair_name(i)
        coarse = sets["2mm"][i]
        a = affine_register(coarse["fixed"][0], coarse["moving"][0], grid_affine("2mm"), threads=threads)
        row: dict = {"pair": name}
        for res, pairs in sets.items():
            if pairs.pair_name(i) != name:
                raise RuntimeError(f"the {res} template set orders its pairs differently from 2mm ({pairs.pair_name(i)})")
            s = coarse if res == "2mm" else pairs[i]
            grid = grid_affine(res)
            fixed, fixed_labels = s["fixed"][0], s["fixed_labels"][0]
            moved = _resample(s["moving"][0], grid, a.fixed_to_moving_ras, None, 1).astype(np.float32)
            row[f"dice_affine_{res}"] = mean_dice(_resample(s["moving_labels"][0], grid, a.fixed_to_moving_ras, None, 0),
                                                  fixed_labels)
            for key, model in models.items():
                net = network_scores(model, moved, fixed, s["moving_labels"][0], fixed_labels, grid,
                                     a.fixed_to_moving_ras)
                row[f"{key}/dice_{res}"] = net["dice_net"]
                row[f"{key}/folded_{res}"] = net["folded_pct"]
                row[f"{key}/seconds_{res}"] = net["net_s"]
                print(f"  {name} {res} {key}: Dice {row[f'{key}/dice_{res}']:.4f} (affine {row[f'dice_affine_{res}']:.4f}), "
                      f"{row[f'{key}/folded_{res}']:.3f} % J<=0, {net['net_s']:.1f} s", flush=True)
        rows.append(row)
    return {"pairs": rows}


def study_3d(args) -> int:
    from recipe_study import RECIPES, train

    from fnoreg_core.checkpoint import load_checkpoint

    work = args.work if args.work is not None else ROOT / "runs" / "resolution_study_3d"
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoints, runs = {}, {}
    for model in MODELS_3D:
        for label, res in TRAIN_RES_3D.items():
            key = f"{model}_{label}"
            extra = ["--model", model, "--train-res", res]
            print(f"training {key}: {RECIPE_3D} {' '.join(extra)}, {args.budget_min:g} CPU-min", flush=True)
            run = train(key, args.budget_min, work, recipe=RECIPE_3D, extra=extra)
            checkpoints[key], runs[key] = run / "best.pt", run
    print("evaluating on the real template pairs at 2 mm and 1 mm", flush=True)
    ev = evaluate_3d(checkpoints, threads=args.threads)
    pairs = ev["pairs"]

    def mean(field: str) -> float:
        return float(np.mean([r[field] for r in pairs]))

    results = []
    for key, run in runs.items():
        model, label = key.rsplit("_", 1)
        best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
        row = {"model": model, "trained": label, "train_res": TRAIN_RES_3D[label], "steps": int(last["step"]),
               "best_step": int(best["step"]), "train_cpu_min": float(last["train_seconds"]) / 60}
        for res in EVAL_RES_3D:
            row[f"dice_{res}"] = mean(f"{key}/dice_{res}")
            row[f"folded_{res}"] = mean(f"{key}/folded_{res}")
            row[f"seconds_{res}"] = mean(f"{key}/seconds_{res}")
            row[f"min_gain_{res}"] = float(min(r[f"{key}/dice_{res}"] - r[f"dice_affine_{res}"] for r in pairs))
        row["drop_1mm_pct"] = 100.0 * (row["dice_2mm"] - row["dice_1mm"]) / row["dice_2mm"]
        results.append(row)
    affine = {res: mean(f"dice_affine_{res}") for res in EVAL_RES_3D}
    command = f"python benchmarks/resolution_study.py --dims 3 --budget-min {args.budget_min:g}"
    lines = ["# Resolution study in 3-D (issue 15, section 5)", "",
             f"`{command}` ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average at the end "
             f"{os.getloadavg()[0]:.2f}, one thread per training "
             f"and for the evaluation). Every model: 3d-cpu preset, recipe `{RECIPE_3D}` of "
             f"benchmarks/recipe_study.py ({' '.join(RECIPES[RECIPE_3D][1])}), **{args.budget_min:g} CPU-minutes of "
             "optimisation each** (batch 1, Adam, cosine decay); trained at 4 mm (40x48x56) or 2 mm (80x96x112); "
             "the checkpoint with the best synthetic validation Dice is evaluated. Evaluation: the "
             f"{len(pairs)} real template pairs (every ordered pair that shares labels), SimpleITK affine found at "
             "2 mm, then the network at 2 mm (80x96x112) and at 1 mm (160x192x224), PyTorch eager on one "
             "thread. Affine alone: " + ", ".join(f"{affine[r]:.4f} at {r}" for r in EVAL_RES_3D) + ".", "",
             "Drop = (Dice at 2 mm - Dice at 1 mm) / Dice at 2 mm, the same model; worst gain = the smallest "
             "per-pair Dice gain over the affine.", "",
             "| model | trained at | budget (CPU min) | steps | Dice @ 2 mm | Dice @ 1 mm | drop 2 -> 1 mm | "
             "worst gain @ 2 mm / 1 mm | % J<=0 @ 2 mm / 1 mm | network s @ 2 mm / 1 mm |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['trained']} ({r['train_res']}) | {r['train_cpu_min']:.1f} | {r['steps']} | "
                     f"{r['dice_2mm']:.4f} | {r['dice_1mm']:.4f} | {r['drop_1mm_pct']:+.2f} % | "
                     f"{r['min_gain_2mm']:+.4f} / {r['min_gain_1mm']:+.4f} | {r['folded_2mm']:.3f} / "
                     f"{r['folded_1mm']:.3f} | {r['seconds_2mm']:.2f} / {r['seconds_1mm']:.2f} |")
    lines += ["", "Per pair (Dice at 2 mm / 1 mm):", ""]
    for r in pairs:
        cells = [f"affine {r['dice_affine_2mm']:.3f} / {r['dice_affine_1mm']:.3f}"]
        cells += [f"{k} {r[f'{k}/dice_2mm']:.3f} / {r[f'{k}/dice_1mm']:.3f}" for k in runs]
        lines.append(f"- {r['pair']}: " + "; ".join(cells))
    lines += ["", "## Targets", ""]
    for r in results:
        if r["model"] == "fnoreg":
            met = abs(r["drop_1mm_pct"]) <= 1.0
            lines.append(f"- FNOReg trained at {r['trained']}: Dice at 1 mm within 1 % of 2 mm: "
                         f"{r['drop_1mm_pct']:+.2f} % ({'met' if met else 'not met'}); budget "
                         f"{r['train_cpu_min']:.1f} CPU-min")
    for r in results:
        if r["model"] == "voxelmorph":
            lines.append(f"- VoxelMorph trained at {r['trained']} (shown, no target): {r['drop_1mm_pct']:+.2f} % "
                         f"from 2 mm to 1 mm; budget {r['train_cpu_min']:.1f} CPU-min")
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    (args.out / "resolution_study_3d.md").write_text(table)
    (args.out / "resolution_study_3d.json").write_text(json.dumps(
        {"command": command, "affine_dice": affine, "rows": results, "pairs": pairs}, indent=1) + "\n")
    _plot_3d(results, affine, args.out / "resolution_study_3d.png", args.budget_min)
    return 0


def _plot_3d(results: list[dict], affine: dict, path: Path, budget_min: float) -> None:
    plt = _pyplot()
    if plt is None:
        return
    labels = [f"{r['model']}\n@{r['trained']}" for r in results]
    x = np.arange(len(results))
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for k, (res, color) in enumerate((("2mm", "#2b6cb0"), ("1mm", "#dd6b20"))):
        ax[0].bar(x + (k - 0.5) * 0.38, [r[f"dice_{res}"] for r in results], 0.38, label=f"evaluated at {res}",
                  color=color)
        ax[0].axhline(affine[res], color=color, ls="--", lw=1, label=f"affine only, {res}")
    ax[0].set_xticks(x, labels, fontsize=8)
    ax[0].set_ylabel("mean Dice, real template pairs")
    lo = min(min(affine.values()), *(r[f"dice_{res}"] for r in results for res in EVAL_RES_3D))
    hi = max(max(affine.values()), *(r[f"dice_{res}"] for r in results for res in EVAL_RES_3D))
    ax[0].set_ylim(lo - 0.02, hi + 0.02)
    ax[0].legend(fontsize=7, loc="lower right")
    ax[1].bar(x, [r["drop_1mm_pct"] for r in results], 0.5, color="#805ad5")
    ax[1].axhline(1.0, color="gray", ls="--", lw=1, label="target for FNOReg: <= 1 %")
    ax[1].axhline(0.0, color="black", lw=0.5)
    ax[1].set_xticks(x, labels, fontsize=8)
    ax[1].set_ylabel("Dice drop from 2 mm to 1 mm (%)")
    ax[1].legend(fontsize=8)
    fig.suptitle(f"3-D, {budget_min:g} CPU-min per training: trained at 4 or 2 mm, evaluated at 2 and 1 mm")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


if __name__ == "__main__":
    sys.exit(main())
