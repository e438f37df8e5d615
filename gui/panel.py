"""One image panel: a pyqtgraph ViewBox with the image, the crosshair, landmarks and orientation letters.

:class:`QtImagePanel` draws; every mouse gesture becomes a signal in display pixel coordinates of
the panel (``col``, ``row``; see :mod:`fnoreg_gui.view_state`), which :class:`fnoreg_gui.views.QtSliceView`
turns into state changes. ITK-SNAP's mouse: left click/drag moves the crosshair, right drag zooms,
middle (or Shift+left) drag pans; Ctrl+left drag sets window/level; wheel scrolls slices,
Ctrl+wheel zooms; double-click fits.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

__all__ = ["QtImagePanel", "CROSSHAIR_PENS", "LANDMARK_COLOUR"]

#: The crosshair is a dark wide line under a light dashed one: visible on white (difference mode,
#: the Jacobian's neutral colour), black and every colour map.
CROSSHAIR_PENS = (dict(color=(0, 0, 0, 170), width=3), dict(color=(255, 255, 255, 220), width=1,
                                                             style=Qt.PenStyle.DashLine))
#: Colour of landmark markers.
LANDMARK_COLOUR = (255, 60, 200)
_LETTER_STYLE = ("QLabel { color: #ffe14d; background: rgba(0, 0, 0, 110); font-weight: bold; padding: 0px 3px; }")
_TITLE_STYLE = "QLabel { color: #dddddd; background: rgba(0, 0, 0, 110); padding: 0px 3px; }"


class _PanelViewBox(pg.ViewBox):
    """Mouse gestures as signals; pyqtgraph's own pan/zoom are off (the state holds zoom and pan)."""

    clicked = Signal(float, float, object)          # col, row, modifiers
    double_clicked = Signal()
    dragged = Signal(object, float, float, float, float, bool)  # kind, col, row, dx_px, dy_px, finish
    wheel = Signal(int, object, float, float)       # step, modifiers, col, row

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - Qt API
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        p = self.mapSceneToView(ev.scenePos())
        self.wheel.emit(1 if delta > 0 else -1, ev.modifiers(), float(p.x()), float(p.y()))
        ev.accept()

    def mouseClickEvent(self, ev):  # noqa: N802 - Qt API
        if ev.double():
            self.double_clicked.emit()
        elif ev.button() == Qt.MouseButton.LeftButton:
            p = self.mapSceneToView(ev.scenePos())
            self.clicked.emit(float(p.x()), float(p.y()), ev.modifiers())
        ev.accept()

    def mouseDoubleClickEvent(self, ev):  # noqa: N802 - Qt API
        self.double_clicked.emit()
        ev.accept()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt API
        mods, button = ev.modifiers(), ev.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton
                                                      and mods & Qt.KeyboardModifier.ShiftModifier):
            kind = "pan"
        elif button == Qt.MouseButton.RightButton:
            kind = "zoom"
        elif button == Qt.MouseButton.LeftButton and mods & Qt.KeyboardModifier.ControlModifier:
            kind = "window"
        elif button == Qt.MouseButton.LeftButton:
            kind = "cursor"
        else:
            return
        ev.accept()
        p, last = self.mapSceneToView(ev.scenePos()), self.mapSceneToView(ev.lastScenePos())
        if kind == "pan":   # image pixels moved under the mouse, with the mapping before this step
            dx, dy = p.x() - last.x(), p.y() - last.y()
        else:               # screen pixels (zoom, window/level)
            d = ev.scenePos() - ev.lastScenePos()
            dx, dy = d.x(), d.y()
        start = self.mapSceneToView(ev.buttonDownScenePos()) if kind == "zoom" else p
        self.dragged.emit(kind, float(start.x()), float(start.y()), float(dx), float(dy), bool(ev.isFinish()))


class _Overlay(QObject):
    """Keeps the letters at the edges of the graphics view when it is resized."""

    def __init__(self, panel: "QtImagePanel"):
        super().__init__(panel)
        self.panel = panel

    def eventFilter(self, obj, ev):  # noqa: N802 - Qt API
        if ev.type() == QEvent.Type.Resize:
            self.panel._place_letters()
        return False


