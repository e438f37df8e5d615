"""The info panel: cursor inspector, legend of the current colours, the registration's numbers, and
tabs with the per-label Dice table and the landmarks."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QTableWidget, QTableWidgetItem, QTabWidget,
                               QVBoxLayout, QWidget)

from . import render
from .inspector import QtCursorInspector, QtLandmarkTable
from .state import ViewerState

__all__ = ["QtInfoPanel", "rgb_pixmap", "clear_layout"]


def rgb_pixmap(rgb: np.ndarray) -> QPixmap:
    """A QPixmap of an (H, W, 3) uint8 RGB array (copied: the array may go away)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QPixmap.fromImage(QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class QtInfoPanel(QWidget):
    """Legend of the current colours, the registration's numbers and the per-label Dice table.

    3-D: the fourth quadrant beside the three views; 2-D: a column beside the view.

    Parameters
    ----------
    state : ViewerState, optional
        Needed for the cursor inspector and the landmark table (without it they are not built).
    parent : QWidget, optional

    Attributes
    ----------
    inspector : QtCursorInspector
    landmarks : QtLandmarkTable
    tabs : QTabWidget
        "Dice" and "Landmarks".
    legend_box : QGroupBox
        Hidden when the current display has nothing to explain.
    metrics_label : QLabel
        Time, folding, SDlogJ and displacement of the result (or what to do next).
    dice_table : QTableWidget
        label | Dice before | Dice after, one row per label and a bold mean row.
    """

    def __init__(self, state: ViewerState | None = None, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 2, 2, 2)
        self.inspector = QtCursorInspector(state) if state is not None else None
        if self.inspector is not None:
            lay.addWidget(self.inspector)
        self.legend_box = QGroupBox("Legend")
        self.legend_layout = QVBoxLayout(self.legend_box)
        self.legend_layout.setSpacing(2)
        lay.addWidget(self.legend_box)
        self.metrics_label = QLabel("")
        self.metrics_label.setWordWrap(True)
        lay.addWidget(self.metrics_label)
        self.dice_table = QTableWidget(0, 3)
        self.dice_table.setHorizontalHeaderLabels(["label", "Dice before", "Dice after"])
        self.dice_table.verticalHeader().setVisible(False)
        self.dice_table.verticalHeader().setDefaultSectionSize(19)
        self.dice_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.dice_table.horizontalHeader().setStretchLastSection(True)
        self.stage_table = QTableWidget(0, 3)
        self.stage_table.setHorizontalHeaderLabels(["stage", "mean Dice", "time (s)"])
        self.stage_table.verticalHeader().setVisible(False)
        self.stage_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.stage_table.horizontalHeader().setStretchLastSection(True)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.dice_table, "Dice")
        self.tabs.addTab(self.stage_table, "Stages")
        self.landmarks = QtLandmarkTable(state) if state is not None else None
        if self.landmarks is not None:
            self.tabs.addTab(self.landmarks, "Landmarks")
        lay.addWidget(self.tabs, 1)
        self._legend_key = None

    def refresh_legend(self, state: ViewerState) -> None:
        """Rebuild the legend from :func:`fnoreg_gui.render.legend` (only when its rows changed)."""
        rows = render.legend(state)
        if rows == self._legend_key:
            return
        self._legend_key = rows
        clear_layout(self.legend_layout)
        for row in rows:
            if row[0] == "text":
                self.legend_layout.addWidget(QLabel(row[1]))
            elif row[0] == "swatch":
                line = QHBoxLayout()
                sw = QLabel()
                sw.setPixmap(rgb_pixmap(np.full((12, 22, 3), row[1], dtype=np.uint8)))
                line.addWidget(sw)
                line.addWidget(QLabel(row[2]), 1)
                self.legend_layout.addLayout(line)
            elif row[0] == "bar":
                _, kind, (lo, mid, hi), text = row
                self.legend_layout.addWidget(QLabel(text))
                bar = QLabel()
                bar.setPixmap(rgb_pixmap(render.colour_bar(kind, 220, 12)))
                self.legend_layout.addWidget(bar)
                ticks = QHBoxLayout()
                for t, align in ((lo, Qt.AlignmentFlag.AlignLeft), (mid, Qt.AlignmentFlag.AlignHCenter),
                                 (hi, Qt.AlignmentFlag.AlignRight)):
                    lab = QLabel(t)
                    lab.setAlignment(align)
                    ticks.addWidget(lab, 1)
                tick_w = QWidget()
                tick_w.setLayout(ticks)
                tick_w.setFixedWidth(228)
                ticks.setContentsMargins(0, 0, 0, 0)
                self.legend_layout.addWidget(tick_w)
        self.legend_box.setVisible(bool(rows))

    def refresh(self, state: ViewerState, seconds: float | None) -> None:
        """Show the legend, the registration's numbers and the Dice table of ``state``.

        Parameters
        ----------
        state : ViewerState
        seconds : float or None
            Wall time of the registration as the user saw it (None: the result's own total).
        """
        self.refresh_legend(state)
        res = state.result
        if res is not None:
            s = res.summary()
            secs = seconds if seconds is not None else res.timings.get("total", 0.0)
            self.metrics_label.setText(
                f"<b>registered in {secs:.2f} s</b> (network {res.timings.get('inference', 0):.2f} s, {res.backend})<br>"
                f"folding (J &lt;= 0): <b>{res.folding['nonpositive_pct']:.3f} %</b> of voxels, SDlogJ {res.sdlogj:.3f}<br>"
                f"|u| mean {s['displacement_mm_mean']:.2f} mm, max {s['displacement_mm_max']:.2f} mm")
        elif state.fixed is not None:
            self.metrics_label.setText("not registered yet: press Register")
        else:
            self.metrics_label.setText("")
        rows = state.dice_table()
        names = state.label_names
        self.dice_table.setRowCount(len(rows) + (1 if rows else 0))
        fmt = lambda x: "" if x is None else f"{x:.3f}"  # noqa: E731
        colours = render.label_colours(np.array([r[0] for r in rows])) if rows else []
        for i, (lab, b, a) in enumerate(rows):
            for j, val in enumerate((f"{lab} {names[lab]}" if lab in names else str(lab), fmt(b), fmt(a))):
                item = QTableWidgetItem(val)
                if j == 0:
                    item.setBackground(QColor(*(int(c) for c in colours[i])))
                    item.setForeground(QColor(0, 0, 0))
                self.dice_table.setItem(i, j, item)
        if rows:
            bs = [b for _, b, _ in rows if b is not None]
            as_ = [a for _, _, a in rows if a is not None]
            for j, val in enumerate(("mean", fmt(float(np.mean(bs))) if bs else "", fmt(float(np.mean(as_))) if as_ else "")):
                item = QTableWidgetItem(val)
                font = item.font()
                font.setBold(True)
                item.setFont(font)
                self.dice_table.setItem(len(rows), j, item)
        self.dice_table.resizeColumnToContents(0)
        stages = state.stage_table()
        self.stage_table.setRowCount(len(stages))
        for i, (name, dice, secs) in enumerate(stages):
            for j, val in enumerate((name, fmt(dice), "" if name == "none" else f"{secs:.2f}")):
                self.stage_table.setItem(i, j, QTableWidgetItem(val))


def clear_layout(layout) -> None:
    """Remove and delete every widget of ``layout`` and of its nested layouts."""
    while layout.count():
        item = layout.takeAt(0)
        w = item.widget()
        if w is not None:
            w.hide()                       # gone now, even before the event loop deletes it
            w.setParent(None)
            w.deleteLater()
        elif item.layout() is not None:
            clear_layout(item.layout())
