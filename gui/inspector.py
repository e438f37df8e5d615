"""Cursor Inspector and landmark table of the info panel.

:class:`QtCursorInspector` shows :func:`fnoreg_gui.probe.readout_rows` for the voxel under the mouse
(else the crosshair); :class:`QtLandmarkTable` lists the landmarks with where the registration's
composed field sends them (:meth:`fnoreg_gui.state.ViewerState.mapped_landmarks`) and the distance
from the crosshair (a ruler).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from .probe import readout_rows
from .state import ViewerState

__all__ = ["QtCursorInspector", "QtLandmarkTable", "LANDMARK_COLUMNS"]

#: Columns of the landmark table.
LANDMARK_COLUMNS = ("#", "fixed voxel", "fixed RAS mm", "maps to RAS mm", "moving voxel", "|u| mm",
                    "to crosshair mm")


class QtCursorInspector(QGroupBox):
    """Voxel, world position, the three intensities, labels, |u|, u, J and where the point maps to.

    Attributes
    ----------
    values : dict of str to QLabel
        One label per row name of :func:`fnoreg_gui.probe.readout_rows` (tests read them).
    """

    def __init__(self, state: ViewerState, parent=None):
        super().__init__("Cursor inspector", parent)
        self.state = state
        self.form = QFormLayout(self)
        self.form.setVerticalSpacing(0)
        self.form.setContentsMargins(6, 2, 6, 2)
        self.values: dict[str, QLabel] = {}

    def refresh(self) -> None:
        rows = readout_rows(self.state)
        for name, text in rows:
            lab = self.values.get(name)
            if lab is None:
                lab = QLabel()
                lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                self.form.addRow(name, lab)
                self.values[name] = lab
            lab.setText(text)
        self.setVisible(bool(rows))


class QtLandmarkTable(QWidget):
    """Landmarks: fixed position, where the transform sends them, |u| and the distance to the crosshair.

    Attributes
    ----------
    table : QTableWidget
        Columns :data:`LANDMARK_COLUMNS`.
    """

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.hint = QLabel("L places a landmark at the crosshair; its mapped position shows in the moving panel "
                           "(side by side) and here.")
        self.hint.setWordWrap(True)
        lay.addWidget(self.hint)
        self.table = QTableWidget(0, len(LANDMARK_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(LANDMARK_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(19)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.cellDoubleClicked.connect(self._on_row_double_click)
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        for text, slot in (("Add at crosshair (L)", lambda: self.state.add_landmark()),
                           ("Remove selected", self._on_remove_click), ("Clear", self.state.clear_landmarks)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            row.addWidget(b)
        lay.addLayout(row)

    def _on_remove_click(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        for r in rows or [len(self.state.landmarks) - 1]:
            if 0 <= r < len(self.state.landmarks):
                self.state.remove_landmark(r)

    def _on_row_double_click(self, row: int, _col: int) -> None:
        """Jump the crosshair to a landmark."""
        if 0 <= row < len(self.state.landmarks):
            self.state.set_crosshair(tuple(int(round(v)) for v in self.state.landmarks[row]))

    def refresh(self) -> None:
        st = self.state
        mapped = st.mapped_landmarks()
        vec = lambda t: ", ".join(f"{x:.1f}" for x in t)  # noqa: E731
        self.table.setRowCount(len(mapped))
        cross = None
        if st.fixed is not None and mapped:
            from .probe import map_points

            cross = np.asarray(map_points(st, [tuple(st.slices[: st.ndim])])[0]["fixed_mm"])
        for i, m in enumerate(mapped):
            dist = float(np.linalg.norm(np.asarray(m["fixed_mm"]) - cross)) if cross is not None else None
            vals = (str(i + 1), vec(m["fixed_vox"]), vec(m["fixed_mm"]),
                    vec(m["moving_mm"]) + ("" if m["registered"] else " (not registered)"), vec(m["moving_vox"]),
                    f"{np.linalg.norm(m['u_mm']):.2f}", "" if dist is None else f"{dist:.1f}")
            for j, v in enumerate(vals):
                self.table.setItem(i, j, QTableWidgetItem(v))
        self.table.resizeColumnsToContents()
