"""fnoreg-gui: the main window (PySide6 + pyqtgraph) over a Qt-free :class:`ViewerState`.

    fnoreg-gui                                   # the bundled demo pair (+ default model if bundled)
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
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
                               QPlainTextEdit, QProgressBar, QPushButton, QSlider, QSpinBox, QSplitter,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from . import render
from .model import LABEL_MODES, MODES, OVERLAYS, RASTER_SUFFIXES, ViewerState
from .pipeline import ModelCache, find_default_model, save_outputs

__all__ = ["MainWindow", "main", "DEMO_DIR"]

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
        pen = pg.mkPen((255, 80, 80), width=1)
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
        self.views: list[SliceView] = []
        self._views_key = None

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
        self._refresh_controls()
        self.resize(1400, 800)

    # -- construction --------------------------------------------------------------------------
    def _build_controls(self) -> QWidget:
        panel = QWidget()
        lay = QVBoxLayout(panel)

        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model_label = QLabel("no model")
        self.model_label.setWordWrap(True)
        self.choose_model_btn = QPushButton("Choose model...")
        self.choose_model_btn.clicked.connect(self.choose_model)
        self.backend_combo = QComboBox()
        from fnoreg_export.runtime import BACKENDS

        self.backend_combo.addItems(list(BACKENDS))
        self.backend_combo.currentTextChanged.connect(lambda b: setattr(self.state, "backend", b))
        self.card_text = QPlainTextEdit()
        self.card_text.setReadOnly(True)
        self.card_text.setMaximumHeight(120)
        form.addRow(self.model_label)
        form.addRow(self.choose_model_btn)
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
        self.metrics_label = QLabel("")
        self.metrics_label.setWordWrap(True)
        v.addWidget(self.progress)
        v.addWidget(self.progress_label)
        v.addWidget(self.metrics_label)
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
        form.addRow(self.auto_window)
        wrow = QHBoxLayout()
        wrow.addWidget(self.win_lo)
        wrow.addWidget(self.win_hi)
        form.addRow("window", wrow)
        lay.addWidget(box)

        self.dice_table = QTableWidget(0, 3)
        self.dice_table.setHorizontalHeaderLabels(["label", "Dice before", "Dice after"])
        lay.addWidget(self.dice_table, 1)
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
            ("Open demo pair", self.open_demo, None),
            ("Choose model...", self.choose_model, None),
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
        self._refresh_recent()

    # -- errors --------------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """A non-blocking warning dialog saying what went wrong and what to do."""
        self.errors.append((title, message))
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.statusBar().showMessage(f"{title}: {message.splitlines()[0] if message else ''}", 10000)

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
                          (self.grid_spin, lambda: self.grid_spin.setValue(d.grid_spacing))):
            w.blockSignals(True)
            setter()
            w.blockSignals(False)

    def _rebuild_views(self) -> None:
        key = self.state.ndim
        if key == self._views_key and self.views:
            return
        for v in self.views:
            self.view_grid.removeWidget(v)
            v.hide()
            v.setParent(None)
            v.deleteLater()
        axes = render.view_axes(key) if key else [None]
        self.views = [SliceView(self.state, a) for a in axes]
        for i, v in enumerate(self.views):
            self.view_grid.addWidget(v, i // 2 if len(axes) > 1 else 0, i % 2 if len(axes) > 1 else 0)
        self._views_key = key

    def redraw(self) -> None:
        for v in self.views:
            try:
                v.redraw()
            except Exception as exc:  # a rendering bug must not kill the app
                self.show_error("Display", f"cannot draw the {VIEW_NAMES[v.axis]} view: {exc}")
                return
        self.note_label.setText(render.frame_note(self.state))

    def _refresh_controls(self) -> None:
        st = self.state
        if st.model_path is not None:
            self.model_label.setText(f"model: {st.model_path.name}")
            card = st.card
            if card is not None:
                self.card_text.setPlainText(
                    f"{card.name} v{card.version}  ({card.dims}-D, arch {card.arch}, preset {card.preset})\n"
                    f"trained at {card.train_resolution}; accepts {card.min_size}..{card.max_size}, multiple of "
                    f"{card.size_multiple}" + (f", static {card.static_size}" if card.static_size else "") +
                    f"\nprecision {card.precision}, opset {card.opset}\nintensity {card.intensity_norm}\n"
                    f"parity {card.parity}")
        else:
            self.model_label.setText("no model: choose an exported .onnx / .engine (File > Choose model)")
            self.card_text.setPlainText("")
        if self.backend_combo.currentText() != st.backend:
            self.backend_combo.setCurrentText(st.backend)
        busy = self.worker is not None
        self.register_btn.setEnabled(not busy and st.fixed is not None and st.moving is not None
                                     and st.model_path is not None)
        self.cancel_btn.setEnabled(busy)
        res = st.result
        if res is not None:
            s = res.summary()
            secs = self.last_seconds if self.last_seconds is not None else res.timings.get("total", 0.0)
            t = f"{secs:.2f} s"
            self.metrics_label.setText(
                f"time {t} (network {res.timings.get('inference', 0):.2f} s, {res.backend})\n"
                f"folding (J<=0): {res.folding['nonpositive_pct']:.3f} %   SDlogJ {res.sdlogj:.3f}\n"
                f"|u| mean {s['displacement_mm_mean']:.2f} mm, max {s['displacement_mm_max']:.2f} mm")
        else:
            self.metrics_label.setText("")
        rows = st.dice_table()
        self.dice_table.setRowCount(len(rows) + (1 if rows else 0))
        fmt = lambda x: "" if x is None else f"{x:.3f}"  # noqa: E731
        for i, (lab, b, a) in enumerate(rows):
            for j, val in enumerate((str(lab), fmt(b), fmt(a))):
                self.dice_table.setItem(i, j, QTableWidgetItem(val))
        if rows:
            bs = [b for _, b, _ in rows if b is not None]
            as_ = [a for _, _, a in rows if a is not None]
            for j, val in enumerate(("mean", fmt(float(np.mean(bs))) if bs else "", fmt(float(np.mean(as_))) if as_ else "")):
                self.dice_table.setItem(len(rows), j, QTableWidgetItem(val))
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
        return ok

    def open_demo(self, which: str | None = None) -> bool:
        which = which or "2d"
        d = DEMO_DIR / which
        if not (d / "fixed.nii.gz").exists():
            self.show_error("No demo pair", f"{d} has no fixed.nii.gz; open your own images (File > Open)")
            return False
        return self.open_pair(d / "fixed.nii.gz", d / "moving.nii.gz", d / "fixed_labels.nii.gz",
                              d / "moving_labels.nii.gz")

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
        return ok

    def open_dialog(self, role: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Open {role.replace('_', ' ')}", self._last_dir(), IMAGE_FILTER)
        if path:
            self.open_file(role, path)

    def set_model(self, path) -> bool:
        from fnoreg_export.model_card import read_card

        path = Path(path)
        try:
            if not path.name.lower().endswith(MODEL_SUFFIXES):
                raise ValueError(f"{path.name} is not an exported model; choose a .onnx or .engine file "
                                 "(made by fnoreg-export)")
            card = read_card(path)
        except Exception as exc:
            self.show_error("Cannot use this model", str(exc))
            return False
        self.state.set_model(path, card)
        self._add_recent(path)
        return True

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose model", self._last_dir(), MODEL_FILTER)
        if path:
            self.set_model(path)

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
            self.show_error("No model", "choose an exported model first (File > Choose model: .onnx or .engine "
                                        "made by fnoreg-export)")
            return
        self.worker = RegisterWorker(st.fixed, st.moving, st.model_path, st.backend, st.moving_labels, self.cache)
        self.worker.progress.connect(self._on_progress)
        self.worker.finished_ok.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.finished.connect(self._on_thread_finished)
        self._t_start = time.perf_counter()
        self.progress.setValue(0)
        self.worker.start()
        self._refresh_controls()

    def cancel_registration(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.progress_label.setText("cancelling (after the current stage)...")

    def _on_progress(self, pct: int, msg: str) -> None:
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
        self.progress_label.setText("cancelled")

    def _on_thread_finished(self) -> None:
        w, self.worker = self.worker, None
        if w is not None:
            w.deleteLater()
        self._refresh_controls()

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fnoreg-gui", description="FNOReg desktop app: register and inspect image pairs.")
    p.add_argument("--fixed", help="fixed image (NIfTI/MGZ, or PNG/JPG/TIFF for 2-D); default: the demo pair")
    p.add_argument("--moving", help="moving image")
    p.add_argument("--fixed-labels", help="label map of the fixed image (optional)")
    p.add_argument("--moving-labels", help="label map of the moving image (optional)")
    p.add_argument("--model", help="exported model (.onnx or .engine); default: the bundled one if any")
    p.add_argument("--backend", default="auto", help="auto | onnxruntime-cpu | onnxruntime-cuda | tensorrt")
    p.add_argument("--demo", default="2d", choices=["2d", "3d_2mm", "3d_1mm"], help="demo pair opened by default")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.fixed) != bool(args.moving):
        print("fnoreg-gui: give both --fixed and --moving (or neither for the demo pair)", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = MainWindow()
    win.state.backend = args.backend
    if args.fixed:
        win.open_pair(args.fixed, args.moving, args.fixed_labels, args.moving_labels)
    else:
        win.open_demo(args.demo)
    model = args.model or find_default_model(REPO_ROOT)
    if model:
        win.set_model(model)
    win.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
