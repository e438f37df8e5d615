"""Reading and writing images (numpy + nibabel; torch-free).

Every entry point that takes a user's image goes through :func:`load_image`, which turns the
usual mistakes (missing file, not an image, 4-D data, NaNs) into :class:`ImageError` with a message
that says what to do. :func:`save_image` and :func:`save_warp_itk` write results (NIfTI, atomically);
displacement files follow the ITK convention (5-D, intent vector, LPS mm) so that ITK, ANTs, SimpleITK
and 3D Slicer read them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .geometry import ImageError, check_affine, reorient_to_ras, spacing, squeeze_shape
from .staging import staged_folder

__all__ = ["ImageError", "LoadedImage", "load_image", "IMAGE_SUFFIXES", "save_image", "save_warp_itk", "load_warp_itk",
           "NIFTI_INTENT_VECTOR", "staged_folder"]

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh")


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
        return spacing(self.affine, self.data.ndim)


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
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ImageError(f"cannot open image {str(path)[:120]}: {exc.strerror or exc}; check the path") from None
    if not exists:
        raise ImageError(f"image {path} does not exist; check the path")
    if is_dir:
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
    shape = squeeze_shape(original_shape, 3)  # (X, Y, Z, 1) -> (X, Y, Z)
    if len(shape) > 3:
        raise ImageError(f"{path} is {len(shape)}-D with shape {original_shape}; expected one 2-D or 3-D image "
                         "(extract a single volume first, e.g. with fslroi or nibabel)")
    from .geometry import MAX_AXIS, MAX_VOXELS, check_affine

    if any(n > MAX_AXIS for n in shape) or int(np.prod(shape, dtype=np.float64)) > MAX_VOXELS:
        raise ImageError(f"{path} has shape {original_shape}, larger than fnoreg takes (at most {MAX_AXIS} voxels per "
                         "axis); crop or downsample it first")
    dtype = img.get_data_dtype() if hasattr(img, "get_data_dtype") else None
    if dtype is not None and dtype.fields is not None:
        raise ImageError(f"{path} is an RGB/structured image (dtype {dtype}); convert it to one grey channel "
                         "(e.g. with fslmaths or nibabel) first")
    check_affine(original_affine, f"the affine of {path}", dims=2 if len(squeeze_shape(shape, 2)) == 2 else 3)
    try:
        data = np.asarray(img.dataobj)
    except Exception as exc:
        raise ImageError(f"{path}: cannot read the voxel data ({type(exc).__name__}: {exc})") from None
    data = data.reshape(data.shape[: len(shape)]) if data.ndim > len(shape) else data
    affine = original_affine
    if canonical and data.ndim == 3:
        data, affine = reorient_to_ras(data, original_affine)
    if data.ndim == 3 and data.shape[2] == 1 and allow_2d:
        data = data[:, :, 0]
    if data.ndim < 2 or (data.ndim == 2 and not allow_2d):
        raise ImageError(f"{path} has shape {original_shape}; expected a {'2-D or ' if allow_2d else ''}3-D image")
    if np.iscomplexobj(data):
        raise ImageError(f"{path} holds complex values; expected a real-valued image")
    if labels:
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise ImageError(f"{path} is not a label map (non-integer values); pass an integer segmentation")
        if data.size and (data.min() < np.iinfo(np.int32).min or data.max() > np.iinfo(np.int32).max):
            raise ImageError(f"{path} has label values outside the 32-bit range ({data.min()}..{data.max()}); "
                             "renumber the labels (e.g. 1..N) first")
        data = data.astype(np.int32)
    else:
        data = data.astype(np.float32)
        if not np.all(np.isfinite(data)):
            raise ImageError(f"{path} contains NaN or infinite voxels; replace them (e.g. with 0) and try again")
    return LoadedImage(data=data, affine=np.asarray(affine, dtype=np.float64), path=path,
                       original_affine=original_affine, original_shape=original_shape)


# ------------------------------------------------------------------------------------------------
# writing


#: NIfTI intent code of a vector-valued image (``NIFTI_INTENT_VECTOR``): what ITK / ANTs / Slicer
#: expect on a displacement field file.
NIFTI_INTENT_VECTOR = 1007


def _check_affine(affine: np.ndarray) -> np.ndarray:
    aff = np.asarray(affine)
    if aff.shape != (4, 4):  # check_affine also embeds 3x3 2-D affines; a file needs the 4x4
        raise ImageError(f"expected a 4x4 voxel -> RAS affine, got shape {aff.shape}")
    return check_affine(aff, "affine", dims=3)


def _nifti(data: np.ndarray, affine: np.ndarray):
    """A NIfTI-1 image whose qform and sform both hold ``affine`` (code 1, scanner), units mm.

    Both forms are set so that every reader (nibabel prefers the sform, ITK may take either) sees
    the same geometry.
    """
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


def _atomic_save(img, path: Path) -> Path:
    """Save ``img`` to ``path`` via a temporary file in the same folder (no half-written file)."""
    import nibabel as nib

    path = Path(path)
    name = path.name
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise ValueError(f"expected a .nii or .nii.gz output path, got {path}")
    suffix = ".nii.gz" if name.endswith(".nii.gz") else ".nii"
    tmp = path.with_name(f".{name[: -len(suffix)]}.tmp{os.getpid()}{suffix}")
    try:
        nib.save(img, str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_image(data: np.ndarray, affine: np.ndarray, path: str | Path, dtype: np.dtype | str | None = None) -> Path:
    """Write a 2-D or 3-D image (or label map) as NIfTI with the given geometry.

    Parameters
    ----------
    data : (X, Y) or (X, Y, Z) array (or with trailing singleton axes), array order of ``affine``
    affine : (4, 4) voxel -> RAS mm, e.g. the fixed image's ``LoadedImage.affine``
    path : ``.nii`` or ``.nii.gz``; written atomically (temporary file, then rename)
    dtype : stored dtype; default float32 for floating data, the smallest of int16/int32 that
        holds integer data

    Raises
    ------
    ValueError
        Not 2-D/3-D data, non-finite floats, a bad affine, or a path that is not NIfTI.
    """
    arr = np.asarray(data)
    shape = squeeze_shape(arr.shape, 3)
    if len(shape) not in (2, 3):
        raise ValueError(f"expected a 2-D or 3-D image, got shape {arr.shape}")
    arr = arr.reshape(shape)
    aff = _check_affine(affine)
    if dtype is None:
        if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
            lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
            dtype = np.int16 if -(1 << 15) <= lo and hi < (1 << 15) else np.int32
        else:
            dtype = np.float32
    arr = arr.astype(dtype, copy=False)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError("expected finite image values, got NaN or inf")
    return _atomic_save(_nifti(arr, aff), Path(path))


def save_warp_itk(ddf_lps_mm: np.ndarray, affine: np.ndarray, path: str | Path) -> Path:
    """Write a displacement field the way ITK, ANTs, SimpleITK and 3D Slicer read it.

    The file is a 5-D NIfTI ``(X, Y, Z, 1, 3)`` (2-D fields: ``(X, Y, 1, 1, 2)``), float32, intent
    code 1007 (vector), on the grid of ``affine``, components in LPS millimetres. SimpleITK reads
    it as a vector image for ``sitk.DisplacementFieldTransform``: a fixed-image point ``x`` (LPS)
    maps to ``x + d(x)`` in the moving image.

    Parameters
    ----------
    ddf_lps_mm : (ndim, X, Y[, Z]) float array
        Displacement in LPS mm (fixed -> moving), channel ``c`` = world axis ``c`` (L, P[, S]),
        spatial layout = the array order of ``affine`` (the FIXED image's grid). From a RAS
        field use :func:`fnoreg_core.fields.ddf_ras_to_lps`.
    affine : (4, 4) voxel -> RAS mm of the fixed image
    path : ``.nii`` or ``.nii.gz``; written atomically

    Raises
    ------
    ValueError
        Wrong shape, non-finite values, a bad affine or a non-NIfTI path.
    """
    arr = np.asarray(ddf_lps_mm)
    if arr.ndim not in (3, 4) or arr.shape[0] != arr.ndim - 1:
        raise ValueError(f"expected ddf_lps_mm of shape (2, X, Y) or (3, X, Y, Z), got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"expected a numeric displacement field, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("expected finite displacements, got NaN or inf")
    ndim = arr.shape[0]
    vec = np.moveaxis(arr.astype(np.float32), 0, -1)  # (X, Y[, Z], ndim)
    if ndim == 2:
        vec = vec[:, :, None, None, :]  # (X, Y, 1, 1, 2)
    else:
        vec = vec[:, :, :, None, :]  # (X, Y, Z, 1, 3)
    img = _nifti(np.ascontiguousarray(vec), _check_affine(affine))
    img.header.set_intent(NIFTI_INTENT_VECTOR, (), name="displacement (LPS mm)"[:16])
    return _atomic_save(img, Path(path))


def load_warp_itk(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a displacement field written by :func:`save_warp_itk` (or ANTs / ITK).

    Returns
    -------
    ddf_lps_mm : (ndim, X, Y[, Z]) float32, LPS mm, channel = world axis
    affine : (4, 4) voxel -> RAS mm of the field's grid

    Raises
    ------
    ImageError
        Missing file, not a NIfTI image, or not a ``(X, Y, Z, 1, 3)`` / ``(X, Y, 1, 1, 2)`` field.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"displacement field {path} does not exist")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:
        raise ImageError(f"{path} is not a readable NIfTI image ({type(exc).__name__}: {exc})") from None
    if data.ndim != 5 or data.shape[3] != 1 or data.shape[4] not in (2, 3):
        raise ImageError(f"{path} has shape {data.shape}; expected an ITK displacement field (X, Y, Z, 1, 3) "
                         "or (X, Y, 1, 1, 2)")
    ndim = data.shape[4]
    if ndim == 2:
        if data.shape[2] != 1:
            raise ImageError(f"{path} has shape {data.shape}; a 2-D field must be (X, Y, 1, 1, 2)")
        vec = data[:, :, 0, 0, :]
    else:
        vec = data[:, :, :, 0, :]
    return np.ascontiguousarray(np.moveaxis(vec, -1, 0)), np.asarray(img.affine, dtype=np.float64)
