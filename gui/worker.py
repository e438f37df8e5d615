"""Registration off the UI thread: a QThread running :func:`fnoreg_gui.pipeline.register_pair`.

Cancel is checked between stages (model load, network + warp, label warp), and :meth:`RegisterWorker.interrupt`
aborts an onnxruntime network call in flight (``RunOptions.terminate`` through
:meth:`fnoreg_export.runtime.Registrator.interrupt`). A TensorRT call runs to completion and its result
is dropped. The UI is free the whole time.
"""

from __future__ import annotations

import threading
import traceback

from PySide6.QtCore import QThread, Signal

from fnoreg_core.io import ImageError
from fnoreg_export.model_card import ModelCardError
from fnoreg_export.runtime import BackendError

from .pipeline import Cancelled, ModelCache, register_pair

__all__ = ["RegisterWorker", "ERROR_TITLES", "error_dialog"]


class RegisterWorker(QThread):
    """Registers one pair in a thread.

    Emits ``progress(int, str)``, then exactly one of ``finished_ok(result, moved_labels, seconds)``,
    ``failed(title, message)`` (see :func:`error_dialog`) or ``cancelled()``.

    Parameters
    ----------
    fixed, moving : fnoreg_gui.state.Volume
        The pair.
    model_path : str or Path
        Exported model (.onnx or .engine).
    backend : str
        One of ``fnoreg_export.runtime.BACKENDS``.
    moving_labels : fnoreg_gui.state.Volume, optional
        Warped with the result (and after each earlier stage: :attr:`stage_labels`) when given.
    pipeline : fnoreg_export.runtime.PipelineOptions, optional
        The stages (affine, refinement, working grid); default the runtime's.
    cache : fnoreg_gui.pipeline.ModelCache, optional
        Keeps the loaded model between registrations (a new one when omitted).
    parent : QObject, optional
    """

    progress = Signal(int, str)
    finished_ok = Signal(object, object, float)
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, fixed, moving, model_path, backend: str = "auto", moving_labels=None,
                 cache: ModelCache | None = None, parent=None, pipeline=None):
        super().__init__(parent)
        self._args = (fixed, moving, model_path, backend)
        self._pipeline = pipeline
        self.stage_labels: dict = {}  # moving labels after each earlier stage, filled by run()
        self._labels = moving_labels
        self._cache = cache if cache is not None else ModelCache()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the worker to stop: between stages, and now if the network is running (see :meth:`interrupt`)."""
        self._cancel.set()
        self.interrupt()

    def interrupt(self) -> bool:
        """Abort the network call in flight (True if one was aborted). Safe to call from the GUI thread
        repeatedly: a call that has not started yet is caught by the next stage check."""
        reg = self._cache.registrator
        try:
            return bool(reg.interrupt()) if reg is not None and hasattr(reg, "interrupt") else False
        except Exception:  # never let a cancel crash the app
            return False

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:  # noqa: D401 - QThread API
        fixed, moving, model_path, backend = self._args
        try:
            result, moved_labels, seconds = register_pair(
                fixed, moving, model_path, backend, moving_labels=self._labels, cache=self._cache,
                progress=lambda p, m: self.progress.emit(int(p), str(m)), cancelled=self._cancel.is_set,
                pipeline=self._pipeline, stage_labels=self.stage_labels)
        except Cancelled:
            self.cancelled.emit()
            return
        except Exception as exc:  # every failure becomes a dialog, never a crash
            if self._cancel.is_set():
                self.cancelled.emit()
                return
            self.failed.emit(*error_dialog(exc))
            return
        if self._cancel.is_set():
            self.cancelled.emit()
            return
        self.finished_ok.emit(result, moved_labels, seconds)


#: Our errors whose message already says what to do, and the title of their dialog (first match wins).
ERROR_TITLES: tuple[tuple[type[BaseException], str], ...] = (
    (ModelCardError, "Cannot use this model"),
    (BackendError, "Backend not available"),
    (ImageError, "Cannot register these images"),
)


def error_dialog(exc: BaseException) -> tuple[str, str]:
    """Title and message of the dialog shown for a failed registration.

    Dispatches on the exception's class (``isinstance``, so subclasses count, and another library's
    class that only shares a name does not).

    Parameters
    ----------
    exc : BaseException
        What :func:`fnoreg_gui.pipeline.register_pair` raised.

    Returns
    -------
    title : str
        From :data:`ERROR_TITLES`, else ``"Registration failed"``.
    message : str
        ``str(exc)`` for our errors and ``ValueError`` (their messages are written for the user); for
        anything else the class name, the message and the last frames of the traceback.
    """
    title = next((t for cls, t in ERROR_TITLES if isinstance(exc, cls)), "Registration failed")
    if isinstance(exc, (ValueError, *(cls for cls, _ in ERROR_TITLES))):
        return title, str(exc)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=3))
    return title, f"{type(exc).__name__}: {exc}\n\n{tb}"
