"""Affine pre-alignment of two images on one grid (SimpleITK; numpy in and out, torch-free).

The first stage of the registration pipeline (ANTs, greedy, SynthMorph and FireANTs all run a
linear stage first). Both images are already on the fixed image's grid (the runtime resamples the
moving image there in world space), so the optimisation runs in *scaled index space*
(index * spacing, identity direction) and the result is turned into a world (RAS mm) matrix.

Why SimpleITK: measured on the 2 mm demo pair (Colin27 -> fsaverage, 2 threads,
``python benchmarks/stage_choice.py``): moments initialisation + 12-dof affine, correlation
metric, shrink 4/2, gives Dice 0.640 in 0.41 s; picsl-greedy's fastest setting of comparable
accuracy took 0.34 s for 0.623 (NCC 2x2x2, 50x20 at 4x/2x) and 1.5 s for 0.634 (100x50x10); greedy
is GPL, SimpleITK Apache-2.0 and already what the project's interop tests use.

Conventions: ``fixed_to_moving_ras`` is a (4, 4) matrix mapping a fixed-image world point (RAS mm)
to the moving-image world point that should land on it (a pull, like ITK transforms and like the
displacement fields of this project). ITK text files hold the same map in LPS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AffineError", "AffineResult", "affine_register", "read_itk_affine", "write_itk_affine",
           "apply_affine_points", "AFFINE_MODES"]

AFFINE_MODES = ("auto", "affine", "rigid", "none")
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


class AffineError(ValueError):
    """An affine that cannot be computed, read or used (singular, unreadable, no overlap)."""


@dataclass
class AffineResult:
    """Outcome of :func:`affine_register`.

    Attributes
    ----------
    fixed_to_moving_ras : (4, 4) float64, world RAS mm, fixed -> moving (identity when not applied)
    applied : whether the stage changed anything (False when the guard refused the result)
    mode : "affine" | "rigid" | "file" | "none"
    metric_before, metric_after : similarity (negative normalised correlation; lower is better)
        at the identity and at the result, on the full-resolution images
    seconds : wall time of the stage
    note : why it was not applied, if it was not
    """

    fixed_to_moving_ras: np.ndarray
    applied: bool
    mode: str
    metric_before: float = float("nan")
    metric_after: float = float("nan")
    seconds: float = 0.0
    note: str = ""
    iterations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"mode": self.mode, "applied": self.applied, "metric_before": self.metric_before,
                "metric_after": self.metric_after, "seconds": self.seconds, "iterations": self.iterations,
                "note": self.note, "fixed_to_moving_ras": self.fixed_to_moving_ras.tolist()}


def _sitk():
    try:
        import SimpleITK as sitk
    except ImportError as exc:  # pragma: no cover - a base dependency
        raise AffineError("the affine stage needs SimpleITK: pip install SimpleITK") from exc
    return sitk


def _spacing(vox_to_ras: np.ndarray, ndim: int) -> np.ndarray:
    return np.linalg.norm(np.asarray(vox_to_ras, float)[:3, :ndim], axis=0)


def _image(arr: np.ndarray, spacing: np.ndarray):
    sitk = _sitk()
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(arr, np.float32).T))  # sitk index = array axes
    img.SetSpacing([float(s) for s in spacing])
    return img


def _scaled_to_world(matrix_scaled: np.ndarray, vox_to_ras: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """A map of scaled index space (index * spacing, ndim) -> the same map in RAS world (4, 4)."""
    ndim = len(spacing)
    a = np.asarray(vox_to_ras, float)
    # world <- index: a; index <- scaled: diag(1/spacing); embed the ndim map in 4x4 (other axes identity)
    t4 = np.eye(4)
    t4[:ndim, :ndim] = matrix_scaled[:ndim, :ndim]
    t4[:ndim, 3] = matrix_scaled[:ndim, ndim]
    s4 = np.eye(4)
    s4[:ndim, :ndim] = np.diag(spacing)
    to_scaled = s4 @ np.linalg.inv(a)
    return np.linalg.inv(to_scaled) @ t4 @ to_scaled


def _transform_matrix(tx, ndim: int) -> np.ndarray:
    """(ndim+1, ndim+1) homogeneous matrix of a SimpleITK matrix-offset transform."""
    m = np.eye(ndim + 1)
    m[:ndim, :ndim] = np.asarray(tx.GetMatrix()).reshape(ndim, ndim)
    center = np.asarray(tx.GetCenter())
    m[:ndim, ndim] = np.asarray(tx.GetTranslation()) + center - m[:ndim, :ndim] @ center
    return m


def affine_register(fixed: np.ndarray, moving: np.ndarray, vox_to_ras: np.ndarray, mode: str = "auto",
                    threads: int | None = None, shrink: tuple[int, ...] = (4, 2),
                    iterations: int = 100, seed: int = 1) -> AffineResult:
    """Align ``moving`` to ``fixed`` (both on one grid) with an affine (or rigid) transform.

    Parameters
    ----------
    fixed, moving : (*S) float arrays, 2-D or 3-D, same shape, intensities normalised alike
    vox_to_ras : (4, 4) the grid's voxel -> RAS mm matrix
    mode : "auto" (= "affine": moments initialisation, then 12 dof in 3-D / 6 in 2-D), "rigid",
        or "none" (identity, not applied)
    threads : SimpleITK threads (None: its default)
    shrink : pyramid shrink factors, coarse first (smoothing sigma = factor / 2 voxels)

    Returns
    -------
    AffineResult. The guard: a result whose similarity on the full images is not better than the
    identity's is not applied (``applied=False`` and ``note`` says why).

    Raises
    ------
    AffineError
        Unknown mode, shapes that differ, empty images.
    """
    t0 = time.perf_counter()
    if mode not in AFFINE_MODES:
        raise AffineError(f"unknown affine mode {mode!r}; expected one of {AFFINE_MODES} or a transform file")
    fixed = np.asarray(fixed, np.float32)
    moving = np.asarray(moving, np.float32)
    if fixed.shape != moving.shape or fixed.ndim not in (2, 3):
        raise AffineError(f"affine stage: expected two 2-D or 3-D images on one grid, got {fixed.shape} and {moving.shape}")
    ndim = fixed.ndim
    if mode == "none":
        return AffineResult(np.eye(4), False, "none", seconds=time.perf_counter() - t0, note="disabled")
    if not (np.ptp(fixed) > 0 and np.ptp(moving) > 0):
        return AffineResult(np.eye(4), False, mode, seconds=time.perf_counter() - t0,
                            note="an image is constant: nothing to align")
    sitk = _sitk()
    if threads:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
    spacing = _spacing(vox_to_ras, ndim)
    f_img, m_img = _image(fixed, spacing), _image(moving, spacing)
    shrink = tuple(int(s) for s in shrink if min(fixed.shape) // int(s) >= 8) or (1,)

    def method():
        r = sitk.ImageRegistrationMethod()
        r.SetMetricAsCorrelation()
        r.SetInterpolator(sitk.sitkLinear)
        r.SetMetricSamplingStrategy(r.RANDOM)
        r.SetMetricSamplingPercentage(0.2, seed)
        return r

    rigid = sitk.Euler3DTransform() if ndim == 3 else sitk.Euler2DTransform()
    base = rigid if mode == "rigid" else sitk.AffineTransform(ndim)
    try:
        init = sitk.CenteredTransformInitializer(f_img, m_img, base,
                                                 sitk.CenteredTransformInitializerFilter.MOMENTS)
        reg = method()
        reg.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, int(iterations), relaxationFactor=0.5,
                                                     gradientMagnitudeTolerance=1e-6)
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetShrinkFactorsPerLevel(list(shrink))
        reg.SetSmoothingSigmasPerLevel([s / 2.0 for s in shrink])
        reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        reg.SetInitialTransform(init, inPlace=False)
        result = reg.Execute(f_img, m_img)
        n_iter = int(reg.GetOptimizerIteration())
        final = result.GetBackTransform() if hasattr(result, "GetBackTransform") else result
        if final.GetName() == "CompositeTransform":
            final = sitk.CompositeTransform(final).GetNthTransform(0)
        matrix_scaled = _transform_matrix(final, ndim)
        check = method()
        check.SetMetricSamplingStrategy(check.NONE)
        check.SetInitialTransform(sitk.Transform(ndim, sitk.sitkIdentity))
        before = float(check.MetricEvaluate(f_img, m_img))
        check.SetInitialTransform(final)
        after = float(check.MetricEvaluate(f_img, m_img))
    except RuntimeError as exc:
        return AffineResult(np.eye(4), False, mode, seconds=time.perf_counter() - t0,
                            note=f"SimpleITK failed: {str(exc).strip().splitlines()[-1][:200]}")
    world = _scaled_to_world(matrix_scaled, vox_to_ras, spacing)
    out = AffineResult(world, True, "rigid" if mode == "rigid" else "affine", before, after,
                       iterations=n_iter)
    if not np.all(np.isfinite(world)) or abs(np.linalg.det(world[:3, :3])) < 1e-3:
        out.fixed_to_moving_ras, out.applied, out.note = np.eye(4), False, "the optimiser diverged (singular result)"
    elif not after < before:
        out.fixed_to_moving_ras, out.applied = np.eye(4), False
        out.note = f"not applied: similarity {after:.4f} is not better than the identity's {before:.4f}"
    out.seconds = time.perf_counter() - t0
    return out


def apply_affine_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``matrix`` (4, 4) applied to ``points`` (..., 3)."""
    m = np.asarray(matrix, float)
    return points @ m[:3, :3].T + m[:3, 3]


