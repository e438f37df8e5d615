"""The main window: the views, the info panel and the controls together, the menus, the dialogs.

It owns what outlives one widget: the model cache, the registration worker, recent files and the
bundled models; widgets only draw the :class:`fnoreg_gui.state.ViewerState` and call its setters.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QGridLayout, QMainWindow, QMessageBox, QSplitter, QWidget

from . import render
from .controls import QtControls
from .info_panel import QtInfoPanel
from .menus import build_menus, fill_bundled_menu, fill_recent_menu
from .pipeline import ModelCache, check_model_fits, save_outputs
from .state import ViewerState
from .views import VIEW_NAMES, QtSliceView

__all__ = ["MainWindow", "DEMO_DIR", "MODEL_SUFFIXES"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "assets" / "demo"
MODEL_SUFFIXES = (".onnx", ".engine")
IMAGE_FILTER = "Images (*.nii *.nii.gz *.mgz *.mgh *.png *.jpg *.jpeg *.tif *.tiff *.bmp);;All files (*)"
MODEL_FILTER = "FNOReg models (*.onnx *.engine);;All files (*)"


class MainWindow(QMainWindow):
    """The app window: views and info panel left, controls right, File and Model menus.

    Parameters
    ----------
    state : ViewerState, optional
        A new empty one by default.
    settings : QSettings, optional
        Recent files and the last folder (default: the user's ``FNOReg/fnoreg-gui`` settings).

    Attributes
    ----------
    views : list of QtSliceView
        One per view axis of the current images.
    info : QtInfoPanel
    controls : QtControls
    worker : RegisterWorker or None
        The registration running now.
    errors : list of (str, str)
        (title, message) of every error dialog shown (tests and scripts read it).
    notices : list of str
        Every non-blocking notice shown.
    """

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
        self.views: list[QtSliceView] = []
        self._views_key = None
        self.bundled: dict[str, Path] = {}
        self.info = QtInfoPanel()
        self.controls = QtControls(self.state)
        self.controls.register_requested.connect(self.start_registration)
        self.controls.cancel_requested.connect(self.cancel_registration)
        self.controls.open_model_requested.connect(self.choose_model)
        self.controls.model_chosen.connect(self.set_model)
        self.controls.error.connect(self.show_error)

        self.view_area = QWidget()
        self.view_grid = QGridLayout(self.view_area)
        self.view_grid.setContentsMargins(0, 0, 0, 0)
        splitter = QSplitter()
        splitter.addWidget(self.view_area)
        splitter.addWidget(self.controls)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)
        self.recent_menu, self.bundled_menu = build_menus(self)
        self._refresh_recent()
        self.state.subscribe(self._on_state_change)
        self._rebuild_views()
        self._refresh_models()
        self._refresh_controls()
        self.resize(1500, 920)

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
        self.controls.show_notice(message)

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
    def _on_state_change(self, event: str) -> None:
        if event in ("images",):
            self._rebuild_views()
            self._auto_model()
        if event in ("images", "labels", "result", "model"):
            self._refresh_controls()
        if event == "display":
            self.controls.sync_display()
        self.redraw()

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
        self.views = [QtSliceView(self.state, a) for a in axes]
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
        """Redraw every view, the frame note and the legend."""
        for v in self.views:
            try:
                v.redraw()
            except Exception as exc:  # a rendering bug must not kill the app
                self.show_error("Display", f"cannot draw the {VIEW_NAMES[v.axis]} view: {exc}")
                return
        self.controls.note_label.setText(render.frame_note(self.state))
        self.info.refresh_legend(self.state)

    def _refresh_controls(self) -> None:
        st = self.state
        self.controls.refresh(self.worker is not None, self.bundled)
        self.info.refresh(st, self.last_seconds if st.result is not None else None)

    # -- opening -------------------------------------------------------------------------------
    def open_pair(self, fixed, moving, fixed_labels=None, moving_labels=None) -> bool:
        """Open a pair (and label maps); False after showing a dialog if any failed."""
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
        """Open a bundled demo pair with its labels: ``"2d"``, ``"3d_2mm"`` (default) or ``"3d_1mm"``."""
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
        """Open one file as ``"fixed"``, ``"moving"``, ``"fixed_labels"`` or ``"moving_labels"``."""
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

    # drag and drop (see open_dropped)
    def dragEnterEvent(self, ev):  # noqa: N802
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # noqa: N802
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        self.open_dropped(paths)

    def open_dropped(self, paths) -> None:
        """One model file -> model; two images -> fixed, moving; one image -> fixed, then moving."""
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
        fill_recent_menu(self, [str(p) for p in (self.settings.value("recent", []) or [])])

    # -- models --------------------------------------------------------------------------------
    def set_model(self, path) -> bool:
        """Use the exported model at ``path`` (.onnx or .engine with its card); False after a dialog."""
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
            self.controls.select_model(self.bundled)
            return False
        self.state.set_model(path, card)
        if str(path.resolve()) not in {str(p.resolve()) for p in self.bundled.values()}:
            self._add_recent(path)
        notice = self.controls.notice_label
        if notice.isVisible() and "model" in notice.text():
            self.show_notice("")
        return True

    def choose_model(self) -> None:
        """Ask for a model file and use it."""
        path, _ = QFileDialog.getOpenFileName(self, "Open model", self._last_dir(), MODEL_FILTER)
        if path:
            self.set_model(path)

    def _refresh_models(self) -> None:
        """Bundled models (``fnoreg_export.bundled``) into the combo box and the Model menu."""
        from fnoreg_export.bundled import bundled_models

        self.bundled = bundled_models()
        fill_bundled_menu(self, self.bundled)
        self.controls.select_model(self.bundled)

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
        """Check the inputs (a dialog says what is missing), then register in a :class:`RegisterWorker`."""
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
        self.controls.progress.setRange(0, 100)
        self.controls.progress.setValue(0)
        self.controls.progress_label.setText("starting...")
        self.worker.start()
        self._refresh_controls()

    def cancel_registration(self) -> None:
        """Cancel the running registration; its result, if it still comes, is dropped."""
        if self.worker is not None:
            self.worker.cancel()
            self._interrupt_timer.start()   # a network call that starts after this is aborted too
            self.controls.progress_label.setText("cancelling...")

    def _interrupt_worker(self) -> None:
        if self.worker is None:
            self._interrupt_timer.stop()
        else:
            self.worker.interrupt()

    def _on_progress(self, pct: int, msg: str) -> None:
        if self.worker is not None and self.worker.is_cancelled():
            return
        self.controls.progress.setValue(pct)
        self.controls.progress_label.setText(f"{msg} ({time.perf_counter() - self._t_start:.1f} s)")

    def _on_done(self, result, moved_labels, seconds: float) -> None:
        self.last_seconds = seconds
        self.controls.progress_label.setText(f"registered in {seconds:.2f} s")
        self._guard("Registration result", self.state.set_result, result, moved_labels)

    def _on_failed(self, title: str, message: str) -> None:
        self.controls.progress_label.setText("failed")
        self.show_error(title, message)

    def _on_cancelled(self) -> None:
        self.controls.progress.setValue(0)
        self.controls.progress_label.setText(f"cancelled after {time.perf_counter() - self._t_start:.2f} s")

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
        """Write the outputs (:func:`fnoreg_gui.pipeline.save_outputs`) to ``folder``; [] after a dialog."""
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
        """Save the views and the info panel as a PNG; False after a dialog."""
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
