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

__all__ = ["as_image", "input_ndim", "input_shape", "check_network_output"]

_INT32 = np.iinfo(np.int32)


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
    try:
        data = np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged lists, bad proxies
        raise ImageError(f"{name} is not a regular numeric array ({exc})") from None
    except (OSError, EOFError) as exc:  # a truncated or unreadable file behind a nibabel proxy
        raise ImageError(f"cannot read the voxels of {name} ({type(exc).__name__}: {exc}); the file is truncated "
                         "or damaged: export it again") from None
    if data.dtype.fields is not None:
        raise ImageError(f"{name} is an RGB/structured image (dtype {data.dtype}); convert it to one grey channel "
                         "(e.g. with nibabel or fslmaths) first")
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
        if data.size and not data.dtype == bool and (data.min() < _INT32.min or data.max() > _INT32.max):
            raise ImageError(f"{name} has label values outside the 32-bit range ({data.min()}..{data.max()}); "
                             "renumber the labels (e.g. 1..N) first")
        if data.dtype != np.int32 and (np.issubdtype(data.dtype, np.floating) or data.dtype.itemsize > 4
                                       or data.dtype == np.uint32):
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


def check_network_output(out: Any, want: tuple[int, ...], model: Any) -> np.ndarray:
    """The network's ``ddf_norm`` if it has shape ``want`` and finite values, else ``BackendError``.

    A graph that returns another shape, NaN or inf is not a usable FNOReg export (or its inputs
    overflowed it): refused instead of writing a NaN field.
    """
    from .backends import BackendError

    out = np.asarray(out)
    if out.shape != tuple(want):
        raise BackendError(f"the model {model} returned shape {out.shape}, expected {tuple(want)}; it is not an "
                           "FNOReg registration export (re-export it with fnoreg-export)")
    if not np.all(np.isfinite(out)):
        raise BackendError(f"the model {model} returned NaN or infinite displacements; it is damaged or not an FNOReg "
                           "export (re-export it with fnoreg-export, check its parity)")
    return out.astype(np.float32, copy=False)
