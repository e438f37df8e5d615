"""``fnoreg-register``: register image pairs with an exported FNOReg model (torch-free batch CLI).

One pair::

    fnoreg-register --model fnoreg-3d.onnx fixed.nii.gz moving.nii.gz -o out/

writes into ``out/``

``moved.nii.gz``          the moving image warped onto the fixed grid (original intensities, linear)
``warp.nii.gz``           the displacement field for ITK / ANTs / SimpleITK / 3D Slicer: 5-D NIfTI
                          (X, Y, Z, 1, 3), intent 1007 (vector), LPS millimetres, the fixed image's affine
``jacobian.nii.gz``       Jacobian determinant of the transform on the fixed grid
``moved_labels.nii.gz``   with ``--moving-labels``: the labels warped with nearest neighbour
``affine.txt``            the affine stage's transform (ITK text, LPS, fixed -> moving)
``warp_deformable.nii.gz`` the deformable part alone (``-t affine.txt -t warp_deformable.nii.gz`` = warp)
``report.json``           Dice per label (with both label maps) after every stage, folding %, SDlogJ,
                          timings, grids

The pipeline (:mod:`fnoreg_export.runtime.stages`): ``--affine`` pre-alignment (SimpleITK), the
network, ``--refine`` instance refinement, on the ``--work-res`` grid; ``warp.nii.gz`` composes them.

Many pairs: ``--pairs pairs.csv`` (columns ``moving,fixed`` and optionally ``moving_labels,
fixed_labels,name``; relative paths are relative to the CSV) writes ``out/<name>/`` per pair (name
from the CSV, else ``pair_000``, ``pair_001``, ...) and ``out/summary.csv``.

Exit codes: 0 done; 2 bad input (missing file, not an image, 4-D image, fixed and moving of different
dimensionality, NaNs, a model file that is not an FNOReg export, an unavailable backend, an output
folder that already holds results, or one another run is writing to); 1 internal failure (one line
naming the log file with the traceback). Outputs are built in a private staging folder inside ``OUT``
and moved into place at the end, so a failed run leaves nothing behind; files fnoreg did not write
are never replaced (:mod:`fnoreg_core.staging`).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fnoreg_core.staging import OUTPUT_OPTION_HELP
from fnoreg_core.validate import float_option, int_option, max_threads, run_cli

PROG = "fnoreg-register"

#: --refine when not given (chosen by measurement: docs/ARCHITECTURE.md, benchmarks/stage_choice.py)
DEFAULT_REFINE_CLI = "default"
DEFAULT_REFINE_ITERATIONS = (40, 3)

EPILOG = """\
Examples:
  # one pair, labels for Dice
  fnoreg-register --model fnoreg-3d.onnx fixed.nii.gz moving.nii.gz -o out/ \\
      --moving-labels moving_seg.nii.gz --fixed-labels fixed_seg.nii.gz
  # a batch from a CSV (columns moving,fixed[,moving_labels,fixed_labels,name]), 4 threads
  fnoreg-register --model fnoreg-3d.onnx --pairs pairs.csv -o results/ --threads 4
  # the stages: an affine you already have, refinement with 60 coarse + 3 fine iterations, the native grid
  fnoreg-register fixed.nii.gz moving.nii.gz -o out/ --affine my_affine.txt --refine 60x3 --work-res native
  # apply the warp elsewhere (ANTs): the composed field alone, or the affine and the deformable part
  antsApplyTransforms -d 3 -i moving.nii.gz -r fixed.nii.gz -t out/warp.nii.gz -o moved_ants.nii.gz
  antsApplyTransforms -d 3 -i moving.nii.gz -r fixed.nii.gz -t out/affine.txt -t out/warp_deformable.nii.gz -o m2.nii.gz

