"""The view area: the slice views and the info panel, arranged by the state's layout.

3-D layouts (``state.view.layout``): "2x2" (axial | coronal / sagittal | info, the default), "row"
(the three views side by side, info on the right) and "column" (stacked, info on the right); a
maximised view (``state.view.maximised``) fills the whole area (the status bar keeps the cursor readout). 2-D: the view and
the info panel side by side.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QScrollArea, QWidget

from . import render
from .state import ViewerState
from .views import QtSliceView

__all__ = ["QtViewGrid", "CELLS"]

#: grid cell (row, column) per view axis in each 3-D layout, and the info panel's (row, col, rowspan, colspan)
CELLS = {
    "2x2": ({2: (0, 0), 1: (0, 1), 0: (1, 0)}, (1, 1, 1, 1)),
    "row": ({2: (0, 0), 1: (0, 1), 0: (0, 2)}, (0, 3, 1, 1)),
    "column": ({2: (0, 0), 1: (1, 0), 0: (2, 0)}, (0, 1, 3, 1)),
}


class QtViewGrid(QWidget):
    """Slice views (one per view axis) and the info panel in a grid laid out as the state says.

    Parameters
    ----------
    state : ViewerState
    info : QWidget
        The info panel (cursor inspector, legend, numbers, Dice, landmarks).
    parent : QWidget, optional

    Attributes
    ----------
    views : list of QtSliceView
    grid : QGridLayout
    info_area : QScrollArea
        Holds the info panel, so that its content never forces a view row to grow.
    """

    def __init__(self, state: ViewerState, info: QWidget, parent=None):
        super().__init__(parent)
        self.state, self.info = state, info
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.info_area = QScrollArea()
        self.info_area.setWidget(info)
        self.info_area.setWidgetResizable(True)
        self.info_area.setFrameShape(QFrame.Shape.NoFrame)
        self.info_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.views: list[QtSliceView] = []
        self._views_key = None
        self._layout_key = None

    def rebuild(self) -> None:
        """New views when the dimensionality changed, then :meth:`arrange`."""
        key = self.state.ndim
        if key == self._views_key and self.views:
            return
        for v in self.views:
            self.grid.removeWidget(v)
            v.hide()
            v.setParent(None)
            v.deleteLater()
        axes = render.view_axes(key) if key else [None]
        self.views = [QtSliceView(self.state, a) for a in axes]
        self._views_key = key
        self._layout_key = None
        self.arrange()

    def arrange(self) -> None:
        """Place views and info panel for the current layout / maximised view."""
        st = self.state
        key = (len(self.views), st.view.layout, st.view.maximised)
        if key == self._layout_key:
            return
        for v in self.views:
            self.grid.removeWidget(v)
        self.grid.removeWidget(self.info_area)
        for i in range(4):
            self.grid.setRowStretch(i, 0)
            self.grid.setColumnStretch(i, 0)
        if len(self.views) == 3 and st.view.maximised is None:
            cells, (r, c, rs, cs) = CELLS[st.view.layout]
            for v in self.views:
                self.grid.addWidget(v, *cells[v.axis])
                v.show()
                self.grid.setRowStretch(cells[v.axis][0], 1)
                self.grid.setColumnStretch(cells[v.axis][1], 1)
            self.grid.addWidget(self.info_area, r, c, rs, cs)
            if st.view.layout != "2x2":
                self.grid.setColumnStretch(c, 0)
        else:
            shown = self.views[0] if len(self.views) == 1 else next(v for v in self.views
                                                                     if v.axis == st.view.maximised)
            for v in self.views:
                v.setVisible(v is shown)
            self.grid.addWidget(shown, 0, 0)
            self.grid.setColumnStretch(0, 3)
            self.grid.setRowStretch(0, 1)
            if len(self.views) == 1:
                self.grid.addWidget(self.info_area, 0, 1)
                self.grid.setColumnStretch(1, 1)
        # a maximised view fills the area (the status bar keeps the cursor readout)
        self.info_area.setVisible(len(self.views) == 1 or st.view.maximised is None)
        self.info_area.setMinimumWidth(300)
        self.info_area.setMaximumWidth(16777215 if st.view.layout == "2x2" or len(self.views) == 1 else 380)
        self._layout_key = key
        for v in self.views:
            v.max_btn.setText("\u2921" if st.view.maximised == v.axis else "\u2922")
            v.apply_view(force=True)

    def visible_views(self) -> list[QtSliceView]:
        return [v for v in self.views if not v.isHidden()]

    def mark_active(self) -> None:
        """Bold title on the view the keys act on."""
        active = self.state.active_view_axis()
        for v in self.views:
            v.set_active(len(self.views) == 3 and v.axis == active)
