"""fnoreg-gui: the main window (PySide6 + pyqtgraph) over a Qt-free :class:`ViewerState`.

    fnoreg-gui                                   # the bundled 3-D demo pair, registered with the bundled model
    fnoreg-gui --fixed F --moving M --model X.onnx [--fixed-labels FL --moving-labels ML]

Widgets only draw what :func:`fnoreg_gui.render.frame` composes and forward user input to the
state's setters; registration runs in :class:`fnoreg_gui.worker.RegisterWorker`. torch is never imported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
                               QPlainTextEdit, QProgressBar, QPushButton, QSlider, QSpinBox, QSplitter,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from . import render
from .state import LABEL_MODES, MODES, OVERLAYS, RASTER_SUFFIXES, ViewerState
from .pipeline import ModelCache, check_model_fits, save_outputs

__all__ = ["MainWindow", "QtInfoPanel", "build_window", "parse_args", "main", "DEMO_DIR"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "assets" / "demo"
MODEL_SUFFIXES = (".onnx", ".engine")
IMAGE_FILTER = "Images (*.nii *.nii.gz *.mgz *.mgh *.png *.jpg *.jpeg *.tif *.tiff *.bmp);;All files (*)"
MODEL_FILTER = "FNOReg models (*.onnx *.engine);;All files (*)"
VIEW_NAMES = {None: "2-D", 0: "sagittal", 1: "coronal", 2: "axial"}
MODE_TITLES = {"side_by_side": "fixed | moving | moved", "red_cyan": "red-cyan (fixed red, moved cyan)",
               "blend": "alpha blend", "checkerboard": "checkerboard", "difference": "difference (fixed - moved)"}


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


class SliceView(QWidget):
    """One view: an ImageItem showing ``render.frame(state, axis)``, a crosshair and a slice slider."""

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
        self.slider.valueChanged.connect(self._slider_moved)
        self.vb.wheel_step.connect(self._wheel)
        self.vb.clicked.connect(self._clicked)
        self._shape_key = None
        self.last_redraw_ms = 0.0

    def _slider_moved(self, value: int) -> None:
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


def _rgb_pixmap(rgb: np.ndarray) -> QPixmap:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QPixmap.fromImage(QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class QtInfoPanel(QWidget):
    """Legend of the current colours, the registration's numbers and the per-label Dice table.

    3-D: the fourth quadrant beside the three views; 2-D: a column beside the view.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 2, 2, 2)
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
        lay.addWidget(self.dice_table, 1)
        self._legend_key = None

    def refresh_legend(self, state: ViewerState) -> None:
        rows = render.legend(state)
        if rows == self._legend_key:
            return
        self._legend_key = rows
        _clear_layout(self.legend_layout)
        for row in rows:
            if row[0] == "text":
                self.legend_layout.addWidget(QLabel(row[1]))
            elif row[0] == "swatch":
                line = QHBoxLayout()
                sw = QLabel()
                sw.setPixmap(_rgb_pixmap(np.full((12, 22, 3), row[1], dtype=np.uint8)))
                line.addWidget(sw)
                line.addWidget(QLabel(row[2]), 1)
                self.legend_layout.addLayout(line)
            elif row[0] == "bar":
                _, kind, (lo, mid, hi), text = row
                self.legend_layout.addWidget(QLabel(text))
                bar = QLabel()
                bar.setPixmap(_rgb_pixmap(render.colour_bar(kind, 220, 12)))
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


