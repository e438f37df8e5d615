"""A registration's result and what can be mapped with it (labels, other images, other grids).

Everything in :class:`RegistrationResult` lies on the FIXED image's grid as given (array order,
``fixed_affine``). Sampling follows :mod:`fnoreg_core.geometry` (ITK's rule: up to half a voxel
outside an image reads its edge, further out reads 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from fnoreg_core.fields import ddf_ras_to_lps
from fnoreg_core.geometry import ImageError, affine_nd, check_affine, pull, resample, spacing

from .inputs import as_image

__all__ = ["RegistrationResult", "warp_labels", "warp_image", "resample_to_fixed", "resample_to_grid"]


@dataclass
class RegistrationResult:
    """One registration, every array on the FIXED image's grid (array order, affine ``fixed_affine``).

    moved : (*fixed_shape) float32, the moving image (original intensities) warped onto the fixed grid
    ddf_norm : (ndim, *fixed_shape) float32, displacement fixed -> moving in ``grid_sample`` normalised
        units of the fixed grid (align_corners=True), channel i along array axis i (``fnoreg_core.fields``)
    ddf_vox : (ndim, *fixed_shape) float32, the same in fixed-grid voxels
    ddf_mm : (ndim, *fixed_shape) float32, the same in world RAS mm, channel = world axis (R, A[, S]);
        :attr:`ddf_mm_lps` is what ITK/ANTs/Slicer files hold
    jacobian : (*fixed_shape) float32, det(I + grad u) (voxel units; equal to the physical one)
    folding : ``{"nonpositive_pct", "negative_pct"}`` of the Jacobian, in %
    sdlogj : SDlogJ of the Jacobian
    timings : seconds per stage (``prepare``, ``inference``, ``postprocess``, ``warp``, ``metrics``, ``total``)
    fixed_affine, moving_affine : 4x4 voxel -> RAS mm of the inputs (identity for bare arrays)
    moving_shape : spatial shape of the moving image (its own grid)
    network_shape : spatial size the network ran at (network frame: RAS+ orientation in 3-D)
    resampled : the network ran on a resized grid (the fixed size was not accepted by the graph)
    reoriented : the network frame is a reorientation of the fixed grid
    intensity : normalisation parameters used, ``{"fixed": {...}, "moving": {...}, "method": ...}``
    backend, model : inference backend and model name/version
    stages : what each pipeline stage did (``{"stage", "seconds", ...}``: working_grid, affine,
        network, refine)
    affine_ras : (4, 4) the affine part, world RAS mm, fixed -> moving (identity when none)
    ddf_mm_deformable : (ndim, *fixed_shape) the deformable part ``d`` alone (world RAS mm); the
        composed field is ``ddf_mm(x) = A(x + d(x)) - x``
    stage_ddf_mm : composed fields after earlier stages (``"affine"``, ``"network"``), when the
        registration was asked to keep them
    """

    moved: np.ndarray
    ddf_norm: np.ndarray
    ddf_vox: np.ndarray
    ddf_mm: np.ndarray
    jacobian: np.ndarray
    folding: dict[str, float]
    sdlogj: float
    timings: dict[str, float]
    fixed_affine: np.ndarray
    moving_affine: np.ndarray
    moving_shape: tuple[int, ...]
    network_shape: tuple[int, ...]
    resampled: bool
    reoriented: bool
    intensity: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    model: str = ""
    stages: list[dict[str, Any]] = field(default_factory=list)
    affine_ras: np.ndarray = field(default_factory=lambda: np.eye(4))
    ddf_mm_deformable: np.ndarray | None = None
    stage_ddf_mm: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return self.ddf_norm.shape[0]

    @property
    def fixed_shape(self) -> tuple[int, ...]:
        return tuple(self.moved.shape)

    @property
    def ddf_mm_lps(self) -> np.ndarray:
        """(ndim, *fixed_shape) float32 displacement in LPS mm (the ITK convention)."""
        return ddf_ras_to_lps(self.ddf_mm, self.fixed_shape).astype(np.float32, copy=False)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Fixed voxel size in mm per array axis."""
        return spacing(self.fixed_affine, self.ndim)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers: folding, SDlogJ, Jacobian range, displacement size, grids, timings."""
        mag = np.sqrt((self.ddf_mm.astype(np.float64) ** 2).sum(axis=0))
        return {
            "nonpositive_jac_pct": self.folding["nonpositive_pct"],
            "negative_jac_pct": self.folding["negative_pct"],
            "sdlogj": self.sdlogj,
            "jac_min": float(self.jacobian.min()),
            "jac_max": float(self.jacobian.max()),
            "jac_mean": float(self.jacobian.mean()),
            "displacement_mm_mean": float(mag.mean()),
            "displacement_mm_max": float(mag.max()),
            "fixed_shape": list(self.fixed_shape),
            "moving_shape": list(self.moving_shape),
            "fixed_spacing_mm": [round(s, 6) for s in self.spacing],
            "network_shape": list(self.network_shape),
            "resampled": self.resampled,
            "reoriented": self.reoriented,
            "intensity": self.intensity,
            "backend": self.backend,
            "model": self.model,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


def _labels_on_moving_grid(labels: Any, result: RegistrationResult, affine: Any) -> tuple[np.ndarray, np.ndarray]:
    ndim = result.ndim
    data, aff = as_image(labels, affine, "labels", ndim, labels=True)
    given_affine = affine is not None or hasattr(labels, "affine")
    if not given_affine:
        if tuple(data.shape) != tuple(result.moving_shape):
            raise ImageError(f"expected labels of the moving image's shape {tuple(result.moving_shape)}, got "
                             f"{tuple(data.shape)} (or pass a nibabel image / an affine)")
        aff = result.moving_affine
    return data, aff


def warp_labels(labels: Any, result: RegistrationResult, affine: Any = None, stage: str | None = None) -> np.ndarray:
    """Warp a label map of the moving image onto the fixed grid with nearest neighbour.

    Parameters
    ----------
    labels : (*spatial) integer array or nibabel image, on the moving image's grid (array: same
        shape as the moving image; a nibabel image or ``affine`` may put it on any grid)
    result : from :meth:`Registrator.register`
    affine : 4x4 voxel -> RAS of ``labels`` (default: the image's own, else the moving affine)
    stage : warp with the composed field after this earlier stage (``result.stage_ddf_mm``), or the
        final field (None)

    Returns
    -------
    (*fixed_shape) integer array (dtype of ``labels``, int32 for integer-valued floats); every value
    is one of the input labels, 0 outside the moving image.

    Raises
    ------
    fnoreg_core.io.ImageError
        Wrong dimensionality or shape, non-integer values.
    """
    data, aff = _labels_on_moving_grid(labels, result, affine)
    ndim = result.ndim
    if stage is not None and stage not in result.stage_ddf_mm:
        raise KeyError(f"no field kept for stage {stage!r}; kept: {sorted(result.stage_ddf_mm)} (register with "
                       "keep_stages=True)")
    ddf = result.ddf_mm if stage is None else result.stage_ddf_mm[stage]
    return pull(data, affine_nd(aff, ndim), affine_nd(result.fixed_affine, ndim), result.fixed_shape, ddf, order=0)


def warp_image(image: Any, result: RegistrationResult, affine: Any = None, order: int = 1) -> np.ndarray:
    """Warp another image of the moving subject onto the fixed grid (linear, or ``order=0``).

    Same geometry rules as :func:`warp_labels`; returns float32 (order 1) on the fixed grid.
    """
    if order not in (0, 1):
        raise ValueError(f"expected order 0 (nearest) or 1 (linear), got {order}")
    ndim = result.ndim
    data, aff = as_image(image, affine, "image", ndim)
    if affine is None and not hasattr(image, "affine"):
        if tuple(data.shape) != tuple(result.moving_shape):
            raise ImageError(f"expected an image of the moving image's shape {tuple(result.moving_shape)}, got "
                             f"{tuple(data.shape)}")
        aff = result.moving_affine
    return pull(data, affine_nd(aff, ndim), affine_nd(result.fixed_affine, ndim), result.fixed_shape,
                 result.ddf_mm, order=order)


def resample_to_fixed(image: Any, result: RegistrationResult, affine: Any = None, labels: bool = False) -> np.ndarray:
    """An image (any grid, given by its affine; bare arrays: the fixed grid) on the fixed grid, no deformation.

    Linear for images, nearest for ``labels=True``; ITK border rules as :func:`warp_image`. Used for
    label maps not stored on the fixed grid and for "before registration" scores.
    """
    ndim = result.ndim
    data, aff = as_image(image, affine, "labels" if labels else "image", ndim, labels=labels)
    if affine is None and not hasattr(image, "affine"):
        if tuple(data.shape) != result.fixed_shape:
            raise ImageError(f"expected an array of the fixed image's shape {result.fixed_shape}, got "
                             f"{tuple(data.shape)} (or pass a nibabel image / an affine)")
        return data
    return resample_to_grid(data, result.fixed_shape, result.fixed_affine, aff, labels=labels)


def resample_to_grid(image: Any, grid_shape: Sequence[int], grid_affine: Any, affine: Any = None,
                     labels: bool = False) -> np.ndarray:
    """An image on its own grid resampled onto another grid through world coordinates (no deformation).

    Parameters
    ----------
    image : (*spatial) array or nibabel image, 2-D or 3-D (``len(grid_shape)``)
    grid_shape : spatial shape of the target grid
    grid_affine : 4x4 voxel -> RAS mm of the target grid
    affine : 4x4 voxel -> RAS mm of ``image`` (default: the nibabel image's own; identity for arrays)
    labels : nearest neighbour (dtype kept) instead of linear (float32)

    Returns
    -------
    (*grid_shape) array; target points outside the image's field of view are 0 (ITK border rules
    as :func:`warp_image`). The image itself when it is already on that grid.
    """
    ndim = len(grid_shape)
    grid_shape = tuple(int(n) for n in grid_shape)
    data, aff = as_image(image, affine, "labels" if labels else "image", ndim, labels=labels)
    return resample(data, aff, grid_shape, check_affine(grid_affine, "grid_affine"), labels=labels)
