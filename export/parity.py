"""Export parity: does the exported graph predict the same displacement as the PyTorch model?

Parity is measured where it matters to a user, on the displacement in VOXELS of the grid it is
applied to (``fnoreg_core.fields.ddf_norm_to_vox``), on two kinds of input per resolution:

* a real image pair from ``assets/demo`` (NIfTI/MGZ files of the model's dimensionality, from the
  folder whose grid is closest), resampled to the resolution (``fnoreg_core.geometry.resize``)
  and intensity-normalised (``fnoreg_core.intensity.normalise`` with the model's normalisation),
  when such files exist;
* a pair of random smooth images (Gaussian-filtered noise scaled to [0, 1]), always.

Bounds (max |difference| over all voxels and both inputs):

* fp32 graphs: :data:`FP32_BOUND_VOX` = 1e-3 voxel. Both sides compute in float32 with the
  Fourier bases computed in float64, so only summation order differs. Measured here (onnxruntime
  CPU vs PyTorch, untrained networks whose last layer was scaled to displacements of 10-20 voxels):
  2d-cpu at 160x192 1.4e-6 voxel, 3d-cpu at 80x96x112 4.2e-6 voxel. The bound leaves more than two
  orders of margin and still catches real export bugs (a wrong basis or axis costs whole voxels).
* fp16 graphs: ``max(FP16_BOUND_VOX = 0.1 voxel, 4 * 2**-11 * max|u|)`` where ``max|u|`` is the
  largest reference displacement in voxels. float16 keeps 11 significant bits: storing the output
  alone rounds a displacement ``u`` by up to ``2**-11 |u|`` (0.05 voxel on a 100-voxel shift), so
  an absolute bound cannot hold for every magnitude; the relative term allows four such roundings
  for the fp16 layers before it. Measured (same networks): 2d-cpu 0.011 voxel for max|u| = 10.8
  (1.0e-3 relative), 3d-cpu 0.014 voxel for max|u| = 17.5 (8e-4), and 0.12 voxel for an extreme
  max|u| = 144 (8e-4). Registration accuracy itself is of the order of a voxel, so a tenth of a
  voxel does not change what a user sees; errors above the bound mean fp16 overflow or a broken
  conversion, and the export fails.

torch is imported lazily (only :func:`torch_ddf` needs it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fnoreg_core.fields import ddf_norm_to_vox
from fnoreg_core.intensity import DEFAULT_NORM, IntensityNorm, normalise

__all__ = ["FP32_BOUND_VOX", "FP16_BOUND_VOX", "ParityCase", "ParityResult", "random_pair", "demo_pair",
           "parity_cases", "default_demo_dirs", "ddf_difference_vox", "torch_ddf", "OrtRunner", "measure",
           "summarise", "bound_for"]

FP32_BOUND_VOX = 1e-3
FP16_BOUND_VOX = 0.1
#: fp16 bound relative to the largest reference displacement (4 roundings of the fp16 output: 4 x 2**-11)
FP16_RELATIVE = 4 * 2.0 ** -11

_LABEL_WORDS = ("seg", "label", "mask", "aseg", "aal", "ddf", "disp", "warp", "field", "jac", "flow")
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh")


def bound_for(precision: str, ref_max_abs_vox: float = 0.0) -> float:
    """Parity bound in voxels for a graph of ``precision`` ("fp32" | "fp16").

    fp16: ``max(0.1, 4 * 2**-11 * ref_max_abs_vox)``; the output itself is stored in fp16, so its
    rounding alone costs up to ``2**-11`` of the displacement (0.05 voxel on a 100-voxel shift).
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"expected precision fp32 or fp16, got {precision!r}")
    if precision == "fp32":
        return FP32_BOUND_VOX
    return max(FP16_BOUND_VOX, FP16_RELATIVE * float(ref_max_abs_vox))


@dataclass
class ParityCase:
    """One input pair: ``moving``/``fixed`` float32 ``(1, 1, *size)`` in [0, 1] and where it came from."""

    label: str
    moving: np.ndarray
    fixed: np.ndarray


