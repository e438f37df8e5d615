"""Registration off the UI thread: a QThread running :func:`fnoreg_gui.pipeline.register_pair`.

Cancel is checked between stages (model load, network + warp, label warp), and :meth:`RegisterWorker.interrupt`
aborts an onnxruntime network call in flight (``RunOptions.terminate`` through
:meth:`fnoreg_export.runtime.Registrator.interrupt`). A TensorRT call runs to completion and its result
is dropped. The UI is free the whole time.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any

from PySide6.QtCore import QThread, Signal

from .pipeline import Cancelled, ModelCache, register_pair

__all__ = ["RegisterWorker"]


class RegisterWorker(QThread):
    """Emits ``progress(int, str)``, then exactly one of ``finished_ok(result, moved_labels, seconds)``,
    ``failed(title, message)`` or ``cancelled()``."""

    progress = Signal(int, str)
    finished_ok = Signal(object, object, float)
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, fixed, moving, model_path, backend: str = "auto", moving_labels=None,
                 cache: ModelCache | None = None, parent=None):
        super().__init__(parent)
        self._args = (fixed, moving, model_path, backend)
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
                progress=lambda p, m: self.progress.emit(int(p), str(m)), cancelled=self._cancel.is_set)
        except Cancelled:
            self.cancelled.emit()
            return
        except Exception as exc:  # every failure becomes a dialog, never a crash
            if self._cancel.is_set():
                self.cancelled.emit()
                return
            self.failed.emit(_title(exc), _message(exc))
            return
        if self._cancel.is_set():
            self.cancelled.emit()
            return
        self.finished_ok.emit(result, moved_labels, seconds)


def _title(exc: BaseException) -> str:
    name = type(exc).__name__
    return {"ModelCardError": "Cannot use this model", "BackendError": "Backend not available",
            "ImageError": "Cannot register these images"}.get(name, "Registration failed")


def _message(exc: BaseException) -> str:
    name = type(exc).__name__
    if name in ("ModelCardError", "BackendError", "ImageError", "ValueError"):
        return str(exc)
    return f"{name}: {exc}\n\n{traceback.format_exc(limit=3)}"
