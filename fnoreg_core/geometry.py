"""Image geometry in one place (numpy, scipy and nibabel's orientation helpers; torch-free).

Every tool that reads, reorients, resamples or writes an image takes its geometry from here:

* **affines** (:func:`check_affine`, :func:`affine_nd`, :func:`spacing`, :func:`same_grid`): a
  4x4 voxel -> RAS mm matrix; 2-D images use its in-plane block (rows/columns 0, 1, 3).
* **shapes** (:func:`squeeze_shape`, :func:`squeeze_to`): trailing singleton axes are dropped
  (``(X, Y, Z, 1)`` -> ``(X, Y, Z)``; 2-D stored as ``(X, Y, 1)`` -> ``(X, Y)``).
* **orientation** (:func:`ras_orientation`, :func:`reorient_to_ras`, :class:`RASFrame`): the
  closest RAS+ orientation as a lossless axis permutation/flip (what ``nib.as_closest_canonical``
  does), and its inverse.
* **resampling** between grids through world coordinates (:func:`pull`, :func:`resample`),
  optionally along a displacement field (:func:`warp_vox`), and the corner-aligned index resize
  (:func:`resize`). Images are linear (float32), labels nearest (dtype kept).

The rule for points outside an image (ITK's ``ResampleImageFilter`` rule, used by the runtime,
fnoreg-eval, the data sources and the GUI alike)
------------------------------------------------------------------------------------------------
A sample point ``c`` (voxel coordinates of the sampled image) is INSIDE when
``-0.5 <= c < n - 0.5`` on every axis (``itk::ImageFunction::IsInsideBuffer``); inside, linear
interpolation clamps its neighbours to the edge and nearest rounds half up; outside, the value is
0 (images and labels alike). See :func:`sample`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["ImageError", "MAX_AXIS", "MAX_VOXELS", "check_affine", "affine_nd", "spacing", "same_grid", "squeeze_shape", "squeeze_to",
           "ras_orientation", "reorient_to_ras", "RASFrame", "inside", "sample", "pull", "resample",
           "resample_index", "warp_vox", "resize", "corner_matrix"]

#: largest image the tools accept: per axis and in total (a 0.25 mm whole head is ~ 1000 x 1000 x 800)
MAX_AXIS = 4096
MAX_VOXELS = 1 << 30
_SLAB_VOXELS = 1 << 21  # resampling works in slabs of about this many voxels (bounded memory)
_RAS = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])


class ImageError(ValueError):
    """A user's image (file, array or its geometry) cannot be used as given.

    Also importable as :class:`fnoreg_core.io.ImageError` (the same class).
    """


# ------------------------------------------------------------------------------------------------
# affines and shapes


def check_affine(affine, name: str = "affine", dims: int | None = None) -> np.ndarray:
    """A validated 4x4 voxel -> RAS mm affine (float64).

    Parameters
    ----------
    affine : (4, 4) array, or (3, 3) homogeneous 2-D affine (embedded into a 4x4)
    name : what to call it in messages
    dims : when given, the ``dims`` spatial axes must be invertible (2: the in-plane block)

    Raises
    ------
    ImageError
        Wrong shape, NaN/inf, or (with ``dims``) a singular affine.
    """
    try:
        aff = np.array(affine, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"expected {name} as a 4x4 (or 2-D 3x3) matrix of numbers ({exc})") from None
    if aff.shape == (3, 3):  # a 2-D homogeneous affine: embed
        full = np.eye(4)
        full[np.ix_([0, 1, 3], [0, 1, 3])] = aff
        aff = full
    if aff.shape != (4, 4):
        raise ImageError(f"expected {name} as a 4x4 (or 2-D 3x3) voxel -> RAS matrix, got shape {aff.shape}")
    if not np.all(np.isfinite(aff)):
        raise ImageError(f"{name} contains NaN or inf")
    if dims is not None and abs(np.linalg.det(affine_nd(aff, dims)[:dims, :dims])) < 1e-12:
        raise ImageError(f"{name} is singular (not invertible) in its {dims} spatial axes: {aff.tolist()}; "
                         "fix the image header (voxel sizes / orientation), e.g. with nibabel or fslorient")
    if not np.allclose(aff[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise ImageError(f"{name} has a perspective last row {aff[3].tolist()}; a voxel -> RAS affine ends with "
                         "[0, 0, 0, 1] (fix the image header, e.g. with nibabel)")
    aff[3] = (0.0, 0.0, 0.0, 1.0)
    if dims == 2 and abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        # 2-D: only the in-plane block counts; a degenerate slice axis (z voxel size 0) becomes the unit
        # normal of the plane, so that code inverting the full 4x4 works
        normal = np.cross(aff[:3, 0], aff[:3, 1])
        aff[:3, 2] = normal / np.linalg.norm(normal)
    return aff


def affine_nd(affine4: np.ndarray, ndim: int) -> np.ndarray:
    """(ndim + 1, ndim + 1) voxel -> world (or voxel -> voxel) matrix of a 4x4 (2-D: the in-plane block)."""
    affine4 = np.asarray(affine4, dtype=np.float64)
    if ndim == 3:
        return affine4
    keep = [0, 1, 3]
    return affine4[np.ix_(keep, keep)]


def spacing(affine: np.ndarray, ndim: int = 3) -> tuple[float, ...]:
    """Voxel size in mm per array axis (length of each of the first ``ndim`` affine columns)."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :ndim] ** 2).sum(axis=0)))


