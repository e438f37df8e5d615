"""The main window: the view area, the controls, the menus, the dialogs.

It owns what outlives one widget: the model cache, the registration worker, recent files and the
bundled models; widgets only draw the :class:`fnoreg_gui.state.ViewerState` and call its setters.
Opening and saving: :class:`fnoreg_gui.window_files.FilesMixin`; the view layout:
:class:`fnoreg_gui.view_grid.QtViewGrid`; keys: :data:`fnoreg_gui.shortcuts.SHORTCUTS`.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox, QSplitter

from . import render
from .controls import QtControls
from .info_panel import QtInfoPanel
from .menus import build_menus, fill_bundled_menu
from .pipeline import ModelCache, check_model_fits
from .probe import readout_rows
from .qt_workarounds import protect_singletons
from .shortcuts import help_text
from .state import ViewerState
from .view_grid import QtViewGrid
from .views import VIEW_NAMES, QtSliceView
from .window_files import DEMO_DIR, MODEL_SUFFIXES, FilesMixin

__all__ = ["MainWindow", "DEMO_DIR", "MODEL_SUFFIXES", "fit_to_screen"]


#: The window's size when it fits the screen.
DEFAULT_SIZE = (1500, 920)
MODEL_FILTER = "FNOReg models (*.onnx *.engine);;All files (*)"


def fit_to_screen(size: tuple[int, int], available: tuple[int, int], margin: float = 0.92) -> tuple[int, int]:
    """``size`` shrunk to ``margin`` of the screen's available (width, height), e.g. at 1.5x UI scaling."""
    return (min(int(size[0]), int(available[0] * margin)), min(int(size[1]), int(available[1] * margin)))