Outputs per pair: moved.nii.gz, warp.nii.gz (ITK displacement field: 5-D, intent 1007, LPS mm,
fixed affine; affine included), affine.txt, warp_deformable.nii.gz, jacobian.nii.gz,
moved_labels.nii.gz (with --moving-labels), report.json (a row per stage).
Exit codes: 0 done, 2 bad input (nothing is written), 1 internal error.
"""

#: Files written per pair (the names of :data:`fnoreg_export.runtime.outputs.OUTPUT_FILES`).
OUTPUT_FILES = ("moved.nii.gz", "warp.nii.gz", "jacobian.nii.gz", "moved_labels.nii.gz", "affine.txt",
                "warp_deformable.nii.gz", "report.json")


class InputError(ValueError):
    """Bad command-line input: reported as ``fnoreg-register: error: ...``, exit code 2."""


@dataclass
class Pair:
    name: str
    fixed: Path
    moving: Path
    moving_labels: Path | None = None
    fixed_labels: Path | None = None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Register images with an exported FNOReg model (ONNX or TensorRT engine). Writes the moved "
                    "image, an ITK/ANTs/Slicer displacement field, the Jacobian determinant, warped labels and a "
                    "JSON report.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fixed", nargs="?", metavar="FIXED", help="fixed (target) image, NIfTI/MGZ, 2-D or 3-D")
    p.add_argument("moving", nargs="?", metavar="MOVING", help="moving (source) image, NIfTI/MGZ")
    p.add_argument("--model", "-m", metavar="M",
                   help="exported model: .onnx (card embedded or M.json beside it) or TensorRT .engine "
                        "(with M.json). Default: the bundled model for the images' dimensionality "
                        "(assets/models/fnoreg2d or fnoreg3d)")
    p.add_argument("--output", "-o", required=True, metavar="OUT",
                   help="output folder (created; one subfolder per pair with --pairs)")
    p.add_argument("--moving-labels", metavar="L", help="label map of the moving image: warped (nearest) to "
                   "moved_labels.nii.gz. Default: none")
    p.add_argument("--fixed-labels", metavar="L", help="label map of the fixed image: with --moving-labels, Dice "
                   "per label in report.json. Default: none")
    p.add_argument("--pairs", metavar="CSV", help="register every row of CSV (columns moving,fixed and optional "
                   "moving_labels,fixed_labels,name) instead of FIXED MOVING. Default: none")
    p.add_argument("--backend", default="auto",
                   choices=["auto", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt"],
                   help="inference backend. Default: auto (tensorrt for .engine, onnxruntime-cuda if available, "
                        "else onnxruntime-cpu)")
    p.add_argument("--threads", type=int_option("--threads", 1, max_threads), default=None, metavar="N",
                   help="onnxruntime intra-op threads. Default: onnxruntime's choice (all physical cores)")
    p.add_argument("--no-canonical", action="store_true",
                   help="run the network on the fixed grid as stored instead of its RAS+ reorientation. "
                        "Default: reorient (the training orientation); outputs are on the fixed grid either way")
    p.add_argument("--affine", default="auto", metavar="MODE|FILE",
                   help="affine pre-alignment: auto (= affine: SimpleITK, moments + 12 dof, correlation), rigid, "
                        "none, or an ITK/ANTs transform file you already have (.txt/.tfm/.mat, fixed -> moving). "
                        "Not applied when it does not improve the similarity (the report says so). Default: auto")
    p.add_argument("--refine", default=None, metavar="SPEC",
                   help="instance refinement of the network's field (LNCC + diffusion): off, default "
                        f"({'x'.join(map(str, DEFAULT_REFINE_ITERATIONS))}: coarse x fine iterations), a count (60), "
                        "or counts per level (40x3). Default: " + DEFAULT_REFINE_CLI)
    p.add_argument("--refine-time", type=float_option("--refine-time", 0, lo_open=True), default=None, metavar="S",
                   help="stop the refinement after S seconds (keeping its best field). Default: no cap")
    p.add_argument("--work-res", default="auto", metavar="RES",
                   help="grid the affine, the network and the refinement run on: auto (2mm in 3-D, native in 2-D), "
                        "2mm, native, or a size DxHxW; the field is mapped to the fixed image's own grid. "
                        "Default: auto")
    p.add_argument("--overwrite", action="store_true", help=OUTPUT_OPTION_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar / per-pair lines (HPC logs)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    return p


# ------------------------------------------------------------------------------------------------
# inputs


def _check_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputError(f"{what} {path} does not exist; check the path")
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; expected an image file")
    return path


def _safe_name(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    return clean or "pair"


def read_pairs(csv_path: Path) -> list[Pair]:
    """Pairs of a CSV with columns ``moving,fixed`` [+ ``moving_labels,fixed_labels,name``]."""
    _check_file(csv_path, "pairs CSV")
    try:
        with open(csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read pairs CSV {csv_path}: {exc}") from None
    if not rows:
        raise InputError(f"pairs CSV {csv_path} has no rows; expected a header 'moving,fixed' and one row per pair")
    columns = {(c or "").strip() for c in rows[0].keys()}
    missing = {"moving", "fixed"} - columns
    if missing:
        raise InputError(f"pairs CSV {csv_path} lacks column(s) {', '.join(sorted(missing))}; found "
                         f"{', '.join(sorted(c for c in columns if c))}")
    base = csv_path.parent
    pairs, seen = [], set()
    for i, raw in enumerate(rows):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}

        def path_of(key: str, required: bool) -> Path | None:
            value = row.get(key, "")
            if not value:
                if required:
                    raise InputError(f"pairs CSV {csv_path} row {i + 2}: empty '{key}'")
                return None
            p = Path(value).expanduser()
            return p if p.is_absolute() else base / p

        name = _safe_name(row.get("name", "")) if row.get("name") else f"pair_{i:03d}"
        if name in seen:
            raise InputError(f"pairs CSV {csv_path} row {i + 2}: duplicate pair name {name!r}")
        seen.add(name)
        pairs.append(Pair(name, path_of("fixed", True), path_of("moving", True),
                          path_of("moving_labels", False), path_of("fixed_labels", False)))
    return pairs


def _precheck(pair: Pair) -> int:
    """Files exist and have the header of a 2-D/3-D image (cheap: no voxel data read); returns the dims."""
    import nibabel as nib

    from fnoreg_core.geometry import squeeze_shape

    shapes = {}
    for what, path in (("fixed image", pair.fixed), ("moving image", pair.moving),
                       ("moving labels", pair.moving_labels), ("fixed labels", pair.fixed_labels)):
        if path is None:
            continue
        _check_file(path, what)
        try:
            shape = list(nib.load(str(path)).shape)
        except Exception as exc:
            from fnoreg_core.io import IMAGE_SUFFIXES

            raise InputError(f"{what} {path} is not a readable image ({type(exc).__name__}: {exc}); expected "
                             f"NIfTI or MGZ ({', '.join(IMAGE_SUFFIXES)})") from None
        shape = list(squeeze_shape(shape, 3))
        if len(shape) > 3:
            raise InputError(f"{what} {path} is {len(shape)}-D with shape {tuple(shape)}; expected one 2-D or 3-D "
                             "image (extract a single volume first, e.g. with fslroi or nibabel)")
        shapes[what] = tuple(shape)
    f, m = shapes["fixed image"], shapes["moving image"]
    if _ndim_of(f) != _ndim_of(m):
        raise InputError(f"fixed image {pair.fixed} is {_ndim_of(f)}-D {f} but moving image {pair.moving} is "
                         f"{_ndim_of(m)}-D {m}; register images of one dimensionality")
    return _ndim_of(f)


def _ndim_of(shape: tuple[int, ...]) -> int:
    from fnoreg_core.geometry import squeeze_shape

    return len(squeeze_shape(shape, 2))


# ------------------------------------------------------------------------------------------------
# one pair


def pipeline_from_args(args: argparse.Namespace):
    """The :class:`~fnoreg_export.runtime.PipelineOptions` of ``--affine --refine --refine-time --work-res``."""
    from .runtime import PipelineOptions, parse_refine, parse_work_res

    try:
        refine = parse_refine(args.refine if args.refine is not None else DEFAULT_REFINE_CLI)
        parse_work_res(args.work_res)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if args.refine_time is not None:
        if not args.refine_time > 0:
            raise InputError(f"--refine-time must be > 0 seconds, got {args.refine_time}")
        if refine is not None:
            refine.time_limit_s = args.refine_time
    affine = args.affine
    if affine not in ("auto", "affine", "rigid", "none"):
        path = Path(affine).expanduser()
        _check_file(path, "affine file")
        affine = str(path)
    return PipelineOptions(affine=affine, refine=refine, work_res=args.work_res, threads=args.threads)


def register_pair(reg, pair: Pair, out_dir: Path, pipeline=None) -> dict[str, Any]:
    """Register one pair and write its files into ``out_dir`` (which exists). Returns the report.

    Files and report: :mod:`fnoreg_export.runtime.outputs` (the writer the GUI and the demo use).
    """
    from fnoreg_core.io import load_image

    from .runtime import warp_labels
    from .runtime.outputs import dice_report, model_info, write_outputs

    t0 = time.perf_counter()
    fixed = load_image(pair.fixed, canonical=False)
    moving = load_image(pair.moving, canonical=False)
    if fixed.data.ndim != moving.data.ndim:
        raise InputError(f"fixed image {pair.fixed} is {fixed.data.ndim}-D {fixed.data.shape} but moving image "
                         f"{pair.moving} is {moving.data.ndim}-D {moving.data.shape}; register images of one "
                         "dimensionality")
    if fixed.data.ndim != reg.dims:
        raise InputError(f"{pair.fixed} is {fixed.data.ndim}-D but the model {reg.card.name} is {reg.dims}D; use a "
                         f"{fixed.data.ndim}D model")
    moving_labels = load_image(pair.moving_labels, canonical=False, labels=True) if pair.moving_labels else None
    fixed_labels = load_image(pair.fixed_labels, canonical=False, labels=True) if pair.fixed_labels else None
    for what, lab in (("moving labels", moving_labels), ("fixed labels", fixed_labels)):
        if lab is not None and lab.data.ndim != reg.dims:
            raise InputError(f"{what} {lab.path} is {lab.data.ndim}-D; expected {reg.dims}-D like the images")
    t_load = time.perf_counter() - t0

    scored = moving_labels is not None and fixed_labels is not None
    result = reg.register(fixed=fixed, moving=moving, pipeline=pipeline, keep_stages=scored)

    t0 = time.perf_counter()
    dice = None
    warped = None
    if moving_labels is not None:
        warped = warp_labels(moving_labels, result)
        if fixed_labels is not None:
            dice = dice_report(result, warped, fixed_labels, moving_labels)
            dice["per_stage"] = stage_dice(result, moving_labels, fixed_labels)
    t_labels = time.perf_counter() - t0

    inputs = {"fixed": pair.fixed, "moving": pair.moving, "moving_labels": pair.moving_labels,
              "fixed_labels": pair.fixed_labels}
    return write_outputs(out_dir, result, moved_labels=warped, name=pair.name, inputs=inputs, model=model_info(reg),
                         dice=dice, timings={"load": t_load, **result.timings, "labels": t_labels})


def stage_dice(result, moving_labels, fixed_labels) -> dict[str, float]:
    """Mean Dice after each stage (``none``, ``affine``, ``network``, ...), the last one being the result's."""
    from fnoreg_core.metrics import mean_dice

    from .runtime import resample_to_fixed, warp_labels

    target = resample_to_fixed(fixed_labels, result, labels=True)
    out = {"none": mean_dice(resample_to_fixed(moving_labels, result, result.moving_affine
                                               if not hasattr(moving_labels, "affine") else None, labels=True),
                             target)}
    for stage in result.stage_ddf_mm:
        out[stage] = mean_dice(warp_labels(moving_labels, result, stage=stage), target)
    last = [r["stage"] for r in result.stages if r["stage"] in ("affine", "network", "refine")]
    final = last[-1] if last else "result"
    out[final] = mean_dice(warp_labels(moving_labels, result), target)
    return out


