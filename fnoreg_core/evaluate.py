"""fnoreg-eval: Dice, folding, SDlogJ and time per pair of a model and of baselines on one pair set.

Examples:
  fnoreg-eval runs/demo2d/best.pt --data templates --res 160x192
  fnoreg-eval model.onnx --data oasis:/data/neurite-oasis --res 160x192x224 --split test
  fnoreg-eval runs/r3d/best.pt --data pairs:assets/demo/3d_2mm/pairs.csv --baselines none,affine,syn

Methods: the model (a fnoreg-train checkpoint; exported models (.onnx / .engine) through the runtime's
backends when run as ``fnoreg-eval``, see :mod:`fnoreg_export.eval_cli`), and the
baselines ``none`` (identity), ``affine`` and ``syn`` (dipy: multi-resolution affine by mutual
information; symmetric diffeomorphic registration with local cross-correlation, as ANTs SyN). dipy
is the classical baseline because it installs from wheels with numpy/scipy only (``pip install
dipy``) and is what the classical rows of docs/BENCHMARKS.md were measured with.

Metrics (``fnoreg_core.metrics``, the same calls as fnoreg-register, the demo and the GUI): mean
Dice over labels present in both images (background excluded), % voxels with J <= 0 and J < 0 and
SDlogJ of the Jacobian of the voxel-unit field (J does not depend on the voxel size), end-point
error in mm on synthetic pairs, and wall time per pair. Outputs: ``OUT/pairs.csv`` (one row per method and pair), ``OUT/summary.json``
and ``OUT/summary.md`` (mean +- sd per method).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .data import SPECS_HELP
from .staging import OUTPUT_OPTION_HELP
from .validate import int_option, max_threads

__all__ = ["evaluate", "main", "BASELINES", "summarise", "markdown_table", "EvalError", "end_point_error",
           "baseline_predictor"]

BASELINES = ("none", "affine", "syn")

#: predictor(moving, fixed) -> ddf_vox (ndim, *spatial), both images (*spatial) float32 in [0, 1]
Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


class EvalError(ValueError):
    """Bad evaluation input: reported with exit code 2."""


# -- methods -----------------------------------------------------------------------------------

def torch_predictor(checkpoint: str | Path, device: str = "cpu") -> tuple[Predictor, dict[str, Any]]:
    import torch

    from fnoreg_core.checkpoint import CheckpointError, load_model
    from fnoreg_core.fields import ddf_norm_to_vox

    try:
        model, ckpt = load_model(checkpoint, map_location=device)
    except CheckpointError as exc:
        raise EvalError(str(exc)) from None
    model.to(device)

    def predict(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        model.check_inputs(torch.from_numpy(moving[None, None]), torch.from_numpy(fixed[None, None]))
        with torch.no_grad():
            ddf = model(torch.from_numpy(moving[None, None]).to(device), torch.from_numpy(fixed[None, None]).to(device))
        return ddf_norm_to_vox(ddf[0].cpu().numpy(), fixed.shape)

    predict.warmup = True
    return predict, {"dims": model.dims, "name": ckpt.get("name", Path(checkpoint).stem),
                     "min_size": model.min_spatial_size()}


def _coordinate_map(transform: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """ddf_vox of a dipy transform on one grid: transform each coordinate image (exact for linear
    interpolation of a linear function). Voxels mapped from outside the moving image are NaN."""
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    out = np.empty((len(shape), *shape), np.float32)
    inside = np.ones(shape, bool)
    for axis, g in enumerate(grids):
        mapped = transform(g + 1.0)  # +1: 0 marks "outside the moving image"
        inside &= mapped > 0.5
        out[axis] = mapped - 1.0 - g
    out[:, ~inside] = np.nan
    return out


def dipy_predictor(kind: str, affine: np.ndarray | None = None) -> Predictor:
    """``affine`` or ``syn`` registration with dipy, both images on one grid with ``affine`` (vox -> mm)."""
    try:
        from dipy.align import transforms as dt
        from dipy.align.imaffine import AffineMap, AffineRegistration, MutualInformationMetric, transform_centers_of_mass
        from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
        from dipy.align.metrics import CCMetric
    except ImportError:
        raise EvalError("the affine/syn baselines need dipy: pip install dipy") from None

    def predict(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        nd = moving.ndim
        grid = np.eye(nd + 1) if affine is None else affine
        moving64, fixed64 = moving.astype(np.float64), fixed.astype(np.float64)
        small = min(fixed.shape) < 64
        reg = AffineRegistration(metric=MutualInformationMetric(nbins=32), level_iters=[200, 100] if small else [1000, 200, 50],
                                 sigmas=[1.0, 0.0] if small else [3.0, 1.0, 0.0],
                                 factors=[2, 1] if small else [4, 2, 1], verbosity=0)
        aff = transform_centers_of_mass(fixed64, grid, moving64, grid).affine
        stages = (dt.TranslationTransform2D(), dt.RigidTransform2D(), dt.AffineTransform2D()) if nd == 2 else \
            (dt.TranslationTransform3D(), dt.RigidTransform3D(), dt.AffineTransform3D())
        for transform in stages:
            aff = reg.optimize(fixed64, moving64, transform, None, static_grid2world=grid, moving_grid2world=grid,
                               starting_affine=aff).affine

        amap = AffineMap(aff, domain_grid_shape=fixed.shape, domain_grid2world=grid,
                         codomain_grid_shape=moving.shape, codomain_grid2world=grid)
        if kind == "affine":
            return _coordinate_map(lambda img: amap.transform(img, interpolation="linear"), fixed.shape)
        sdr = SymmetricDiffeomorphicRegistration(metric=CCMetric(moving.ndim), level_iters=[100, 50, 25] if not small else [50, 25])
        mapping = sdr.optimize(fixed64, moving64, grid, grid, aff)
        return _coordinate_map(lambda img: mapping.transform(img, interpolation="linear"), fixed.shape)

    return predict


def baseline_predictor(kind: str, affine: np.ndarray | None = None) -> Predictor:
    """A classical method of :data:`BASELINES`: ``none`` (zero displacement) or dipy ``affine`` / ``syn``."""
    if kind == "none":
        return lambda moving, fixed: np.zeros((moving.ndim, *moving.shape), np.float32)
    return dipy_predictor(kind, affine)


# -- evaluation --------------------------------------------------------------------------------

def _warp_nearest(labels: np.ndarray, ddf_vox: np.ndarray) -> np.ndarray:
    """Labels at ``x + ddf_vox(x)``, nearest neighbour, 0 outside the image: the rule of the runtime
    (:func:`fnoreg_core.geometry.warp_vox`), so fnoreg-eval and fnoreg-register score one field alike."""
    from fnoreg_core.geometry import warp_vox

    return warp_vox(labels, ddf_vox, order=0)


def evaluate_pair(predict: Predictor, sample: dict[str, Any], spacing) -> dict[str, Any]:
    from fnoreg_core.metrics import registration_report

    moving, fixed = sample["moving"][0], sample["fixed"][0]
    t0 = time.perf_counter()
    ddf_vox = predict(moving, fixed)
    elapsed = time.perf_counter() - t0
    valid = np.all(np.isfinite(ddf_vox), axis=0)
    if not valid.all():  # baselines: drop voxels mapped from outside the moving image and their neighbours
        from scipy.ndimage import binary_erosion

        valid = binary_erosion(valid, iterations=2)
    kwargs: dict[str, Any] = {}
    if "moving_labels" in sample:
        kwargs = {"warped_labels": _warp_nearest(sample["moving_labels"][0], ddf_vox),
                  "fixed_labels": sample["fixed_labels"][0]}
    # The field is in voxels on every axis: its Jacobian takes no spacing (``spacing`` is only for a
    # field in mm; with a voxel field it would divide the gradients by the voxel size and, at 2 mm,
    # undercount folding). ``spacing`` is used for the end-point error in mm below.
    rep = registration_report(np.nan_to_num(ddf_vox), mask=valid if not valid.all() else None, **kwargs)
    rep["time_s"] = elapsed
    if "ddf_vox" in sample:  # a known deformation (synthetic pairs): end-point error in mm
        rep.update(end_point_error(ddf_vox, sample["ddf_vox"], spacing, sample.get("fixed_labels", [None])[0]))
    return rep


def end_point_error(ddf_vox: np.ndarray, true_vox: np.ndarray, spacing=None, labels: np.ndarray | None = None
                    ) -> dict[str, float]:
    """Mean end-point error ``|u - u_true|`` in mm (voxels times ``spacing``), over all voxels
    (``epe_mm``) and over the foreground ``labels > 0`` (``epe_fg_mm``). NaN voxels are left out."""
    scale = np.asarray(spacing if spacing is not None else [1.0] * len(ddf_vox), np.float64)
    diff = (np.asarray(ddf_vox, np.float64) - np.asarray(true_vox, np.float64)) * scale.reshape((-1,) + (1,) * (ddf_vox.ndim - 1))
    err = np.sqrt(np.sum(diff ** 2, axis=0))
    ok = np.isfinite(err)
    out = {"epe_mm": float(err[ok].mean())}
    if labels is not None:
        fg = ok & (labels > 0)
        out["epe_fg_mm"] = float(err[fg].mean()) if fg.any() else math.nan
    return out


def pair_row(method: str, pair: str, rep: dict[str, Any]) -> dict[str, Any]:
    """One flat table row from :func:`evaluate_pair`'s report (``dice_<label>`` columns)."""
    row = {"method": method, "pair": pair, "mean_dice": rep.get("mean_dice", math.nan),
           "nonpositive_jac_pct": rep["nonpositive_jac_pct"], "negative_jac_pct": rep["negative_jac_pct"],
           "sdlogj": rep["sdlogj"], "time_s": rep["time_s"]}
    row.update({k: rep[k] for k in ("epe_mm", "epe_fg_mm") if k in rep})
    row.update({f"dice_{k}": v for k, v in rep.get("dice_per_label", {}).items()})
    return row


