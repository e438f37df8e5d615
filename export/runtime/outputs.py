"""The one writer and the one report schema of a registration (fnoreg-register, the GUI, the demo).

:func:`write_outputs` writes into a folder (give it a staging folder of
:class:`fnoreg_core.staging.StagedOutputs` so that nothing half-written is ever seen):

``moved.nii.gz``          the moving image warped onto the fixed grid (original intensities, linear)
``warp.nii.gz``           the displacement field fixed -> moving for ITK / ANTs / SimpleITK / 3D Slicer:
                          5-D NIfTI (X, Y, Z, 1, 3) [2-D: (X, Y, 1, 1, 2)], intent 1007 (vector), LPS mm
``jacobian.nii.gz``       Jacobian determinant of the transform
``moved_labels.nii.gz``   the moving labels warped with nearest neighbour (when given)
``affine.txt``            the affine stage's transform, ITK text (LPS), fixed -> moving (identity when none)
``warp_deformable.nii.gz`` the deformable part alone (same format as warp.nii.gz); ITK/ANTs
                          ``-t affine.txt -t warp_deformable.nii.gz`` is the same map as ``warp.nii.gz``
``report.json``           :func:`build_report` (keys in :data:`REPORT_KEYS`; ``stages``: a row per stage)

Every image lies on the FIXED image's own grid as stored in its file (``native_grid``): a result
computed on the RAS+ reorientation of that grid (the GUI loads images that way) is mapped back by
the same lossless axis permutation/flip (:class:`fnoreg_core.geometry.RASFrame`), so the files of
the CLI, the GUI and the demo overlay the fixed file in any viewer and agree voxel for voxel.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fnoreg_core.geometry import RASFrame, check_affine, same_grid

from .result import RegistrationResult, resample_to_fixed

__all__ = ["OUTPUT_FILES", "REPORT_KEYS", "WARP_CONVENTION", "write_outputs", "build_report", "dice_report",
           "model_info"]

#: File names (key -> name) written by :func:`write_outputs`.
OUTPUT_FILES = {
    "moved": "moved.nii.gz",
    "warp": "warp.nii.gz",
    "jacobian": "jacobian.nii.gz",
    "moved_labels": "moved_labels.nii.gz",
    "affine": "affine.txt",
    "warp_deformable": "warp_deformable.nii.gz",
    "report": "report.json",
}

#: Top-level keys of report.json.
REPORT_KEYS = ("name", "inputs", "model", "stages", "affine_ras", "dice", "jacobian", "displacement_mm", "grid",
               "intensity", "timings_s", "outputs", "warp_convention")

WARP_CONVENTION = ("warp.nii.gz: displacement fixed -> moving, 5-D NIfTI (X, Y, Z, 1, 3) [2-D: (X, Y, 1, 1, 2)], "
                   "intent 1007 (vector), LPS millimetres, on the fixed image's grid and affine "
                   "(ITK/ANTs/SimpleITK/Slicer DisplacementFieldTransform); it includes the affine stage. "
                   "affine.txt (ITK, LPS) followed by warp_deformable.nii.gz is the same map: "
                   "antsApplyTransforms -t affine.txt -t warp_deformable.nii.gz")


def model_info(registrator: Any = None, *, path: Any = None, card: Any = None, backend: str | None = None,
               threads: int | None = None) -> dict[str, Any]:
    """The report's ``model`` block, from a :class:`Registrator` or from its parts."""
    if registrator is not None:
        path, card, backend, threads = registrator.path, registrator.card, registrator.backend, registrator.threads
    return {"path": str(path) if path is not None else None, "name": getattr(card, "name", None),
            "version": getattr(card, "version", None), "dims": getattr(card, "dims", None), "backend": backend,
            "threads": threads}


