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
"""

from __future__ import annotations

import argparse
import json
import math
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
    args = p.parse_args(argv)
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


def _plot(results, unregistered: float, path: Path, args) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(plot skipped: pip install matplotlib)")
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


if __name__ == "__main__":
    sys.exit(main())
