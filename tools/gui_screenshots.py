"""Screenshots of the real app for the README: the bundled demo pairs registered with the bundled models.

    xvfb-run -s "-screen 0 1600x1000x24" python tools/gui_screenshots.py --out docs/screenshots

(``FNOREG_MODELS=...`` picks another model folder.) Each PNG is the whole main window (``QWidget.grab``),
after registering in the worker exactly as a user's Register does. Without a display, Qt's
offscreen platform is used (same widgets; fonts may differ).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["SHOTS", "main"]

#: file name -> (demo, display settings, what to do before the shot or None); taken in this order.
SHOTS = {
    "3d_red_cyan_dice.png": ("3d_2mm", dict(mode="red_cyan", overlay="none", label_mode="contour"), None),
    "3d_jacobian_grid.png": ("3d_2mm", dict(mode="side_by_side", overlay="jacobian", grid_on_heatmap=True,
                                            grid_spacing=4, label_mode="none", overlay_opacity=0.6), None),
    "3d_checkerboard.png": ("3d_2mm", dict(mode="checkerboard", overlay="none", checker_tile=12, label_mode="none"),
                            None),
    "3d_side_by_side_labels.png": ("3d_2mm", dict(mode="side_by_side", overlay="none", label_mode="fill",
                                                  label_opacity=0.45), None),
    "3d_displacement.png": ("3d_2mm", dict(mode="blend", overlay="displacement", label_mode="none", blend=0.5,
                                           overlay_opacity=0.5, grid_on_heatmap=False), None),
    "2d_pair_red_cyan_jacobian.png": ("2d", dict(mode="side_by_side", overlay="jacobian", grid_on_heatmap=True,
                                                 grid_spacing=6, label_mode="contour", overlay_opacity=0.5), None),
    # issue 20: an inspection tool
    "3d_inspect_cursor_zoom.png": ("3d_2mm", dict(mode="side_by_side", overlay="none", label_mode="contour"),
                                   "cursor_zoom"),
    "3d_inspect_landmarks_maximised.png": ("3d_2mm", dict(mode="side_by_side", overlay="none",
                                                          label_mode="contour"), "landmarks_maximised"),
    "3d_inspect_both_contours_row.png": ("3d_2mm", dict(mode="red_cyan", overlay="none", label_mode="contour",
                                                        label_layers="both"), "row_window"),
    "3d_inspect_flicker_hot_neuro.png": ("3d_2mm", dict(mode="red_cyan", overlay="none", label_mode="none",
                                                        cmap="hot", flicker="moved"), "neurological"),
}


def _prepare(win, what: str | None) -> None:
    """Put the window in the state a shot shows (zoom, hover, landmarks, layout...)."""
    st = win.state
    st.fit_views()
    st.set_layout("2x2")
    st.set_radiological(True)
    st.set_display(window=None)
    st.clear_landmarks()
    st.set_hover(None)
    if what == "cursor_zoom":
        st.zoom_by(1.8, 2)
        st.set_active_axis(2)
        st.set_hover(tuple(st.slices[:2]) + (st.slices[2],))
    elif what == "landmarks_maximised":
        centre = list(st.slices)
        for d in ((0, 0, 0), (-12, 8, 0), (10, -9, 0)):
            st.add_landmark(tuple(c + o for c, o in zip(centre, d)))
        st.set_maximised(2)
        st.zoom_by(1.3, 2)
        win.info.tabs.setCurrentWidget(win.info.landmarks)
    elif what == "row_window":
        st.set_layout("row")
        st.set_display(window=(0.05, 0.75))
    elif what == "neurological":
        st.set_radiological(False)


def _wait_registered(app, win, timeout_s: float = 600.0) -> None:
    t0 = time.perf_counter()
    win.start_registration()
    while win.worker is not None:
        app.processEvents()
        time.sleep(0.01)
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError("registration took too long")
    if win.state.result is None:
        raise RuntimeError(f"registration failed: {win.errors[-1] if win.errors else 'no result'}")


def _centre_on_labels(state) -> None:
    """Crosshair through the centre of the labelled structures (the deep grey matter of the demo)."""
    if state.fixed_labels is None:
        return
    idx = np.argwhere(state.fixed_labels.data > 0)
    if len(idx):
        state.set_crosshair(tuple(int(v) for v in np.round(idx.mean(axis=0))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python tools/gui_screenshots.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/screenshots", help="output folder. Default: docs/screenshots")
    p.add_argument("--size", default="1600x1000", help="window size WxH. Default: 1600x1000")
    p.add_argument("--backend", default="onnxruntime-cpu", help="Default: onnxruntime-cpu")
    p.add_argument("--only", nargs="*", help="take only these file names (see SHOTS). Default: all")
    args = p.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from fnoreg_gui.app import build_window

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.size.lower().split("x"))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    settings = QSettings(os.path.join(tempfile.mkdtemp(prefix="fnoreg_shots_"), "s.ini"), QSettings.Format.IniFormat)
    win = build_window(["--no-register", "--backend", args.backend], settings=settings)
    win.resize(w, h)
    win.show()
    app.processEvents()
    current = None
    only = set(args.only or SHOTS)
    for name, (demo, display, what) in SHOTS.items():
        if name not in only:
            continue
        if demo != current:
            if not win.open_demo(demo):
                print(f"fnoreg: error: cannot open the demo pair {demo}: {win.errors[-1]}", file=sys.stderr)
                return 1
            if win.state.model_path is None:
                print(f"fnoreg: error: no bundled {win.state.ndim}-D model ({win.notices[-1] if win.notices else ''})",
                      file=sys.stderr)
                return 2
            _wait_registered(app, win)
            _centre_on_labels(win.state)
            current = demo
        win.state.set_display(**{"flicker": "off", "cmap": "grey", "label_layers": "both", **display})
        _prepare(win, what)
        for _ in range(5):
            app.processEvents()
            time.sleep(0.02)
        path = out / name
        if not win.grab().save(str(path), "PNG"):
            print(f"fnoreg: error: cannot write {path}", file=sys.stderr)
            return 1
        print(f"{path}  ({win.state.model_path.parent.name}, {win.last_seconds:.2f} s)")
    win.close()
    sys.stdout.flush()
    app.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
