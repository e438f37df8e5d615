"""Inspection features (issue 20), points 5-10: opacities and colour maps, window/level without silent
drops, layouts and maximise, fixed + moved contours, landmarks through the registration's field
(checked against the runtime's own warp), and the context fixes."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402

from fnoreg_gui import render  # noqa: E402
from fnoreg_gui.colours import CMAPS, apply_lut, label_colours  # noqa: E402
from fnoreg_gui.main_window import MainWindow, fit_to_screen  # noqa: E402
from fnoreg_gui.panel import CROSSHAIR_PENS  # noqa: E402
from fnoreg_gui.probe import map_points  # noqa: E402
from fnoreg_gui.state import ViewerState, Volume  # noqa: E402
from fnoreg_gui.window_files import PACKAGE_DIRS, save_start_dir  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gui_redraw import synthetic_state  # noqa: E402


@pytest.fixture
def win(qtbot, tmp_path):
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    return w


def _show(win, s):
    st = win.state
    st.load_pair(s.fixed, s.moving)
    st.load_labels("fixed", s.fixed_labels)
    st.load_labels("moving", s.moving_labels)
    st.set_result(s.result, s.moved_labels)
    return st


# 5. blend ratio vs overlay opacity vs label opacity; colour maps --------------------------------
def test_blend_and_opacities_are_separate(win):
    st = _show(win, synthetic_state((24, 28, 32)))
    st.set_display(mode="blend", overlay="none", blend=0.3)
    a = render.frame(st, 2)
    st.set_display(overlay_opacity=0.9, label_opacity=0.9)          # other layers' opacities
    assert np.array_equal(render.frame(st, 2), a)                    # do not touch the blend
    st.set_display(overlay="jacobian", overlay_opacity=0.0)
    b = render.frame(st, 2)
    folds = (b == [0, 255, 0]).all(-1)
    assert np.array_equal(b[~folds], a[~folds])                      # opacity 0: the blend shows, folds still marked
    win.controls.blend_slider.setValue(70)
    win.controls.overlay_slider.setValue(40)
    win.controls.label_slider.setValue(20)
    d = st.display
    assert (d.blend, d.overlay_opacity, d.label_opacity) == pytest.approx((0.7, 0.4, 0.2))
    st.set_display(overlay_opacity=0.55)
    assert win.controls.overlay_slider.value() == 55 and win.controls.blend_slider.value() == 70
    # colour maps: the fixed panel of side by side is the windowed image through the LUT
    st.set_display(mode="side_by_side", overlay="none", label_mode="none", cmap="hot", window=(-1.0, 1.0))
    st.set_radiological(False)
    fixed = np.clip((render.extract(st.fixed.data, 2, st.slices[2]) + 1) / 2, 0, 1)
    assert np.allclose(render.panels(st, 2)[0], apply_lut(fixed, CMAPS["hot"]), atol=1)
    win.controls.cmap_combo.setCurrentText("viridis")
    assert st.display.cmap == "viridis"
    assert any(r[0] == "bar" and r[1] == "viridis" for r in render.legend(st))
    with pytest.raises(ValueError, match="cmap must be one of"):
        st.set_display(cmap="jet")


# 6. window / level: mouse, presets, histogram, nothing ignored silently -------------------------
def test_window_level_never_silently_ignored(win, qtbot):
    st = _show(win, synthetic_state((24, 28, 32)))
    wl = win.controls.window
    assert wl.auto_window.isChecked() and st.display.window is None
    wl.win_lo.setValue(-0.25)                       # typed while "auto" is ticked: applied, auto off
    assert st.display.window == pytest.approx((-0.25, st.fixed.window[1])) and not wl.auto_window.isChecked()
    wl.win_hi.setValue(-0.5)                        # refused: said in red, state unchanged
    assert st.display.window[1] == pytest.approx(st.fixed.window[1])
    assert wl.message.isVisible() and "high > low" in wl.message.text()
    wl.win_hi.setValue(0.5)
    assert st.display.window == pytest.approx((-0.25, 0.5)) and not wl.message.isVisible()
    # presets: percentiles of the fixed image
    i = wl.preset_combo.findData("wide 0-100 % (min-max)")
    wl.preset_combo.activated.emit(i)
    assert st.display.window == pytest.approx((float(st.fixed.data.min()), float(st.fixed.data.max())), rel=1e-5)
    assert wl.win_lo.value() == pytest.approx(st.fixed.data.min(), abs=1e-3)
    # mouse window/level (Ctrl+drag) widens the window about its level; the boxes and histogram follow
    lo, hi = st.display.window
    st.nudge_window(0.0, 2.0)
    assert st.display.window == pytest.approx(((lo + hi) / 2 - (hi - lo), (lo + hi) / 2 + (hi - lo)))
    assert wl.region.getRegion() == pytest.approx(st.display.window) and wl.win_hi.value() == pytest.approx(
        st.display.window[1], abs=1e-3)
    # dragging the band on the histogram sets the window
    wl.region.setRegion((-0.1, 0.3))
    wl.region.sigRegionChangeFinished.emit(wl.region)
    assert st.display.window == pytest.approx((-0.1, 0.3))
    x, y = wl.hist_curve.getData()
    assert len(x) == len(y) + 1 and y.max() > 0                      # a histogram is drawn
    wl.auto_window.setChecked(True)
    assert st.display.window is None


# 7. layouts and per-view maximise ----------------------------------------------------------------
def test_layouts_and_maximise(win, qtbot):
    st = _show(win, synthetic_state((24, 28, 32)))
    grid = win.view_grid
    pos = lambda w: grid.getItemPosition(grid.indexOf(w))[:2]  # noqa: E731
    assert [pos(v) for v in win.views] == [(1, 0), (0, 1), (0, 0)]         # 2x2: axial top left
    st.set_layout("row")
    assert [pos(v) for v in win.views] == [(0, 2), (0, 1), (0, 0)] and pos(win.view_area.info_area) == (0, 3)
    st.set_layout("column")
    assert [pos(v) for v in win.views] == [(2, 0), (1, 0), (0, 0)]
    st.set_layout("2x2")
    win.resize(1024, 700)
    qtbot.wait(30)
    small = win.views[1].panels[0].gv.width()
    win.views[1].max_btn.click()                                           # maximise the coronal view
    assert st.view.maximised == 1 and [v.axis for v in win.view_area.visible_views()] == [1]
    qtbot.wait(30)
    assert win.views[1].panels[0].gv.width() >= 1.8 * small                # room for the brain
    win.views[1].max_btn.click()
    assert st.view.maximised is None and len(win.view_area.visible_views()) == 3
    with pytest.raises(ValueError, match="layout must be one of"):
        st.set_layout("3x3")


# 8. fixed and moved contours together -------------------------------------------------------------
def test_fixed_and_moved_contours_together():
    s = ViewerState()
    f = np.zeros((20, 20), np.float32)
    fl = np.zeros((20, 20), np.int32)
    fl[4:10, 4:10] = 3
    ml = np.zeros((20, 20), np.int32)
    ml[8:16, 8:16] = 3                                   # the moved structure, shifted
    s.load_pair(Volume(f, np.eye(4), window=(0, 1)), Volume(f.copy(), np.eye(4), window=(0, 1)))
    s.load_labels("fixed", Volume(fl, np.eye(4), labels=True))
    s.load_labels("moving", Volume(ml, np.eye(4), labels=True))
    s.set_display(mode="red_cyan", label_mode="contour")
    colour = label_colours(np.array([3]))[0].astype(np.uint8)
    img = render.frame(s)
    painted = (img == colour).all(-1)
    fixed_edge = render._contour(render.extract(fl, None, 0))
    moved_edge = render._contour(render.extract(ml, None, 0))
    assert painted[fixed_edge].all()                                  # fixed: solid contour
    only_moved = moved_edge & ~fixed_edge
    frac = painted[only_moved].mean()
    assert 0.3 < frac < 0.7                                           # moved: dotted contour
    s.set_display(label_layers="fixed")
    assert not (render.frame(s) == colour).all(-1)[only_moved].any()
    assert "moved dotted" not in str(render.legend(s))
    s.set_display(label_layers="both")
    assert "fixed contour, moved dotted contours" in str(render.legend(s))


# 9. landmarks mapped through the registration's (composed) field, checked against the runtime ---
def _result_with_geometry():
    """A RegistrationResult on a 2 mm fixed grid, moving on a rotated 1.5 mm grid, smooth field."""
    from fnoreg_core.metrics import folding_fraction, jacobian_determinant, sdlogj
    from fnoreg_export.runtime import RegistrationResult

    shape_f, shape_m = (20, 22, 24), (30, 32, 34)
    aff_f = np.diag([2.0, 2.0, 2.0, 1.0])
    aff_f[:3, 3] = (-20, -22, -24)
    c, s_ = np.cos(0.2), np.sin(0.2)
    aff_m = np.eye(4)
    aff_m[:3, :3] = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]]) * 1.5
    aff_m[:3, 3] = (-21, -23, -25)
    g = np.meshgrid(*[np.linspace(0, 1, n) for n in shape_f], indexing="ij")
    ddf_mm = np.stack([2.5 * np.sin(2 * np.pi * g[(i + 1) % 3]) for i in range(3)]).astype(np.float32)
    ddf_vox = ddf_mm / 2.0
    jac = jacobian_determinant(ddf_vox).astype(np.float32)
    res = RegistrationResult(moved=np.zeros(shape_f, np.float32), ddf_norm=ddf_vox * 0.05, ddf_vox=ddf_vox,
                             ddf_mm=ddf_mm, jacobian=jac, folding=folding_fraction(jac), sdlogj=sdlogj(jac),
                             timings={}, fixed_affine=aff_f, moving_affine=aff_m, moving_shape=shape_m,
                             network_shape=shape_f, resampled=False, reoriented=False)
    return res, shape_f, shape_m, aff_f, aff_m


def test_landmarks_map_like_the_runtime_warp():
    from fnoreg_export.runtime import warp_image

    res, shape_f, shape_m, aff_f, aff_m = _result_with_geometry()
    s = ViewerState()
    s.load_pair(Volume(np.zeros(shape_f, np.float32), aff_f, window=(0, 1)),
                Volume(np.zeros(shape_m, np.float32), aff_m, window=(0, 1)))
    s.set_result(res)
    pts = [(10, 11, 12), (6, 15, 9), (13, 7, 16)]
    for p in pts:
        s.add_landmark(p)
    mapped = s.mapped_landmarks()
    # the runtime warps an image of the moving grid's own voxel coordinates: at each fixed voxel it
    # reads where the transform sends that voxel (linear sampling is exact for a linear image)
    coords = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape_m], indexing="ij")
    warped = [warp_image(c, res, affine=aff_m) for c in coords]
    for p, m in zip(pts, mapped):
        assert m["registered"] and m["fixed_vox"] == p
        runtime_vox = [w[p] for w in warped]
        assert np.allclose(m["moving_vox"], runtime_vox, atol=1e-3), (m["moving_vox"], runtime_vox)
        assert np.allclose(np.asarray(m["moving_mm"]),
                           aff_m[:3, :3] @ np.asarray(runtime_vox) + aff_m[:3, 3], atol=1e-3)
        assert np.allclose(m["u_mm"], res.ddf_mm[(slice(None),) + p])
    # without a result: world coordinates only (identity transform)
    s.set_result(res)
    s._clear_result()
    m0 = map_points(s, [pts[0]])[0]
    assert not m0["registered"] and np.allclose(m0["moving_mm"], m0["fixed_mm"])


def test_landmarks_in_the_views(win, qtbot, demo_dir, model2d):
    from fnoreg_export.runtime import warp_image
    from fnoreg_gui.pipeline import register_pair

    assert win.open_demo("2d")
    st = win.state
    res, ml, _ = register_pair(st.fixed, st.moving, model2d, "onnxruntime-cpu", moving_labels=st.moving_labels)
    st.set_result(res, ml)
    st.set_crosshair((80, 90))
    st.add_landmark()
    m = st.mapped_landmarks()[0]
    coords = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in st.moving.shape], indexing="ij")
    runtime_vox = [warp_image(c, res, affine=st.moving.affine)[80, 90] for c in coords]
    assert np.allclose(m["moving_vox"], runtime_vox, atol=1e-3)          # a real registration, same answer
    view = win.views[0]
    fixed_marks = view.panels[0].marks.data
    moving_marks = view.panels[1].marks.data
    assert len(fixed_marks) == 1 and len(moving_marks) == 1
    assert (fixed_marks[0]["x"], fixed_marks[0]["y"]) == pytest.approx(render.voxel_to_display(st, None, (80, 90)))
    assert (moving_marks[0]["x"], moving_marks[0]["y"]) == pytest.approx(render.voxel_to_display(st, None, m["moving_vox"]))
    table = win.info.landmarks.table
    assert table.rowCount() == 1 and table.item(0, 3).text() == ", ".join(f"{x:.1f}" for x in m["moving_mm"])
    assert table.item(0, 6).text() == "0.0"                              # ruler: the crosshair is on it
    st.set_crosshair((83, 94))
    assert float(table.item(0, 6).text()) == pytest.approx(np.hypot(*(np.array([3, 4]) * res.spacing)), abs=0.1)
    st.clear_landmarks()
    assert table.rowCount() == 0 and len(view.panels[1].marks.data) == 0


# 10. context ------------------------------------------------------------------------------------
def test_context_title_progress_recent_save_crosshair(win, qtbot, tmp_path, demo_dir):
    d = demo_dir / "2d"
    assert win.open_pair(d / "fixed.nii.gz", d / "moving.nii.gz")
    assert "2d/fixed.nii.gz" in win.windowTitle() and "2d/moving.nii.gz" in win.windowTitle()
    # a stale "cancelled after ..." goes away with a new pair
    win.controls.progress_label.setText("cancelled after 12.40 s")
    win.controls.progress.setValue(40)
    assert win.open_pair(d / "fixed.nii.gz", d / "moving.nii.gz")
    assert win.controls.progress_label.text() == "" and win.controls.progress.value() == 0
    # recent files keep their role: a label map reopens as labels, not as the moving image
    assert win.open_file("fixed_labels", d / "fixed_labels.nii.gz")
    texts = [a.text() for a in win.recent_menu.actions()]
    assert texts[0].startswith("fixed labels: ") and any(t.startswith("moving: ") for t in texts)
    win.state.fixed_labels = None
    win.recent_menu.actions()[0].trigger()
    assert win.state.fixed_labels is not None and win.state.moving.path.name == "moving.nii.gz"
    # Save never opens inside the package or its bundled assets
    for bad in [str(p) for p in PACKAGE_DIRS] + [str(d)]:
        assert save_start_dir(bad, home=tmp_path) == str(tmp_path)
    assert save_start_dir(str(tmp_path / "nope"), home="/h") == "/h"
    assert save_start_dir(str(tmp_path), home="/h") == str(tmp_path)
    win.settings.setValue("last_save_dir", str(demo_dir))
    assert win.save_start_dir() != str(demo_dir)
    # the crosshair: a dark line under a light one, so it shows on white (difference mode)
    win.state.set_display(mode="difference")
    p = win.views[0].panels[0]
    vis = [ln for ln in p.lines if ln.isVisible()]
    assert len(vis) == 4 and {ln.pen.color().getRgb()[:3] for ln in vis} == {(0, 0, 0), (255, 255, 255)}
    assert CROSSHAIR_PENS[0]["width"] > CROSSHAIR_PENS[1]["width"]
    # the window fits a small screen (e.g. 1.5x UI scale)
    assert fit_to_screen((1500, 920), (1280, 720)) == (1177, 662) and fit_to_screen((1500, 920), (3000, 2000)) == (1500, 920)


def test_progress_ticks_while_a_stage_runs(win, qtbot):
    class _Busy:
        def is_cancelled(self):
            return False

    win.worker = _Busy()
    win._t_start = time.perf_counter() - 3.0
    win._on_progress(20, "registering on cpu")
    first = win.controls.progress_label.text()
    win._t_start -= 1.5
    win._tick_progress()                    # the timer's slot: elapsed time moves on, percent stays
    assert first.startswith("registering on cpu (3.") and win.controls.progress_label.text().startswith(
        "registering on cpu (4.")
    win.worker = None
    win._tick_progress()
    assert not win._elapsed_timer.isActive()


def test_binding_refcount_workaround(win):
    """PySide6 6.12.0 on CPython 3.11 drops a reference to None per void call and to True per emit;
    with the window up (protect_singletons), a long session cannot free them."""
    from PySide6.QtWidgets import QLabel

    from fnoreg_gui.qt_workarounds import binding_leaks, protect_singletons

    applied = protect_singletons()
    assert applied == (sys.version_info < (3, 12) and binding_leaks()) or applied   # applied once, stays applied
    lab = QLabel()
    n0 = sys.getrefcount(None)
    for _ in range(20000):                 # more than None's own reference count at start-up
        lab.setText("x")
    assert sys.getrefcount(None) > 0 and (applied or sys.getrefcount(None) >= n0 - 10)
