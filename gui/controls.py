"""The control column right of the views: notice banner, Model, Register and Display boxes, frame note.

Display widgets write the state's display settings (``state.set_display``) and follow them when they
change elsewhere (:meth:`QtControls.sync_display`). Buttons and the model choice are forwarded as
signals to the main window, which owns models, the worker and the dialogs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPlainTextEdit, QProgressBar, QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget)

from .colours import CMAPS
from .state import LABEL_LAYERS, LABEL_MODES, MODES, OVERLAYS, ViewerState
from .window_level import QtWindowLevel

__all__ = ["QtControls", "MODE_TITLES", "OVERLAY_TITLES"]

#: Text of each display mode in the mode combo box.
MODE_TITLES = {"side_by_side": "fixed | moving | moved", "red_cyan": "red-cyan (fixed red, moved cyan)",
               "blend": "alpha blend", "checkerboard": "checkerboard", "difference": "difference (fixed - moved)"}
#: Text of each overlay in the overlay combo box.
OVERLAY_TITLES = {"none": "none", "grid": "warped grid", "displacement": "|u| heatmap",
                  "jacobian": "Jacobian (folds green)"}

#: Text of each label-layer choice.
LAYER_TITLES = {"both": "fixed + moved (dotted)", "fixed": "fixed only", "moved": "moved only"}

_NOTICE_STYLE = "QLabel { background: #fff3c4; color: #3a2a00; border: 1px solid #d9b64a; padding: 4px; }"


class QtControls(QWidget):
    """Model choice, Register/Cancel with progress, display settings.

    Parameters
    ----------
    state : ViewerState
        Display widgets write ``state.set_display`` and the backend combo ``state.backend``.
    parent : QWidget, optional

    Signals
    -------
    register_requested()
        Register pressed.
    cancel_requested()
        Cancel pressed.
    open_model_requested()
        "Open model..." pressed.
    model_chosen(str)
        Another model picked in the combo box (its path).
    error(str, str)
        A display setting was refused: (title, message) for a dialog.
    """

    register_requested = Signal()
    cancel_requested = Signal()
    open_model_requested = Signal()
    model_chosen = Signal(str)
    error = Signal(str, str)

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        lay = QVBoxLayout(self)

        self.notice_label = QLabel("")
        self.notice_label.setWordWrap(True)
        self.notice_label.setStyleSheet(_NOTICE_STYLE)
        self.notice_label.setVisible(False)
        lay.addWidget(self.notice_label)
        lay.addWidget(self._build_model_box())
        lay.addWidget(self._build_register_box())
        lay.addWidget(self._build_display_box())
        lay.addStretch(1)
        self.note_label = QLabel("")
        self.note_label.setWordWrap(True)
        lay.addWidget(self.note_label)

    # -- construction --------------------------------------------------------------------------
    def _build_model_box(self) -> QGroupBox:
        from fnoreg_export.runtime import BACKENDS

        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model_label = QLabel("no model")
        self.model_label.setWordWrap(True)
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("bundled models (assets/models or $FNOREG_MODELS) and models you opened")
        self.model_combo.activated.connect(self._on_model_combo_change)
        self.choose_model_btn = QPushButton("Open model...")
        self.choose_model_btn.clicked.connect(self.open_model_requested)
        mrow = QHBoxLayout()
        mrow.addWidget(self.model_combo, 1)
        mrow.addWidget(self.choose_model_btn)
        self.backend_combo = QComboBox()
        self.backend_combo.addItems(list(BACKENDS))
        self.backend_combo.currentTextChanged.connect(self._on_backend_change)
        self.card_text = QPlainTextEdit()
        self.card_text.setReadOnly(True)
        self.card_text.setMaximumHeight(120)
        form.addRow(mrow)
        form.addRow(self.model_label)
        form.addRow("backend", self.backend_combo)
        form.addRow(self.card_text)
        return box

    def _build_register_box(self) -> QGroupBox:
        box = QGroupBox("Register")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.register_btn = QPushButton("Register")
        self.register_btn.clicked.connect(self.register_requested)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel_requested)
        self.cancel_btn.setEnabled(False)
        row.addWidget(self.register_btn)
        row.addWidget(self.cancel_btn)
        v.addLayout(row)
        stages = QFormLayout()
        self.affine_combo = QComboBox()
        self.affine_combo.addItems(["auto", "rigid", "none"])
        self.affine_combo.setToolTip("affine pre-alignment before the network (SimpleITK); none: the network alone")
        self.affine_combo.currentTextChanged.connect(self._on_affine_change)
        self.refine_spin = QSpinBox()
        self.refine_spin.setRange(0, 1000)
        self.refine_spin.setValue(self.state.refine_iterations)
        self.refine_spin.setToolTip("instance refinement iterations after the network (coarse level; 0: off)")
        self.refine_spin.valueChanged.connect(self._on_refine_change)
        stages.addRow("affine", self.affine_combo)
        stages.addRow("refine iterations", self.refine_spin)
        v.addLayout(stages)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress_label = QLabel("")
        v.addWidget(self.progress)
        v.addWidget(self.progress_label)
        return box

    def _build_display_box(self) -> QGroupBox:
        box = QGroupBox("Display")
        form = QFormLayout(box)
        d = self.state.display
        self.mode_combo = QComboBox()
        for m in MODES:
            self.mode_combo.addItem(MODE_TITLES[m], m)
        self.mode_combo.currentIndexChanged.connect(self._on_mode_change)
        self.overlay_combo = QComboBox()
        for o in OVERLAYS:
            self.overlay_combo.addItem(OVERLAY_TITLES[o], o)
        self.overlay_combo.currentIndexChanged.connect(self._on_overlay_change)
        self.labels_combo = QComboBox()
        self.labels_combo.addItems(list(LABEL_MODES))
        self.labels_combo.currentTextChanged.connect(self._on_label_mode_change)
        self.layers_combo = QComboBox()
        for k in LABEL_LAYERS:
            self.layers_combo.addItem(LAYER_TITLES[k], k)
        self.layers_combo.setToolTip("compare modes: fixed labels as chosen, moved labels as dotted contours")
        self.layers_combo.currentIndexChanged.connect(self._on_label_layers_change)
        self.blend_slider = self._slider(d.blend, self._on_blend_change,
                                         "blend mode: 0 = fixed only, 100 = moved only")
        self.overlay_slider = self._slider(d.overlay_opacity, self._on_overlay_opacity_change,
                                           "opacity of the |u| / Jacobian heatmap and the warped grid")
        self.label_slider = self._slider(d.label_opacity, self._on_label_opacity_change,
                                         "opacity of filled labels (contours are opaque)")
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(list(CMAPS))
        self.cmap_combo.setToolTip("colour map of the images (side by side, blend, checkerboard, flicker)")
        self.cmap_combo.currentTextChanged.connect(self._on_cmap_change)
        self.orientation_combo = QComboBox()
        self.orientation_combo.addItem("radiological (R on the left)", True)
        self.orientation_combo.addItem("neurological (L on the left)", False)
        self.orientation_combo.currentIndexChanged.connect(self._on_orientation_change)
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(2, 256)
        self.tile_spin.setValue(d.checker_tile)
        self.tile_spin.valueChanged.connect(self._on_checker_tile_change)
        self.grid_spin = QSpinBox()
        self.grid_spin.setRange(2, 128)
        self.grid_spin.setValue(d.grid_spacing)
        self.grid_spin.valueChanged.connect(self._on_grid_spacing_change)
        self.grid_on_heatmap = QCheckBox("grid over the heatmaps too")
        self.grid_on_heatmap.toggled.connect(self._on_grid_on_heatmap_change)
        self.window = QtWindowLevel(self.state)
        self.auto_window, self.win_lo, self.win_hi = self.window.auto_window, self.window.win_lo, self.window.win_hi
        form.addRow("mode", self.mode_combo)
        form.addRow("overlay", self.overlay_combo)
        lrow = QHBoxLayout()
        lrow.addWidget(self.labels_combo)
        lrow.addWidget(self.layers_combo, 1)
        form.addRow("labels", lrow)
        form.addRow("blend", self.blend_slider)
        form.addRow("overlay opacity", self.overlay_slider)
        form.addRow("label opacity", self.label_slider)
        form.addRow("colour map", self.cmap_combo)
        form.addRow("orientation", self.orientation_combo)
        trow = QHBoxLayout()
        trow.addWidget(self.tile_spin)
        trow.addWidget(QLabel("grid"))
        trow.addWidget(self.grid_spin)
        form.addRow("checker tile", trow)
        form.addRow(self.grid_on_heatmap)
        form.addRow(self.window)
        return box

    @staticmethod
    def _slider(value: float, slot, tip: str) -> QSlider:
        s = QSlider(Qt.Orientation.Horizontal)
        s.setRange(0, 100)
        s.setValue(int(round(value * 100)))
        s.setToolTip(tip)
        s.valueChanged.connect(slot)
        return s

    # -- widgets -> state ----------------------------------------------------------------------
    def _set(self, **kw) -> None:
        try:
            self.state.set_display(**kw)
        except Exception as exc:  # any bad input -> dialog, never a crash
            self.error.emit("Display", str(exc) or type(exc).__name__)

    def _on_mode_change(self, index: int) -> None:
        self._set(mode=self.mode_combo.itemData(index), flicker="off")

    def _on_overlay_change(self, index: int) -> None:
        self._set(overlay=self.overlay_combo.itemData(index))

    def _on_label_mode_change(self, text: str) -> None:
        self._set(label_mode=text)

    def _on_label_layers_change(self, index: int) -> None:
        self._set(label_layers=self.layers_combo.itemData(index))

    def _on_blend_change(self, value: int) -> None:
        self._set(blend=value / 100.0)

    def _on_overlay_opacity_change(self, value: int) -> None:
        self._set(overlay_opacity=value / 100.0)

    def _on_label_opacity_change(self, value: int) -> None:
        self._set(label_opacity=value / 100.0)

    def _on_cmap_change(self, text: str) -> None:
        self._set(cmap=text)

    def _on_orientation_change(self, index: int) -> None:
        self.state.set_radiological(bool(self.orientation_combo.itemData(index)))

    def _on_checker_tile_change(self, value: int) -> None:
        self._set(checker_tile=value)

    def _on_grid_spacing_change(self, value: int) -> None:
        self._set(grid_spacing=value)

    def _on_grid_on_heatmap_change(self, checked: bool) -> None:
        self._set(grid_on_heatmap=checked)

    def _on_affine_change(self, mode: str) -> None:
        self.state.set_pipeline(affine_mode=mode)

    def _on_refine_change(self, iterations: int) -> None:
        self.state.set_pipeline(refine_iterations=int(iterations))

    def _on_backend_change(self, backend: str) -> None:
        self.state.backend = backend

    def _on_model_combo_change(self, index: int) -> None:
        path = self.model_combo.itemData(index)
        if path and (self.state.model_path is None or Path(path).resolve() != self.state.model_path.resolve()):
            self.model_chosen.emit(path)

    # -- state -> widgets ----------------------------------------------------------------------
    def sync_display(self) -> None:
        """Widgets follow the state when it is changed from elsewhere (scripts, tests, keys, the mouse)."""
        d = self.state.display
        pct = lambda v: int(round(v * 100))  # noqa: E731
        for w, setter in ((self.mode_combo, lambda: self.mode_combo.setCurrentIndex(MODES.index(d.mode))),
                          (self.overlay_combo, lambda: self.overlay_combo.setCurrentIndex(OVERLAYS.index(d.overlay))),
                          (self.labels_combo, lambda: self.labels_combo.setCurrentText(d.label_mode)),
                          (self.layers_combo, lambda: self.layers_combo.setCurrentIndex(LABEL_LAYERS.index(d.label_layers))),
                          (self.blend_slider, lambda: self.blend_slider.setValue(pct(d.blend))),
                          (self.overlay_slider, lambda: self.overlay_slider.setValue(pct(d.overlay_opacity))),
                          (self.label_slider, lambda: self.label_slider.setValue(pct(d.label_opacity))),
                          (self.cmap_combo, lambda: self.cmap_combo.setCurrentText(d.cmap)),
                          (self.orientation_combo,
                           lambda: self.orientation_combo.setCurrentIndex(0 if self.state.view.radiological else 1)),
                          (self.tile_spin, lambda: self.tile_spin.setValue(d.checker_tile)),
                          (self.grid_spin, lambda: self.grid_spin.setValue(d.grid_spacing)),
                          (self.grid_on_heatmap, lambda: self.grid_on_heatmap.setChecked(d.grid_on_heatmap))):
            w.blockSignals(True)
            setter()
            w.blockSignals(False)
        self.window.sync()

    def select_model(self, bundled: dict[str, Path]) -> None:
        """Fill the model combo box: the bundled models, then the current model if it is not one of them.

        Parameters
        ----------
        bundled : dict of str to Path
            Name -> model file of the bundled models.
        """
        combo, current = self.model_combo, self.state.model_path
        combo.blockSignals(True)
        combo.clear()
        bundled_paths = {str(p.resolve()) for p in bundled.values()}
        for name, path in bundled.items():
            combo.addItem(f"{name} (bundled)", str(path))
        if current is not None and str(current.resolve()) not in bundled_paths:
            combo.addItem(current.name, str(current))
        if current is None:
            combo.insertItem(0, "(no model)", None)
            combo.setCurrentIndex(0)
        else:
            for i in range(combo.count()):
                if combo.itemData(i) and Path(combo.itemData(i)).resolve() == current.resolve():
                    combo.setCurrentIndex(i)
        combo.blockSignals(False)

    def refresh(self, busy: bool, bundled: dict[str, Path]) -> None:
        """Model text and card, model and backend combos, button states and the window of the fixed image.

        Parameters
        ----------
        busy : bool
            A registration is running (Register off, Cancel on).
        bundled : dict of str to Path
            The bundled models (see :meth:`select_model`).
        """
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
        self.select_model(bundled)
        if self.backend_combo.currentText() != st.backend:
            self.backend_combo.setCurrentText(st.backend)
        self.register_btn.setEnabled(not busy and st.fixed is not None and st.moving is not None
                                     and st.model_path is not None)
        self.cancel_btn.setEnabled(busy)
        self.window.sync()

    def show_notice(self, message: str) -> None:
        """Show ``message`` in the banner above the boxes; "" hides it."""
        self.notice_label.setText(message)
        self.notice_label.setVisible(bool(message))