def same_grid(shape_a, aff_a, shape_b, aff_b, tol: float = 1e-5) -> bool:
    """Same shape and (to ``tol`` mm) the same affine."""
    return tuple(shape_a) == tuple(shape_b) and np.allclose(aff_a, aff_b, rtol=0, atol=tol)


def squeeze_shape(shape: Sequence[int], ndim: int) -> tuple[int, ...]:
    """``shape`` without trailing singleton axes beyond the first ``ndim`` (``(X, Y, Z, 1)`` -> ``(X, Y, Z)``)."""
    shape = tuple(int(n) for n in shape)
    while len(shape) > ndim and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def squeeze_to(data: np.ndarray, ndim: int) -> np.ndarray:
    """``data`` reshaped to :func:`squeeze_shape` (a view; more axes stay if they are not singleton)."""
    return data.reshape(squeeze_shape(data.shape, ndim))


# ------------------------------------------------------------------------------------------------
# orientation


def ras_orientation(affine4: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray | None, np.ndarray,
                                                                         tuple[int, ...]]:
    """The closest RAS+ orientation of a 3-D grid: ``(ornt or None, ras_affine, ras_shape)``.

    ``ornt`` is nibabel's orientation array (None when the grid already is RAS+);
    ``ras_affine``/``ras_shape`` describe the reoriented grid (as ``nib.as_closest_canonical``).
    """
    from nibabel.orientations import inv_ornt_aff, io_orientation

    shape = tuple(int(n) for n in shape)
    ornt = io_orientation(affine4)
    if np.array_equal(ornt, _RAS):
        return None, np.asarray(affine4, dtype=np.float64), shape
    ras_shape = [0, 0, 0]
    for axis, (out_axis, _) in enumerate(ornt):
        ras_shape[int(out_axis)] = shape[axis]
    return ornt, np.asarray(affine4, dtype=np.float64) @ inv_ornt_aff(ornt, shape), tuple(ras_shape)


