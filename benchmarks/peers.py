"""The registration tools users compare us with, as predictors of the benchmark report.

ANTs (antspyx: ``type_of_transform="Affine"`` and ``"SyN"``, the package defaults) and greedy
(picsl-greedy: ``-a -dof 12 -m NCC 2x2x2 -n 100x50x10 -ia-image-centers`` and, after it,
``-m NCC 2x2x2 -n 100x50x10 -s 2.0vox 0.5vox``; the commands of REFERENCES.md). Each predictor has
the signature of :mod:`fnoreg_core.evaluate`: ``predict(moving, fixed) -> ddf_vox`` for two images
on one grid (``vox_to_ras``), returning the exact fixed -> moving displacement in voxels, measured by
pushing coordinate images through the tool's own resampling (linear interpolation of a linear
function is exact); voxels mapped from outside the moving image are NaN, as for the dipy baselines.
``predict.last_seconds`` holds the tool's own registration time (the coordinate mapping excluded).

Install: ``pip install antspyx picsl-greedy`` (the ``bench`` extra).
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np

__all__ = ["PEERS", "peer_predictor", "available_peers"]

#: key -> label in the report
PEERS = {
    "ants_affine": "ANTs Affine (antspyx)",
    "ants_syn": "ANTs SyN (antspyx)",
    "greedy_affine": "greedy affine (NCC)",
    "greedy_deformable": "greedy affine + deformable (NCC)",
}
_GREEDY_AFFINE = "-a -dof 12 -m NCC 2x2x2 -n 100x50x10 -ia-image-centers"
_GREEDY_DEFORM = "-m NCC 2x2x2 -n 100x50x10 -s 2.0vox 0.5vox"


def available_peers() -> list[str]:
    out = []
    try:
        import ants  # noqa: F401

        out += ["ants_affine", "ants_syn"]
    except ImportError:
        pass
    try:
        import picsl_greedy  # noqa: F401

        out += ["greedy_affine", "greedy_deformable"]
    except ImportError:
        pass
    return out


def _coordinates(shape) -> list[np.ndarray]:
    """Index coordinate images + 1 (0 then marks 'outside the moving image')."""
    return [g + 1.0 for g in np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")]


def _ddf_from_mapped(mapped: list[np.ndarray], shape) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    out = np.empty((len(shape), *shape), np.float32)
    inside = np.ones(shape, bool)
    for axis, (m, g) in enumerate(zip(mapped, grids)):
        inside &= m > 0.5
        out[axis] = m - 1.0 - g
    out[:, ~inside] = np.nan
    return out


def _sitk_image(arr: np.ndarray, vox_to_ras: np.ndarray):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(arr, np.float32).T))
    lps = np.diag([-1.0, -1.0, 1.0]) @ vox_to_ras[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetOrigin((np.diag([-1.0, -1.0, 1.0]) @ vox_to_ras[:3, 3]).tolist())
    img.SetDirection((lps / spacing).ravel().tolist())
    return img


def _ants_predictor(kind: str, vox_to_ras: np.ndarray, threads: int) -> Callable:
    import os

    import ants

    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    spacing = tuple(float(s) for s in np.linalg.norm(vox_to_ras[:3, :3], axis=0))

    def predict(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        import time

        f = ants.from_numpy(fixed.astype(np.float32), spacing=spacing)
        m = ants.from_numpy(moving.astype(np.float32), spacing=spacing)
        t0 = time.perf_counter()
        reg = ants.registration(f, m, type_of_transform="Affine" if kind == "ants_affine" else "SyN")
        predict.last_seconds = time.perf_counter() - t0
        mapped = [ants.apply_transforms(f, ants.from_numpy(c.astype(np.float32), spacing=spacing),
                                        reg["fwdtransforms"], interpolator="linear").numpy()
                  for c in _coordinates(fixed.shape)]
        return _ddf_from_mapped(mapped, fixed.shape)

    return predict


def _greedy_predictor(kind: str, vox_to_ras: np.ndarray, threads: int) -> Callable:
    import SimpleITK as sitk
    from picsl_greedy import Greedy3D

    def predict(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        import time

        f, m = _sitk_image(fixed, vox_to_ras), _sitk_image(moving, vox_to_ras)
        t0 = time.perf_counter()
        g = Greedy3D()
        log = io.StringIO()  # greedy's verbose optimiser output
        g.execute(f"-i fixed moving {_GREEDY_AFFINE} -o aff -threads {threads}", out=log, err=log,
                  fixed=f, moving=m, aff=None)
        chain = "aff"
        if kind == "greedy_deformable":
            g.execute(f"-i fixed moving -it aff {_GREEDY_DEFORM} -o warp -threads {threads}", out=log, err=log,
                      fixed=f, moving=m, warp=None)
            chain = "warp aff"
        predict.last_seconds = time.perf_counter() - t0
        mapped = []
        for c in _coordinates(fixed.shape):
            g.execute(f"-rf fixed -rm coord resliced -r {chain} -ri LINEAR", out=log, err=log, fixed=f,
                      coord=_sitk_image(c, vox_to_ras), resliced=None)
            mapped.append(sitk.GetArrayFromImage(g["resliced"]).T.astype(np.float64))
        return _ddf_from_mapped(mapped, fixed.shape)

    return predict


def peer_predictor(kind: str, vox_to_ras: np.ndarray, threads: int = 2) -> Callable:
    """A predictor for ``kind`` in :data:`PEERS` on the grid ``vox_to_ras`` (see the module)."""
    if kind.startswith("ants"):
        return _ants_predictor(kind, np.asarray(vox_to_ras, float), threads)
    if kind.startswith("greedy"):
        return _greedy_predictor(kind, np.asarray(vox_to_ras, float), threads)
    raise ValueError(f"unknown peer {kind!r}; expected one of {list(PEERS)}")