def evaluate(methods: dict[str, Predictor], source, max_pairs: int | None = None,
             progress: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """One row per (method, pair): mean_dice, dice per label, folding %, SDlogJ, time_s."""
    rows = []
    n = len(source) if max_pairs is None else min(max_pairs, len(source))
    spacing = source.voxel_size_mm
    for i in range(n):
        sample = source[i]
        for method, predict in methods.items():
            if i == 0 and getattr(predict, "warmup", False):  # first call builds caches / sessions
                predict(sample["moving"][0], sample["fixed"][0])
            row = pair_row(method, sample.get("name", str(i)), evaluate_pair(predict, sample, spacing))
            rows.append(row)
            progress(f"[{i + 1}/{n}] {row['pair']} {method}: Dice {row['mean_dice']:.4f}, "
                     f"J<=0 {row['nonpositive_jac_pct']:.3f} %, {row['time_s']:.2f} s")
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]
        stats: dict[str, float] = {"pairs": len(sel)}
        for key in ("mean_dice", "nonpositive_jac_pct", "negative_jac_pct", "sdlogj", "time_s", "epe_mm", "epe_fg_mm"):
            if key not in sel[0]:
                continue
            vals = np.array([r[key] for r in sel], float)
            vals = vals[np.isfinite(vals)]
            stats[key] = float(vals.mean()) if vals.size else math.nan
            stats[key + "_sd"] = float(vals.std()) if vals.size else math.nan
        labels = sorted({k for r in sel for k in r if k.startswith("dice_")}, key=lambda k: int(k[5:]))
        stats["dice_per_label"] = {k[5:]: float(np.nanmean([r.get(k, math.nan) for r in sel])) for k in labels}
        out[method] = stats
    return out


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    lines = ["| method | pairs | Dice (mean +- sd) | % J <= 0 | % J < 0 | SDlogJ | time / pair (s) |",
             "|---|---|---|---|---|---|---|"]
    for method, s in summary.items():
        lines.append(f"| {method} | {s['pairs']} | {s['mean_dice']:.4f} +- {s['mean_dice_sd']:.4f} | "
                     f"{s['nonpositive_jac_pct']:.3f} | {s['negative_jac_pct']:.3f} | {s['sdlogj']:.3f} | "
                     f"{s['time_s']:.3f} |")
    return "\n".join(lines) + "\n"