def reorient_to_ras(data: np.ndarray, affine4: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D ``(data, affine)`` in its closest RAS+ orientation (lossless; other ranks unchanged)."""
    if data.ndim != 3:
        return data, affine4
    frame = RASFrame(data.shape, affine4)
    return frame.to_ras(data), frame.ras_affine4


class RASFrame:
    """A grid and its RAS+ reorientation (3-D only, a lossless axis permutation/flip).

    Parameters
    ----------
    shape : spatial shape of the grid (2-D grids are never reoriented)
    affine4 : 4x4 voxel -> RAS mm of the grid
    enabled : False: the frame is the grid itself

    Attributes
    ----------
    reoriented : whether the RAS frame differs from the grid
    ras_shape, ras_affine4 : the RAS grid; ``affine`` is its ``(ndim + 1)`` square block
    """

    def __init__(self, shape: Sequence[int], affine4: np.ndarray, enabled: bool = True):
        from nibabel.orientations import apply_orientation, ornt_transform

        self.shape = tuple(int(n) for n in shape)
        ndim = len(self.shape)
        self.ornt = None
        self.ras_shape, self.ras_affine4 = self.shape, np.asarray(affine4, dtype=np.float64)
        if enabled and ndim == 3:
            ornt, self.ras_affine4, self.ras_shape = ras_orientation(affine4, self.shape)
            if ornt is not None:
                self.ornt, self.back = ornt, ornt_transform(_RAS, ornt)
                self._apply = apply_orientation
        self.affine = affine_nd(self.ras_affine4, ndim)
        self.reoriented = self.ornt is not None

    def to_ras(self, arr: np.ndarray) -> np.ndarray:
        """(*shape) array -> (*ras_shape), C-contiguous (the array itself when not reoriented)."""
        return np.ascontiguousarray(self._apply(arr, self.ornt)) if self.reoriented else arr

    def from_ras(self, arr: np.ndarray) -> np.ndarray:
        """(*ras_shape) array -> (*shape), the inverse of :meth:`to_ras`."""
        return np.ascontiguousarray(self._apply(arr, self.back)) if self.reoriented else arr


# ------------------------------------------------------------------------------------------------
# sampling: the one rule for points outside an image


def inside(coords: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(N,) bool: voxel coordinates ``coords`` (ndim, N) with ``-0.5 <= c < n - 0.5`` on every axis."""
    mask = np.ones(coords.shape[1], dtype=bool)
    for axis, n in enumerate(shape):
        c = coords[axis]
        mask &= (c >= -0.5) & (c < n - 0.5)
    return mask


def sample(volume: np.ndarray, coords: np.ndarray, order: int) -> np.ndarray:
    """Sample ``volume`` at voxel coordinates ``coords`` (ndim, N) as ITK's resampler does.

    Parameters
    ----------
    volume : (*spatial) array
    coords : (ndim, N) float voxel coordinates of ``volume``
    order : 1 linear (neighbours clamped to the edge; float32, float64 kept), 0 nearest (rounds half
        up; dtype kept)

    Returns
    -------
    (N,) values; 0 at points outside (:func:`inside`).
    """
    from scipy import ndimage

    if order not in (0, 1):
        raise ValueError(f"expected order 0 (nearest) or 1 (linear), got {order}")
    mask = inside(coords, volume.shape)
    if order == 0:
        idx = tuple(np.clip(np.floor(coords[a] + 0.5).astype(np.intp), 0, n - 1) for a, n in enumerate(volume.shape))
        out = volume[idx]
    else:
        out = ndimage.map_coordinates(volume, coords, order=1, mode="nearest", prefilter=False,
                                      output=np.float32 if volume.dtype != np.float64 else np.float64)
    out[~mask] = 0
    return out


def pull(volume: np.ndarray, volume_affine: np.ndarray, grid_affine: np.ndarray, grid_shape: Sequence[int],
         ddf_mm: np.ndarray | None = None, order: int = 1) -> np.ndarray:
    """``volume`` (own grid) sampled at the world points ``A_grid @ p + ddf_mm(p)`` of a grid.

    Parameters
    ----------
    volume : (*spatial) array on its own grid
    volume_affine, grid_affine : (ndim + 1, ndim + 1) voxel -> world (see :func:`affine_nd`); any
        common frame works (e.g. ``volume_affine = I`` and ``grid_affine`` = grid index -> volume index)
    grid_shape : spatial shape of the target grid
    ddf_mm : (ndim, *grid_shape) world displacement, or None (plain resampling)
    order : 1 linear (float32), 0 nearest (dtype kept); outside: 0 (:func:`sample`)

    Returns
    -------
    (*grid_shape) array. Computed in slabs of about 2**21 voxels (bounded memory).
    """
    ndim = len(grid_shape)
    grid_shape = tuple(int(n) for n in grid_shape)
    inv_vol = np.linalg.inv(volume_affine)
    grid_to_vol = inv_vol @ grid_affine
    world_to_vol_lin = inv_vol[:ndim, :ndim]
    dtype = volume.dtype if order == 0 else (np.float64 if volume.dtype == np.float64 else np.float32)
    out = np.empty(grid_shape, dtype=dtype)
    per_row = int(np.prod(grid_shape[1:]))
    rows = max(1, _SLAB_VOXELS // max(per_row, 1))
    rest = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in grid_shape[1:]], indexing="ij")
    for start in range(0, grid_shape[0], rows):
        stop = min(start + rows, grid_shape[0])
        first = np.arange(start, stop, dtype=np.float64).reshape((-1,) + (1,) * (ndim - 1))
        pts = [np.broadcast_to(first, (stop - start,) + grid_shape[1:])] + [
            np.broadcast_to(r, (stop - start,) + grid_shape[1:]) for r in rest]
        pts = np.stack([p.reshape(-1) for p in pts])  # (ndim, M) grid voxel indices
        q = grid_to_vol[:ndim, :ndim] @ pts + grid_to_vol[:ndim, ndim:ndim + 1]
        if ddf_mm is not None:
            q += world_to_vol_lin @ ddf_mm[:, start:stop].reshape(ndim, -1).astype(np.float64)
        out[start:stop] = sample(volume, q, order).reshape((stop - start,) + grid_shape[1:])
    return out


