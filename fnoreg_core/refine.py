"""Instance refinement: descend the method's variational objective from the network's field (numpy/scipy).

Minimises, over the displacement ``u`` (voxels, fixed -> moving pull),

    E(u) = -LNCC(moving o (id + u), fixed) + lambda * mean |grad u|^2

(local squared normalised cross-correlation in a (2r+1)^d window, the similarity of fnoreg-train's
``--loss ncc``; the diffusion term of its ``--reg-weight``), coarse to fine, with Sobolev-preconditioned
gradient steps: the L2 gradient is smoothed with a Gaussian (sigma ``smooth_grad`` voxels) before the
step, which keeps every step smooth (the same idea as greedy's fluid regularisation) while still
descending E. Each step moves at most ``step`` voxels; a step that raises E is undone and the step
size halved. Torch-free, so the runtime and the GUI can run it; ``cancel()`` returning True stops it
between iterations (:class:`RefineCancelled`).

Choice (measured on the 2 mm demo pair, ``python benchmarks/stage_choice.py``): numpy/scipy keeps
the stage dependency-free; its cost per iteration at 2 mm is dominated by the trilinear warp and
the box filters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

__all__ = ["RefineSettings", "RefineResult", "RefineCancelled", "RefineError", "refine_field", "lncc"]


class RefineCancelled(RuntimeError):
    """The caller's ``cancel()`` returned True: refinement stopped, nothing returned."""


class RefineError(ValueError):
    """Bad input to the refinement, or an objective that became NaN (diverged)."""


@dataclass
class RefineSettings:
    """Options of :func:`refine_field`.

    iterations : per level, coarse first (a level per entry; level k works at 1/2**(n-1-k) size);
        e.g. ``(40, 10)`` = 40 iterations at half size, then 10 at full size
    reg_weight : lambda of the diffusion term (field in voxels of the level's grid)
    radius : LNCC window radius in voxels (window 2r+1)
    step : largest displacement change per iteration, voxels of the level
    smooth_grad : Gaussian sigma (voxels) of the preconditioner
    time_limit_s : stop (keeping the best field so far) after this many seconds; None: no cap
    """

    iterations: Sequence[int] = (40, 10)
    reg_weight: float = 0.5
    radius: int = 2
    step: float = 0.5
    smooth_grad: float = 1.5
    time_limit_s: float | None = None

    def validate(self) -> None:
        its = list(self.iterations)
        if not its or any(int(n) < 0 for n in its):
            raise RefineError(f"refine iterations must be >= 0 per level, got {self.iterations}")
        if not self.reg_weight >= 0 or not self.step > 0 or not self.smooth_grad >= 0 or int(self.radius) < 1:
            raise RefineError("refine: reg_weight >= 0, step > 0, smooth_grad >= 0 and radius >= 1 are required")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise RefineError(f"refine: time limit must be > 0 s, got {self.time_limit_s}")


@dataclass
class RefineResult:
    """ddf_vox : (ndim, *S) float32 refined displacement in voxels of the input grid, fixed -> moving;
    energy : objective per iteration (all levels); lncc_before / lncc_after : LNCC on the full grid."""

    ddf_vox: np.ndarray
    energy: list[float] = field(default_factory=list)
    lncc_before: float = float("nan")
    lncc_after: float = float("nan")
    iterations: int = 0
    seconds: float = 0.0
    stopped: str = ""


def _identity(shape: Sequence[int]) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))