# -- CLI ---------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fnoreg-eval", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="fnoreg-train checkpoint (.pt) or exported ONNX; omit to run baselines only")
    p.add_argument("--data", required=True, help=SPECS_HELP)
    p.add_argument("--res", help="evaluation size, e.g. 160x192x224 (default: the data's own)")
    p.add_argument("--dims", type=int, choices=(2, 3), help="2 or 3 (default: the model's; needed without a model)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--baselines", default="none", help="comma list of none, affine, syn ('' for none). Default: none")
    p.add_argument("--max-pairs", type=int_option("--max-pairs", 1), help="evaluate only the first N pairs (N >= 1)")
    p.add_argument("--out", type=Path, default=Path("eval"), help="output folder. Default: eval")
    p.add_argument("--overwrite", action="store_true", help=OUTPUT_OPTION_HELP)
    p.add_argument("--device", default="cpu", help="PyTorch device for checkpoints. Default: cpu")
    p.add_argument("--threads", type=int_option("--threads", 1, max_threads), help="onnxruntime / torch threads")
    return p


#: loader(path, threads) -> (predictor, {"dims", "name", "min_size"}) per model file suffix
Loader = Callable[[Path, "int | None"], "tuple[Predictor, dict[str, Any]]"]


def main(argv: list[str] | None = None, loaders: dict[str, Loader] | None = None) -> int:
    """``fnoreg-eval``. ``loaders`` maps model file suffixes (``".onnx"``) to predictor loaders;
    checkpoints (any other suffix) load with :func:`torch_predictor`. fnoreg_core does not import
    fnoreg_export: the ``fnoreg-eval`` command (:mod:`fnoreg_export.eval_cli`) passes the runtime's."""
    args = _parser().parse_args(argv)
    loaders = loaders or {}
    from fnoreg_core.checkpoint import CheckpointError
    from fnoreg_core.data import DataSpecError

    from .staging import StagedOutputs
    from .validate import run_cli

    outputs = StagedOutputs(how="files", overwrite=args.overwrite, tool="fnoreg-eval")
    return run_cli("fnoreg-eval", lambda: _run(args, loaders, outputs),
                   (EvalError, DataSpecError, CheckpointError, _train_error()))


