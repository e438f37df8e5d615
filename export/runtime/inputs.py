"""The runtime's one validation layer for images: arrays, nibabel images or ``LoadedImage``-likes.

Every public entry of the runtime (:meth:`Registrator.register`, :func:`warp_labels`,
:func:`resample_to_grid`, ...) turns its inputs into ``(data, 4x4 affine)`` here, so one rule
says what is accepted and every refusal is an :class:`fnoreg_core.io.ImageError` (or a
``TypeError`` for something that is not an image at all) that says what to do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fnoreg_core.geometry import ImageError, check_affine, squeeze_shape, squeeze_to

__all__ = ["as_image", "input_ndim", "input_shape"]


def as_image(x: Any, affine: Any, name: str, dims: int, labels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(data, affine4)`` of an input: numpy array, nibabel image, or LoadedImage-like (``.data``, ``.affine``).

    Parameters
    ----------
    x : the input; trailing singleton axes beyond ``dims`` are dropped
    affine : 4x4 (or 2-D 3x3) voxel -> RAS mm overriding the input's own (bare arrays: identity)
    name : what to call it in messages
    dims : required spatial dimensionality
    labels : integer label map (integer-valued floats become int32) instead of a float32 image

    Raises
    ------
    fnoreg_core.io.ImageError
        Wrong dimensionality, an axis with < 2 voxels, non-numeric or non-finite values,
        non-integer labels, a bad or singular affine.
    TypeError
        Neither an array nor an image (e.g. a path or a torch tensor).
    """
    if x is None:
        raise ImageError(f"expected {name} as a numpy array or a nibabel image, got None")
    if hasattr(x, "dataobj") and hasattr(x, "affine"):  # nibabel SpatialImage
        data = np.asanyarray(x.dataobj)
        img_affine = x.affine
    elif hasattr(x, "data") and hasattr(x, "affine") and isinstance(getattr(x, "data"), np.ndarray):
        data, img_affine = x.data, x.affine
    elif isinstance(x, np.ndarray) or isinstance(x, (list, tuple)):
        data, img_affine = np.asarray(x), None
    elif hasattr(x, "new_tensor"):
        raise TypeError(f"expected {name} as a numpy array, got a torch tensor (call .cpu().numpy())")
    else:
        raise TypeError(f"expected {name} as a numpy array or a nibabel image, got {type(x).__name__}")
    if affine is not None:
        img_affine = affine
    data = np.asarray(data)
    if data.dtype == object or np.iscomplexobj(data) or not (
            np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise ImageError(f"expected a real-valued numeric {name}, got dtype {data.dtype}")
    data = squeeze_to(data, dims)
    if data.ndim != dims:
        raise ImageError(f"expected a {dims}-D {name} for this {dims}D model, got shape {np.shape(data)} "
                         f"({data.ndim}-D)")
    if min(data.shape) < 2:
        raise ImageError(f"{name} has shape {data.shape}; every axis needs at least 2 voxels")
    aff = np.eye(4) if img_affine is None else check_affine(img_affine, f"the affine of {name}")
    check_affine(aff, f"the affine of {name}", dims=dims)
    if labels:
        if np.issubdtype(data.dtype, np.floating):
            if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
                raise ImageError(f"{name} is not a label map (non-integer values); pass an integer segmentation")
            data = data.astype(np.int32)
    else:
        data = data.astype(np.float32, copy=False)
        if not np.all(np.isfinite(data)):
            raise ImageError(f"{name} contains NaN or infinite voxels; replace them (e.g. with 0) and try again")
    return data, aff


def input_shape(x: Any) -> tuple[int, ...] | None:
    """The shape of an array or image input without reading its voxels (None when it has none)."""
    shape = getattr(x, "shape", None)
    if shape is None and hasattr(x, "data"):
        shape = getattr(x.data, "shape", None)
    return tuple(int(n) for n in shape) if shape is not None else None


def input_ndim(x: Any) -> int | None:
    """Spatial dimensionality of an input (trailing singleton axes dropped, at least 2), or None."""
    shape = input_shape(x)
    return None if shape is None else len(squeeze_shape(shape, 2))