def write_itk_affine(fixed_to_moving_ras: np.ndarray, path: str | Path) -> Path:
    """Write a (4, 4) RAS fixed -> moving matrix as an ITK text transform (LPS), read by ANTs,
    SimpleITK, ITK-SNAP and Slicer (``AffineTransform_double_3_3``)."""
    sitk = _sitk()
    m = _LPS @ np.asarray(fixed_to_moving_ras, float) @ _LPS
    tx = sitk.AffineTransform(3)
    tx.SetMatrix([float(v) for v in m[:3, :3].ravel()])
    tx.SetTranslation([float(v) for v in m[:3, 3]])
    path = Path(path)
    sitk.WriteTransform(tx, str(path))
    return path


def read_itk_affine(path: str | Path) -> np.ndarray:
    """An ITK/ANTs affine file (``.txt``/``.tfm`` text, or ANTs ``.mat``) -> (4, 4) RAS fixed -> moving.

    Raises
    ------
    AffineError
        The file is missing, unreadable, not a 3-D matrix-offset transform, or singular.
    """
    sitk = _sitk()
    path = Path(path)
    if not path.is_file():
        raise AffineError(f"affine file {path} does not exist")
    try:
        tx = sitk.ReadTransform(str(path))
    except RuntimeError as exc:
        raise AffineError(f"{path} is not an ITK/ANTs transform file SimpleITK can read "
                          f"({str(exc).strip().splitlines()[-1][:160]})") from None
    if tx.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(tx)
        if comp.GetNumberOfTransforms() != 1:
            raise AffineError(f"{path} holds {comp.GetNumberOfTransforms()} transforms; expected one affine")
        tx = comp.GetNthTransform(0)
    if tx.GetDimension() != 3 or not hasattr(tx, "GetMatrix"):
        try:
            tx = sitk.AffineTransform(tx)
        except (RuntimeError, TypeError):
            raise AffineError(f"{path} holds a {tx.GetName()} ({tx.GetDimension()}-D); expected a 3-D "
                              "affine/rigid transform") from None
    if tx.GetDimension() != 3:
        raise AffineError(f"{path} holds a {tx.GetDimension()}-D transform; expected 3-D")
    m = _transform_matrix(tx, 3)
    if not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:3, :3])) < 1e-6:
        raise AffineError(f"{path} holds a singular or non-finite matrix; expected an invertible affine")
    return _LPS @ m @ _LPS