@dataclass
class ParityResult:
    """Displacement difference on one input: max and mean |candidate - reference| in voxels.

    ``ref_max_abs_vox`` is the largest reference displacement (context: a parity of 1e-4 voxel on
    a field that is itself 1e-4 voxel says nothing).
    """

    size: tuple[int, ...]
    label: str
    max_abs_vox: float
    mean_abs_vox: float
    ref_max_abs_vox: float


def _smooth_image(size: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage

    noise = rng.standard_normal(tuple(size)).astype(np.float32)
    sigma = max(1.0, min(size) / 16.0)
    img = ndimage.gaussian_filter(noise, sigma=sigma, mode="wrap")
    lo, hi = float(img.min()), float(img.max())
    return ((img - lo) / max(hi - lo, 1e-12)).astype(np.float32)


def random_pair(size: Sequence[int], seed: int = 0) -> ParityCase:
    """Two independent random smooth images of ``size`` in [0, 1] (float32, shaped (1, 1, *size))."""
    rng = np.random.default_rng(seed)
    fixed = _smooth_image(size, rng)
    moving = _smooth_image(size, rng)
    return ParityCase(f"random smooth (seed {seed})", moving[None, None], fixed[None, None])


def default_demo_dirs() -> list[Path]:
    """Where demo pairs are looked for: ``./assets/demo``, then the bundled ones
    (:func:`fnoreg_export.bundled.demo_dir`)."""
    from .bundled import demo_dir

    here = demo_dir(required=False)
    cwd = Path.cwd() / "assets" / "demo"
    return [cwd] if cwd.resolve() == here.resolve() else [cwd, here]


def _spatial_shape(path: Path) -> tuple[int, ...] | None:
    """Spatial shape from the header alone (trailing singleton axes dropped), or None."""
    import nibabel as nib

    from fnoreg_core.geometry import squeeze_shape

    try:
        return squeeze_shape(nib.load(str(path)).shape, 2)
    except Exception:
        return None


def _candidate_pairs(dims: int, demo_dir: Path) -> list[tuple[Path, Path, tuple[int, ...]]]:
    """(moving, fixed, shape) per folder: ``*moving*``/``*fixed*`` images of one folder, else its
    first two images in name order (the second is moving). Label maps and fields are skipped."""
    if not demo_dir.is_dir():
        return []
    files = sorted(p for p in demo_dir.rglob("*") if p.is_file() and p.name.lower().endswith(_IMAGE_SUFFIXES))
    by_folder: dict[Path, list[tuple[Path, tuple[int, ...]]]] = {}
    for p in files:
        if any(w in p.name.lower() for w in _LABEL_WORDS):
            continue
        shape = _spatial_shape(p)
        if shape is not None and len(shape) == dims:
            by_folder.setdefault(p.parent, []).append((p, shape))
    pairs = []
    for folder, images in sorted(by_folder.items()):
        if len(images) < 2:
            continue
        moving = [(p, s) for p, s in images if "moving" in p.name.lower()]
        fixed = [(p, s) for p, s in images if "fixed" in p.name.lower()]
        (m, m_shape), (f, _) = (moving[0], fixed[0]) if moving and fixed else (images[1], images[0])
        pairs.append((m, f, m_shape))
    return pairs


def demo_pair(dims: int, size: Sequence[int], demo_dir: str | Path | None = None,
              norm: IntensityNorm = DEFAULT_NORM) -> ParityCase | None:
    """A real pair from the demo folder resampled to ``size`` and normalised, or None if there is none.

    Candidates are, per sub-folder, the ``*.nii[.gz]``/``*.mgz`` images with ``dims`` spatial axes
    whose names do not look like label maps or fields: ``*moving*`` and ``*fixed*`` if present,
    else the first two in name order. The pair whose grid is closest to ``size`` is used.
    """
    from fnoreg_core.geometry import resize
    from fnoreg_core.io import ImageError, load_image

    dirs = [Path(demo_dir)] if demo_dir is not None else default_demo_dirs()
    for folder in dirs:
        pairs = _candidate_pairs(dims, folder)
        if not pairs:
            continue
        target = np.log(np.asarray(size, dtype=np.float64))
        pairs.sort(key=lambda item: float(np.abs(np.log(np.asarray(item[2], dtype=np.float64)) - target).sum()))
        for moving_path, fixed_path, _ in pairs:
            try:
                images = [load_image(p).data for p in (moving_path, fixed_path)]
            except ImageError:
                continue
            if any(img.ndim != dims for img in images):
                continue
            arrays = [normalise(resize(img, size), norm)[0][None, None] for img in images]
            label = f"demo pair {moving_path.parent.name}/{moving_path.name} -> {fixed_path.name}"
            return ParityCase(label, arrays[0], arrays[1])
    return None


def parity_cases(dims: int, size: Sequence[int], demo_dir: str | Path | None = None,
                 norm: IntensityNorm = DEFAULT_NORM, seed: int = 0) -> list[ParityCase]:
    """The inputs parity is measured on at ``size``: the demo pair (if any) and a random smooth pair."""
    cases = []
    real = demo_pair(dims, size, demo_dir, norm)
    if real is not None:
        cases.append(real)
    cases.append(random_pair(size, seed))
    return cases


def ddf_difference_vox(candidate_norm: np.ndarray, reference_norm: np.ndarray) -> tuple[float, float]:
    """``(max, mean)`` of |candidate - reference| in voxels; both (B, ndim, *spatial) normalised units."""
    candidate_norm = np.asarray(candidate_norm, dtype=np.float64)
    reference_norm = np.asarray(reference_norm, dtype=np.float64)
    if candidate_norm.shape != reference_norm.shape:
        raise ValueError(f"expected displacements of one shape, got {candidate_norm.shape} and {reference_norm.shape}")
    spatial = reference_norm.shape[2:]
    diff = np.abs(ddf_norm_to_vox(candidate_norm - reference_norm, spatial))
    return float(diff.max()), float(diff.mean())


def torch_ddf(model, moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """The PyTorch model's displacement (float32 numpy, normalised units), no grad, eval mode."""
    import torch

    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(moving, dtype=np.float32)),
                      torch.from_numpy(np.ascontiguousarray(fixed, dtype=np.float32))).numpy()


