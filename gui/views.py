"""The image views: one :class:`QtSliceView` per view axis (three in 3-D, one in 2-D).

A view only draws what :func:`fnoreg_gui.render.frame` composes for its axis and turns the slider,
the mouse wheel and clicks into calls of the state's setters (``set_slice``, ``set_crosshair``).
"""

from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from . import render
from .state import ViewerState

__all__ = ["QtSliceView", "VIEW_NAMES"]

#: Title of the view of each axis (``None``: the one view of a 2-D pair).
VIEW_NAMES = {None: "2-D", 0: "sagittal", 1: "coronal", 2: "axial"}


class _SliceViewBox(pg.ViewBox):
    """Wheel scrolls slices (Ctrl+wheel zooms); a click moves the crosshair."""

    wheel_step = Signal(int)
    clicked = Signal(float, float)  # x (column), y (row) in image pixels

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - Qt API
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            return super().wheelEvent(ev, axis)
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        self.wheel_step.emit(1 if delta > 0 else -1)
        ev.accept()

    def mouseClickEvent(self, ev):  # noqa: N802 - Qt API
        if ev.button() == Qt.MouseButton.LeftButton:
            p = self.mapSceneToView(ev.scenePos())
            self.clicked.emit(float(p.x()), float(p.y()))
            ev.accept()
        else:
            super().mouseClickEvent(ev)


class QtSliceView(QWidget):
    """One view: an ImageItem showing ``render.frame(state, axis)``, a crosshair and a slice slider.

    Parameters
    ----------
    state : ViewerState
        Read to draw; its setters are called on user input.
    axis : int or None
        The axis looked along (0 sagittal, 1 coronal, 2 axial), or None for a 2-D pair (no slider).
    parent : QWidget, optional

    Attributes
    ----------
    last_redraw_ms : float
        Duration of the last :meth:`redraw` (the redraw benchmark and tests read it).
    """

    def __init__(self, state: ViewerState, axis: int | None, parent=None):
        super().__init__(parent)
        self.state, self.axis = state, axis
        self.title = QLabel(VIEW_NAMES[axis])
        self.glw = pg.GraphicsLayoutWidget()
        self.vb = _SliceViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.glw.addItem(self.vb)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        pen = pg.mkPen((255, 255, 255, 130), width=1, style=Qt.PenStyle.DashLine)
        self.vlines = [pg.InfiniteLine(angle=90, pen=pen, movable=False) for _ in range(3)]
        self.hline = pg.InfiniteLine(angle=0, pen=pen, movable=False)
        for line in self.vlines + [self.hline]:
            self.vb.addItem(line)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider_label = QLabel("")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.title)
        lay.addWidget(self.glw, 1)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.slider_label)
        lay.addLayout(row)
        self.slider.setVisible(axis is not None)
        self.slider.valueChanged.connect(self._on_slider_change)
        self.vb.wheel_step.connect(self._wheel)
        self.vb.clicked.connect(self._clicked)
        self._shape_key = None
        self.last_redraw_ms = 0.0

    def _on_slider_change(self, value: int) -> None:
        if self.axis is not None:
            self.state.set_slice(self.axis, value)

    def _wheel(self, step: int) -> None:
        if self.axis is not None:
            self.state.set_slice(self.axis, self.state.slices[self.axis] + step)

    def _clicked(self, x: float, y: float) -> None:
        if self.state.fixed is None or x < 0 or y < 0:
            return
        self.state.set_crosshair(render.display_to_voxel(self.state, self.axis, y, x))

    def redraw(self) -> None:
        """Show the current frame, move the crosshair lines and the slider; zoom to fit on a new shape."""
        st = self.state
        if st.fixed is None:
            self.image.clear()
            return
        t0 = time.perf_counter()
        rgb = render.frame(st, self.axis)
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))
        shape = st.fixed.shape
        a0, a1 = render.in_plane_axes(len(shape), self.axis)
        width = shape[a0]
        n = render.panel_count(st)
        for k, line in enumerate(self.vlines):
            line.setVisible(k < n)
            line.setPos(st.slices[a0] + 0.5 + k * width)
        self.hline.setPos(shape[a1] - 1 - st.slices[a1] + 0.5)
        key = (rgb.shape, self.axis)
        if key != self._shape_key:
            self.vb.autoRange(padding=0.02)
            self._shape_key = key
        if self.axis is not None:
            self.slider.blockSignals(True)
            self.slider.setRange(0, shape[self.axis] - 1)
            self.slider.setValue(st.slices[self.axis])
            self.slider.blockSignals(False)
            self.slider_label.setText(f"{st.slices[self.axis] + 1}/{shape[self.axis]}")
        self.last_redraw_ms = (time.perf_counter() - t0) * 1000.0