def _clear_layout(layout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        w = item.widget()
        if w is not None:
            w.hide()                       # gone now, even before the event loop deletes it
            w.setParent(None)
            w.deleteLater()
        elif item.layout() is not None:
            _clear_layout(item.layout())


class MainWindow(QMainWindow):
    """The app window. ``errors`` keeps (title, message) of every error shown (tests read it)."""

    def __init__(self, state: ViewerState | None = None, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle("FNOReg")
        self.setAcceptDrops(True)
        self.state = state or ViewerState()
        self.settings = settings or QSettings("FNOReg", "fnoreg-gui")
        self.cache = ModelCache()
        self.worker = None
        self.errors: list[tuple[str, str]] = []
        self.last_seconds: float | None = None
        self.notices: list[str] = []
        self.last_question: QMessageBox | None = None
        self.auto_register = False          # register once when first shown (set by build_window)
        self._interrupt_timer = QTimer(self)
        self._interrupt_timer.setInterval(50)
        self._interrupt_timer.timeout.connect(self._interrupt_worker)
        self.views: list[SliceView] = []
        self._views_key = None
        self.info = QtInfoPanel()
        self.metrics_label = self.info.metrics_label
        self.dice_table = self.info.dice_table

        self.view_area = QWidget()
        self.view_grid = QGridLayout(self.view_area)
        self.view_grid.setContentsMargins(0, 0, 0, 0)
        splitter = QSplitter()
        splitter.addWidget(self.view_area)
        splitter.addWidget(self._build_controls())
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)
        self._build_menu()
        self.state.subscribe(self._on_state)
        self._rebuild_views()
        self._refresh_models()
        self._refresh_controls()
        self.resize(1500, 920)

    # -- construction --------------------------------------------------------------------------
    def _build_controls(self) -> QWidget:
        panel = QWidget()
        lay = QVBoxLayout(panel)

        self.notice_label = QLabel("")
        self.notice_label.setWordWrap(True)
        self.notice_label.setStyleSheet("QLabel { background: #fff3c4; color: #3a2a00; border: 1px solid #d9b64a;"
                                        " padding: 4px; }")
        self.notice_label.setVisible(False)
        lay.addWidget(self.notice_label)

        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model_label = QLabel("no model")
        self.model_label.setWordWrap(True)
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("bundled models (assets/models or $FNOREG_MODELS) and models you opened")
        self.model_combo.activated.connect(self._on_model_combo_change)
        self.choose_model_btn = QPushButton("Open model...")
        self.choose_model_btn.clicked.connect(self.choose_model)
        mrow = QHBoxLayout()
        mrow.addWidget(self.model_combo, 1)
        mrow.addWidget(self.choose_model_btn)
        self.backend_combo = QComboBox()
        from fnoreg_export.runtime import BACKENDS

        self.backend_combo.addItems(list(BACKENDS))
        self.backend_combo.currentTextChanged.connect(lambda b: setattr(self.state, "backend", b))
        self.card_text = QPlainTextEdit()
        self.card_text.setReadOnly(True)
        self.card_text.setMaximumHeight(120)
        form.addRow(mrow)
        form.addRow(self.model_label)
        form.addRow("backend", self.backend_combo)
        form.addRow(self.card_text)
        lay.addWidget(box)

        box = QGroupBox("Register")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.register_btn = QPushButton("Register")
        self.register_btn.clicked.connect(self.start_registration)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel_registration)
        self.cancel_btn.setEnabled(False)
        row.addWidget(self.register_btn)
        row.addWidget(self.cancel_btn)
        v.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress_label = QLabel("")
        v.addWidget(self.progress)
        v.addWidget(self.progress_label)
        lay.addWidget(box)

        box = QGroupBox("Display")
        form = QFormLayout(box)
        self.mode_combo = QComboBox()
        for m in MODES:
            self.mode_combo.addItem(MODE_TITLES[m], m)
        self.mode_combo.currentIndexChanged.connect(lambda i: self._set(mode=self.mode_combo.itemData(i)))
        self.overlay_combo = QComboBox()
        for o in OVERLAYS:
            self.overlay_combo.addItem({"none": "none", "grid": "warped grid", "displacement": "|u| heatmap",
                                        "jacobian": "Jacobian (folds green)"}[o], o)
        self.overlay_combo.currentIndexChanged.connect(lambda i: self._set(overlay=self.overlay_combo.itemData(i)))
        self.labels_combo = QComboBox()
        self.labels_combo.addItems(list(LABEL_MODES))
        self.labels_combo.currentTextChanged.connect(lambda t: self._set(label_mode=t))
        self.alpha_slider = QSlider(Qt.Orientation.Horizontal)
        self.alpha_slider.setRange(0, 100)
        self.alpha_slider.setValue(int(self.state.display.alpha * 100))
        self.alpha_slider.valueChanged.connect(lambda v: self._set(alpha=v / 100.0))
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(2, 256)
        self.tile_spin.setValue(self.state.display.checker_tile)
        self.tile_spin.valueChanged.connect(lambda v: self._set(checker_tile=v))
        self.grid_spin = QSpinBox()
        self.grid_spin.setRange(2, 128)
        self.grid_spin.setValue(self.state.display.grid_spacing)
        self.grid_spin.valueChanged.connect(lambda v: self._set(grid_spacing=v))
        self.grid_on_heatmap = QCheckBox("grid over the heatmaps too")
        self.grid_on_heatmap.toggled.connect(lambda v: self._set(grid_on_heatmap=v))
        self.auto_window = QCheckBox("auto window (per image)")
        self.auto_window.setChecked(True)
        self.win_lo, self.win_hi = QDoubleSpinBox(), QDoubleSpinBox()
        for sp in (self.win_lo, self.win_hi):
            sp.setRange(-1e6, 1e6)
            sp.setDecimals(3)
            sp.setSingleStep(0.05)
            sp.valueChanged.connect(self._window_changed)
        self.auto_window.toggled.connect(self._window_changed)
        form.addRow("mode", self.mode_combo)
        form.addRow("overlay", self.overlay_combo)
        form.addRow("labels", self.labels_combo)
        form.addRow("alpha", self.alpha_slider)
        form.addRow("checker tile", self.tile_spin)
        form.addRow("grid spacing", self.grid_spin)
        form.addRow(self.grid_on_heatmap)
        form.addRow(self.auto_window)
        wrow = QHBoxLayout()
        wrow.addWidget(self.win_lo)
        wrow.addWidget(self.win_hi)
        form.addRow("window", wrow)
        lay.addWidget(box)

        lay.addStretch(1)
        self.note_label = QLabel("")
        self.note_label.setWordWrap(True)
        lay.addWidget(self.note_label)
        return panel

    def _build_menu(self) -> None:
        m = self.menuBar().addMenu("&File")
        for text, slot, key in (
            ("Open fixed image...", lambda: self.open_dialog("fixed"), QKeySequence.StandardKey.Open),
            ("Open moving image...", lambda: self.open_dialog("moving"), None),
            ("Open fixed labels...", lambda: self.open_dialog("fixed_labels"), None),
            ("Open moving labels...", lambda: self.open_dialog("moving_labels"), None),
            ("Open 3-D demo pair (2 mm)", lambda: self.open_demo("3d_2mm"), None),
            ("Open 2-D demo pair", lambda: self.open_demo("2d"), None),
        ):
            act = QAction(text, self)
            act.triggered.connect(slot)
            if key is not None:
                act.setShortcut(key)
            m.addAction(act)
        self.recent_menu = m.addMenu("Recent files")
        m.addSeparator()
        for text, slot in (("Save outputs...", self.save_dialog), ("Save screenshot...", self.screenshot_dialog)):
            act = QAction(text, self)
            act.triggered.connect(slot)
            m.addAction(act)
        m.addSeparator()
        act = QAction("Quit", self)
        act.setShortcut(QKeySequence.StandardKey.Quit)
        act.triggered.connect(self.close)
        m.addAction(act)
        mm = self.menuBar().addMenu("&Model")
        self.bundled_menu = mm.addMenu("Bundled models")
        act = QAction("Open model...", self)
        act.triggered.connect(self.choose_model)
        mm.addAction(act)
        act = QAction("Register", self)
        act.setShortcut(QKeySequence("Ctrl+R"))
        act.triggered.connect(self.start_registration)
        mm.addAction(act)
        self._refresh_recent()

    # -- errors --------------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """A non-blocking warning dialog saying what went wrong and what to do."""
        self.errors.append((title, message))
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.statusBar().showMessage(f"{title}: {message.splitlines()[0] if message else ''}", 10000)

    def show_notice(self, message: str) -> None:
        """A non-blocking hint (banner above the controls + status bar); "" hides the banner."""
        if message:
            self.notices.append(message)
            self.statusBar().showMessage(message.splitlines()[0], 15000)
        self.notice_label.setText(message)
        self.notice_label.setVisible(bool(message))

    def ask(self, title: str, message: str, on_yes, yes_text: str = "Yes", no_text: str = "No") -> QMessageBox:
        """A non-blocking question; ``on_yes()`` runs when the user accepts. Kept in ``last_question``."""
        box = QMessageBox(QMessageBox.Icon.Question, title, message, QMessageBox.StandardButton.NoButton, self)
        yes = box.addButton(yes_text, QMessageBox.ButtonRole.YesRole)
        box.addButton(no_text, QMessageBox.ButtonRole.NoRole)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda b: on_yes() if b is yes else None)
        box.yes_button = yes
        self.last_question = box
        box.open()
        return box

    def _guard(self, title: str, fn, *args, **kwargs) -> bool:
        try:
            fn(*args, **kwargs)
            return True
        except Exception as exc:  # any bad input -> dialog, never a crash
            self.show_error(title, str(exc) or type(exc).__name__)
            return False

    # -- state -> widgets -----------------------------------------------------------------------
    def _set(self, **kw) -> None:
        self._guard("Display", self.state.set_display, **kw)

    def _window_changed(self, *_):
        if self.auto_window.isChecked():
            self._set(window=None)
        elif self.win_hi.value() > self.win_lo.value():
            self._set(window=(self.win_lo.value(), self.win_hi.value()))

    def _on_state(self, event: str) -> None:
        if event in ("images",):
            self._rebuild_views()
            self._auto_model()
        if event in ("images", "labels", "result", "model"):
            self._refresh_controls()
        if event == "display":
            self._sync_display_widgets()
        self.redraw()

    def _sync_display_widgets(self) -> None:
        """Widgets follow the state when it is changed from elsewhere (scripts, tests, other widgets)."""
        d = self.state.display
        for w, setter in ((self.mode_combo, lambda: self.mode_combo.setCurrentIndex(MODES.index(d.mode))),
                          (self.overlay_combo, lambda: self.overlay_combo.setCurrentIndex(OVERLAYS.index(d.overlay))),
                          (self.labels_combo, lambda: self.labels_combo.setCurrentText(d.label_mode)),
                          (self.alpha_slider, lambda: self.alpha_slider.setValue(int(round(d.alpha * 100)))),
                          (self.tile_spin, lambda: self.tile_spin.setValue(d.checker_tile)),
                          (self.grid_spin, lambda: self.grid_spin.setValue(d.grid_spacing)),
                          (self.grid_on_heatmap, lambda: self.grid_on_heatmap.setChecked(d.grid_on_heatmap))):
            w.blockSignals(True)
            setter()
            w.blockSignals(False)

    #: grid cell per view axis (3-D): axial top left, coronal top right, sagittal bottom left; the info
    #: panel (legend, numbers, Dice) fills the fourth quadrant.
    _CELLS = {2: (0, 0), 1: (0, 1), 0: (1, 0)}

    def _rebuild_views(self) -> None:
        key = self.state.ndim
        if key == self._views_key and self.views:
            return
        for v in self.views:
            self.view_grid.removeWidget(v)
            v.hide()
            v.setParent(None)
            v.deleteLater()
        self.view_grid.removeWidget(self.info)
        for i in range(2):
            self.view_grid.setRowStretch(i, 0)
            self.view_grid.setColumnStretch(i, 0)
        axes = render.view_axes(key) if key else [None]
        self.views = [SliceView(self.state, a) for a in axes]
        if len(axes) == 3:
            for v in self.views:
                self.view_grid.addWidget(v, *self._CELLS[v.axis])
            self.view_grid.addWidget(self.info, 1, 1)
            for i in range(2):
                self.view_grid.setRowStretch(i, 1)
                self.view_grid.setColumnStretch(i, 1)
        else:
            self.view_grid.addWidget(self.views[0], 0, 0)
            self.view_grid.addWidget(self.info, 0, 1)
            self.view_grid.setColumnStretch(0, 3)
            self.view_grid.setColumnStretch(1, 1)
            self.view_grid.setRowStretch(0, 1)
        self.info.show()
        self._views_key = key

    def redraw(self) -> None:
        for v in self.views:
            try:
                v.redraw()
            except Exception as exc:  # a rendering bug must not kill the app
                self.show_error("Display", f"cannot draw the {VIEW_NAMES[v.axis]} view: {exc}")
                return
        self.note_label.setText(render.frame_note(self.state))
        self.info.refresh_legend(self.state)

    def _refresh_controls(self) -> None:
        st = self.state
        if st.model_path is not None:
            self.model_label.setText(f"{st.model_path}")
            self.model_label.setToolTip(str(st.model_path))
            card = st.card
            if card is not None:
                self.card_text.setPlainText(
                    f"{card.name} v{card.version}  ({card.dims}-D, arch {card.arch}, preset {card.preset})\n"
                    f"trained at {card.train_resolution}; accepts {card.min_size}..{card.max_size}, multiple of "
                    f"{card.size_multiple}" + (f", static {card.static_size}" if card.static_size else "") +
                    f"\nprecision {card.precision}, opset {card.opset}\nintensity {card.intensity_norm}\n"
                    f"parity {card.parity}")
        else:
            self.model_label.setText("no model: pick a bundled one or Open model... (.onnx / .engine made by "
                                     "fnoreg-export)")
            self.card_text.setPlainText("")
        self._select_model_in_combo()
        if self.backend_combo.currentText() != st.backend:
            self.backend_combo.setCurrentText(st.backend)
        busy = self.worker is not None
        self.register_btn.setEnabled(not busy and st.fixed is not None and st.moving is not None
                                     and st.model_path is not None)
        self.cancel_btn.setEnabled(busy)
        self.info.refresh(st, self.last_seconds if st.result is not None else None)
        if st.fixed is not None and self.auto_window.isChecked():
            for sp, val in zip((self.win_lo, self.win_hi), st.fixed.window):
                sp.blockSignals(True)
                sp.setValue(val)
                sp.blockSignals(False)

    # -- opening -------------------------------------------------------------------------------
    def open_pair(self, fixed, moving, fixed_labels=None, moving_labels=None) -> bool:
        if not self._guard("Cannot open the images", self.state.load_pair, fixed, moving):
            return False
        self._add_recent(fixed, moving)
        ok = True
        if fixed_labels:
            ok &= self._guard("Cannot open the fixed labels", self.state.load_labels, "fixed", fixed_labels)
        if moving_labels:
            ok &= self._guard("Cannot open the moving labels", self.state.load_labels, "moving", moving_labels)
        self._offer_resample()
        return ok

    def open_demo(self, which: str | None = None) -> bool:
        which = which or "3d_2mm"
        d = DEMO_DIR / which
        if not (d / "fixed.nii.gz").exists():
            self.show_error("No demo pair", f"{d} has no fixed.nii.gz; open your own images (File > Open)")
            return False
        ok = self.open_pair(d / "fixed.nii.gz", d / "moving.nii.gz", d / "fixed_labels.nii.gz",
                            d / "moving_labels.nii.gz")
        if ok:
            self.state.label_names = _demo_label_names()
            self._refresh_controls()
        return ok

    def open_file(self, role: str, path) -> bool:
        if role in ("fixed", "moving"):
            ok = self._guard(f"Cannot open the {role} image", self.state.load_image, role, path)
        elif role in ("fixed_labels", "moving_labels"):
            ok = self._guard(f"Cannot open the {role.replace('_', ' ')}", self.state.load_labels,
                             role.split("_")[0], path)
        else:
            raise ValueError(role)
        if ok:
            self._add_recent(path)
            if role in ("fixed", "moving"):
                self._offer_resample()
        return ok

    def _offer_resample(self) -> None:
        """Fixed and moving on different grids: offer to put the moving image on the fixed grid."""
        st = self.state
        if st.fixed is None or st.moving is None or st.same_grid:
            return
        f, m = st.fixed, st.moving
        sp = lambda v: "x".join(f"{x:.2g}" for x in np.sqrt((v.affine[:3, :v.ndim] ** 2).sum(axis=0)))  # noqa: E731
        self.ask("Images on different grids",
                 f"The fixed image is {'x'.join(map(str, f.shape))} voxels ({sp(f)} mm) and the moving image is "
                 f"{'x'.join(map(str, m.shape))} voxels ({sp(m)} mm), or they are placed differently.\n\n"
                 "Resample the moving image (and its labels) onto the fixed grid? Their world coordinates (the "
                 "affines) are used. Registration works either way (it resamples the same way), but only "
                 "images on one grid can be compared before registering.",
                 lambda: self._guard("Cannot resample", st.resample_moving_to_fixed),
                 yes_text="Resample moving onto fixed", no_text="Keep as is")

    def open_dialog(self, role: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Open {role.replace('_', ' ')}", self._last_dir(), IMAGE_FILTER)
        if path:
            self.open_file(role, path)

    # drag and drop: one model file -> model; two images -> fixed, moving; one image -> fixed, then moving
    def dragEnterEvent(self, ev):  # noqa: N802
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # noqa: N802
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        self.open_dropped(paths)

    def open_dropped(self, paths) -> None:
        models = [p for p in paths if str(p).lower().endswith(MODEL_SUFFIXES)]
        images = [p for p in paths if p not in models]
        for p in models[:1]:
            self.set_model(p)
        if len(images) >= 2:
            self.open_pair(images[0], images[1])
        elif len(images) == 1:
            self.open_file("moving" if self.state.fixed is not None else "fixed", images[0])

    # recent files (QSettings)
    def _add_recent(self, *paths) -> None:
        recent = [str(p) for p in (self.settings.value("recent", []) or [])]
        for p in paths:
            p = str(Path(p).resolve())
            if p in recent:
                recent.remove(p)
            recent.insert(0, p)
        self.settings.setValue("recent", recent[:10])
        self.settings.setValue("last_dir", str(Path(paths[-1]).resolve().parent))
        self._refresh_recent()

    def _last_dir(self) -> str:
        return str(self.settings.value("last_dir", "") or "")

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for p in [str(p) for p in (self.settings.value("recent", []) or [])]:
            act = QAction(p, self)
            act.triggered.connect(lambda _=False, p=p: self.open_dropped([p]))
            self.recent_menu.addAction(act)

    # -- models --------------------------------------------------------------------------------
    def set_model(self, path) -> bool:
        from fnoreg_export.model_card import read_card

        path = Path(path)
        try:
            if not path.name.lower().endswith(MODEL_SUFFIXES):
                raise ValueError(f"{path.name} is not an exported model; choose a .onnx or .engine file "
                                 "(made by fnoreg-export)")
            if not path.is_file():
                raise ValueError(f"model file {path} does not exist; check the path or pick a bundled model")
            card = read_card(path)
        except Exception as exc:
            self.show_error("Cannot use this model",
                            f"{exc}\n\nThis is not an FNOReg export: choose a model made by fnoreg-export "
                            "(an .onnx with its model card, or a TensorRT .engine with <file>.json beside it), "
                            "or pick a bundled model (Model > Bundled models).")
            self._select_model_in_combo()
            return False
        self.state.set_model(path, card)
        if str(path.resolve()) not in {str(p.resolve()) for p in self.bundled.values()}:
            self._add_recent(path)
        if self.notice_label.isVisible() and "model" in self.notice_label.text():
            self.show_notice("")
        return True

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open model", self._last_dir(), MODEL_FILTER)
        if path:
            self.set_model(path)

    def _refresh_models(self) -> None:
        """Bundled models (``fnoreg_export.bundled``) into the combo box and the Model menu."""
        from fnoreg_export.bundled import bundled_models

        self.bundled: dict[str, Path] = bundled_models()
        self.bundled_menu.clear()
        for name, path in self.bundled.items():
            act = QAction(name, self)
            act.triggered.connect(lambda _=False, p=path: self.set_model(p))
            self.bundled_menu.addAction(act)
        if not self.bundled:
            act = QAction("(none found: see assets/models or set FNOREG_MODELS)", self)
            act.setEnabled(False)
            self.bundled_menu.addAction(act)
        self._select_model_in_combo()

    def _select_model_in_combo(self) -> None:
        combo, current = self.model_combo, self.state.model_path
        combo.blockSignals(True)
        combo.clear()
        bundled = {str(p.resolve()) for p in getattr(self, "bundled", {}).values()}
        for name, path in getattr(self, "bundled", {}).items():
            combo.addItem(f"{name} (bundled)", str(path))
        if current is not None and str(current.resolve()) not in bundled:
            combo.addItem(current.name, str(current))
        if current is None:
            combo.insertItem(0, "(no model)", None)
            combo.setCurrentIndex(0)
        else:
            for i in range(combo.count()):
                if combo.itemData(i) and Path(combo.itemData(i)).resolve() == current.resolve():
                    combo.setCurrentIndex(i)
        combo.blockSignals(False)

    def _on_model_combo_change(self, index: int) -> None:
        path = self.model_combo.itemData(index)
        if path and (self.state.model_path is None or Path(path).resolve() != self.state.model_path.resolve()):
            self.set_model(path)

    def _auto_model(self) -> None:
        """Images of another dimensionality than the model: switch to the bundled default for them
        (only when no model or a bundled one is in use; a model the user opened is kept)."""
        from fnoreg_export.bundled import BundledModelError, default_model

        st = self.state
        if st.ndim is None or (st.card is not None and st.card.dims == st.ndim):
            return
        bundled = {str(p.resolve()) for p in self.bundled.values()}
        if st.model_path is not None and str(st.model_path.resolve()) not in bundled:
            return
        try:
            path = default_model(st.ndim)
        except BundledModelError as exc:
            self.show_notice(f"No {st.ndim}-D model loaded: {exc}. Choose one with Model > Open model... "
                             "(an .onnx or .engine made by fnoreg-export).")
            return
        self.set_model(path)

    # -- registration --------------------------------------------------------------------------
    def start_registration(self) -> None:
        from .worker import RegisterWorker

        st = self.state
        if self.worker is not None:
            return
        if st.fixed is None or st.moving is None:
            self.show_error("Nothing to register", "open a fixed and a moving image first (File > Open)")
            return
        if st.model_path is None:
            self.show_error("No model", "choose a model first: Model > Bundled models, or Open model... (an .onnx "
                                        "or .engine made by fnoreg-export)")
            return
        if st.card is not None and not self._guard("Cannot register these images", check_model_fits, st.card,
                                                   st.fixed):
            return
        self.worker = RegisterWorker(st.fixed, st.moving, st.model_path, st.backend, st.moving_labels, self.cache)
        self.worker.progress.connect(self._on_progress)
        self.worker.finished_ok.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.finished.connect(self._on_thread_finished)
        self._t_start = time.perf_counter()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress_label.setText("starting...")
        self.worker.start()
        self._refresh_controls()

    def cancel_registration(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self._interrupt_timer.start()   # a network call that starts after this is aborted too
            self.progress_label.setText("cancelling...")

    def _interrupt_worker(self) -> None:
        if self.worker is None:
            self._interrupt_timer.stop()
        else:
            self.worker.interrupt()

    def _on_progress(self, pct: int, msg: str) -> None:
        if self.worker is not None and self.worker.is_cancelled():
            return
        self.progress.setValue(pct)
        self.progress_label.setText(f"{msg} ({time.perf_counter() - self._t_start:.1f} s)")

    def _on_done(self, result, moved_labels, seconds: float) -> None:
        self.last_seconds = seconds
        self.progress_label.setText(f"registered in {seconds:.2f} s")
        self._guard("Registration result", self.state.set_result, result, moved_labels)

    def _on_failed(self, title: str, message: str) -> None:
        self.progress_label.setText("failed")
        self.show_error(title, message)

    def _on_cancelled(self) -> None:
        self.progress.setValue(0)
        self.progress_label.setText(f"cancelled after {time.perf_counter() - self._t_start:.2f} s")

    def _on_thread_finished(self) -> None:
        w, self.worker = self.worker, None
        self._interrupt_timer.stop()
        if w is not None:
            w.deleteLater()
        self._refresh_controls()

    def showEvent(self, ev):  # noqa: N802 - Qt API
        super().showEvent(ev)
        if self.auto_register:
            self.auto_register = False
            QTimer.singleShot(0, self._register_on_start)

    def _register_on_start(self) -> None:
        st = self.state
        if st.fixed is not None and st.moving is not None and st.model_path is not None and st.result is None:
            self.start_registration()

    # -- saving --------------------------------------------------------------------------------
    def save_to(self, folder) -> list[Path]:
        try:
            written = save_outputs(self.state, folder)
        except Exception as exc:
            self.show_error("Cannot save", f"{exc}")
            return []
        self.statusBar().showMessage(f"saved {len(written)} files to {folder}", 10000)
        return written

    def save_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save outputs to folder", self._last_dir())
        if folder:
            self.save_to(folder)

    def save_screenshot(self, path) -> bool:
        ok = self.view_area.grab().save(str(path), "PNG")
        if not ok:
            self.show_error("Cannot save the screenshot", f"could not write {path}; choose a writable .png path")
        return ok

    def screenshot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", self._last_dir(), "PNG (*.png)")
        if path:
            self.save_screenshot(path if path.lower().endswith(".png") else path + ".png")

    def closeEvent(self, ev):  # noqa: N802
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(30000)
        super().closeEvent(ev)


def _demo_label_names() -> dict[int, str]:
    try:  # numpy-only module; names of the harmonised demo labels
        from fnoreg_core.data.templates import HARMONISED_LABELS
    except Exception:
        return {}
    return dict(HARMONISED_LABELS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fnoreg-gui", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="FNOReg desktop app: register an image pair with an exported model and inspect the result "
                    "(overlays, deformation grid, Jacobian / folding map, per-label Dice).",
        epilog="Examples:\n"
               "  fnoreg-gui                      # bundled 3-D demo pair, registered with the bundled model\n"
               "  fnoreg-gui --demo 2d\n"
               "  fnoreg-gui --fixed f.nii.gz --moving m.nii.gz --fixed-labels fl.nii.gz --moving-labels ml.nii.gz "
               "--model model.onnx\n\n"
               "Environment:\n"
               "  FNOREG_MODELS   folder of bundled models (<name>/model.onnx); default: assets/models")
    p.add_argument("--fixed", help="fixed image (NIfTI/MGZ, or PNG/JPG/TIFF for 2-D). Default: the demo pair")
    p.add_argument("--moving", help="moving image. Default: the demo pair")
    p.add_argument("--fixed-labels", help="label map of the fixed image (optional)")
    p.add_argument("--moving-labels", help="label map of the moving image (optional)")
    p.add_argument("--model", help="exported model (.onnx or .engine). Default: the bundled model for the "
                                   "images' dimensionality (fnoreg2d / fnoreg3d)")
    p.add_argument("--backend", default="auto", help="auto | onnxruntime-cpu | onnxruntime-cuda | tensorrt. "
                                                     "Default: auto")
    p.add_argument("--demo", default="3d_2mm", choices=["2d", "3d_2mm", "3d_1mm"],
                   help="demo pair opened without --fixed/--moving. Default: 3d_2mm")
    p.add_argument("--no-register", action="store_true",
                   help="do not register automatically once the window shows. Default: register")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """Parse and check the command line (SystemExit 2 on bad usage, 0 after --help)."""
    from fnoreg_export.runtime import BACKENDS

    p = build_parser()
    args = p.parse_args(argv)
    if bool(args.fixed) != bool(args.moving):
        p.error("give both --fixed and --moving (or neither for the demo pair)")
    if args.backend not in BACKENDS:
        p.error(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    return args


def build_window(argv=None, settings: QSettings | None = None) -> MainWindow:
    """The main window for command-line ``argv`` (a list, or parsed :func:`parse_args`), not shown yet:
    images and model opened; unless ``--no-register``, registration starts in the worker as soon as the
    window is shown. Needs a QApplication.
    """
    args = argv if isinstance(argv, argparse.Namespace) else parse_args(argv)
    pg.setConfigOptions(imageAxisOrder="row-major")
    win = MainWindow(settings=settings)
    win.state.backend = args.backend
    win._refresh_controls()
    if args.model:
        win.set_model(args.model)
    if args.fixed:
        win.open_pair(args.fixed, args.moving, args.fixed_labels, args.moving_labels)
    else:
        win.open_demo(args.demo)
    win.auto_register = not args.no_register
    return win


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = build_window(args)
    win.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
