"""Redraw benchmark (Qt-free part): time :func:`fnoreg_gui.render.frame` per view, mode and overlay.

Run ``python benchmarks/gui_redraw.py`` (or ``python -m fnoreg_gui.benchmark``); the budget is
< 50 ms per view redraw at 160x192x224.
"""

from __future__ import annotations

import time

import numpy as np

from . import render
from .model import MODES, OVERLAYS, ViewerState, Volume

__all__ = ["synthetic_state", "time_frames"]


def synthetic_state(shape=(160, 192, 224), seed: int = 0) -> ViewerState:
    """A state with smooth random images, labels and a registration result (no model needed)."""
    from fnoreg_core.metrics import folding_fraction, jacobian_determinant, sdlogj
    from fnoreg_export.runtime import RegistrationResult

    rng = np.random.default_rng(seed)
    ndim = len(shape)
    grids = np.meshgrid(*[np.linspace(0, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    fixed = (np.sin(6 * grids[0]) * np.cos(5 * grids[1]) * (grids[-1] + 0.5)).astype(np.float32)
    moving = np.roll(fixed, 2, axis=0)
    labels = (np.clip(fixed * 4 + 4, 0, 8)).astype(np.int32)
    ddf_vox = np.stack([3 * np.sin(2 * np.pi * grids[(i + 1) % ndim] + rng.uniform(0, 6)) for i in range(ndim)])
    ddf_vox = ddf_vox.astype(np.float32)
    jac = jacobian_determinant(ddf_vox).astype(np.float32)
    aff = np.eye(4)
    res = RegistrationResult(
        moved=moving.copy(), ddf_norm=ddf_vox * 0.01, ddf_vox=ddf_vox, ddf_mm=ddf_vox, jacobian=jac,
        folding=folding_fraction(jac), sdlogj=sdlogj(jac), timings={}, fixed_affine=aff, moving_affine=aff,
        moving_shape=tuple(shape), network_shape=tuple(shape), resampled=False, reoriented=False)
    s = ViewerState()
    s.load_pair(Volume(fixed, aff, window=(-1.0, 1.0)), Volume(moving, aff, window=(-1.0, 1.0)))
    s.load_labels("fixed", Volume(labels, aff, labels=True))
    s.load_labels("moving", Volume(np.roll(labels, 2, axis=0), aff, labels=True))
    s.set_result(res, np.roll(labels, 1, axis=0))
    return s


def time_frames(state: ViewerState, repeats: int = 5, label_mode: str = "contour") -> dict[str, float]:
    """Median seconds of one ``frame()`` per (view, mode, overlay), keyed ``"axis/mode/overlay"``."""
    out = {}
    for axis in render.view_axes(state.ndim):
        for mode in MODES:
            for ov in OVERLAYS:
                state.set_display(mode=mode, overlay=ov, label_mode=label_mode)
                ts = []
                for r in range(repeats):
                    if axis is not None:
                        state.set_slice(axis, state.shape[axis] // 2 + r)
                    t0 = time.perf_counter()
                    render.frame(state, axis)
                    ts.append(time.perf_counter() - t0)
                out[f"{axis}/{mode}/{ov}"] = float(np.median(ts))
    return out


def main() -> int:
    s = synthetic_state()
    t = time_frames(s)
    worst = max(t, key=t.get)
    for k, v in sorted(t.items(), key=lambda kv: -kv[1])[:10]:
        print(f"{k:40s} {v * 1000:7.1f} ms")
    print(f"worst {worst}: {t[worst] * 1000:.1f} ms; median of all: {np.median(list(t.values())) * 1000:.1f} ms "
          f"(budget 50 ms per view)")
    return 0 if t[worst] < 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