class MainWindow(FilesMixin, QMainWindow):
    """The app window: views and info panel left, controls right; File, Model, View and Help menus.

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
    view_area : QtViewGrid
        The views and the info panel, laid out as ``state.view`` says.
    shortcut_actions : dict of str to QAction
        One menu action per :data:`fnoreg_gui.shortcuts.SHORTCUTS` id.
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
        protect_singletons()                # PySide6 6.12.0 on Python 3.11 leaks references to None/True
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
        self._elapsed_timer = QTimer(self)
        self._elapsed_timer.setInterval(250)
        self._elapsed_timer.timeout.connect(self._tick_progress)
        self._progress_msg = ""
        self.bundled: dict[str, Path] = {}
        self.shortcut_actions: dict = {}
        self.info = QtInfoPanel(self.state)
        self.controls = QtControls(self.state)
        self.controls.register_requested.connect(self.start_registration)
        self.controls.cancel_requested.connect(self.cancel_registration)
        self.controls.open_model_requested.connect(self.choose_model)
        self.controls.model_chosen.connect(self.set_model)
        self.controls.error.connect(self.show_error)

        self.view_area = QtViewGrid(self.state, self.info)
        self.view_grid = self.view_area.grid
        self.probe_label = QLabel("")
        self.statusBar().addPermanentWidget(self.probe_label)
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
        screen = QGuiApplication.primaryScreen()
        avail = screen.availableGeometry().size() if screen is not None else QSize(*DEFAULT_SIZE)
        self.resize(*fit_to_screen(DEFAULT_SIZE, (avail.width(), avail.height())))

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
    @property
    def views(self) -> list[QtSliceView]:
        return self.view_area.views

    def _on_state_change(self, event: str) -> None:
        if event == "cursor":
            self._refresh_cursor()
            return
        if event == "view":
            for v in self.views:
                v.apply_view()
            return
        if event == "layout":
            self.view_area.arrange()
            return
        if event == "images":
            self._rebuild_views()
            self._auto_model()
            self._update_title()
            if self.worker is None:          # a new pair: no stale "cancelled after ..." / "registered in ..."
                self.controls.progress.setValue(0)
                self.controls.progress_label.setText("")
        if event in ("images", "labels", "result", "model"):
            self._refresh_controls()
        if event == "display":
            self.controls.sync_display()
        if event in ("landmarks", "slice", "result", "images") and self.info.landmarks is not None:
            self.info.landmarks.refresh()
        self.redraw()
        self._refresh_cursor()

    def _rebuild_views(self) -> None:
        self.view_area.rebuild()

    def _update_title(self) -> None:
        """Window title: the fixed and moving files (folder/name), as ITK-SNAP shows its main image."""
        st = self.state
        name = lambda v: f"{v.path.parent.name}/{v.path.name}" if v is not None and v.path else None  # noqa: E731
        parts = [p for p in (name(st.fixed), name(st.moving)) if p]
        self.setWindowTitle(f"FNOReg — fixed {parts[0]} ← moving {parts[1]}" if len(parts) == 2 else
                            f"FNOReg — {parts[0]}" if parts else "FNOReg")

    def _refresh_cursor(self) -> None:
        """Cursor inspector, the status bar's one-line probe, the active view's title."""
        if self.info.inspector is not None:
            self.info.inspector.refresh()
        rows = dict(readout_rows(self.state))
        self.probe_label.setText("  ".join(f"{k} {rows[k]}" for k in ("voxel", "fixed", "moved", "|u| mm",
                                                                          "J (Jacobian)") if k in rows))
        self.view_area.mark_active()

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

    # -- keys and help -------------------------------------------------------------------------
    def shortcut_slots(self) -> dict:
        """What each :data:`fnoreg_gui.shortcuts.SHORTCUTS` id does."""
        st = self.state
        return {
            "open_fixed": lambda: self.open_dialog("fixed"), "save_outputs": self.save_dialog,
            "save_screenshot": self.screenshot_dialog, "quit": self.close, "register": self.start_registration,
            "next_slice": lambda: st.step_slice(1), "prev_slice": lambda: st.step_slice(-1),
            "next_slice_fast": lambda: st.step_slice(5), "prev_slice_fast": lambda: st.step_slice(-5),
            "zoom_in": lambda: st.zoom_by(1.25), "zoom_out": lambda: st.zoom_by(0.8), "fit": st.fit_views,
            "flicker": lambda: self._guard("Flicker", st.toggle_flicker),
            "flicker_off": lambda: self._guard("Flicker", st.set_display, flicker="off"),
            "maximise": lambda: st.toggle_maximised(), "layout_2x2": lambda: st.set_layout("2x2"),
            "layout_row": lambda: st.set_layout("row"), "layout_column": lambda: st.set_layout("column"),
            "orientation": lambda: st.set_radiological(not st.view.radiological),
            "add_landmark": lambda: self._guard("Landmark", st.add_landmark) and self._show_landmarks(),
            "remove_landmark": lambda: st.remove_landmark(), "help": self.show_help,
        }

    def _show_landmarks(self) -> None:
        if self.info.landmarks is not None:
            self.info.tabs.setCurrentWidget(self.info.landmarks)

    def show_help(self) -> QMessageBox:
        """Help > Keyboard and mouse: every shortcut and mouse gesture (non-blocking)."""
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard and mouse", help_text(), QMessageBox.StandardButton.Ok,
                          self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.last_help = box
        box.open()
        return box

    def show_about(self) -> None:
        from . import __version__

        QMessageBox.about(self, "About fnoreg-gui", f"fnoreg-gui {__version__}: register an image pair with an "
                          "exported FNOReg model and inspect the result.")

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
            self._add_recent(("model", path))
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
        self.worker = RegisterWorker(st.fixed, st.moving, st.model_path, st.backend, st.moving_labels, self.cache,
                                     pipeline=st.pipeline_options())
        self.worker.progress.connect(self._on_progress)
        self.worker.finished_ok.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.finished.connect(self._on_thread_finished)
        self._t_start = time.perf_counter()
        self.controls.progress.setRange(0, 100)
        self.controls.progress.setValue(0)
        self.controls.progress_label.setText("starting...")
        self._progress_msg = "starting"
        self._elapsed_timer.start()
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
        self._progress_msg = msg
        self._tick_progress()

    def _tick_progress(self) -> None:
        """The elapsed time keeps counting while a stage runs (the runtime reports between stages only)."""
        if self.worker is None or self.worker.is_cancelled():
            self._elapsed_timer.stop()
            return
        self.controls.progress_label.setText(f"{self._progress_msg} ({time.perf_counter() - self._t_start:.1f} s)")

    def _on_done(self, result, moved_labels, seconds: float) -> None:
        self.last_seconds = seconds
        self.controls.progress_label.setText(f"registered in {seconds:.2f} s")
        stage_labels = getattr(self.worker, "stage_labels", None) if self.worker is not None else None
        self._guard("Registration result", self.state.set_result, result, moved_labels, stage_labels)

    def _on_failed(self, title: str, message: str) -> None:
        self.controls.progress_label.setText("failed")
        self.show_error(title, message)

    def _on_cancelled(self) -> None:
        self.controls.progress.setValue(0)
        self.controls.progress_label.setText(f"cancelled after {time.perf_counter() - self._t_start:.2f} s")

    def _on_thread_finished(self) -> None:
        w, self.worker = self.worker, None
        self._interrupt_timer.stop()
        self._elapsed_timer.stop()
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

    def closeEvent(self, ev):  # noqa: N802
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(30000)
        super().closeEvent(ev)
