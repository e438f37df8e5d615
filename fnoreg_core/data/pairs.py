"""A user's own NIfTI (or MGZ) pairs, listed in a CSV file.

CSV format (header required; column names are case-insensitive; other columns are ignored)::

    moving,fixed,moving_labels,fixed_labels
    sub-01_T1w.nii.gz,template.nii.gz,sub-01_aseg.nii.gz,template_aseg.nii.gz
    /data/sub-02_T1w.nii.gz,template.nii.gz,/data/sub-02_aseg.nii.gz,template_aseg.nii.gz

``moving`` and ``fixed`` are required; ``moving_labels`` and ``fixed_labels`` are optional, but
when given they must be filled on every row (or on none). Relative paths are relative to the CSV's
folder (or to ``root``).

What happens to each pair (the working grid)
--------------------------------------------
1. 3-D images are reoriented to the closest RAS+ orientation (``load_image(canonical=True)``).
   Images with one singleton axis (``X x Y x 1``, ``X x 1 x Y``) or stored 2-D are 2-D: they are
   used in-plane as stored (no reorientation). All pairs must have the same number of dimensions.
2. Intensities are mapped to [0, 1] with ``norm`` (:func:`fnoreg_core.intensity.normalise`) on
   the full-resolution image; the parameters go into ``sample["meta"]``.
3. The working grid of a pair is the FIXED image's field of view sampled at ``shape`` voxels (first
   and last voxel centres kept: the corner-aligned convention of :mod:`fnoreg_core.fields`);
   ``shape`` defaults to the first pair's fixed image size. The fixed image is resized onto it.
4. ``space="world"`` (default): the moving image is resampled onto that grid through the two
   affines (voxel -> mm), so moving and fixed images with different voxel sizes, orientations or
   fields of view are compared at the same physical positions; moving voxels outside the moving
   image's field of view read 0. Use this for scans that share a world space (e.g. after affine
   pre-alignment, or both in MNI space). When both images share one grid this is exactly an index
   resize. ``space="index"``: the moving image is resized by array index onto ``shape`` (its own
   field of view stretched onto the fixed one), for images whose affines are meaningless (e.g.
   converted photographs). 2-D pairs are matched in-plane; out-of-plane offsets are ignored.
   Images are interpolated linearly, labels by nearest neighbour.

Mapping results back
--------------------
Samples hold plain values only, so they batch with ``default_collate``:
``sample["meta"] = {"index", "moving_low", "moving_high", "fixed_low", "fixed_high"}``
(the normalisation: ``normalised = clip((raw - low) / (high - low), 0, 1)``;
:func:`fnoreg_core.intensity.denormalise` inverts it). The geometry (numpy affines) comes from
:meth:`CsvPairs.native_geometry` (header reads only), and :func:`to_native` resamples any array on
the working grid (a moved image, a label map, a Jacobian map) onto an image's native voxel grid, to
be saved with its ``native_affine``. Displacement FIELDS need their vectors converted too
(:mod:`fnoreg_core.fields`); resampling their components alone is not enough.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fnoreg_core.data import DataSpecError
from fnoreg_core.data.base import PairSource
from fnoreg_core.geometry import affine_nd, ras_orientation, resample_index, spacing, squeeze_shape
from fnoreg_core.intensity import DEFAULT_NORM, IntensityNorm, normalise

__all__ = ["CsvPairs", "PairRow", "ImageGeometry", "PairGeometry", "to_native", "to_working", "read_pair_csv",
           "image_geometry"]

REQUIRED = ("moving", "fixed")
LABEL_COLUMNS = ("moving_labels", "fixed_labels")
SPACES = ("world", "index")


@dataclass(frozen=True)
class PairRow:
    """One CSV row: resolved paths (labels None when the CSV has none) and its line number."""

    moving: Path
    fixed: Path
    moving_labels: Path | None
    fixed_labels: Path | None
    line: int


@dataclass(frozen=True)
class ImageGeometry:
    """Where an image's voxels are, natively and on the working grid.

    path : the image file
    native_affine, native_shape : the file as stored (4x4 voxel -> RAS mm; its spatial shape)
    affine, shape : the array the source works from: 3-D images reoriented to RAS+, 2-D images
        in-plane as stored (``affine`` then has the singleton axis as column 2)
    working_affine, working_shape : the grid of the sample (4x4 working voxel -> RAS mm). In
        ``space="world"`` the moving and fixed images of a pair share it; in ``space="index"`` each
        image's own field of view is stretched onto the working shape.
    """

    path: Path
    native_affine: np.ndarray
    native_shape: tuple[int, ...]
    affine: np.ndarray
    shape: tuple[int, ...]
    working_affine: np.ndarray
    working_shape: tuple[int, ...]

    @property
    def dims(self) -> int:
        return len(self.shape)

    @property
    def working_spacing(self) -> tuple[float, ...]:
        """Working-grid voxel size in mm per array axis."""
        return spacing(self.working_affine, self.dims)

    def to_native(self, array: np.ndarray, order: int = 1) -> np.ndarray:
        """:func:`to_native` of ``array`` with this geometry."""
        return to_native(array, self, order=order)


@dataclass(frozen=True)
class PairGeometry:
    """Geometry of both images of a pair (see :class:`ImageGeometry`)."""

    moving: ImageGeometry
    fixed: ImageGeometry


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".mgz", ".mgh", ".gz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def image_geometry(path: str | Path) -> tuple[np.ndarray, tuple[int, ...], np.ndarray, tuple[int, ...]]:
    """``(native_affine, native_shape, affine, shape)`` of an image from its header (no voxel reads).

    ``affine``/``shape`` describe the array :class:`CsvPairs` works from (see :class:`ImageGeometry`),
    identical to what ``load_image(path, canonical=True)`` returns for 3-D images.

    Raises
    ------
    fnoreg_core.io.ImageError
        Missing or unreadable file, more than 3 spatial axes, or fewer than 2 non-singleton axes.
    """
    import nibabel as nib

    from fnoreg_core.io import ImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image {path} does not exist; check the path")
    try:
        img = nib.load(str(path))
        native_affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as exc:
        raise ImageError(f"{path} is not a readable image ({type(exc).__name__}: {exc}); expected NIfTI or MGZ") from None
    native_shape = tuple(int(n) for n in img.shape)
    shape = squeeze_shape(native_shape, 3)
    if len(shape) > 3:
        raise ImageError(f"{path} is {len(shape)}-D with shape {native_shape}; expected one 2-D or 3-D image "
                         "(extract a single volume first)")
    native_shape = shape
    big = [i for i, n in enumerate(shape) if n > 1]
    if len(big) < 2:
        raise ImageError(f"{path} has shape {native_shape}; expected a 2-D or 3-D image")
    if len(big) == 2:  # 2-D: in-plane as stored; singleton axis (if any) becomes column 2
        rest = [i for i in range(3) if i not in big]
        affine = native_affine[:, big + rest[:1] + [3]] if len(shape) == 3 else native_affine.copy()
        return native_affine, native_shape, affine, tuple(shape[i] for i in big)
    _, affine, canon = ras_orientation(native_affine, shape)
    return native_affine, native_shape, affine, canon


def _load_array(path: Path, shape: tuple[int, ...], labels: bool) -> np.ndarray:
    """Voxels of ``path`` as the array described by :func:`image_geometry` (``shape``)."""
    from fnoreg_core.io import load_image

    data = load_image(path, canonical=len(shape) == 3, labels=labels).data
    if data.size != int(np.prod(shape)):
        raise DataSpecError(f"{path}: read {data.shape}, expected {shape} from its header")
    return data.reshape(shape)  # 2-D stored with a middle/first singleton axis


def to_working(array: np.ndarray, geometry: ImageGeometry, order: int = 1) -> np.ndarray:
    """Resample ``array`` (shape ``geometry.shape``, the image's reoriented grid) onto the working grid.

    ``order`` 1 (linear, float32) for images, 0 (nearest, dtype kept) for labels.
    """
    array = np.asarray(array)
    if array.shape != tuple(geometry.shape):
        raise ValueError(f"expected an array of shape {geometry.shape}, got {array.shape}")
    matrix = affine_nd(np.linalg.inv(geometry.affine) @ geometry.working_affine, geometry.dims)
    return resample_index(array, matrix, geometry.working_shape, order)


def to_native(array: np.ndarray, geometry: ImageGeometry, order: int = 1) -> np.ndarray:
    """Resample ``array`` on the working grid onto the image's native voxel grid (the file as stored).

    Parameters
    ----------
    array : ``(*lead, *geometry.working_shape)``; leading axes (channels) are resampled one by one
    geometry : :meth:`CsvPairs.native_geometry` ``(i).moving`` or ``.fixed``
    order : 1 linear (images, maps; float32), 0 nearest (labels; dtype kept)

    Returns
    -------
    ``(*lead, *geometry.native_shape)``: save with ``geometry.native_affine`` to overlay the original
    file. Scalar maps only: displacement vectors also need their components converted
    (:mod:`fnoreg_core.fields`).
    """
    array = np.asarray(array)
    d = geometry.dims
    if array.ndim < d or array.shape[array.ndim - d:] != tuple(geometry.working_shape):
        raise ValueError(f"expected an array ending in the working shape {geometry.working_shape}, got {array.shape}")
    # 3-D: straight onto the stored voxel grid (native_affine), which undoes the reorientation to RAS;
    # 2-D: onto the in-plane grid (affine), then the stored singleton axis is put back by reshape
    source_affine, out_shape = (geometry.native_affine, geometry.native_shape) if d == 3 else \
        (geometry.affine, geometry.shape)
    matrix = affine_nd(np.linalg.inv(geometry.working_affine) @ source_affine, d)
    lead = array.shape[: array.ndim - d]
    flat = array.reshape((-1,) + tuple(geometry.working_shape))
    out = np.stack([resample_index(a, matrix, out_shape, order) for a in flat])
    return out.reshape(lead + tuple(geometry.native_shape))


def read_pair_csv(csv_path: str | Path, root: str | Path | None = None) -> list[PairRow]:
    """Parse and check a pair CSV (see the module docstring); files are checked for existence only.

    Raises
    ------
    DataSpecError
        Missing/empty CSV, missing columns, empty cells, labels on some rows only, or a listed file
        that does not exist (the message names the line and the file).
    """
    csv_path = Path(csv_path).expanduser()
    if not csv_path.exists():
        raise DataSpecError(f"pair list {csv_path} does not exist; expected a CSV with a header "
                            "'moving,fixed[,moving_labels,fixed_labels]'")
    if not csv_path.is_file():
        raise DataSpecError(f"{csv_path} is a folder; expected a CSV file with columns moving,fixed"
                            "[,moving_labels,fixed_labels]")
    base = Path(root).expanduser() if root is not None else csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataSpecError(f"{csv_path} is empty; expected a header 'moving,fixed[,moving_labels,fixed_labels]' "
                                "and one row per pair")
        cols = [c.strip().lower() for c in header]
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise DataSpecError(f"{csv_path}: the header {header} lacks column(s) {missing}; expected "
                                "'moving,fixed[,moving_labels,fixed_labels]' (first line of the file)")
        label_cols = [c for c in LABEL_COLUMNS if c in cols]
        if len(label_cols) == 1:
            raise DataSpecError(f"{csv_path}: found column {label_cols[0]!r} without "
                                f"{[c for c in LABEL_COLUMNS if c not in cols][0]!r}; give both label columns or neither")
        index = {c: cols.index(c) for c in REQUIRED + tuple(label_cols)}
        rows: list[tuple[int, dict[str, str]]] = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            values = {c: (cells[i].strip() if i < len(cells) else "") for c, i in index.items()}
            rows.append((reader.line_num, values))
    if not rows:
        raise DataSpecError(f"{csv_path} lists no pairs; add one row per pair below the header")

    first_labelled: int | None = None
    first_unlabelled: int | None = None
    out = []
    for line, values in rows:
        for c in REQUIRED:
            if not values[c]:
                raise DataSpecError(f"{csv_path}, line {line}: the {c!r} cell is empty; every pair needs a moving "
                                    "and a fixed image")
        given = [bool(values.get(c)) for c in LABEL_COLUMNS]
        if any(given) and not all(given):
            raise DataSpecError(f"{csv_path}, line {line}: only one of moving_labels/fixed_labels is given; give "
                                "both label maps of a pair, or leave both empty on every row")
        if all(given) and label_cols:
            first_labelled = line if first_labelled is None else first_labelled
        else:
            first_unlabelled = line if first_unlabelled is None else first_unlabelled
        if first_labelled is not None and first_unlabelled is not None:
            bad = max(first_labelled, first_unlabelled)
            raise DataSpecError(f"{csv_path}, line {bad}: labels are given on line {first_labelled} but not on "
                                f"line {first_unlabelled}; give label maps for every pair or for none")

        def resolve(value: str, what: str) -> Path:
            p = Path(value).expanduser()
            p = p if p.is_absolute() else base / p
            if not p.exists():
                raise DataSpecError(f"{csv_path}, line {line}: {what} {p} does not exist (relative paths are "
                                    f"relative to {base})")
            if p.is_dir():
                raise DataSpecError(f"{csv_path}, line {line}: {what} {p} is a folder; expected an image file")
            return p

        labelled = all(given) and bool(label_cols)
        out.append(PairRow(
            moving=resolve(values["moving"], "moving image"), fixed=resolve(values["fixed"], "fixed image"),
            moving_labels=resolve(values["moving_labels"], "moving label map") if labelled else None,
            fixed_labels=resolve(values["fixed_labels"], "fixed label map") if labelled else None, line=line))
    return out


class CsvPairs(PairSource):
    """Registration pairs from a CSV of NIfTI/MGZ files (see the module docstring).

    Parameters
    ----------
    csv_path : the pair list
    shape : working-grid size (array order); default: the first pair's fixed image size
    norm : intensity normalisation to [0, 1] (recorded per image in ``sample["meta"]``)
    root : folder that relative paths start from (default: the CSV's folder)
    space : "world" (moving resampled through the affines; default) or "index" (resized by index)

    Raises
    ------
    DataSpecError
        Everything :func:`read_pair_csv` raises; unreadable images; images of different
        dimensionality; a label map whose grid differs from its image's; a bad ``shape``.
    """

    def __init__(self, csv_path: str | Path, shape: Sequence[int] | None = None,
                 norm: IntensityNorm = DEFAULT_NORM, root: str | Path | None = None, space: str = "world") -> None:
        from fnoreg_core.io import ImageError

        if space not in SPACES:
            raise DataSpecError(f"unknown resampling space {space!r}, expected one of {SPACES}")
        self.csv_path, self.norm, self.space = Path(csv_path).expanduser(), norm, space
        self.rows = read_pair_csv(self.csv_path, root=root)
        self.has_labels = self.rows[0].moving_labels is not None
        self.label_names = {}

        headers: dict[Path, tuple[np.ndarray, tuple[int, ...], np.ndarray, tuple[int, ...]]] = {}

        def header(path: Path, line: int):
            if path not in headers:
                try:
                    headers[path] = image_geometry(path)
                except ImageError as exc:
                    raise DataSpecError(f"{self.csv_path}, line {line}: {exc}") from None
            return headers[path]

        first = header(self.rows[0].fixed, self.rows[0].line)
        self.dims = len(first[3])
        for row in self.rows:
            for path, label_path in ((row.moving, row.moving_labels), (row.fixed, row.fixed_labels)):
                geo = header(path, row.line)
                if len(geo[3]) != self.dims:
                    raise DataSpecError(f"{self.csv_path}, line {row.line}: {path} is {len(geo[3])}-D {geo[3]}, but "
                                        f"{self.rows[0].fixed} (line {self.rows[0].line}) is {self.dims}-D; all pairs "
                                        "of one list must have the same number of dimensions")
                if label_path is not None:
                    lab = header(label_path, row.line)
                    if lab[3] != geo[3] or not np.allclose(lab[2], geo[2], atol=1e-2):
                        raise DataSpecError(
                            f"{self.csv_path}, line {row.line}: label map {label_path} (shape {lab[3]}) is not on the "
                            f"grid of its image {path} (shape {geo[3]}); the labels must share their image's voxel "
                            "grid (shape and affine): resample them with nearest-neighbour interpolation first")
        if self.dims == 2 and space == "world":
            for row in self.rows:
                m_aff, f_aff = headers[row.moving][2], headers[row.fixed][2]
                lin = affine_nd(np.linalg.inv(m_aff) @ f_aff, 2)[:2, :2]
                if np.linalg.cond(lin) > 1e6:
                    raise DataSpecError(
                        f"{self.csv_path}, line {row.line}: the 2-D images {row.moving} and {row.fixed} lie in "
                        "different planes according to their affines, so they cannot be matched in world space; "
                        "use space='index' (resize by pixel index) or fix the affines")
        if shape is None:
            shape = first[3]
        shape = tuple(int(n) for n in shape)
        if len(shape) != self.dims or min(shape) < 2:
            raise DataSpecError(f"working shape {shape} does not fit {self.dims}-D images; give {self.dims} sizes "
                                "of at least 2 voxels")
        self.shape = shape
        self._headers = headers
        spacings = [self.native_geometry(i).fixed.working_spacing for i in range(len(self))]
        same = all(np.allclose(s, spacings[0], rtol=1e-5, atol=1e-6) for s in spacings)
        self.voxel_size_mm = spacings[0] if same else None

    def __len__(self) -> int:
        return len(self.rows)

    def _geometry(self, path: Path, working_affine: np.ndarray | None) -> ImageGeometry:
        native_affine, native_shape, affine, shape = self._headers[path]
        if working_affine is None:  # this image's field of view stretched onto the working grid
            scale = np.eye(4)
            for i, (n, w) in enumerate(zip(shape, self.shape)):
                scale[i, i] = (n - 1) / (w - 1)
            working_affine = affine @ scale
        return ImageGeometry(path=path, native_affine=native_affine, native_shape=native_shape, affine=affine,
                             shape=shape, working_affine=working_affine, working_shape=self.shape)

    def native_geometry(self, index: int) -> PairGeometry:
        """Geometry of pair ``index`` (header reads only): see :class:`ImageGeometry` and :func:`to_native`."""
        row = self.rows[index]
        fixed = self._geometry(row.fixed, None)
        moving = self._geometry(row.moving, fixed.working_affine if self.space == "world" else None)
        return PairGeometry(moving=moving, fixed=fixed)

    def load(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        geo = self.native_geometry(index)
        sample: dict[str, Any] = {"name": f"{_stem(row.moving)}->{_stem(row.fixed)}"}
        meta: dict[str, Any] = {"index": int(index)}
        for key, path, g in (("moving", row.moving, geo.moving), ("fixed", row.fixed, geo.fixed)):
            data, params = normalise(_load_array(path, g.shape, labels=False), self.norm)
            sample[key] = np.clip(to_working(data, g, order=1), 0.0, 1.0).astype(np.float32)[None]
            meta[f"{key}_low"], meta[f"{key}_high"] = float(params["low"]), float(params["high"])
        if self.has_labels:
            for key, path, g in (("moving_labels", row.moving_labels, geo.moving),
                                 ("fixed_labels", row.fixed_labels, geo.fixed)):
                labels = _load_array(path, g.shape, labels=True)
                if labels.size and (labels.min() < np.iinfo(np.int16).min or labels.max() > np.iinfo(np.int16).max):
                    raise DataSpecError(f"{path}: label values {labels.min()}..{labels.max()} do not fit int16; "
                                        "renumber the labels")
                sample[key] = to_working(labels.astype(np.int16), g, order=0)[None]
        sample["meta"] = meta
        return sample
