"""Inspection features (issue 20), state and view level: cursor readout, one view per panel with linked
zoom/pan/cursor, orientation, keys, opacities and colour maps, window/level, layouts, both contours,
landmarks through the registration's field, and the context fixes."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPointF, QSettings, Qt  # noqa: E402

from fnoreg_gui import render  # noqa: E402
from fnoreg_gui.main_window import MainWindow, fit_to_screen  # noqa: E402
from fnoreg_gui.probe import axis_codes, map_points, readout  # noqa: E402
from fnoreg_gui.shortcuts import SHORTCUTS, help_text  # noqa: E402
from fnoreg_gui.state import ViewerState, Volume  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gui_redraw import synthetic_state  # noqa: E402


@pytest.fixture
def win(qtbot, tmp_path):
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture
def synth(win):
    """The window showing a synthetic 3-D pair with labels and a registration result."""
    s = synthetic_state((40, 48, 56))
    st = win.state
    st.load_pair(s.fixed, s.moving)
    st.load_labels("fixed", s.fixed_labels)
    st.load_labels("moving", s.moving_labels)
    st.set_result(s.result, s.moved_labels)
    return win


# 1. cursor readout ----------------------------------------------------------------------------------
def test_cursor_readout_values(synth, qtbot):
    st = synth.state
    v = (7, 30, 41)
    r = readout(st, v)
    assert r["voxel"] == v and r["world_mm"] == pytest.approx(tuple(float(x) for x in v))   # identity affine
    assert r["fixed"] == pytest.approx(float(st.fixed.data[v])) and r["moving"] == pytest.approx(float(st.moving.data[v]))
    assert r["moved"] == pytest.approx(float(st.result.moved[v]))
    assert r["jacobian"] == pytest.approx(float(st.result.jacobian[v]))
    u = st.result.ddf_mm[(slice(None),) + v]
    assert r["u_mm"] == pytest.approx(tuple(u)) and r["u_norm_mm"] == pytest.approx(float(np.linalg.norm(u)))
    assert r["fixed_label"][0] == st.fixed_labels.data[v] and r["moved_label"][0] == st.moved_labels[v]
    assert r["maps_to_mm"] == pytest.approx(tuple(np.asarray(v) + u))
    # the view: hovering a panel pixel shows that voxel in the inspector and the status bar
    ax = synth.views[2]
    col, row = render.voxel_to_display(st, 2, (7, 30, st.slices[2]))
    ax.panels[1].hovered.emit(col, row)
    assert st.hover == (7, 30, st.slices[2]) and st.view.active_axis == 2
    assert synth.info.inspector.values["voxel"].text().startswith("7, 30,")
    assert "(mouse)" in synth.info.inspector.values["voxel"].text()
    assert synth.info.inspector.values["J (Jacobian)"].text() == f"{st.result.jacobian[7, 30, st.slices[2]]:.4g}"
    assert "voxel 7, 30" in synth.probe_label.text()
    ax.panels[1].hovered.emit(math.nan, math.nan)            # mouse left: back to the crosshair
    assert st.hover is None and "(crosshair)" in synth.info.inspector.values["voxel"].text()


def test_readout_world_and_moving_on_other_grid():
    s = ViewerState()
    aff_f = np.diag([2.0, 2.0, 2.0, 1.0])
    aff_f[:3, 3] = (-10, -20, 5)
    aff_m = np.eye(4)
    aff_m[:3, 3] = (-10, -20, 5)
    fixed = np.arange(8 * 9 * 10, dtype=np.float32).reshape(8, 9, 10)
    moving = np.arange(16 * 18 * 20, dtype=np.float32).reshape(16, 18, 20)
    s.load_pair(Volume(fixed, aff_f, window=(0, 1)), Volume(moving, aff_m, window=(0, 1)))
    r = readout(s, (3, 4, 5))
    assert r["world_mm"] == (-4.0, -12.0, 15.0)
    assert r["moving"] == moving[6, 8, 10] and r["moved"] is None and r["jacobian"] is None


# 2. each panel its own view; linked zoom / pan / cursor; fit ---------------------------------------
def _ranges(view):
    return [p.vb.viewRange() for p in view.panels if not p.isHidden()]


def _linked(view):
    """Panels of a view show the same centre at the same scale (their widgets may differ by a pixel)."""
    ps = [p for p in view.panels if not p.isHidden()]
    centres = [[(a + b) / 2 for a, b in p.vb.viewRange()] for p in ps]
    scales = [p.vb.viewPixelSize()[0] for p in ps]
    return all(np.allclose(c, centres[0], atol=1e-6) for c in centres) and np.allclose(scales, scales[0], rtol=0.03)


def test_linked_zoom_pan_and_fit(synth, qtbot):
    st, views = synth.state, synth.views
    assert all(len([p for p in v.panels if not p.isHidden()]) == 3 for v in views)   # fixed | moving | moved
    before = {v.axis: _ranges(v)[0] for v in views}
    st.zoom_by(2.0)
    for v in views:
        rs = _ranges(v)
        assert _linked(v)                                                            # panels linked
        w0 = before[v.axis][0][1] - before[v.axis][0][0]
        assert rs[0][0][1] - rs[0][0][0] == pytest.approx(w0 / 2, rel=0.02)          # zoom linked across views
    ax, cor = views[2], views[1]
    cor_before = _ranges(cor)[0]
    ax.panels[0].vb.dragged.emit("pan", 0.0, 0.0, 5.0, -3.0, False)                  # middle / Shift drag
    assert _linked(ax) and st.view_centre(2) != (20.0, 24.0)
    assert np.allclose(_ranges(cor)[0], cor_before)                                  # other views keep their pan
    ax.panels[2].vb.double_clicked.emit()                                            # double-click fits
    assert st.view.zoom == 1.0 and st.view.centre == {}
    # Ctrl+wheel zooms about the mouse: the voxel under it stays put
    st.zoom_by(1.0)
    anchor = (30.0, 20.0)
    ax.panels[0].vb.wheel.emit(1, Qt.KeyboardModifier.ControlModifier, *anchor)
    (c0, c1), (r0, r1) = st.view_range(2)
    cols, rows = st.panel_size(2)
    assert st.view.zoom == pytest.approx(1.25)
    assert (anchor[0] - c0) / (c1 - c0) == pytest.approx(anchor[0] / cols)


class _Drag:
    """What pyqtgraph hands mouseDragEvent (enough of it)."""

    def __init__(self, button, mods, start, last, now, finish=False):
        self._b, self._m, self._s, self._l, self._n, self._f = button, mods, start, last, now, finish

    def button(self): return self._b
    def modifiers(self): return self._m
    def buttonDownScenePos(self): return QPointF(*self._s)
    def lastScenePos(self): return QPointF(*self._l)
    def scenePos(self): return QPointF(*self._n)
    def isFinish(self): return self._f
    def accept(self): pass


def test_mouse_gestures_like_itksnap(synth, qtbot):
    st = synth.state
    ax = synth.views[2]
    vb = ax.panels[0].vb
    centre = vb.mapViewToScene(QPointF(20.5, 10.5))
    end = vb.mapSceneToView(QPointF(centre.x() + 4, centre.y() - 6))
    expect = render.display_to_voxel(st, 2, end.y(), end.x())
    got = []
    vb.dragged.connect(lambda *a: got.append(a[0]))
    no = Qt.KeyboardModifier.NoModifier
    for button, mods in ((Qt.MouseButton.LeftButton, no), (Qt.MouseButton.MiddleButton, no),
                         (Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier),
                         (Qt.MouseButton.RightButton, no), (Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier)):
        vb.mouseDragEvent(_Drag(button, mods, (centre.x(), centre.y()), (centre.x(), centre.y()),
                                (centre.x() + 4, centre.y() - 6)))
    assert got == ["cursor", "pan", "pan", "zoom", "window"]
    assert st.slices[:2] == list(expect[:2])                    # left drag moved the cursor
    assert st.view.zoom > 1 and st.display.window is not None                       # right drag zoomed; W/L set


# 3. orientation -----------------------------------------------------------------------------------
def test_orientation_markers_and_radiological(synth, qtbot):
    st = synth.state
    assert st.view.radiological                                  # ITK-SNAP / Slicer default
    assert axis_codes(np.eye(4)) == [("L", "R"), ("P", "A"), ("I", "S")]
    assert render.orientation_labels(st, 2) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert render.orientation_labels(st, 1) == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert render.orientation_labels(st, 0) == {"left": "P", "right": "A", "top": "S", "bottom": "I"}
    ax = synth.views[2]
    letters = {k: lab.text() for k, lab in ax.panels[0].letters.items()}
    assert letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    radio = render.panels(st, 2)[0]
    synth.controls.orientation_combo.setCurrentIndex(1)          # neurological
    assert not st.view.radiological
    assert {k: lab.text() for k, lab in ax.panels[0].letters.items()}["left"] == "L"
    neuro = render.panels(st, 2)[0]
    assert np.array_equal(radio, neuro[:, ::-1])                 # mirrored left-right, nothing else
    # a click still lands on the voxel drawn there, in both orientations
    for radiological in (False, True):
        st.set_radiological(radiological)
        ax._clicked(3.5, 4.5)
        assert render.voxel_to_display(st, 2, st.slices) == (3.5, 4.5)
    x_right = st.slices[0]
    assert x_right == st.shape[0] - 1 - 3                        # radiological: screen-left is the patient's right
    # a 2-D pair has no patient directions: no letters, no mirroring
    s2 = ViewerState()
    s2.load_pair(Volume(np.zeros((6, 5), np.float32), np.eye(4)), Volume(np.zeros((6, 5), np.float32), np.eye(4)))
    assert render.orientation_labels(s2, None) == {} and not render.flipped(s2, None)


# 4. keyboard + help -------------------------------------------------------------------------------
def test_keyboard_shortcuts_and_help(synth, qtbot):
    st, win = synth.state, synth
    win.activateWindow()
    qtbot.waitUntil(lambda: win.isActiveWindow(), timeout=2000)
    st.set_active_axis(2)
    z = st.slices[2]
    for key, expect in ((Qt.Key.Key_Up, z + 1), (Qt.Key.Key_Down, z), (Qt.Key.Key_PageUp, z + 5),
                        (Qt.Key.Key_PageDown, z)):
        qtbot.keyClick(win, key)
        assert st.slices[2] == expect, key
    st.set_active_axis(0)
    x = st.slices[0]
    qtbot.keyClick(win, Qt.Key.Key_Right)
    assert st.slices[0] == x + 1                                  # the active view's slice
    qtbot.keyClick(win, Qt.Key.Key_Plus)
    assert st.view.zoom == pytest.approx(1.25)
    qtbot.keyClick(win, Qt.Key.Key_Minus)
    qtbot.keyClick(win, Qt.Key.Key_Minus)
    assert st.view.zoom == pytest.approx(0.8)
    qtbot.keyClick(win, Qt.Key.Key_Home)
    assert st.view.zoom == 1.0
    st.set_display(mode="red_cyan")
    qtbot.keyClick(win, Qt.Key.Key_F)
    assert st.display.flicker == "fixed" and [p.title.text() for p in win.views[2].panels if not p.isHidden()] \
        == ["fixed (flicker: F)"]
    fixed_only = win.views[2].panels[0].image.image.copy()
    qtbot.keyClick(win, Qt.Key.Key_F)
    assert st.display.flicker == "moved" and not np.array_equal(win.views[2].panels[0].image.image, fixed_only)
    qtbot.keyClick(win, Qt.Key.Key_F, Qt.KeyboardModifier.ShiftModifier)
    assert st.display.flicker == "off" and st.display.mode == "red_cyan"
    qtbot.keyClick(win, Qt.Key.Key_O)
    assert not st.view.radiological
    qtbot.keyClick(win, Qt.Key.Key_M)
    assert st.view.maximised == 0 and [v.axis for v in win.view_area.visible_views()] == [0]
    qtbot.keyClick(win, Qt.Key.Key_M)
    assert st.view.maximised is None and len(win.view_area.visible_views()) == 3
    qtbot.keyClick(win, Qt.Key.Key_L)
    assert len(st.landmarks) == 1 and win.info.tabs.currentWidget() is win.info.landmarks
    qtbot.keyClick(win, Qt.Key.Key_L, Qt.KeyboardModifier.ShiftModifier)
    assert st.landmarks == []
    qtbot.keyClick(win, Qt.Key.Key_F1)
    assert "Page" in win.last_help.text() or "PgUp" in win.last_help.text()
    win.last_help.close()
    # every listed shortcut is a menu action with those keys, and the Help text lists it
    text = help_text()
    menus = {a.text().replace("&", "") for a in win.menuBar().actions()}
    assert {"File", "Model", "View", "Help"} <= menus
    for ident, _, label, keys in SHORTCUTS:
        act = win.shortcut_actions[ident]
        assert [s.toString() for s in act.shortcuts()] == [k.replace("PgDown", "PgDown") for k in keys] or \
            len(act.shortcuts()) == len(keys), ident
        assert label in text and keys[0] in text
