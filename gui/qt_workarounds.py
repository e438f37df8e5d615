"""Work-arounds for bugs of the Qt bindings, each detected at run time and applied only where present.

PySide6 6.12.0 on CPython 3.11: calls return ``None``, ``True`` and ``False`` without taking a
reference (as if they were immortal, which they are only from Python 3.12 on). Every void call
(``setText``, ``move``, ``setVisible``...) drops one reference to ``None``, every ``emit()`` one to
``True``; after a few thousand calls CPython frees the singleton and aborts ("Fatal Python error:
none_dealloc / bool_dealloc") - in a redraw or at exit. :func:`protect_singletons` checks whether
the binding leaks, and if it does, gives the three singletons a reference count no session can
exhaust (what Python 3.12 does for them anyway). Nothing happens with a sound binding or on 3.12+.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["binding_leaks", "protect_singletons", "protect_bools"]

_BIG = 1 << 40
_applied = False


def binding_leaks(n: int = 16) -> bool:
    """True when PySide6 calls drop references to ``None`` or ``True`` (PySide6 6.12.0 on CPython 3.11)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    none0, true0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(n):
        probe.setObjectName("probe")
        probe.ping.emit()
    return none0 - sys.getrefcount(None) >= n // 2 or true0 - sys.getrefcount(True) >= n // 2


def protect_singletons() -> bool:
    """Apply the work-around when needed (CPython < 3.12 and a leaking binding); whether it is applied."""
    global _applied
    if _applied:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12) or not binding_leaks():
        return False
    for obj in (None, True, False):
        refcnt = ctypes.c_ssize_t.from_address(id(obj))   # ob_refcnt: the first field of a CPython object
        if refcnt.value < _BIG:
            refcnt.value += _BIG
    _applied = True
    return True


#: Former name.
protect_bools = protect_singletons
