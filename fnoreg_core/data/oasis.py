"""OASIS-1 in the neurite-oasis / Learn2Reg layout, with the paper's exact splits and pair lists.

Expected layout (the neurite-oasis v1.0 release, https://github.com/adalca/medical-datasets,
``neurite-oasis.md``; the Learn2Reg OASIS task uses the same subject folders)::

    ROOT/
      subjects.txt                 one subject folder name per line, e.g. OASIS_OAS1_0001_MR1
      seg24_labels.txt             optional: FreeSurfer colour table of the 2D labels (names)
      seg35_labels.txt             optional: FreeSurfer colour table of the 3D labels (names)
      OASIS_OAS1_0001_MR1/
        slice_norm.nii.gz          2D image, 160 x 192 (stored as 160 x 192 x 1), in [0, 1]
        slice_seg24.nii.gz         its 24-label segmentation
        aligned_norm.nii.gz        3D image, 160 x 192 x 224, in [0, 1]
        aligned_seg35.nii.gz       its 35-label segmentation
      ...

Files are read as stored (no reorientation to RAS): the images are already affinely aligned to a
common template space, cropped and scaled to [0, 1], and the paper (and its reference code, which
uses ``nib.load(...).get_fdata()``) treats them as plain arrays. Axis order is therefore the files'
array order. Half-resolution training (80x96 / 80x96x112; images linear, labels nearest) is
``OasisPairs(...).resized((80, 96, 112))``; evaluation in the paper is always at full resolution.

Splits (index ranges into ``subjects.txt``, ``[a, b)``), as in the reference code
(anac0der/fnoreg, ``deep_fourier_reg/train_oasis.py``, ``evaluate_oasis.py``,
``train_oasis3d.py``, ``evaluate_oasis3d.py``, ``dataloaders.py``):

=====  ===================================================  ===============================
split  2D                                                   3D
=====  ===================================================  ===============================
train  [0, 201): all ordered pairs of distinct subjects     [0, 384): consecutive pairs,
       (40,200)                                             both directions (766)
val    [201, 213): consecutive, both directions (22)        [384, 394): consecutive, forward (9)
test   [213, 414): consecutive, both directions (400)       [394, 414): consecutive, forward (19)
=====  ===================================================  ===============================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fnoreg_core.data import SPLITS, DataSpecError
from fnoreg_core.data.base import PairSource
from fnoreg_core.geometry import spacing, squeeze_shape

__all__ = ["OasisPairs", "oasis_pairs", "split_subjects", "read_subjects", "read_label_table",
           "OASIS_FILES", "OASIS_SPLITS", "N_SUBJECTS"]

#: Number of subjects in the neurite-oasis release (all splits together use [0, 414)).
N_SUBJECTS = 414

#: dims -> (image file, label file, label table file, number of labels, full-resolution shape)
OASIS_FILES: dict[int, tuple[str, str, str, int, tuple[int, ...]]] = {
    2: ("slice_norm.nii.gz", "slice_seg24.nii.gz", "seg24_labels.txt", 24, (160, 192)),
    3: ("aligned_norm.nii.gz", "aligned_seg35.nii.gz", "seg35_labels.txt", 35, (160, 192, 224)),
}

#: dims -> split -> (first subject, end subject (exclusive), pairing scheme)
OASIS_SPLITS: dict[int, dict[str, tuple[int, int, str]]] = {
    2: {"train": (0, 201, "all"), "val": (201, 213, "both"), "test": (213, 414, "both")},
    3: {"train": (0, 384, "both"), "val": (384, 394, "forward"), "test": (394, 414, "forward")},
}

_LAYOUT_HINT = ("expected the neurite-oasis / Learn2Reg OASIS layout: ROOT/subjects.txt (one subject folder name "
                "per line, e.g. OASIS_OAS1_0001_MR1) and ROOT/OASIS_OAS1_0001_MR1/{slice_norm,slice_seg24,"
                "aligned_norm,aligned_seg35}.nii.gz; download: https://github.com/adalca/medical-datasets/blob/"
                "master/neurite-oasis.md")


def _check_dims_split(dims: int, split: str) -> None:
    if dims not in OASIS_FILES:
        raise DataSpecError(f"OASIS pairs are 2D or 3D, got dims={dims}")
    if split not in SPLITS:
        raise DataSpecError(f"unknown split {split!r}, expected one of {SPLITS}")


def split_subjects(subject_ids: Sequence[Any], dims: int, split: str) -> list[Any]:
    """The subjects of ``split`` (a slice of ``subject_ids``, in ``subjects.txt`` order).

    Raises
    ------
    DataSpecError
        Fewer subjects than the split needs.
    """
    _check_dims_split(dims, split)
    start, stop, _ = OASIS_SPLITS[dims][split]
    ids = list(subject_ids)
    if len(ids) < stop:
        raise DataSpecError(f"the {dims}D OASIS {split} split uses subjects [{start}, {stop}) of subjects.txt, i.e. "
                            f"needs at least {stop} subjects, but {len(ids)} were found; use the full 414-subject "
                            "neurite-oasis release (or pass your own list of at least that many subjects)")
    return ids[start:stop]


def oasis_pairs(subject_ids: Sequence[Any], dims: int, split: str,
                reference_indexing: bool = False) -> list[tuple[Any, Any]]:
    """The paper's ``(moving, fixed)`` pair list for ``split`` (pure; no files touched).

    Parameters
    ----------
    subject_ids : all subjects in ``subjects.txt`` order (at least as many as the split needs)
    dims : 2 or 3
    split : "train" | "val" | "test"
    reference_indexing : 2D train only. The reference ``TrainOasis2d`` maps index ``i`` of
        ``range(n * (n - 1))`` to ``moving = i // n``, ``fixed = i % n`` (``+ 1`` where that equals
        ``moving``). That yields the same count (40,200) but not quite all ordered pairs: the last
        subject is never moving and each ``(m, m + 1)`` appears twice. ``True`` reproduces that
        list exactly; the default is the intended set, every ordered pair of distinct subjects.

    Returns
    -------
    list of ``(moving, fixed)``, in the reference's order:

    * ``"all"`` (2D train): moving-major, ``[(s0, s1), (s0, s2), ..., (s1, s0), (s1, s2), ...]``
    * ``"both"``: forward ``(s0, s1), ..., (s_{n-2}, s_{n-1})``, then backward
      ``(s_{n-1}, s_{n-2}), ..., (s1, s0)`` (``ValidationOasis2d`` / ``TrainOasis3d``)
    * ``"forward"``: ``(s0, s1), ..., (s_{n-2}, s_{n-1})`` (``ValidationOasis3d``)

    The first of each pair is the moving image: the reference loaders return
    ``load_pair(i, j) = (image(i), image(j), label(i), label(j))`` and the training/evaluation loops
    unpack ``for moving, fixed, moving_labels, fixed_labels in ...``.
    """
    subjects = split_subjects(subject_ids, dims, split)
    scheme = OASIS_SPLITS[dims][split][2]
    n = len(subjects)
    if scheme == "all":
        if reference_indexing:
            # dataloaders.TrainOasis2d.__getitem__: j = i % n if i % n != i // n else i % n + 1
            idx = [(i // n, (i % n) if (i % n) != (i // n) else (i % n) + 1) for i in range(n * (n - 1))]
        else:
            idx = [(m, f) for m in range(n) for f in range(n) if m != f]
    else:
        if reference_indexing:
            raise DataSpecError("reference_indexing only changes the 2D train split")
        idx = [(i, i + 1) for i in range(n - 1)]
        if scheme == "both":  # ValidationOasis2d / TrainOasis3d: i >= n-1 -> ((n-1)*2 - i, (n-1)*2 - i - 1)
            idx += [(i + 1, i) for i in range(n - 2, -1, -1)]
    return [(subjects[m], subjects[f]) for m, f in idx]


def read_subjects(root: str | Path) -> list[str]:
    """Subject folder names listed in ``ROOT/subjects.txt`` (blank lines skipped)."""
    root = Path(root)
    path = root / "subjects.txt"
    if not path.is_file():
        raise DataSpecError(f"{root} has no subjects.txt; {_LAYOUT_HINT}")
    names = [line.strip() for line in path.read_text().splitlines()]
    names = [name for name in names if name and not name.startswith("#")]
    if not names:
        raise DataSpecError(f"{path} lists no subjects; {_LAYOUT_HINT}")
    return names


def read_label_table(path: str | Path, n_labels: int) -> dict[int, str]:
    """``{label: name}`` for labels 1..n_labels from a FreeSurfer colour table (``id name r g b a``).

    Labels the table does not name (or a missing table) get ``"label N"``.
    """
    names = {k: f"label {k}" for k in range(1, n_labels + 1)}
    path = Path(path)
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and not parts[0].startswith("#"):
                try:
                    label = int(parts[0])
                except ValueError:
                    continue
                if 1 <= label <= n_labels:
                    names[label] = parts[1]
    return names


def _short_name(folder: str) -> str:
    """``OASIS_OAS1_0001_MR1`` -> ``OAS1_0001``."""
    name = folder.removeprefix("OASIS_")
    return name.removesuffix("_MR1") or folder


def _header_shape(path: Path, dims: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Spatial shape (trailing singleton axes dropped down to ``dims``) and voxel size, from the header."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise DataSpecError(f"{path} is not a readable NIfTI image ({type(exc).__name__}: {exc})") from None
    shape = squeeze_shape(img.shape, dims)
    if len(shape) != dims:
        raise DataSpecError(f"{path} has shape {tuple(img.shape)}; expected a {dims}-D image for {dims}D OASIS pairs")
    return shape, spacing(img.affine, dims)


class OasisPairs(PairSource):
    """OASIS-1 registration pairs (neurite-oasis layout) with the paper's splits.

    Parameters
    ----------
    root : folder of the release (holds ``subjects.txt`` and the ``OASIS_OAS1_*_MR1`` folders)
    dims : 2 (``slice_norm`` / ``slice_seg24``) or 3 (``aligned_norm`` / ``aligned_seg35``)
    split : "train" | "val" | "test" (see the module docstring)
    subjects : subject folder names to use instead of ``subjects.txt`` (same order semantics)
    reference_indexing : see :func:`oasis_pairs` (2D train only)

    Samples are at the files' resolution (160x192 / 160x192x224 for the real data); use
    :meth:`resized` for half resolution. Images are float32 in [0, 1] (the release is scaled to
    [0, 1]; values are clipped to be safe), labels int16 with 24 (2D) or 35 (3D) structures.

    Raises
    ------
    DataSpecError
        ``root`` missing or not a folder; no ``subjects.txt``; fewer subjects than the split needs;
        a subject folder or file of the split missing (checked here, cheaply); on load, an image
        and its labels (or two subjects) of different shapes.
    """

    has_labels = True

    def __init__(self, root: str | Path, dims: int = 3, split: str = "train",
                 subjects: Sequence[str] | None = None, reference_indexing: bool = False) -> None:
        _check_dims_split(dims, split)
        root = Path(root).expanduser()
        if not root.exists():
            raise DataSpecError(f"OASIS folder {root} does not exist; pass the folder that holds subjects.txt "
                                f"({_LAYOUT_HINT})")
        if not root.is_dir():
            raise DataSpecError(f"{root} is a file; pass the OASIS folder that holds subjects.txt ({_LAYOUT_HINT})")
        self.root, self.dims, self.split = root, dims, split
        self.subjects = list(subjects) if subjects is not None else read_subjects(root)
        self.pairs = oasis_pairs(self.subjects, dims, split, reference_indexing=reference_indexing)
        self.image_file, self.label_file, table, n_labels, _ = OASIS_FILES[dims]

        needed = list(dict.fromkeys(s for pair in self.pairs for s in pair))
        missing = []
        for subject in needed:
            folder = root / subject
            if not folder.is_dir():
                missing.append(f"{folder}/ (subject folder)")
                continue
            for name in (self.image_file, self.label_file):
                if not (folder / name).is_file():
                    missing.append(str(folder / name))
        if missing:
            shown = "\n  ".join(missing[:5]) + (f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise DataSpecError(f"the {dims}D OASIS {split} split needs {len(needed)} subjects from {root}; "
                                f"{len(missing)} file(s) are missing:\n  {shown}\n{_LAYOUT_HINT}")
        self._shape_from = root / needed[0] / self.image_file
        self.shape, self.voxel_size_mm = _header_shape(self._shape_from, dims)
        self.label_names = read_label_table(root / table, n_labels)

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, subject: str, labels: bool) -> tuple[np.ndarray, Path]:
        from fnoreg_core.io import load_image

        path = self.root / subject / (self.label_file if labels else self.image_file)
        # canonical=False: the arrays as stored (template space, see the module docstring)
        return load_image(path, canonical=False, labels=labels).data, path

    def load_subject(self, subject: str) -> tuple[np.ndarray, np.ndarray]:
        """One subject's ``(image float32 in [0, 1], labels int16)``, spatial shape ``self.shape``."""
        image, image_path = self._read(subject, labels=False)
        labels, label_path = self._read(subject, labels=True)
        if image.shape != labels.shape:
            raise DataSpecError(f"{image_path} has shape {image.shape} but its labels {label_path} have shape "
                                f"{labels.shape}; an image and its label map must share one grid (re-extract "
                                "that subject from the release)")
        if image.shape != self.shape:
            raise DataSpecError(f"{image_path} has shape {image.shape}, but this {self.dims}D OASIS source is "
                                f"{self.shape} (from {self._shape_from}); all subjects must share one grid "
                                "(re-extract that subject from the release)")
        return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False), labels.astype(np.int16)

    def load(self, index: int) -> dict[str, Any]:
        moving, fixed = self.pairs[index]
        m_img, m_lab = self.load_subject(moving)
        f_img, f_lab = self.load_subject(fixed)
        return {"moving": m_img[None], "fixed": f_img[None], "moving_labels": m_lab[None],
                "fixed_labels": f_lab[None], "name": f"{_short_name(moving)}->{_short_name(fixed)}"}