def OrtRunner(onnx_path: str | Path):
    """The runtime's onnxruntime CPU runner (:class:`fnoreg_export.runtime.backends.OrtRunner`): parity
    measures the code users deploy. ``runner(moving, fixed)`` on (B, 1, *spatial) -> float32 ddf_norm."""
    from .runtime.backends import OrtRunner as _OrtRunner

    return _OrtRunner(onnx_path)


def measure(reference: Callable[[np.ndarray, np.ndarray], np.ndarray],
            candidate: Callable[[np.ndarray, np.ndarray], np.ndarray],
            cases: Sequence[ParityCase]) -> list[ParityResult]:
    """Run both on every case and compare the displacements in voxels."""
    results = []
    for case in cases:
        ref = np.asarray(reference(case.moving, case.fixed), dtype=np.float32)
        got = np.asarray(candidate(case.moving, case.fixed), dtype=np.float32)
        if not np.all(np.isfinite(got)):
            raise FloatingPointError(f"the exported graph produced non-finite displacements on {case.label}")
        worst, mean = ddf_difference_vox(got, ref)
        size = tuple(int(n) for n in ref.shape[2:])
        ref_max = float(np.abs(ddf_norm_to_vox(ref.astype(np.float64), size)).max())
        results.append(ParityResult(size, case.label, worst, mean, ref_max))
    return results


def summarise(results: Sequence[ParityResult], precision: str, reference: str, candidate: str) -> dict:
    """Card entry for one size: worst max, mean of means, the bound, pass/fail and each input's numbers."""
    bounds = [bound_for(precision, r.ref_max_abs_vox) for r in results]
    return {
        "max_abs_vox": max(r.max_abs_vox for r in results),
        "mean_abs_vox": float(np.mean([r.mean_abs_vox for r in results])),
        "bound_vox": max(bounds),
        "precision": precision,
        "passed": all(r.max_abs_vox <= b for r, b in zip(results, bounds)),
        "reference": reference,
        "candidate": candidate,
        "inputs": [{k: v for k, v in asdict(r).items() if k != "size"} for r in results],
    }