def resample(volume: np.ndarray, volume_affine4: np.ndarray, grid_shape: Sequence[int], grid_affine4: np.ndarray,
             labels: bool = False) -> np.ndarray:
    """An image on its own grid resampled onto another grid through world coordinates (no deformation).

    Parameters
    ----------
    volume : (*spatial) array, 2-D or 3-D (``len(grid_shape)``)
    volume_affine4, grid_affine4 : 4x4 voxel -> RAS mm of ``volume`` and of the target grid
    grid_shape : spatial shape of the target grid
    labels : nearest neighbour (dtype kept) instead of linear (float32)

    Returns
    -------
    (*grid_shape) array, 0 outside ``volume`` (:func:`sample`); ``volume`` itself when it already
    lies on that grid.
    """
    ndim = len(grid_shape)
    if same_grid(volume.shape, volume_affine4, grid_shape, grid_affine4):
        return volume
    return pull(volume, affine_nd(volume_affine4, ndim), affine_nd(grid_affine4, ndim), grid_shape, None,
                order=0 if labels else 1)


def corner_matrix(out_shape: Sequence[int], in_shape: Sequence[int]) -> np.ndarray:
    """(d+1)x(d+1) map out index -> in index of a corner-aligned resize (:func:`resize`)."""
    d = len(out_shape)
    m = np.eye(d + 1)
    for i, (o, n) in enumerate(zip(out_shape, in_shape)):
        m[i, i] = (n - 1) / (o - 1) if o > 1 else 0.0
    return m


def resample_index(volume: np.ndarray, matrix: np.ndarray, out_shape: Sequence[int], order: int) -> np.ndarray:
    """``volume`` sampled at ``matrix @ [out_index, 1]`` (``matrix``: (d+1)x(d+1) out index -> volume index).

    A matrix that is the corner-aligned resize of one field of view onto another is exactly
    :func:`resize`; anything else follows :func:`pull` (0 outside). Linear: float32.
    """
    out_shape = tuple(int(n) for n in out_shape)
    if np.allclose(matrix, corner_matrix(out_shape, volume.shape), atol=1e-6, rtol=0):
        return resize(volume, out_shape, order)
    dtype = volume.dtype if order == 0 else np.float32
    return pull(np.asarray(volume, dtype=dtype), np.eye(len(out_shape) + 1), matrix, out_shape, None, order=order)


def warp_vox(volume: np.ndarray, ddf_vox: np.ndarray, order: int = 0) -> np.ndarray:
    """``volume`` sampled at ``x + ddf_vox(x)`` on its own grid (voxel displacement, 0 outside).

    Parameters
    ----------
    volume : (*spatial) array (labels: ``order=0``, dtype kept; images: ``order=1``, float32)
    ddf_vox : (ndim, *spatial) displacement in voxels of that grid; NaN is read as 0
    """
    ndim = volume.ndim
    ddf = np.nan_to_num(np.asarray(ddf_vox, dtype=np.float64))
    if ddf.shape != (ndim,) + tuple(volume.shape):
        raise ValueError(f"expected ddf_vox of shape {(ndim,) + tuple(volume.shape)}, got {ddf.shape}")
    eye = np.eye(ndim + 1)
    return pull(volume, eye, eye, volume.shape, ddf, order=order)


def resize(arr: np.ndarray, shape: Sequence[int], order: int = 1) -> np.ndarray:
    """Resize a spatial array to ``shape`` by index, first and last voxel centres kept (corners aligned).

    The convention of :mod:`fnoreg_core.fields` (``grid_sample(align_corners=True)``), so normalised
    displacements transfer between the grids. Linear (``order=1``; float32) or nearest (``order=0``;
    dtype kept). No point of the output lies outside the input.
    """
    from scipy import ndimage

    arr = np.asarray(arr, dtype=np.float32) if order == 1 else np.asarray(arr)
    shape = tuple(int(n) for n in shape)
    if arr.shape == shape:
        return arr
    if len(shape) != arr.ndim:
        raise ValueError(f"expected a {arr.ndim}-D target shape, got {shape}")
    factors = [n / m for n, m in zip(shape, arr.shape)]
    # grid_mode=False: the first and last voxel centres stay put (grid_sample align_corners=True)
    out = ndimage.zoom(arr, factors, order=order, mode="nearest", grid_mode=False)
    if out.shape != shape:  # zoom rounds; pin the exact shape
        out = out[tuple(slice(0, n) for n in shape)]
        out = np.pad(out, [(0, n - m) for n, m in zip(shape, out.shape)], mode="edge")
    return out.astype(np.float32, copy=False) if order == 1 else out
