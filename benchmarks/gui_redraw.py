"""Redraw benchmark at 160x192x224: the budget is < 50 ms per redraw on a slice change.

Two numbers per (view, mode, overlay):

* ``numpy``: :func:`fnoreg_gui.render.frame` alone (the RGB composition, Qt-free);
* ``qt``: the real path in the app, offscreen: ``QtSliceView.redraw()`` (frame + ``ImageItem.setImage``
  + crosshair) and ``processEvents()`` (pyqtgraph renders and Qt paints the widget);

plus ``slice change``: one ``state.set_slice`` as a slider or the mouse wheel does it: all three
views redraw (the crosshair moves in each) and paint; and ``zoom / pan``: one ``state.zoom_by`` /
``state.pan_by`` step (every panel of every view re-ranged and painted; side by side = 9 panels).

    python benchmarks/gui_redraw.py [--shape 160 192 224] [--repeats 5] [--no-qt]

(``tests/gui/test_state.py`` imports :func:`synthetic_state` and :func:`time_frames` from here.)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

from fnoreg_gui import render
from fnoreg_gui.state import MODES, OVERLAYS, ViewerState, Volume

__all__ = ["synthetic_state", "time_frames", "time_qt"]


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


def time_qt(state: ViewerState, repeats: int = 5, label_mode: str = "contour"
            ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Seconds (median) of the Qt redraw per ``"axis/mode/overlay"``, of a whole slice change per
    ``"mode/overlay"`` and of one zoom or pan step per ``"mode/zoom|pan"``, in a real (offscreen unless
    a display is set) :class:`MainWindow` at 1500x920."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from fnoreg_gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    ini = os.path.join(tempfile.mkdtemp(prefix="fnoreg_bench_"), "settings.ini")
    win = MainWindow(state=state, settings=QSettings(ini, QSettings.Format.IniFormat))
    win.resize(1500, 920)
    win.show()
    app.processEvents()
    per_view: dict[str, float] = {}
    change: dict[str, float] = {}
    mid = [n // 2 for n in state.shape]
    for mode in MODES:
        for ov in OVERLAYS:
            state.set_display(mode=mode, overlay=ov, label_mode=label_mode)
            app.processEvents()
            for view in win.views:
                ts = []
                for r in range(repeats):
                    if view.axis is not None:
                        state.slices[view.axis] = mid[view.axis] + r  # no event: time this one view only
                    t0 = time.perf_counter()
                    view.redraw()
                    app.processEvents()
                    ts.append(time.perf_counter() - t0)
                per_view[f"{view.axis}/{mode}/{ov}"] = float(np.median(ts))
            ts = []
            for r in range(repeats):
                t0 = time.perf_counter()
                state.set_slice(state.ndim - 1, mid[-1] + r + 1)  # what the axial slider / wheel does
                app.processEvents()
                ts.append(time.perf_counter() - t0)
            change[f"{mode}/{ov}"] = float(np.median(ts))
    nav: dict[str, float] = {}
    for mode in ("side_by_side", "red_cyan"):
        state.set_display(mode=mode, overlay="jacobian", label_mode=label_mode)
        app.processEvents()
        for kind, step in (("zoom", lambda r: state.zoom_by(1.25 if r % 2 == 0 else 0.8, 2, (50.0, 60.0))),
                           ("pan", lambda r: state.pan_by(2, 3.0, -2.0))):
            ts = []
            for r in range(repeats):
                t0 = time.perf_counter()
                step(r)
                app.processEvents()
                ts.append(time.perf_counter() - t0)
            nav[f"{mode}/{kind}"] = float(np.median(ts))
        state.fit_views()
    win.close()
    return per_view, change, nav


def _report(name: str, t: dict[str, float], budget_s: float, top: int = 5) -> bool:
    worst = max(t, key=t.get)
    print(f"-- {name}: slowest {top}")
    for k, v in sorted(t.items(), key=lambda kv: -kv[1])[:top]:
        print(f"   {k:34s} {v * 1000:7.1f} ms")
    ok = t[worst] < budget_s
    print(f"   worst {t[worst] * 1000:.1f} ms ({worst}), median {np.median(list(t.values())) * 1000:.1f} ms: "
          f"{'within' if ok else 'OVER'} the {budget_s * 1000:.0f} ms budget")
    return ok


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Time the GUI's redraw at 160x192x224 (budget 50 ms).")
    p.add_argument("--shape", type=int, nargs="+", default=[160, 192, 224], help="Default: 160 192 224")
    p.add_argument("--repeats", type=int, default=5, help="Default: 5")
    p.add_argument("--no-qt", action="store_true", help="numpy composition only")
    args = p.parse_args(argv)
    s = synthetic_state(tuple(args.shape))
    print(f"shape {tuple(args.shape)}, labels as contours, {args.repeats} repeats, median per case")
    _report("numpy frame (render.frame), one view", time_frames(s, args.repeats), 0.05)
    if not args.no_qt:
        per_view, change, nav = time_qt(s, args.repeats)
        _report("Qt redraw (frame + setImage + processEvents), one view", per_view, 0.05)
        _report("slice change: set_slice + 3 views redrawn + painted", change, 0.05)
        _report("zoom / pan step: every panel re-ranged + painted", nav, 0.05, top=4)
        from PySide6.QtWidgets import QApplication

        sys.stdout.flush()
        QApplication.instance().shutdown()  # tear Qt down before the interpreter (PySide6 exit-order bug)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
