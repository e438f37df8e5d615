"""The image views: one :class:`QtSliceView` per view axis (three in 3-D, one in 2-D).

A view holds one :class:`~fnoreg_gui.panel.QtImagePanel` per panel of :func:`fnoreg_gui.render.panels`
(three in side-by-side mode: fixed | moving | moved, each its own view box), a title bar with a
maximise button and a slice slider. Panels share one zoom (all views) and one centre (per view),
held by the state (:mod:`fnoreg_gui.view_state`); the crosshair is drawn in every panel. Mouse
gestures call the state's setters, never pyqtgraph's own pan/zoom.
"""

from __future__ import annotations

import math
import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

from . import render
from .panel import QtImagePanel
from .state import ViewerState

__all__ = ["QtSliceView", "VIEW_NAMES"]

#: Title of the view of each axis (``None``: the one view of a 2-D pair).
VIEW_NAMES = {None: "2-D", 0: "sagittal", 1: "coronal", 2: "axial"}
_ACTIVE_STYLE = "QLabel { font-weight: bold; color: palette(highlight); }"


class QtSliceView(QWidget):
    """One view: its panels, a title bar (name, slice, maximise) and a slice slider.

    Parameters
    ----------
    state : ViewerState
        Read to draw; its setters are called on user input.
    axis : int or None
        The axis looked along (0 sagittal, 1 coronal, 2 axial), or None for a 2-D pair (no slider).
    parent : QWidget, optional

    Attributes
    ----------
    panels : list of QtImagePanel
        One per panel of the current display mode.
    last_redraw_ms : float
        Duration of the last :meth:`redraw` (the redraw benchmark and tests read it).
    """

    def __init__(self, state: ViewerState, axis: int | None, parent=None):
        super().__init__(parent)
        self.state, self.axis = state, axis
        self.title = QLabel(VIEW_NAMES[axis])
        self.max_btn = QToolButton()
        self.max_btn.setText("\u2922")
        self.max_btn.setToolTip("maximise this view / show all views (M)")
        self.max_btn.setAutoRaise(True)
        self.max_btn.clicked.connect(self._on_maximise_change)
        self.max_btn.setVisible(axis is not None)
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.title, 1)
        head.addWidget(self.max_btn)
        self.panel_row = QHBoxLayout()
        self.panel_row.setContentsMargins(0, 0, 0, 0)
        self.panel_row.setSpacing(2)
        self.panels: list[QtImagePanel] = []
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider_label = QLabel("")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(1)
        lay.addLayout(head)
        lay.addLayout(self.panel_row, 1)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.slider_label)
        lay.addLayout(row)
        self.slider.setVisible(axis is not None)
        self.slider.valueChanged.connect(self._on_slider_change)
        self._range_key = None
        self.last_redraw_ms = 0.0

    # -- panels ----------------------------------------------------------------------------------
    def _ensure_panels(self, n: int) -> None:
        while len(self.panels) < n:
            p = QtImagePanel()
            p.vb.clicked.connect(self._on_click)
            p.vb.double_clicked.connect(self.state.fit_views)
            p.vb.dragged.connect(self._on_drag)
            p.vb.wheel.connect(self._on_wheel)
            p.hovered.connect(self._on_hover)
            self.panel_row.addWidget(p, 1)
            self.panels.append(p)
            self._range_key = None
        for k, p in enumerate(self.panels):
            p.setVisible(k < n)

    # -- input -> state ----------------------------------------------------------------------------
    def _on_slider_change(self, value: int) -> None:
        if self.axis is not None:
            self.state.set_active_axis(self.axis)
            self.state.set_slice(self.axis, value)

    def _wheel(self, step: int) -> None:
        if self.axis is not None:
            self.state.set_slice(self.axis, self.state.slices[self.axis] + step)

    def _on_wheel(self, step: int, mods, col: float, row: float) -> None:
        self.state.set_active_axis(self.axis)
        if mods & Qt.KeyboardModifier.ControlModifier:
            self.state.zoom_by(1.25 ** step, self.axis, (col, row))
        else:
            self._wheel(step)

    def _inside(self, col: float, row: float) -> bool:
        cols, rows = self.state.panel_size(self.axis)
        return 0 <= col < cols and 0 <= row < rows

    def _clicked(self, col: float, row: float) -> None:
        """Move the crosshair to the voxel under display pixel (col, row) of a panel."""
        st = self.state
        if st.fixed is None or not self._inside(col, row):
            return
        st.set_active_axis(self.axis)
        st.set_crosshair(render.display_to_voxel(st, self.axis, row, col))

    def _on_click(self, col: float, row: float, mods) -> None:
        self._clicked(col, row)

    def _on_drag(self, kind: str, col: float, row: float, dx: float, dy: float, finish: bool) -> None:
        st = self.state
        if st.fixed is None:
            return
        st.set_active_axis(self.axis)
        if kind == "cursor":
            self._clicked(col, row)
        elif kind == "pan":
            st.pan_by(self.axis, dx, dy)
        elif kind == "zoom":        # drag up zooms in, about where the drag started
            st.zoom_by(math.exp(-dy / 100.0), self.axis, (col, row))
        elif kind == "window":      # right: wider window; up: brighter (lower level)
            st.nudge_window(dy / 300.0, math.exp(dx / 150.0))

    def _on_hover(self, col: float, row: float) -> None:
        st = self.state
        if st.fixed is None or math.isnan(col) or not self._inside(col, row):
            st.set_hover(None)
            return
        st.set_active_axis(self.axis)
        st.set_hover(render.display_to_voxel(st, self.axis, row, col))

    def _on_maximise_change(self) -> None:
        self.state.toggle_maximised(self.axis)

    # -- state -> widgets --------------------------------------------------------------------------
    def apply_view(self, force: bool = False) -> None:
        """Zoom and pan every panel as the state says (linked: one zoom, one centre per view)."""
        st = self.state
        if st.fixed is None:
            return
        cols, rows = st.view_range(self.axis)
        key = (cols, rows, len(self.panels))
        if key == self._range_key and not force:
            return
        for p in self.panels:
            p.set_range(cols, rows)
        self._range_key = key

    def set_active(self, active: bool) -> None:
        self.title.setStyleSheet(_ACTIVE_STYLE if active else "")

    def redraw(self) -> None:
        """Show the current panels, crosshair, landmarks, letters and slider."""
        st = self.state
        if st.fixed is None:
            for p in self.panels:
                p.image.clear()
            return
        t0 = time.perf_counter()
        rgbs = render.panels(st, self.axis)
        self._ensure_panels(len(rgbs))
        titles = render.panel_titles(st)
        letters = render.orientation_labels(st, self.axis)
        col, row = render.voxel_to_display(st, self.axis, st.slices)
        marks = self._landmark_marks(len(rgbs))
        for k, (p, rgb) in enumerate(zip(self.panels, rgbs)):
            p.set_image(rgb)
            p.set_crosshair(col, row)
            p.set_title(titles[k])
            p.set_letters(letters)
            p.set_landmarks(marks[k])
        self.apply_view()
        shape = st.fixed.shape
        if self.axis is not None:
            self.slider.blockSignals(True)
            self.slider.setRange(0, shape[self.axis] - 1)
            self.slider.setValue(st.slices[self.axis])
            self.slider.blockSignals(False)
            self.slider_label.setText(f"{st.slices[self.axis] + 1}/{shape[self.axis]}")
            self.title.setText(f"{VIEW_NAMES[self.axis]}  {st.slices[self.axis] + 1}/{shape[self.axis]}")
        self.last_redraw_ms = (time.perf_counter() - t0) * 1000.0

    def _landmark_marks(self, n: int) -> list[list[tuple[float, float, str, bool]]]:
        """Markers per panel: the landmark in fixed-grid panels, where it maps to in the moving panel."""
        st = self.state
        out: list[list] = [[] for _ in range(n)]
        if not st.landmarks:
            return out
        moving_panel = 1 if n == 3 else None
        mapped = st.mapped_landmarks() if moving_panel is not None else []
        for i, lm in enumerate(st.landmarks):
            c, r = render.voxel_to_display(st, self.axis, lm)
            on = self.axis is None or abs(lm[self.axis] - st.slices[self.axis]) < 0.5
            for k in range(n):
                if k != moving_panel:
                    out[k].append((c, r, str(i + 1), on))
            if moving_panel is not None:
                mv = mapped[i]["moving_vox"]
                mc, mr = render.voxel_to_display(st, self.axis, mv)
                m_on = self.axis is None or abs(mv[self.axis] - _moving_index(st, self.axis)) < 0.5
                out[moving_panel].append((mc, mr, f"{i + 1}'", m_on))
        return out


def _moving_index(state: ViewerState, axis: int) -> float:
    """The moving slice the moving panel shows (same relative position as the fixed slice)."""
    n_f, n_m = state.fixed.shape[axis], state.moving.shape[axis]
    return round(state.slices[axis] * (n_m - 1) / max(n_f - 1, 1))