# ------------------------------------------------------------------------------------------------
# output folder (all or nothing)


def _output_names(pairs: list[Pair], batch: bool) -> list[str]:
    """Relative paths a run will write (checked against the folder before any work)."""
    names = []
    for pair in pairs:
        files = [f for f in OUTPUT_FILES if f != "moved_labels.nii.gz" or pair.moving_labels is not None]
        names += [f"{pair.name}/{f}" for f in files] if batch else files
    return names + (["summary.csv"] if batch else [])


# ------------------------------------------------------------------------------------------------
# main


def _progress(items: list, enabled: bool):
    if not enabled:
        return items, None
    try:
        from tqdm import tqdm
    except ImportError:
        return items, "lines"
    return tqdm(items, desc="registering", unit="pair", file=sys.stderr, dynamic_ncols=True), "tqdm"


def run(args: argparse.Namespace) -> int:
    from fnoreg_export.runtime import Registrator

    if args.pairs:
        if args.fixed or args.moving:
            raise InputError("give either FIXED MOVING or --pairs CSV, not both")
        if args.moving_labels or args.fixed_labels:
            raise InputError("with --pairs, give labels as CSV columns moving_labels,fixed_labels")
        pairs = read_pairs(Path(args.pairs))
    else:
        if not (args.fixed and args.moving):
            raise InputError("expected FIXED and MOVING images (or --pairs CSV)")
        if args.fixed_labels and not args.moving_labels:
            raise InputError("--fixed-labels needs --moving-labels (Dice compares the warped moving labels with "
                             "the fixed labels)")
        pairs = [Pair("pair", Path(args.fixed), Path(args.moving),
                      Path(args.moving_labels) if args.moving_labels else None,
                      Path(args.fixed_labels) if args.fixed_labels else None)]
    if args.threads is not None and args.threads < 1:
        raise InputError(f"expected --threads >= 1, got {args.threads}")
    dims = {_precheck(pair) for pair in pairs}
    model = args.model
    if model is None:
        from fnoreg_export.bundled import BundledModelError, default_model

        if len(dims) > 1:
            raise InputError("the pairs mix 2-D and 3-D images; run them separately or pass --model")
        try:
            model = str(default_model(dims.pop()))
        except BundledModelError as exc:
            raise InputError(str(exc)) from None
    out = Path(args.output).expanduser().absolute()
    batch = bool(args.pairs)
    from fnoreg_core.staging import StagedOutputs

    # each pair folder's / the folder's earlier fnoreg files are replaced as a set (--overwrite); nothing else
    outputs = StagedOutputs(how="entries", overwrite=args.overwrite, tool=PROG)
    outputs.check(out, _output_names(pairs, batch))

    pipeline = pipeline_from_args(args)
    reg = Registrator.load(model, backend=args.backend, threads=args.threads, canonical=not args.no_canonical)
    if not args.quiet:
        print(f"{PROG}: {reg.card.name} {reg.card.version} ({reg.dims}D) on {reg.backend}"
              f"{f', {args.threads} threads' if args.threads else ''}; {len(pairs)} pair(s) -> {out}",
              file=sys.stderr)

    staging = outputs.folder(out, owns=() if batch else OUTPUT_FILES)  # locks OUT: one run at a time
    try:
        rows = []
        items, mode = _progress(pairs, enabled=batch and not (args.no_progress or args.quiet))
        for i, pair in enumerate(items):
            pair_dir = staging / pair.name if batch else staging
            pair_dir.mkdir(exist_ok=True)
            try:
                report = register_pair(reg, pair, pair_dir, pipeline)
            except (InputError, ValueError) as exc:
                raise type(exc)(f"pair {pair.name!r}: {exc}" if batch else str(exc)) from None
            dice = report["dice"]
            rows.append({"name": pair.name, "fixed": str(pair.fixed), "moving": str(pair.moving),
                         "mean_dice": "" if not dice or dice["mean"] is None or math.isnan(dice["mean"])
                         else f"{dice['mean']:.4f}",
                         "mean_dice_before": "" if not dice or math.isnan(dice["mean_before"])
                         else f"{dice['mean_before']:.4f}",
                         "nonpositive_jac_pct": f"{report['jacobian']['nonpositive_pct']:.4f}",
                         "sdlogj": f"{report['jacobian']['sdlogj']:.4f}",
                         "total_s": f"{report['timings_s']['total']:.3f}",
                         "stages": report.get("stages", [])})
            if mode == "lines":
                print(f"[{i + 1}/{len(pairs)}] {pair.name}: {report['timings_s']['total']:.2f} s", file=sys.stderr,
                      flush=True)
        if batch:
            with open(staging / "summary.csv", "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k != "stages"], extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
        outputs.commit()
    except BaseException:
        outputs.discard()
        raise
    if not args.quiet:
        for row in rows:
            dice = f", mean Dice {row['mean_dice']} (before {row['mean_dice_before']})" if row["mean_dice"] else ""
            print(f"{row['name']}: folding {float(row['nonpositive_jac_pct']):.3f} %, SDlogJ "
                  f"{float(row['sdlogj']):.3f}{dice}, {row['total_s']} s", file=sys.stderr)
            for st in row["stages"]:
                if st["stage"] == "working_grid":
                    continue
                extra = f", mean Dice {st['mean_dice']:.4f}" if st.get("mean_dice") is not None else ""
                skipped = "" if st.get("applied", True) else f" (not applied: {st.get('note', '')})"
                print(f"  {st['stage']:<8} {st['seconds']:6.2f} s{extra}{skipped}", file=sys.stderr)
        print(str(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fnoreg-register``. Returns the exit code (0, 1 or 2)."""
    parser = build_parser()
    if argv is None and len(sys.argv) == 1:
        parser.print_usage()
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    from fnoreg_core.io import ImageError

    from fnoreg_core.affine import AffineError
    from fnoreg_core.refine import RefineError

    from .model_card import ModelCardError
    from .runtime import BackendError

    return run_cli(PROG, lambda: run(args),
                   (InputError, ImageError, ModelCardError, BackendError, AffineError, RefineError))


if __name__ == "__main__":
    sys.exit(main())
