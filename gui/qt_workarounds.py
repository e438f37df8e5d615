"""Work-arounds for bugs of the Qt bindings, each detected at run time and applied only where present.

PySide6 6.12.0: ``SignalInstance.emit()`` returns ``True`` without taking a reference (a borrowed
``Py_True``), so every signal emitted from Python, by pyqtgraph on each pan, zoom and image update
as much as by this app, drops one reference to ``True``. After some hundred emits CPython <= 3.11
frees ``True`` and aborts ("Fatal Python error: bool_dealloc"), usually at exit. Python 3.12+ makes
``True`` immortal, so nothing happens there. :func:`protect_bools` checks whether this binding leaks,
and if it does, gives ``True`` a reference count that no session can exhaust.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["emit_leaks_true", "protect_bools"]

_BIG = 1 << 40
_applied = False


def emit_leaks_true(n: int = 16) -> bool:
    """True when emitting a signal from Python drops references to ``True`` (PySide6 6.12.0)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(n):
        probe.ping.emit()
    return before - sys.getrefcount(True) >= n // 2


def protect_bools() -> bool:
    """Apply the work-around when needed (CPython < 3.12 and a leaking binding); whether it was applied."""
    global _applied
    if _applied:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12) or not emit_leaks_true():
        return False
    refcnt = ctypes.c_ssize_t.from_address(id(True))   # ob_refcnt: the first field of every CPython object
    if refcnt.value < _BIG:
        refcnt.value += _BIG
    _applied = True
    return True