def _train_error():
    from fnoreg_core.train import TrainError

    return TrainError


OUTPUT_NAMES = ("pairs.csv", "summary.json", "summary.md")


def _run(args, loaders: dict, outputs) -> int:
    from fnoreg_core.data import open_source
    from fnoreg_core.train import parse_size

    outputs.check(args.out, OUTPUT_NAMES)  # refuse before the work, not after it
    methods: dict[str, Predictor] = {}
    dims = args.dims
    info: dict[str, Any] = {}
    if args.model:
        path = Path(args.model)
        if not path.is_file():
            raise EvalError(f"model {path} does not exist")
        if path.suffix in loaders:
            predict, info = loaders[path.suffix](path, args.threads)
        elif path.suffix in (".onnx", ".engine", ".plan", ".trt"):
            raise EvalError(f"{path.name} is an exported model; evaluate it with the fnoreg-eval command "
                            "(python -m fnoreg_export.eval_cli), which runs it through the runtime's backends")
        else:
            if args.threads:
                import torch

                torch.set_num_threads(args.threads)
            predict, info = torch_predictor(path, args.device)
        if dims is not None and dims != info["dims"]:
            raise EvalError(f"--dims {dims} but the model is {info['dims']}D")
        dims = info["dims"]
        methods[info["name"]] = predict
    if dims is None:
        raise EvalError("give a model or --dims")
    res = parse_size(args.res) if args.res else None
    source = open_source(args.data, dims, args.split, shape=res)
    if info and any(n < m for n, m in zip(source.shape, info["min_size"])):
        raise EvalError(f"size {source.shape} is below the model's minimum {info['min_size']}; use a larger --res")
    for name in [b for b in args.baselines.split(",") if b]:
        if name not in BASELINES:
            raise EvalError(f"unknown baseline {name!r}, expected some of {BASELINES}")
        methods[name] = baseline_predictor(name, _grid_affine(source))
    if not methods:
        raise EvalError("nothing to evaluate: give a model and/or --baselines")
    if not source.has_labels:
        print("fnoreg-eval: note: this data has no labels; Dice is not reported", file=sys.stderr)
    print(f"evaluating {', '.join(methods)} on {source.describe()}")
    rows = evaluate(methods, source, args.max_pairs)
    if not rows:
        raise EvalError(f"{args.data} ({args.split}) gave no pairs to evaluate")
    summary = summarise(rows)
    with outputs:  # the output rule: staged, validated, moved into place (fnoreg_core.staging)
        tmp = outputs.folder(args.out)
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(tmp / "pairs.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        (tmp / "summary.json").write_text(json.dumps({"data": args.data, "split": args.split,
                                                      "size": list(source.shape), "methods": summary}, indent=1) + "\n")
        table = markdown_table(summary)
        (tmp / "summary.md").write_text(f"Data `{args.data}` ({args.split}), size {'x'.join(map(str, source.shape))}\n\n"
                                        + table)
    print(table)
    return 0


def _grid_affine(source) -> np.ndarray:
    """vox -> mm of the evaluation grid (isotropic spacing from the source, identity if unknown)."""
    n = source.dims + 1
    aff = np.eye(n)
    if source.voxel_size_mm:
        aff[: n - 1, : n - 1] = np.diag(source.voxel_size_mm)
    return aff


if __name__ == "__main__":
    sys.exit(main())