def dice_report(result: RegistrationResult, moved_labels: np.ndarray, fixed_labels: Any,
                moving_labels: Any, fixed_labels_affine: Any = None, moving_labels_affine: Any = None
                ) -> dict[str, Any]:
    """The report's ``dice`` block: Dice per label after registration and before it.

    Parameters
    ----------
    result : the registration
    moved_labels : (*fixed_shape) the moving labels warped onto the fixed grid (:func:`warp_labels`)
    fixed_labels, moving_labels : label maps (arrays on the fixed / moving grid, or nibabel /
        LoadedImage-likes with their own affine)
    fixed_labels_affine, moving_labels_affine : their 4x4 affines when given as bare arrays
        (default: the fixed / moving grid)

    "Before": the moving labels resampled onto the fixed grid without deformation.
    """
    from fnoreg_core.metrics import dice_per_label

    target = resample_to_fixed(fixed_labels, result, fixed_labels_affine, labels=True)
    if moving_labels_affine is None and not hasattr(moving_labels, "affine"):
        moving_labels_affine = result.moving_affine
    before = resample_to_fixed(moving_labels, result, moving_labels_affine, labels=True)
    per = dice_per_label(moved_labels, target)
    per_before = dice_per_label(before, target)
    return {
        "mean": float(sum(per.values()) / len(per)) if per else float("nan"),
        "n_labels": len(per),
        "per_label": per,
        "mean_before": float(sum(per_before.values()) / len(per_before)) if per_before else float("nan"),
        "per_label_before": per_before,
        "protocol": "labels present in both maps, background (0) excluded; 'before': moving labels "
                    "resampled onto the fixed grid without deformation",
    }


def build_report(result: RegistrationResult, *, name: str = "pair", inputs: dict[str, Any] | None = None,
                 model: dict[str, Any] | None = None, dice: dict[str, Any] | None = None,
                 timings: dict[str, float] | None = None, outputs: dict[str, str] | None = None) -> dict[str, Any]:
    """The report of one registration (JSON-ready; keys :data:`REPORT_KEYS`, NaN written as null).

    Parameters
    ----------
    result : the registration
    name : the pair's name
    inputs : ``{"fixed", "moving", "moving_labels", "fixed_labels"}`` paths (None where absent)
    model : :func:`model_info`
    dice : :func:`dice_report` or None
    timings : seconds per step; default the result's stages. ``total`` is recomputed as their sum
        when steps outside the registration (``load``, ``labels``, ``write``) are included
    outputs : ``{key: file name}`` written
    """
    summary = result.summary()
    timings = dict(result.timings if timings is None else timings)
    stages = [dict(r) for r in getattr(result, "stages", [])]
    per_stage = (dice or {}).get("per_stage") or {}
    for row in stages:
        if row["stage"] in per_stage:
            row["mean_dice"] = per_stage[row["stage"]]
    report = {
        "name": name,
        "inputs": {k: (str(v) if v is not None else None) for k, v in (inputs or {}).items()},
        "model": model or {},
        "stages": stages,
        "affine_ras": np.asarray(getattr(result, "affine_ras", np.eye(4))).tolist(),
        "dice": dice,
        "jacobian": {"nonpositive_pct": summary["nonpositive_jac_pct"], "negative_pct": summary["negative_jac_pct"],
                     "sdlogj": summary["sdlogj"], "min": summary["jac_min"], "max": summary["jac_max"],
                     "mean": summary["jac_mean"]},
        "displacement_mm": {"mean": summary["displacement_mm_mean"], "max": summary["displacement_mm_max"]},
        "grid": {k: summary[k] for k in ("fixed_shape", "moving_shape", "fixed_spacing_mm", "network_shape",
                                         "resampled", "reoriented")},
        "intensity": summary["intensity"],
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "outputs": dict(outputs or {}),
        "warp_convention": WARP_CONVENTION,
    }
    return _jsonable(report)


