"""Displacement-field convention and unit conversions (numpy only, torch-free).

This module is the ONE place where FNOReg's displacement convention is defined.
Everything else (the warp layer, losses, metrics, export, the runtime, the GUI)
refers here.

Convention
----------
Shape
    A dense displacement field (DDF) is an array of shape ``(B, ndim, *spatial)``
    (torch, always batched) or ``(ndim, *spatial)`` / ``(B, ndim, *spatial)``
    (numpy). ``ndim`` is 2 or 3.
Axis order
    Channel ``i`` is the displacement along spatial ARRAY axis ``i``. Axis order
    is array order: 3D ``(D, H, W)``, 2D ``(H, W)``. (``grid_sample`` wants the
    reverse, ``(x=W, y=H, z=D)``; only the warp layer flips it.) For a volume
    loaded with nibabel, array axis 0/1/2 is voxel index i/j/k of the affine.
Direction
    "Pull", fixed -> moving: the field lives on the FIXED grid and points into
    the MOVING image, ``moved(p) = moving(p + u(p))``.
Units (suffix of every variable that holds a field)
    ``_norm``  ``grid_sample`` normalised coordinates, ``align_corners=True``:
               the first voxel centre is -1 and the last is +1, so one unit
               along axis ``i`` is ``(N_i - 1) / 2`` voxels. Networks predict
               this; it is resolution independent. Undefined when ``N_i == 1``.
    ``_vox``   voxels along each array axis.
    ``_mm``    millimetres in world space. With a 4x4 ``vox_to_ras`` affine
               ``d_world = A[:3, :3] @ d_vox``; channels are then WORLD axes
               (R, A, S), no longer array axes. ITK / ANTs / SimpleITK / Slicer
               expect LPS millimetres: negate x and y (:func:`ddf_ras_to_lps`).

The conversion functions accept numpy arrays and, by duck typing, torch tensors
(anything with ``new_tensor``), without importing torch. Use them in eager code;
exported graphs work in ``_norm`` units throughout.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = [
    "DDF_CONVENTION",
    "norm_to_vox_scale",
    "ddf_norm_to_vox",
    "ddf_vox_to_norm",
    "ddf_vox_to_mm",
    "ddf_ras_to_lps",
]

#: One-line description of the convention, for model cards and file metadata.
DDF_CONVENTION = (
    "ddf (B, ndim, *spatial); channel i = displacement along array axis i; "
    "pull fixed->moving: moved(p) = moving(p + u(p)); "
    "units: grid_sample normalised, align_corners=True (1 unit = (N_i - 1)/2 voxels)"
)


def norm_to_vox_scale(shape: Sequence[int]) -> tuple[float, ...]:
    """Voxels per normalised unit along each spatial axis.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape ``(D, H, W)`` or ``(H, W)`` of the grid the normalised
        units refer to (array order).

    Returns
    -------
    tuple of float
        ``((N_0 - 1) / 2, (N_1 - 1) / 2, ...)``, one per axis, array order.
        Multiply a ``_norm`` displacement channel ``i`` by entry ``i`` to get voxels.

    Raises
    ------
    TypeError
        If ``shape`` is not a sequence of integers.
    ValueError
        If ``shape`` is empty or any size is < 2 (normalised units are undefined
        on an axis with a single voxel).

    Examples
    --------
    >>> norm_to_vox_scale((160, 192, 224))
    (79.5, 95.5, 111.5)
    """
    try:
        sizes = [_as_int(n) for n in shape]
    except TypeError:
        raise TypeError(f"expected a sequence of ints for shape, got {shape!r}") from None
    if not sizes:
        raise ValueError(f"expected a non-empty spatial shape, got {tuple(shape)!r}")
    for axis, n in enumerate(sizes):
        if n < 2:
            raise ValueError(
                f"expected every spatial size >= 2 (normalised units are undefined on an axis "
                f"with one voxel), got size {n} on axis {axis} of shape {tuple(sizes)}"
            )
    return tuple((n - 1) / 2.0 for n in sizes)


def ddf_norm_to_vox(ddf_norm: Any, spatial_shape: Sequence[int] | None = None) -> Any:
    """Convert a displacement field from normalised units to voxels.

    Parameters
    ----------
    ddf_norm : (ndim, *spatial) or (B, ndim, *spatial) float array or torch tensor
        Displacement in ``grid_sample`` normalised units (align_corners=True),
        fixed->moving, channel ``i`` along array axis ``i``. Torch tensors must be batched.
    spatial_shape : sequence of int, optional
        Grid whose voxels the output is counted in. Default: the field's own
        spatial shape. Pass the full-resolution shape to express a low-resolution
        field in full-resolution voxels (normalised units do not depend on resolution).
        Also resolves the rare ambiguous numpy case (see Raises).

    Returns
    -------
    same type and shape as ``ddf_norm``
        Displacement in voxels. Float numpy inputs keep their dtype; integer
        inputs become float64.

    Raises
    ------
    TypeError
        If ``ddf_norm`` is neither a numpy array, array-like nor a torch tensor.
    ValueError
        If the shape is not ``(ndim, *spatial)`` / ``(B, ndim, *spatial)`` with
        ndim in {2, 3} (or ``len(spatial_shape)``), if batched and unbatched readings
        are both possible and ``spatial_shape`` was not given, or if a size is < 2.
    """
    return _scale_channels(ddf_norm, spatial_shape, "ddf_norm", inverse=False)


def ddf_vox_to_norm(ddf_vox: Any, spatial_shape: Sequence[int] | None = None) -> Any:
    """Convert a displacement field from voxels to normalised units.

    Inverse of :func:`ddf_norm_to_vox`; same shapes, types and errors.

    Parameters
    ----------
    ddf_vox : (ndim, *spatial) or (B, ndim, *spatial) float array or torch tensor
        Displacement in voxels, fixed->moving, channel ``i`` along array axis ``i``.
    spatial_shape : sequence of int, optional
        Grid the voxels belong to. Default: the field's own spatial shape.

    Returns
    -------
    same type and shape as ``ddf_vox``
        Displacement in ``grid_sample`` normalised units (align_corners=True).

    Raises
    ------
    TypeError, ValueError
        As :func:`ddf_norm_to_vox`.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.zeros((2, 5, 9)); u[1] = 2.0     # 2 voxels along W
    >>> float(ddf_vox_to_norm(u)[1, 0, 0])      # 1 unit = (9 - 1) / 2 = 4 voxels
    0.5
    """
    return _scale_channels(ddf_vox, spatial_shape, "ddf_vox", inverse=True)


def ddf_vox_to_mm(ddf_vox: np.ndarray, vox_to_ras: np.ndarray) -> np.ndarray:
    """Convert a voxel displacement field to world (RAS) millimetres.

    Parameters
    ----------
    ddf_vox : (ndim, *spatial) or (B, ndim, *spatial) float numpy array
        Displacement in voxels, fixed->moving, channel ``i`` along array axis ``i``
        (= voxel index ``i, j, k`` of the affine).
    vox_to_ras : (ndim + 1, ndim + 1) float numpy array
        Affine of the FIXED image mapping voxel indices to RAS mm
        (``nibabel`` ``img.affine`` for 3D). Only its linear part is used:
        ``d_world = A[:ndim, :ndim] @ d_vox``.

    Returns
    -------
    (ndim, *spatial) or (B, ndim, *spatial) numpy array
        Displacement in RAS millimetres; channel ``c`` is WORLD axis ``c``
        (R, A, S), not an array axis. Float dtype of the input (float64 for ints).

    Raises
    ------
    TypeError
        If an input is a torch tensor or not array-like.
    ValueError
        If ``vox_to_ras`` is not (3, 3) or (4, 4) with finite values, its linear
        part is singular, or ``ddf_vox`` is not ``(ndim, *spatial)`` /
        ``(B, ndim, *spatial)`` with ``ndim = len(vox_to_ras) - 1``.
    """
    arr = _as_numpy(ddf_vox, "ddf_vox")
    aff = _as_numpy(vox_to_ras, "vox_to_ras")
    if aff.ndim != 2 or aff.shape[0] != aff.shape[1] or aff.shape[0] not in (3, 4):
        raise ValueError(f"expected vox_to_ras of shape (3, 3) or (4, 4), got {aff.shape}")
    batched, ndim = _layout(arr.shape, None, "ddf_vox", ndim_hint=aff.shape[0] - 1)
    if not np.all(np.isfinite(aff)):
        raise ValueError("expected finite values in vox_to_ras, got NaN or inf")
    lin = aff[:ndim, :ndim].astype(np.float64)
    if abs(np.linalg.det(lin)) < 1e-12:
        raise ValueError(f"expected an invertible vox_to_ras linear part, got {lin.tolist()}")
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
    x = arr if batched else arr[None]
    out = np.einsum("ij,bj...->bi...", lin, x).astype(dtype, copy=False)
    return out if batched else out[0]


def ddf_ras_to_lps(ddf_mm: Any, spatial_shape: Sequence[int] | None = None) -> Any:
    """Convert a world-space displacement field between RAS and LPS millimetres.

    Negates world components x and y (channels 0 and 1); the operation is its own
    inverse, so it also converts LPS to RAS. ITK, ANTs, SimpleITK and 3D Slicer
    displacement files are LPS.

    Parameters
    ----------
    ddf_mm : (ndim, *spatial) or (B, ndim, *spatial) float array or torch tensor
        Displacement in RAS (or LPS) millimetres, channel ``c`` = world axis ``c``.
    spatial_shape : sequence of int, optional
        Only to resolve an ambiguous numpy layout (see :func:`ddf_norm_to_vox`).

    Returns
    -------
    same type and shape as ``ddf_mm``
        Displacement in LPS (or RAS) millimetres.

    Raises
    ------
    TypeError, ValueError
        As :func:`ddf_norm_to_vox`.
    """
    is_torch = _is_torch(ddf_mm)
    arr = ddf_mm if is_torch else _as_numpy(ddf_mm, "ddf_mm")
    batched, ndim = _layout(tuple(arr.shape), spatial_shape, "ddf_mm", require_batch=is_torch)
    signs = [-1.0, -1.0, 1.0][:ndim]
    return _mul_channels(arr, signs, batched, is_torch)


# ----------------------------------------------------------------------------- helpers


def _as_int(n: Any) -> int:
    if isinstance(n, (bool, np.bool_)):
        raise TypeError("bool is not a size")
    if isinstance(n, (int, np.integer)):
        return int(n)
    raise TypeError(f"not an int: {n!r}")


def _is_torch(x: Any) -> bool:
    return hasattr(x, "new_tensor") and hasattr(x, "shape")


def _as_numpy(x: Any, name: str) -> np.ndarray:
    if _is_torch(x):
        raise TypeError(f"expected a numpy array for {name}, got a torch tensor (call .cpu().numpy())")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"expected an array-like {name}, got {type(x).__name__}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"expected a numeric array for {name}, got dtype {arr.dtype}")
    return arr


def _layout(
    shape: tuple[int, ...],
    spatial_shape: Sequence[int] | None,
    name: str,
    require_batch: bool = False,
    ndim_hint: int | None = None,
) -> tuple[bool, int]:
    """Return ``(batched, ndim)`` for a field of ``shape``."""
    shape = tuple(int(s) for s in shape)
    rank = len(shape)
    if spatial_shape is not None or ndim_hint is not None:
        if spatial_shape is not None:
            ndim = len(tuple(spatial_shape))
            if ndim not in (2, 3):
                raise ValueError(f"expected spatial_shape of length 2 or 3, got {tuple(spatial_shape)}")
            what = "spatial_shape"
        else:
            ndim = int(ndim_hint)
            what = "affine"
        if rank == ndim + 2 and shape[1] == ndim:
            return True, ndim
        if rank == ndim + 1 and shape[0] == ndim and not require_batch:
            return False, ndim
        want = f"(B, {ndim}, *spatial)" if require_batch else f"({ndim}, *spatial) or (B, {ndim}, *spatial)"
        raise ValueError(f"expected {name} of shape {want} for a {ndim}D {what}, got {shape}")
    batched = rank in (4, 5) and shape[1] == rank - 2
    unbatched = (not require_batch) and rank in (3, 4) and shape[0] == rank - 1
    if batched and unbatched:
        raise ValueError(
            f"{name} of shape {shape} reads as both (B, ndim, *spatial) and (ndim, *spatial); "
            f"pass spatial_shape to say which"
        )
    if batched:
        return True, rank - 2
    if unbatched:
        return False, rank - 1
    want = "(B, ndim, *spatial)" if require_batch else "(ndim, *spatial) or (B, ndim, *spatial)"
    raise ValueError(f"expected {name} of shape {want} with ndim 2 or 3, got {shape}")


def _mul_channels(x: Any, scales: Sequence[float], batched: bool, is_torch: bool) -> Any:
    ndim = len(scales)
    bshape = [1] * x.ndim
    bshape[1 if batched else 0] = ndim
    if is_torch:
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point tensor, got dtype {x.dtype}")
        return x * x.new_tensor([float(s) for s in scales]).reshape(bshape)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return x * np.asarray(scales, dtype=dtype).reshape(bshape)


def _scale_channels(x: Any, spatial_shape: Sequence[int] | None, name: str, inverse: bool) -> Any:
    is_torch = _is_torch(x)
    arr = x if is_torch else _as_numpy(x, name)
    batched, ndim = _layout(tuple(arr.shape), spatial_shape, name, require_batch=is_torch)
    grid = tuple(spatial_shape) if spatial_shape is not None else tuple(arr.shape)[-ndim:]
    scales = norm_to_vox_scale(grid)
    if inverse:
        scales = tuple(1.0 / s for s in scales)
    return _mul_channels(arr, scales, batched, is_torch)