def _warp(image: np.ndarray, ddf: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """image pulled at grid + ddf (linear; edge values outside)."""
    return ndimage.map_coordinates(image, grid + ddf, order=1, mode="nearest", prefilter=False).astype(np.float32)


def _lncc_terms(fixed: np.ndarray, warped: np.ndarray, radius: int):
    size = 2 * radius + 1
    f = ndimage.uniform_filter
    mf, mw = f(fixed, size), f(warped, size)
    cross = f(fixed * warped, size) - mf * mw
    vf = np.maximum(f(fixed * fixed, size) - mf * mf, 1e-5)
    vw = np.maximum(f(warped * warped, size) - mw * mw, 1e-5)
    return mf, mw, cross, vf, vw


def lncc(fixed: np.ndarray, warped: np.ndarray, radius: int = 2) -> float:
    """Mean local squared NCC in [0, 1] of two images of one shape (window 2r+1)."""
    _, _, cross, vf, vw = _lncc_terms(np.asarray(fixed, np.float32), np.asarray(warped, np.float32), radius)
    return float(np.mean(cross * cross / (vf * vw)))


def _laplacian(u: np.ndarray) -> np.ndarray:
    return np.stack([ndimage.laplace(c, mode="nearest") for c in u])


def _diffusion(u: np.ndarray) -> float:
    return float(sum(np.mean(np.diff(c, axis=a) ** 2) for c in u for a in range(u.shape[0])))


def _resize_field(u: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Field (ndim, *s) in voxels of s -> (ndim, *shape) in voxels of shape (corner-aligned grids)."""
    from fnoreg_core.geometry import resize

    src = u.shape[1:]
    if tuple(src) == tuple(shape):
        return u.astype(np.float32, copy=True)
    zoom = [(n - 1) / (m - 1) for n, m in zip(shape, src)]
    return np.stack([resize(c, shape) * np.float32(z) for c, z in zip(u, zoom)]).astype(np.float32)


def _resize_image(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Corner-aligned resize (:func:`fnoreg_core.geometry.resize`), Gaussian-smoothed first when shrinking."""
    from fnoreg_core.geometry import resize

    if tuple(image.shape) == tuple(shape):
        return image
    sigma = [max((m / n - 1) / 2, 0) for n, m in zip(shape, image.shape)]
    smoothed = ndimage.gaussian_filter(image, sigma) if any(sigma) else image
    return resize(smoothed, shape)


def refine_field(fixed: np.ndarray, moving: np.ndarray, ddf_vox: np.ndarray | None = None,
                 settings: RefineSettings | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> RefineResult:
    """Refine ``ddf_vox`` so that ``moving o (id + ddf)`` matches ``fixed`` better (see the module).

    Parameters
    ----------
    fixed, moving : (*S) float arrays on one grid (2-D or 3-D), intensities normalised alike
    ddf_vox : (ndim, *S) starting displacement in voxels, fixed -> moving (None: zero)
    settings : :class:`RefineSettings`
    progress : called as ``progress(done, total)`` after every iteration
    cancel : polled every iteration; True raises :class:`RefineCancelled`

    Returns
    -------
    RefineResult (the field with the lowest objective on the finest level visited)

    Raises
    ------
    RefineError
        Shapes that disagree, non-finite inputs, or an objective that became NaN.
    """
    t0 = time.perf_counter()
    s = settings or RefineSettings()
    s.validate()
    fixed = np.asarray(fixed, np.float32)
    moving = np.asarray(moving, np.float32)
    nd = fixed.ndim
    if moving.shape != fixed.shape or nd not in (2, 3):
        raise RefineError(f"refine: expected two 2-D or 3-D images of one shape, got {fixed.shape} and {moving.shape}")
    u = np.zeros((nd, *fixed.shape), np.float32) if ddf_vox is None else np.asarray(ddf_vox, np.float32).copy()
    if u.shape != (nd, *fixed.shape):
        raise RefineError(f"refine: field of shape {u.shape} does not fit images of shape {fixed.shape}")
    if not (np.all(np.isfinite(fixed)) and np.all(np.isfinite(moving)) and np.all(np.isfinite(u))):
        raise RefineError("refine: images or field hold NaN or infinite values")
    grid_full = _identity(fixed.shape)
    result = RefineResult(u, lncc_before=lncc(fixed, _warp(moving, u, grid_full), s.radius))
    levels = [int(n) for n in s.iterations]
    total, done = sum(levels), 0
    deadline = np.inf if s.time_limit_s is None else t0 + s.time_limit_s
    for k, n_iter in enumerate(levels):
        factor = 2 ** (len(levels) - 1 - k)
        shape = tuple(max(8, (n + factor - 1) // factor) for n in fixed.shape)
        if n_iter == 0:
            continue
        f_l, m_l = _resize_image(fixed, shape), _resize_image(moving, shape)
        u_l = _resize_field(u, shape)
        grid = _identity(shape)
        step, best_e, best_u = s.step, np.inf, u_l.copy()
        for it in range(n_iter):
            if cancel is not None and cancel():
                raise RefineCancelled("refinement cancelled")
            if time.perf_counter() > deadline:
                result.stopped = f"time limit {s.time_limit_s:g} s"
                break
            pts = grid + u_l
            warped = ndimage.map_coordinates(m_l, pts, order=1, mode="nearest", prefilter=False)
            mf, mw, cross, vf, vw = _lncc_terms(f_l, warped, s.radius)
            cc = cross * cross / (vf * vw)
            energy = -float(cc.mean()) + s.reg_weight * _diffusion(u_l)
            if not np.isfinite(energy):
                raise RefineError("refine: the objective became NaN (diverged); lower the step or iterations")
            result.energy.append(energy)
            if energy > best_e:  # undo, smaller steps
                u_l, step = best_u.copy(), step * 0.5
                if step < 0.01:
                    break
                continue
            best_e, best_u = energy, u_l.copy()
            # d(-cc)/dJ (window sums held constant, as in ANTs/greedy) times the gradient of the warped image
            dcc = -2.0 * cross / (vf * vw) * ((f_l - mf) - cross / vw * (warped - mw))
            grad = np.stack([dcc * g for g in np.gradient(warped)]) if nd > 1 else dcc[None] * np.gradient(warped)
            grad -= 2.0 * s.reg_weight * _laplacian(u_l)
            if s.smooth_grad > 0:
                grad = np.stack([ndimage.gaussian_filter(c, s.smooth_grad) for c in grad])
            norm = float(np.sqrt((grad * grad).sum(0)).max())
            if norm > 0:
                u_l = u_l - (step / norm) * grad.astype(np.float32)
            done += 1
            if progress is not None:
                progress(done, total)
        u = _resize_field(best_u, fixed.shape)
        result.iterations = done
        if result.stopped:
            break
    result.ddf_vox = u
    result.lncc_after = lncc(fixed, _warp(moving, u, grid_full), s.radius)
    result.seconds = time.perf_counter() - t0
    return result
