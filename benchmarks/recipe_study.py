"""Training-recipe study for the 3-D FNOReg (issue 15): equal CPU budget per recipe, then a measured pick.

Each recipe is one ``fnoreg-train`` run (one thread, ``--time-budget-min B --budget-clock cpu``);
its ``best.pt`` (best validation Dice on synthetic brain pairs) is then evaluated the way the
pipeline uses it:

* real template pairs at 2 mm, every ordered pair that shares labels (Colin27 <-> fsaverage, 12
  subcortical structures; MNI152 <-> fsaverage, GM/WM), after the SimpleITK affine stage
  (:func:`fnoreg_core.affine.affine_register`): mean Dice affine-only vs affine + network, % J <= 0;
* synthetic held-out pairs with known fields (``synth:brains`` test split, 2 mm): end-point error of
  the network vs the unregistered pair, in mm.

Writes ``benchmarks/results/recipe_study.{md,json}``. Example (about 8 CPU-min per recipe)::

    python benchmarks/recipe_study.py --budget-min 8 --jobs 2
    python benchmarks/recipe_study.py --only ncc_dice --budget-min 1   # one recipe, quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

COMMON = ["--model", "fnoreg", "--preset", "3d-cpu", "--batch-size", "1", "--val-every", "100", "--val-pairs", "4",
          "--lr-schedule", "cosine"]
#: the relative affine left after the pipeline's affine stage (instead of synth:brains' 5 deg, 6 %, 3 %)
RESIDUAL = ["--synth-option", "max_rotation_deg=1", "--synth-option", "max_scaling=0.02", "--synth-option",
            "max_shift=0.01"]
#: name -> (what it tests, fnoreg-train arguments)
RECIPES: dict[str, tuple[str, list[str]]] = {
    "mse_4mm": ("old loss (MSE + 0.1 diffusion) on brains+real, at 4 mm",
                ["--data", "synth:brains+real", "--train-res", "40x48x56", "--loss", "mse", "--reg-weight", "0.1",
                 "--lr", "5e-4"]),
    "ncc_dice_4mm": ("local NCC + soft Dice on the labels, brains+real, 4 mm",
                     ["--data", "synth:brains+real", "--train-res", "40x48x56", "--loss", "ncc", "--reg-weight", "1",
                      "--dice-weight", "1", "--lr", "1e-3"]),
    "ncc_dice_field_4mm": ("NCC + Dice + end-point error on the known field (0.05/voxel), 4 mm",
                           ["--data", "synth:brains+real", "--train-res", "40x48x56", "--loss", "ncc",
                            "--reg-weight", "1", "--dice-weight", "1", "--field-weight", "0.05", "--lr", "1e-3"]),
    "ncc_dice_mix_4mm": ("NCC + Dice on a mix of random shapes and brains, contrast randomised, 4 mm",
                         ["--data", "synth:mix", "--train-res", "40x48x56", "--loss", "ncc", "--reg-weight", "1",
                          "--dice-weight", "1", "--lr", "1e-3", "--synth-option", "contrast=random"]),
    "ncc_dice_2mm": ("NCC + Dice, brains+real, at 2 mm (a step costs ~8x)",
                     ["--data", "synth:brains+real", "--train-res", "80x96x112", "--loss", "ncc", "--reg-weight", "1",
                      "--dice-weight", "1", "--lr", "1e-3"]),
    "ncc_dice_wide_4mm": ("NCC + Dice, wider model (hidden 12, 4 layers), 4 mm",
                          ["--data", "synth:brains+real", "--train-res", "40x48x56", "--loss", "ncc", "--reg-weight",
                           "1", "--dice-weight", "1", "--lr", "1e-3", "--model-option", "hidden_channels=12"]),
    # round 2: pairs pre-aligned the way the pipeline aligns them (a small residual affine only)
    "res_ncc_dice_4mm": ("NCC + Dice, brains+real, residual affine only (1 deg, 2 %, 1 %), 4 mm",
                         ["--data", "synth:brains+real", "--train-res", "40x48x56", "--loss", "ncc", "--reg-weight", "1",
                          "--dice-weight", "1", "--lr", "1e-3", *RESIDUAL]),
    "res_ncc_dice_field_4mm": ("as res_ncc_dice_4mm + end-point error on the known field (0.05/voxel)",
                               ["--data", "synth:brains+real", "--train-res", "40x48x56", "--loss", "ncc",
                                "--reg-weight", "1", "--dice-weight", "1", "--field-weight", "0.05", "--lr", "1e-3",
                                *RESIDUAL]),
    "res_ncc_dice_2mm": ("as res_ncc_dice_4mm, trained at 2 mm",
                         ["--data", "synth:brains+real", "--train-res", "80x96x112", "--loss", "ncc", "--reg-weight",
                          "1", "--dice-weight", "1", "--lr", "1e-3", *RESIDUAL]),
    "res_ncc_dice_mix_4mm": ("as res_ncc_dice_4mm on the shapes + brains mix, contrast randomised",
                             ["--data", "synth:mix", "--train-res", "40x48x56", "--loss", "ncc", "--reg-weight", "1",
                              "--dice-weight", "1", "--lr", "1e-3", "--synth-option", "contrast=random", *RESIDUAL]),
    # round 3: never the priors' real images (SynthMorph: shapes and contrasts only), so that nothing of
    # fsaverage's / MNI152's intensity profile can be memorised
    "res_synthonly_4mm": ("as res_ncc_dice_4mm on synthesised intensities only (synth:brains), contrast randomised",
                          ["--data", "synth:brains", "--train-res", "40x48x56", "--loss", "ncc", "--reg-weight", "1",
                           "--dice-weight", "1", "--lr", "1e-3", "--synth-option", "contrast=random", *RESIDUAL]),
    "res_shapes_4mm": ("as res_synthonly_4mm on random shapes only (no brain anatomy at all)",
                       ["--data", "synth", "--train-res", "40x48x56", "--loss", "ncc", "--reg-weight", "1",
                        "--dice-weight", "1", "--lr", "1e-3", "--synth-option", "contrast=random", *RESIDUAL]),
}


def train(name: str, budget_min: float, work: Path, recipe: str | None = None, extra: list[str] = ()) -> Path:
    """Train ``RECIPES[recipe or name]`` (then ``extra`` flags, which override it) into ``work/name``."""
    out = work / name
    args = [sys.executable, "-m", "fnoreg_core.train", *COMMON, *RECIPES[recipe or name][1], *extra,
            "--time-budget-min", str(budget_min), "--budget-clock", "cpu", "--steps", "1000000", "--out", str(out),
            "--name", name, "--no-progress"]
    if (out / "last.pt").exists():
        args.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", FNOREG_TORCH_THREADS="1")
    with open(work / f"{name}.log", "a") as log:
        log.write(" ".join(args) + "\n")
        log.flush()
        rc = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    if rc not in (0, 2):  # 2: already trained to its budget on a re-run
        raise RuntimeError(f"{name}: fnoreg-train exited {rc}; see {work / name}.log")
    return out


# -- evaluation --------------------------------------------------------------------------------------

def _load_model(ckpt: Path):
    from fnoreg_core.checkpoint import load_checkpoint
    from fnoreg_core.models import model_from_config

    data = load_checkpoint(ckpt)
    model = model_from_config(data["config"])
    model.load_state_dict(data["state_dict"])
    return model.eval(), data


def _resample(volume: np.ndarray, grid_affine: np.ndarray, world_map: np.ndarray, ddf_vox: np.ndarray | None,
              order: int) -> np.ndarray:
    """``volume`` (on ``grid_affine``) pulled at world_map(grid(p + ddf(p))); 0 outside."""
    from scipy.ndimage import map_coordinates

    shape = volume.shape
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    if ddf_vox is not None:
        idx = idx + ddf_vox
    pts = idx.reshape(3, -1).T
    world = pts @ grid_affine[:3, :3].T + grid_affine[:3, 3]
    world = world @ world_map[:3, :3].T + world_map[:3, 3]
    vox = (world - grid_affine[:3, 3]) @ np.linalg.inv(grid_affine[:3, :3]).T
    return map_coordinates(volume, vox.T, order=order, cval=0.0, mode="constant").reshape(shape)


def _pipeline_ddf(grid_affine: np.ndarray, world_map: np.ndarray, ddf_vox: np.ndarray | None) -> np.ndarray:
    """Voxel displacement of p -> index of world_map(world(p + ddf(p))) on one grid."""
    shape = (80, 96, 112) if ddf_vox is None else ddf_vox.shape[1:]
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    pts = idx if ddf_vox is None else idx + ddf_vox
    world = pts.reshape(3, -1).T @ grid_affine[:3, :3].T + grid_affine[:3, 3]
    world = world @ world_map[:3, :3].T + world_map[:3, 3]
    vox = (world - grid_affine[:3, 3]) @ np.linalg.inv(grid_affine[:3, :3]).T
    return vox.T.reshape(3, *shape) - idx


def _epe_mm(ddf_vox: np.ndarray, true_vox: np.ndarray, spacing: float = 2.0) -> float:
    return float(np.sqrt(((ddf_vox - true_vox) ** 2).sum(0)).mean()) * spacing


def network_scores(model, moved: np.ndarray, fixed: np.ndarray, moving_labels: np.ndarray, fixed_labels: np.ndarray,
                   grid_affine: np.ndarray, world_map: np.ndarray) -> dict[str, float]:
    """The network on an affinely moved pair (both ``(*S)`` float32 on one grid): its seconds, the Dice of the
    moving labels pulled through the affine and its field, and the % of voxels with J <= 0."""
    import torch

    from fnoreg_core.fields import ddf_norm_to_vox
    from fnoreg_core.metrics import folding_fraction, jacobian_determinant, mean_dice

    with torch.no_grad():
        t0 = time.perf_counter()
        ddf = model(torch.from_numpy(moved[None, None]), torch.from_numpy(fixed[None, None]))[0].numpy()
        seconds = time.perf_counter() - t0
    ddf_vox = ddf_norm_to_vox(ddf, fixed.shape)
    warped = _resample(moving_labels, grid_affine, world_map, ddf_vox, 0)
    return {"net_s": seconds, "dice_net": mean_dice(warped, fixed_labels),
            "folded_pct": folding_fraction(jacobian_determinant(ddf_vox))["nonpositive_pct"]}


def evaluate(ckpt: Path | None, threads: int = 1) -> dict:
    """Real pairs after affine (+ network) and synthetic EPE; ``ckpt=None`` gives the affine-only rows."""
    import torch

    from fnoreg_core.affine import affine_register
    from fnoreg_core.data import open_source
    from fnoreg_core.data.templates import TemplatePairs, grid_affine
    from fnoreg_core.fields import ddf_norm_to_vox
    from fnoreg_core.metrics import mean_dice

    torch.set_num_threads(threads)
    model = _load_model(ckpt)[0] if ckpt is not None else None
    pairs = TemplatePairs(dims=3, split="test", resolution="2mm")
    aff = grid_affine("2mm")
    rows = []
    for i in range(len(pairs)):
        s = pairs[i]
        fixed, moving = s["fixed"][0], s["moving"][0]
        a = affine_register(fixed, moving, aff, threads=threads)
        moved = _resample(moving, aff, a.fixed_to_moving_ras, None, 1).astype(np.float32)
        row = {"pair": pairs.pair_name(i), "affine_applied": a.applied,
               "dice_none": mean_dice(s["moving_labels"][0], s["fixed_labels"][0]),
               "dice_affine": mean_dice(_resample(s["moving_labels"][0], aff, a.fixed_to_moving_ras, None, 0),
                                        s["fixed_labels"][0])}
        if model is not None:
            row.update(network_scores(model, moved, fixed, s["moving_labels"][0], s["fixed_labels"][0], aff,
                                      a.fixed_to_moving_ras))
        rows.append(row)
    synth = open_source("synth:brains", 3, "test", shape=(80, 96, 112))
    epe = []
    for i in range(8):  # held-out synthetic brains (the full 5 deg / 6 % / 3 % affine), through the pipeline
        s = synth.load(i, return_ddf=True)
        true = s["ddf_vox"]
        fixed, moving = s["fixed"][0], s["moving"][0]
        a = affine_register(fixed, moving, aff, threads=threads)
        row = {"pair": s["name"], "epe_none_mm": _epe_mm(np.zeros_like(true), true),
               "epe_affine_mm": _epe_mm(_pipeline_ddf(aff, a.fixed_to_moving_ras, None), true)}
        if model is not None:
            moved = _resample(moving, aff, a.fixed_to_moving_ras, None, 1).astype(np.float32)
            with torch.no_grad():
                ddf = model(torch.from_numpy(moved[None, None]), torch.from_numpy(fixed[None, None]))[0].numpy()
            row["epe_net_mm"] = _epe_mm(_pipeline_ddf(aff, a.fixed_to_moving_ras, ddf_norm_to_vox(ddf, fixed.shape)), true)
        epe.append(row)
    return {"real": rows, "synthetic": epe}


def summarise(name: str, ev: dict, run: Path | None) -> dict:
    real, syn = ev["real"], ev["synthetic"]
    out = {"recipe": name, "dice_affine": float(np.mean([r["dice_affine"] for r in real])),
           "epe_none_mm": float(np.mean([r["epe_none_mm"] for r in syn])),
           "epe_affine_mm": float(np.mean([r["epe_affine_mm"] for r in syn])),
           "pairs": {r["pair"]: {k: v for k, v in r.items() if k != "pair"} for r in real}}
    if "dice_net" in real[0]:
        out.update(dice_net=float(np.mean([r["dice_net"] for r in real])),
                   min_gain=float(min(r["dice_net"] - r["dice_affine"] for r in real)),
                   folded_pct=float(np.mean([r["folded_pct"] for r in real])),
                   epe_net_mm=float(np.mean([r["epe_net_mm"] for r in syn])))
    if run is not None:
        from fnoreg_core.checkpoint import load_checkpoint

        ck = load_checkpoint(run / "best.pt")
        last = load_checkpoint(run / "last.pt")
        out.update(best_step=int(ck["step"]), steps=int(last["step"]), train_cpu_min=float(last["train_seconds"]) / 60,
                   val_dice=float(ck["metrics"].get("val_dice", float("nan"))))
    return out


def write(results: list[dict], budget: float, path_md: Path) -> None:
    lines = ["# Training-recipe study (issue 15)", "",
             f"`python benchmarks/recipe_study.py --budget-min {budget:g}` ({time.strftime('%Y-%m-%d %H:%M')}, "
             f"{os.cpu_count()} cores here, one thread per training, budget {budget:g} CPU-min each; all FNOReg "
             "3d-cpu, batch 1, Adam with cosine decay). Real pairs: 2 mm template set, SimpleITK affine first. "
             "Synthetic: 8 held-out `synth:brains` pairs at 2 mm (full relative affine), end-point error in mm "
             "of no registration, the affine stage, and affine + network.", "",
             "| recipe | what | steps | CPU min | val Dice (synth) | Dice affine | Dice affine+net | worst pair gain | "
             "% J<=0 | EPE none / affine (mm) | EPE affine+net (mm) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        what = RECIPES.get(r["recipe"], ("",))[0]
        if "dice_net" not in r:
            lines.append(f"| {r['recipe']} | {what} | - | - | - | {r['dice_affine']:.4f} | - | - | - | "
                         f"{r['epe_none_mm']:.2f} / {r.get('epe_affine_mm', float('nan')):.2f} | - |")
            continue
        lines.append(f"| {r['recipe']} | {what} | {r.get('steps', '-')} | {r.get('train_cpu_min', 0):.1f} | "
                     f"{r.get('val_dice', float('nan')):.4f} | {r['dice_affine']:.4f} | {r['dice_net']:.4f} | "
                     f"{r['min_gain']:+.4f} | {r['folded_pct']:.3f} | {r['epe_none_mm']:.2f} / "
                     f"{r.get('epe_affine_mm', float('nan')):.2f} | {r['epe_net_mm']:.2f} |")
    lines += ["", "Per pair (Dice affine -> affine + net):", ""]
    for r in results:
        if "dice_net" in r:
            per = "; ".join(f"{p}: {v['dice_affine']:.3f} -> {v['dice_net']:.3f}" for p, v in r["pairs"].items())
            lines.append(f"- {r['recipe']}: {per}")
    lines.append("")
    lines.append("Commands: " + "; ".join(f"`{k}`: fnoreg-train {' '.join(COMMON + v[1])}" for k, v in RECIPES.items()))
    path_md.write_text("\n".join(lines) + "\n")


#: issue 15's targets for affine + network (no refinement) at 2 mm
TARGET_PAIR, TARGET_DICE, TARGET_FOLDED_PCT, TARGET_NET_S = "colin27->fsaverage", 0.645, 0.5, 1.0


def targets(r: dict) -> list[str]:
    """Issue 15's targets for one checkpoint's summary, each with met / not met."""
    pair = r["pairs"][TARGET_PAIR]
    colin = {k: v for k, v in r["pairs"].items() if "colin27" in k}
    improved = all(v["dice_net"] > v["dice_affine"] for v in colin.values())
    net_s = max(v["net_s"] for v in r["pairs"].values())

    def line(what: str, measured: str, ok: bool) -> str:
        return f"- {what}: {measured}: {'met' if ok else 'not met'}"

    return [line(f"{TARGET_PAIR} Dice >= {TARGET_DICE}", f"{pair['dice_net']:.4f} (affine {pair['dice_affine']:.4f})",
                 pair["dice_net"] >= TARGET_DICE),
            line("both Colin27 directions improved over the affine",
                 ", ".join(f"{k} {v['dice_affine']:.4f} -> {v['dice_net']:.4f}" for k, v in colin.items()), improved),
            line(f"{TARGET_PAIR} folded voxels < {TARGET_FOLDED_PCT} %", f"{pair['folded_pct']:.3f} %",
                 pair["folded_pct"] < TARGET_FOLDED_PCT),
            line(f"network time <= {TARGET_NET_S:g} s at 2 mm (slowest pair, PyTorch eager, the threads of the run)",
                 f"{net_s:.2f} s", net_s <= TARGET_NET_S),
            line("synthetic held-out pairs: end-point error of affine + network <= half of the unregistered",
                 f"{r['epe_net_mm']:.2f} mm vs {r['epe_none_mm']:.2f} mm", r["epe_net_mm"] <= 0.5 * r["epe_none_mm"])]


def evaluate_checkpoints(paths: list[Path], threads: int = 2) -> int:
    """A table of checkpoints (e.g. along a long run): steps, real-pair Dice after affine, EPE; the targets."""
    from fnoreg_core.checkpoint import load_checkpoint

    base = summarise("affine only", evaluate(None, threads), None)
    pairs = list(base["pairs"])
    lines = ["# Real-pair Dice along the long run (issue 15)", "",
             f"`python benchmarks/recipe_study.py --threads {threads} --checkpoints {' '.join(str(p) for p in paths)}` "
             f"({time.strftime('%Y-%m-%d %H:%M')}, {threads} threads). Pipeline: SimpleITK affine, then the network "
             "(2 mm). Steps count optimiser steps of the run (batch 1 on the CPU, 8 on the GPU).", "",
             "| checkpoint | step | val Dice (synth) | " + " | ".join(pairs) + " | mean | worst gain | % J<=0 | "
             "EPE affine+net (mm) |", "|---|---|---|" + "---|" * (len(pairs) + 4),
             "| affine only | - | - | " + " | ".join(f"{base['pairs'][p]['dice_affine']:.4f}" for p in pairs) +
             f" | {base['dice_affine']:.4f} | - | 0 | {base['epe_affine_mm']:.2f} |"]
    checks = []
    for path in paths:
        ck = load_checkpoint(path)
        r = summarise(str(path), evaluate(path, threads), None)
        lines.append(f"| {path} | {ck['step']} | {ck['metrics'].get('val_dice', float('nan')):.4f} | " +
                     " | ".join(f"{r['pairs'][p]['dice_net']:.4f}" for p in pairs) +
                     f" | {r['dice_net']:.4f} | {r['min_gain']:+.4f} | {r['folded_pct']:.3f} | {r['epe_net_mm']:.2f} |")
        print(lines[-1], flush=True)
        checks += ["", f"Targets of issue 15, `{path}` (step {ck['step']}, {float(ck.get('train_seconds', 0)) / 60:.1f} "
                   "min of optimisation in its run):", "", *targets(r)]
    lines += checks
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "long_run.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-min", type=float, default=8.0, help="CPU minutes of optimisation per recipe")
    p.add_argument("--jobs", type=int, default=1, help="recipes trained at once (one thread each)")
    p.add_argument("--only", nargs="*", help=f"recipes to run (default all: {', '.join(RECIPES)})")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "recipe_study")
    p.add_argument("--eval-only", action="store_true", help="evaluate the runs already in --work")
    p.add_argument("--checkpoints", nargs="+", type=Path,
                   help="evaluate these checkpoints (e.g. a long run's) the same way and write "
                        "benchmarks/results/long_run.md instead")
    p.add_argument("--threads", type=int, default=2, help="--checkpoints: threads of the evaluation. Default: 2")
    args = p.parse_args(argv)
    if args.checkpoints:
        return evaluate_checkpoints(args.checkpoints, args.threads)
    names = args.only or list(RECIPES)
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        print(f"recipe_study: unknown recipes {unknown}; known: {list(RECIPES)}", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.eval_only:
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            list(pool.map(lambda n: train(n, args.budget_min, args.work), names))
    path_json = RESULTS / "recipe_study.json"
    earlier = {r["recipe"]: r for r in json.loads(path_json.read_text())} if path_json.is_file() else {}
    results = [summarise("affine only", evaluate(None), None)]
    results += [r for k, r in earlier.items() if k not in names and k != "affine only"]
    for name in names:
        run = args.work / name
        if (run / "best.pt").exists():
            results.append(summarise(name, evaluate(run / "best.pt"), run))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "pairs"}), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path_json.write_text(json.dumps(results, indent=1) + "\n")
    write(results, args.budget_min, RESULTS / "recipe_study.md")
    print((RESULTS / "recipe_study.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
