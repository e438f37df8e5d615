"""The pipeline's stages around the network: working grid, affine pre-alignment, refinement, composition.

A registration (:meth:`fnoreg_export.runtime.Registrator.register`) runs, on the fixed image's
RAS+ grid (the *frame*):

1. **working grid** (``work_res``): the frame resized (corners aligned) to about 2 mm voxels, or
   kept (``"native"``), or a given size; the affine stage, the network and the refinement run there;
2. **affine** (``affine``): :func:`fnoreg_core.affine.affine_register` (SimpleITK), a transform file
   the user already has, or none; the moving image is resampled through it onto the working grid;
3. **network**: the model's field on the affinely aligned pair;
4. **refine** (``refine``): :func:`fnoreg_core.refine.refine_field` from the network's field;
5. **composition**: the world map ``x -> A(x + d(x))`` (``A`` the affine, ``d`` the deformable
   displacement, both fixed -> moving) as ONE displacement ``A(x + d(x)) - x`` on the frame grid,
   then on the fixed image's own grid. ITK reads it alone (``warp.nii.gz``); ``affine.txt`` and the
   deformable part are written too: ``antsApplyTransforms -t affine.txt -t warp_deformable.nii.gz``
   is the same map.

Everything here is numpy (plus SimpleITK for the affine); matrices are ``(ndim + 1)`` square,
voxel -> world RAS mm (2-D: the in-plane block of the 4x4, see :func:`fnoreg_core.geometry.affine_nd`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fnoreg_core.affine import AFFINE_MODES, AffineError, AffineResult, affine_register, read_itk_affine
from fnoreg_core.refine import RefineSettings

__all__ = ["PipelineOptions", "DEFAULT_REFINE", "parse_refine", "parse_work_res", "working_grid",
           "run_affine", "affine_displacement_mm", "compose_mm", "embed4", "restrict"]

#: Refinement when asked for without settings (``--refine default``): see docs/ARCHITECTURE.md for
#: the measurement behind it (``python benchmarks/stage_choice.py --part refine``).
DEFAULT_REFINE = RefineSettings(iterations=(40, 3), reg_weight=0.5)
#: Working voxel size (mm) of ``work_res="2mm"``.
WORK_SPACING_MM = 2.0


@dataclass
class PipelineOptions:
    """What :meth:`Registrator.register` runs around the network.

    affine : "auto" (= "affine") | "affine" | "rigid" | "none" | a path to an ITK/ANTs transform file
        (fixed -> moving, as ANTs writes them) | a (4, 4) RAS fixed -> moving matrix
    refine : None (off) or :class:`~fnoreg_core.refine.RefineSettings`
    work_res : "auto" (2 mm in 3-D, native in 2-D) | "2mm" | "native" | a spatial size (D, H[, W])
    network : run the network (False: affine [+ refinement] only)
    guard : apply the network's field only when it raises the local NCC (True); False applies it
        whatever it does (parity checks, :data:`~fnoreg_export.runtime.NETWORK_ONLY`)
    threads : threads of the affine stage (SimpleITK)
    """

    affine: Any = "auto"
    refine: RefineSettings | None = None
    work_res: Any = "auto"
    network: bool = True
    guard: bool = True
    threads: int | None = None

    def validate(self) -> None:
        a = self.affine
        if isinstance(a, str) and a not in AFFINE_MODES and not Path(a).suffix:
            raise AffineError(f"unknown affine option {a!r}; expected one of {AFFINE_MODES} or a transform file")
        if isinstance(a, np.ndarray) and a.shape != (4, 4):
            raise AffineError(f"expected a (4, 4) affine matrix, got shape {a.shape}")
        if self.refine is not None:
            self.refine.validate()
        parse_work_res(self.work_res)


def parse_refine(text: str | None) -> RefineSettings | None:
    """``"off"``/None -> None; ``"default"``/``"on"`` -> :data:`DEFAULT_REFINE`; ``"40x3"`` -> iterations
    per level (coarse first); ``"60"`` -> ``(60, 3)``.

    Raises
    ------
    ValueError
        Anything else.
    """
    if text is None or str(text).lower() in ("off", "none", "0", ""):
        return None
    t = str(text).lower()
    if t in ("default", "on"):
        return RefineSettings(iterations=DEFAULT_REFINE.iterations, reg_weight=DEFAULT_REFINE.reg_weight)
    if not re.fullmatch(r"\d+(x\d+)*", t):
        raise ValueError(f"--refine expects off, default, a count (60) or counts per level (40x3), got {text!r}")
    counts = tuple(int(v) for v in t.split("x"))
    if len(counts) == 1:
        counts = (counts[0], DEFAULT_REFINE.iterations[-1])
    if sum(counts) == 0:
        return None
    return RefineSettings(iterations=counts, reg_weight=DEFAULT_REFINE.reg_weight)


def parse_work_res(value: Any) -> str | tuple[int, ...]:
    """``"auto" | "2mm" | "native"`` or a size (``"80x96x112"``, a tuple) -> a normalised value.

    Raises
    ------
    ValueError
        Anything else (a size needs 2 or 3 positive integers).
    """
    if isinstance(value, str):
        v = value.lower()
        if v in ("auto", "2mm", "native"):
            return v
        if re.fullmatch(r"\d+(x\d+){1,2}", v):
            value = tuple(int(n) for n in v.split("x"))
        else:
            raise ValueError(f"--work-res expects auto, 2mm, native or a size like 80x96x112, got {value!r}")
    size = tuple(int(n) for n in value)
    if len(size) not in (2, 3) or min(size) < 2:
        raise ValueError(f"a working size needs 2 or 3 sizes >= 2, got {value!r}")
    return size


def working_grid(shape: Sequence[int], affine_nd: np.ndarray, work_res: Any,
                 min_size: Sequence[int] = ()) -> tuple[tuple[int, ...], np.ndarray, str]:
    """The working grid: ``(shape, (ndim + 1)-square affine, note)`` for a frame grid.

    Corner-aligned with the frame (first and last voxel centres shared, as
    :func:`fnoreg_core.geometry.resize`), so resizing between them is exact at the corners.
    ``"2mm"`` never refines a coarser grid and never goes below ``min_size`` (the model's minimum);
    the note says when the request was not followed.
    """
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    mode = parse_work_res(work_res)
    if mode == "auto":
        mode = "2mm" if ndim == 3 else "native"
    note = ""
    if mode == "native":
        return shape, np.asarray(affine_nd, float), note
    spacing = np.linalg.norm(np.asarray(affine_nd, float)[:ndim, :ndim], axis=0)
    if mode == "2mm":
        # the same extent in voxels of about 2 mm (160 x 1 mm -> 80: 80x96x112 for the 1 mm brain grid)
        target = tuple(max(2, int(round(n * s / WORK_SPACING_MM))) if s < WORK_SPACING_MM * 0.95 else n
                       for n, s in zip(shape, spacing))
    else:
        if len(mode) != ndim:
            raise ValueError(f"--work-res {'x'.join(map(str, mode))} has {len(mode)} sizes; the images are {ndim}-D")
        target = tuple(mode)
    if min_size and any(t < m for t, m in zip(target, min_size)):
        bigger = tuple(max(t, min(m, n)) for t, m, n in zip(target, min_size, shape))
        note = (f"working grid {'x'.join(map(str, target))} is below the model's minimum "
                f"{'x'.join(map(str, min_size))}; using {'x'.join(map(str, bigger))}")
        target = bigger
    scale = np.eye(ndim + 1)
    for i, (n, m) in enumerate(zip(shape, target)):
        scale[i, i] = (n - 1) / (m - 1) if m > 1 else 1.0
    return target, np.asarray(affine_nd, float) @ scale, note


def embed4(matrix_nd: np.ndarray) -> np.ndarray:
    """An ``(ndim + 1)``-square affine as 4x4 (2-D: identity on the third axis)."""
    m = np.asarray(matrix_nd, float)
    if m.shape == (4, 4):
        return m
    nd = m.shape[0] - 1
    out = np.eye(4)
    out[:nd, :nd] = m[:nd, :nd]
    out[:nd, 3] = m[:nd, nd]
    return out


def restrict(matrix4: np.ndarray, ndim: int) -> np.ndarray:
    """The ``(ndim + 1)``-square block of a 4x4 world map (2-D: its in-plane part)."""
    m = np.asarray(matrix4, float)
    if ndim == 3:
        return m
    out = np.eye(ndim + 1)
    out[:ndim, :ndim] = m[:ndim, :ndim]
    out[:ndim, ndim] = m[:ndim, 3]
    return out


def run_affine(option: Any, fixed_w: np.ndarray, moving_w: np.ndarray, affine_w: np.ndarray,
               threads: int | None = None) -> AffineResult:
    """The affine stage on the working grid: optimise, read a file, take a matrix, or nothing.

    Returns an :class:`~fnoreg_core.affine.AffineResult` whose ``fixed_to_moving_ras`` is 4x4.

    Raises
    ------
    fnoreg_core.affine.AffineError
        An unreadable or singular transform file / matrix, an unknown option.
    """
    import time

    if isinstance(option, np.ndarray) or (isinstance(option, (list, tuple)) and np.shape(option) == (4, 4)):
        m = np.asarray(option, float)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:3, :3])) < 1e-6:
            raise AffineError("the given affine must be a finite, invertible (4, 4) matrix (RAS, fixed -> moving)")
        return AffineResult(m, True, "given")
    if isinstance(option, (str, Path)) and str(option) not in AFFINE_MODES:
        t0 = time.perf_counter()
        m = read_itk_affine(option)
        return AffineResult(m, True, "file", seconds=time.perf_counter() - t0, note=f"read from {option}")
    mode = "affine" if option == "auto" else str(option)
    return affine_register(fixed_w, moving_w, embed4(affine_w), mode=mode, threads=threads)


def _grid_points(affine_nd: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(ndim, *shape) world coordinates of a grid's voxel centres."""
    nd = len(shape)
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    a = np.asarray(affine_nd, float)
    return np.einsum("ij,j...->i...", a[:nd, :nd], idx) + a[:nd, nd].reshape((nd,) + (1,) * nd)


def affine_displacement_mm(world_map_nd: np.ndarray, affine_nd: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(ndim, *shape) float32 displacement ``A(x) - x`` (world mm) of a world map ``A`` on a grid."""
    return compose_mm(world_map_nd, affine_nd, None, shape)


def compose_mm(world_map_nd: np.ndarray, affine_nd: np.ndarray, d_mm: np.ndarray | None,
               shape: Sequence[int] | None = None) -> np.ndarray:
    """(ndim, *shape) float32 ``A(x + d(x)) - x`` in world mm on a grid (``d`` None: zero).

    Parameters
    ----------
    world_map_nd : (ndim + 1)-square world map ``A`` (RAS mm, fixed -> moving)
    affine_nd : the grid's voxel -> world matrix
    d_mm : (ndim, *shape) deformable displacement in world mm, fixed -> moving, or None
    """
    shape = tuple(d_mm.shape[1:]) if d_mm is not None else tuple(shape)
    nd = len(shape)
    x = _grid_points(affine_nd, shape)
    p = x if d_mm is None else x + d_mm
    a = np.asarray(world_map_nd, float)
    out = np.einsum("ij,j...->i...", a[:nd, :nd], p) + a[:nd, nd].reshape((nd,) + (1,) * nd) - x
    return out.astype(np.float32)


@dataclass
class StageRecord:
    """One stage of a registration as reported: name, seconds and what it did."""

    name: str
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.name, "seconds": round(self.seconds, 4), **self.info}
