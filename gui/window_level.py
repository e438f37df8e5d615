"""The window/level group of the Display box: presets, auto, low/high, and a histogram to drag.

Every input lands somewhere visible: typing a low/high value switches "auto" off and applies it; a
value the state refuses (high <= low) is shown in red under the boxes, never dropped silently.
Mouse window/level in the views (Ctrl+left drag) goes through ``state.nudge_window`` and this group
follows it.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from .state import ViewerState
from .volume import WINDOW_PRESETS, window_preset

__all__ = ["QtWindowLevel", "histogram"]


def histogram(data: np.ndarray, bins: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges (bins + 1,), counts (bins,)) of an image from a subsample of <= 1 M voxels; the tallest
    bin (usually the background) is cut to 1.2x the second tallest so that the tissue peaks show."""
    flat = np.asarray(data, dtype=np.float32).ravel()
    if flat.size > 1_000_000:
        flat = flat[:: flat.size // 1_000_000 + 1]
    counts, edges = np.histogram(flat, bins=bins)
    counts = counts.astype(np.float64)
    if counts.size > 1:
        second = np.sort(counts)[-2]
        counts = np.minimum(counts, 1.2 * second) if second > 0 else counts
    return edges, counts


class QtWindowLevel(QWidget):
    """Window presets, auto window, low/high boxes, the fixed image's histogram with the window on it.

    Parameters
    ----------
    state : ViewerState
    parent : QWidget, optional
    """

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.auto_window = QCheckBox("auto window (per image)")
        self.auto_window.setChecked(True)
        self.auto_window.toggled.connect(self._on_auto_change)
        self.preset_combo = QComboBox()
        self.preset_combo.addItem("preset...", None)
        for name in WINDOW_PRESETS:
            self.preset_combo.addItem(name, name)
        self.preset_combo.setToolTip("window from percentiles of the fixed image's intensities")
        self.preset_combo.activated.connect(self._on_preset_change)
        top = QHBoxLayout()
        top.addWidget(self.auto_window)
        top.addWidget(self.preset_combo, 1)
        lay.addLayout(top)
        self.win_lo, self.win_hi = QDoubleSpinBox(), QDoubleSpinBox()
        row = QHBoxLayout()
        for name, sp in (("low", self.win_lo), ("high", self.win_hi)):
            sp.setRange(-1e6, 1e6)
            sp.setDecimals(3)
            sp.setSingleStep(0.05)
            sp.setKeyboardTracking(False)
            sp.valueChanged.connect(self._on_window_change)
            row.addWidget(QLabel(name))
            row.addWidget(sp, 1)
        lay.addLayout(row)
        self.message = QLabel("")
        self.message.setStyleSheet("QLabel { color: #c0392b; }")
        self.message.setWordWrap(True)
        self.message.setVisible(False)
        lay.addWidget(self.message)
        self.hist = pg.PlotWidget()
        self.hist.setFixedHeight(70)
        self.hist.setMenuEnabled(False)
        self.hist.setMouseEnabled(False, False)
        self.hist.hideAxis("left")
        self.hist.getAxis("bottom").setStyle(tickLength=-4)
        self.hist_curve = self.hist.plot([0, 1], [0], stepMode="center", fillLevel=0, brush=(150, 150, 150, 160),
                                         pen=pg.mkPen((200, 200, 200)))
        self.region = pg.LinearRegionItem(values=(0, 1), brush=(80, 140, 255, 60))
        self.region.sigRegionChangeFinished.connect(self._on_region_change)
        self.hist.addItem(self.region)
        self.hist.setToolTip("histogram of the fixed image (background bin cut); drag the band or its edges to set the window")
        lay.addWidget(self.hist)
        self._hist_of = None

    # -- widgets -> state ----------------------------------------------------------------------
    def _apply(self, window) -> bool:
        try:
            self.state.set_display(window=window)
        except ValueError as exc:
            self.show_message(str(exc))
            return False
        self.show_message("")
        return True

    def _on_auto_change(self, checked: bool) -> None:
        self._apply(None if checked else (self.win_lo.value(), self.win_hi.value()))

    def _on_window_change(self, *_) -> None:
        self._apply((self.win_lo.value(), self.win_hi.value()))     # typing a value means: this window

    def _on_preset_change(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name is None or self.state.fixed is None:
            return
        self._apply(window_preset(self.state.fixed.data, name))
        self.preset_combo.setCurrentIndex(0)

    def _on_region_change(self, *_) -> None:
        lo, hi = self.region.getRegion()
        if self.state.fixed is not None and (lo, hi) != tuple(self.state.current_window()):
            self._apply((lo, hi))

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # -- state -> widgets ----------------------------------------------------------------------
    def sync(self) -> None:
        """Follow the state: auto tick, low/high, the band on the histogram (recomputed for a new image)."""
        st = self.state
        if st.fixed is None:
            return
        if self._hist_of is not st.fixed:
            edges, logc = histogram(st.fixed.data)
            self.hist_curve.setData(edges, logc)
            self._hist_of = st.fixed
        lo, hi = st.current_window()
        for w, set_value in ((self.auto_window, lambda: self.auto_window.setChecked(st.display.window is None)),
                             (self.win_lo, lambda: self.win_lo.setValue(lo)),
                             (self.win_hi, lambda: self.win_hi.setValue(hi)),
                             (self.region, lambda: self.region.setRegion((lo, hi)))):
            w.blockSignals(True)
            set_value()
            w.blockSignals(False)
        self.region.update()
