"""Reading images (numpy + nibabel; torch-free).

Every entry point that takes a user's image goes through :func:`load_image`, which turns the
usual mistakes (missing file, not an image, 4-D data, NaNs) into :class:`ImageError` with a message
that says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ImageError", "LoadedImage", "load_image", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh")


class ImageError(ValueError):
    """A user's image file cannot be used as given."""


@dataclass
class LoadedImage:
    """An image as an array with its geometry.

    data : float32 (or integer for labels) array, spatial shape ``(X, Y[, Z])`` in array order
    affine : 4x4 voxel -> RAS mm of ``data`` (after reorientation if ``canonical``)
    path : where it came from
    original_affine, original_shape : geometry of the file as stored (to map results back)
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path
    original_affine: np.ndarray
    original_shape: tuple[int, ...]

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm per array axis."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, : self.data.ndim] ** 2).sum(axis=0)))


def load_image(path: str | Path, canonical: bool = True, labels: bool = False,
               allow_2d: bool = True) -> LoadedImage:
    """Load a NIfTI/MGZ image as a 2D or 3D array.

    Parameters
    ----------
    canonical : reorient to the closest RAS+ orientation (``nibabel.as_closest_canonical``)
    labels : integer label map: values must be whole numbers; returned as int32
    allow_2d : accept 2-D images (and 3-D with a single slice, squeezed to 2-D)

    Raises
    ------
    ImageError
        Missing file, unreadable/not an image, 4-D or higher data, non-finite values, or
        non-integer labels.
    """
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise ImageError(f"image {path} does not exist; check the path")
    if path.is_dir():
        raise ImageError(f"{path} is a folder; expected an image file ({', '.join(IMAGE_SUFFIXES)})")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for non-images
        raise ImageError(f"{path} is not a readable image ({type(exc).__name__}: {exc}); "
                         f"expected NIfTI or MGZ ({', '.join(IMAGE_SUFFIXES)})") from None
    if not hasattr(img, "affine") or img.affine is None:
        raise ImageError(f"{path} has no spatial affine; expected a NIfTI or MGZ image")
    original_affine = np.asarray(img.affine, dtype=np.float64)
    original_shape = tuple(int(n) for n in img.shape)
    shape = original_shape
    while len(shape) > 3 and shape[-1] == 1:  # (X, Y, Z, 1) -> (X, Y, Z)
        shape = shape[:-1]
    if len(shape) > 3:
        raise ImageError(f"{path} is {len(shape)}-D with shape {original_shape}; expected one 2-D or 3-D image "
                         "(extract a single volume first, e.g. with fslroi or nibabel)")
    if canonical and len(original_shape) >= 3:
        img = nib.as_closest_canonical(img)
    try:
        data = np.asarray(img.dataobj)
    except Exception as exc:
        raise ImageError(f"{path}: cannot read the voxel data ({type(exc).__name__}: {exc})") from None
    data = data.reshape(data.shape[: len(shape)]) if data.ndim > len(shape) else data
    if data.ndim == 3 and data.shape[2] == 1 and allow_2d:
        data = data[:, :, 0]
    if data.ndim < 2 or (data.ndim == 2 and not allow_2d):
        raise ImageError(f"{path} has shape {original_shape}; expected a {'2-D or ' if allow_2d else ''}3-D image")
    if np.iscomplexobj(data):
        raise ImageError(f"{path} holds complex values; expected a real-valued image")
    if labels:
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise ImageError(f"{path} is not a label map (non-integer values); pass an integer segmentation")
        data = data.astype(np.int32)
    else:
        data = data.astype(np.float32)
        if not np.all(np.isfinite(data)):
            raise ImageError(f"{path} contains NaN or infinite voxels; replace them (e.g. with 0) and try again")
    return LoadedImage(data=data, affine=np.asarray(img.affine, dtype=np.float64), path=path,
                       original_affine=original_affine, original_shape=original_shape)