def write_outputs(folder: str | Path, result: RegistrationResult, *, moved_labels: np.ndarray | None = None,
                  native_grid: tuple[Sequence[int], Any] | None = None, which: Sequence[str] | None = None,
                  name: str = "pair", inputs: dict[str, Any] | None = None, model: dict[str, Any] | None = None,
                  dice: dict[str, Any] | None = None, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Write the outputs of one registration into ``folder`` (which exists); returns the report.

    Parameters
    ----------
    folder : where to write (ideally a staging folder: :class:`fnoreg_core.staging.StagedOutputs`)
    result : the registration, on the fixed grid it was given
    moved_labels : (*fixed_shape) warped moving labels, or None
    native_grid : ``(shape, affine4)`` of the fixed image as stored in its file, when ``result`` was
        computed on its RAS+ reorientation (the GUI); default: the result's own grid
    which : keys of :data:`OUTPUT_FILES` to write (default: all that exist)
    name, inputs, model, dice : for :func:`build_report`
    timings : seconds of steps before writing (default: the result's stages); ``write`` is added

    Raises
    ------
    ValueError
        Unknown keys in ``which``, or a ``native_grid`` that is neither the result's grid nor a
        reorientation of it.
    """
    from fnoreg_core.io import save_image, save_warp_itk

    which = tuple(OUTPUT_FILES) if which is None else tuple(which)
    unknown = set(which) - set(OUTPUT_FILES)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; choose from {list(OUTPUT_FILES)}")
    folder = Path(folder)
    t0 = time.perf_counter()
    to_native, affine = _native_mapping(result, native_grid)
    written: dict[str, str] = {}
    if "moved" in which:
        written["moved"] = save_image(to_native(result.moved), affine, folder / OUTPUT_FILES["moved"]).name
    if "warp" in which:
        warp = np.stack([to_native(c) for c in result.ddf_mm_lps])  # LPS components do not change with the grid
        written["warp"] = save_warp_itk(warp, affine, folder / OUTPUT_FILES["warp"]).name
    if "jacobian" in which:
        written["jacobian"] = save_image(to_native(result.jacobian), affine, folder / OUTPUT_FILES["jacobian"]).name
    if "moved_labels" in which and moved_labels is not None:
        written["moved_labels"] = save_image(to_native(np.asarray(moved_labels)), affine,
                                             folder / OUTPUT_FILES["moved_labels"]).name
    if "affine" in which:
        from fnoreg_core.affine import write_itk_affine

        written["affine"] = write_itk_affine(result.affine_ras, folder / OUTPUT_FILES["affine"]).name
    if "warp_deformable" in which and result.ddf_mm_deformable is not None:
        from fnoreg_core.fields import ddf_ras_to_lps

        lps = ddf_ras_to_lps(result.ddf_mm_deformable, result.fixed_shape).astype(np.float32, copy=False)
        written["warp_deformable"] = save_warp_itk(np.stack([to_native(c) for c in lps]), affine,
                                                   folder / OUTPUT_FILES["warp_deformable"]).name
    timings = dict(result.timings if timings is None else timings)
    timings["write"] = time.perf_counter() - t0
    if set(timings) - set(result.timings):  # steps outside the registration: total = their sum
        timings["total"] = sum(v for k, v in timings.items() if k not in result.timings) + result.timings["total"]
    report = build_report(result, name=name, inputs=inputs, model=model, dice=dice, timings=timings,
                          outputs=written)
    if "report" in which:
        report["outputs"]["report"] = OUTPUT_FILES["report"]
        (folder / OUTPUT_FILES["report"]).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _native_mapping(result: RegistrationResult, native_grid):
    """(function mapping a fixed-grid array onto the native grid, native 4x4 affine)."""
    if native_grid is None:
        return (lambda a: a), result.fixed_affine
    shape, affine = tuple(int(n) for n in native_grid[0]), check_affine(native_grid[1], "native_grid affine")
    shape = shape[: result.ndim] if len(shape) > result.ndim and all(n == 1 for n in shape[result.ndim:]) else shape
    if same_grid(shape, affine, result.fixed_shape, result.fixed_affine):
        return (lambda a: a), affine
    frame = RASFrame(shape, affine)
    if frame.reoriented and same_grid(frame.ras_shape, frame.ras_affine4, result.fixed_shape, result.fixed_affine):
        return frame.from_ras, affine
    raise ValueError(f"the result's grid {result.fixed_shape} is neither the fixed image's native grid {shape} nor "
                     "its RAS+ reorientation; register the fixed image as loaded from its file")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value