class QtImagePanel(QWidget):
    """One panel of a view: image, crosshair, landmarks, orientation letters and a title.

    Parameters
    ----------
    parent : QWidget, optional

    Attributes
    ----------
    vb : pyqtgraph.ViewBox
        Emits ``clicked``, ``double_clicked``, ``dragged`` and ``wheel`` (display pixels of this panel).
    letters : dict of str to QLabel
        ``"left"``, ``"right"``, ``"top"``, ``"bottom"``: the patient direction at each edge.
    title : QLabel
        What the panel shows ("fixed", "moving", "moved", the compare mode...).
    """

    hovered = Signal(float, float)   # col, row (display pixels); NaN, NaN when the mouse leaves

    def __init__(self, parent=None):
        super().__init__(parent)
        self.gv = pg.GraphicsView()
        self.gv.setBackground("k")
        self.vb = _PanelViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.vb.setMouseEnabled(False, False)
        self.gv.setCentralItem(self.vb)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.lines = []
        for angle in (90, 0):
            for pen in CROSSHAIR_PENS:
                line = pg.InfiniteLine(angle=angle, pen=pg.mkPen(**pen), movable=False)
                self.vb.addItem(line, ignoreBounds=True)
                self.lines.append(line)
        self.marks = pg.ScatterPlotItem(size=11, pen=pg.mkPen((255, 255, 255), width=1),
                                        brush=pg.mkBrush(*LANDMARK_COLOUR, 220), symbol="o")
        self.vb.addItem(self.marks, ignoreBounds=True)
        self.mark_labels: list[pg.TextItem] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.gv)
        self.letters = {k: QLabel("", self.gv) for k in ("left", "right", "top", "bottom")}
        for lab in self.letters.values():
            lab.setStyleSheet(_LETTER_STYLE)
            lab.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.title = QLabel("", self.gv)
        self.title.setStyleSheet(_TITLE_STYLE)
        self.title.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.gv.installEventFilter(_Overlay(self))
        self.gv.scene().sigMouseMoved.connect(self._on_mouse_move)
        self.gv.viewport().installEventFilter(self)

    # -- drawing -------------------------------------------------------------------------------
    def set_image(self, rgb: np.ndarray) -> None:
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))

    def set_crosshair(self, col: float, row: float, visible: bool = True) -> None:
        for k, line in enumerate(self.lines):
            line.setPos(col if k < 2 else row)
            line.setVisible(visible)

    def set_landmarks(self, points: list[tuple[float, float, str, bool]]) -> None:
        """Markers at (col, row, text, on_this_slice); off-slice ones are small and hollow."""
        spots = [dict(pos=(c, r), size=11 if on else 7, brush=pg.mkBrush(*LANDMARK_COLOUR, 220 if on else 0),
                      pen=pg.mkPen(*LANDMARK_COLOUR, width=2) if not on else pg.mkPen((255, 255, 255), width=1))
                 for c, r, _, on in points]
        self.marks.setData(spots)
        for t in self.mark_labels:
            self.vb.removeItem(t)
        self.mark_labels = []
        for c, r, text, _ in points:
            t = pg.TextItem(text, color=LANDMARK_COLOUR, anchor=(-0.3, 1.1))
            t.setPos(c, r)
            self.vb.addItem(t, ignoreBounds=True)
            self.mark_labels.append(t)

    def set_letters(self, labels: dict[str, str]) -> None:
        for k, lab in self.letters.items():
            lab.setText(labels.get(k, ""))
            lab.setVisible(bool(labels.get(k)))
            lab.adjustSize()
        self._place_letters()

    def set_title(self, text: str) -> None:
        self.title.setText(text)
        self.title.adjustSize()
        self.title.setVisible(bool(text))

    def set_range(self, cols: tuple[float, float], rows: tuple[float, float]) -> None:
        self.vb.setRange(xRange=cols, yRange=rows, padding=0.0)

    def _place_letters(self) -> None:
        w, h = self.gv.width(), self.gv.height()
        lt = self.letters
        lt["left"].move(2, (h - lt["left"].height()) // 2)
        lt["right"].move(w - lt["right"].width() - 2, (h - lt["right"].height()) // 2)
        title_end = self.title.x() + self.title.width() + 4 if not self.title.isHidden() else 0
        lt["top"].move(max((w - lt["top"].width()) // 2, title_end), 2)
        lt["bottom"].move((w - lt["bottom"].width()) // 2, h - lt["bottom"].height() - 2)
        self.title.move(2, 2)

    # -- mouse position --------------------------------------------------------------------------
    def _on_mouse_move(self, pos: QPointF) -> None:
        p = self.vb.mapSceneToView(pos)
        self.hovered.emit(float(p.x()), float(p.y()))

    def eventFilter(self, obj, ev):  # noqa: N802 - Qt API
        if ev.type() == QEvent.Type.Leave:
            self.hovered.emit(float("nan"), float("nan"))
        return False
