"""Command-line safety net shared by every fnoreg CLI: numeric options and the exit-code rule.

* Numeric options are parsed by :func:`int_option` / :func:`float_option` (argparse ``type=``), so
  ``--lr nan``, ``--threads 100000`` or ``--seed -1`` are refused with a usage message (exit 2)
  before any work starts.
* :func:`run_cli` runs a CLI body: a documented input error (``ImageError``, ``OutputError``, the
  tool's own error types) prints ``PROG: error: <what to do>`` and returns 2; Ctrl-C returns 130;
  any other exception is an internal error: one line naming it and the log file that holds the full
  traceback (``$FNOREG_LOG_DIR``, else ``~/.cache/fnoreg/logs``, else the temp folder), exit 1.
  No traceback reaches the terminal.

numpy-free and torch-free: the runtime, the GUI and the training CLI import it alike.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["int_option", "float_option", "run_cli", "log_traceback", "max_threads", "check_number",
           "user_errors"]


def max_threads() -> int:
    """The largest thread count the CLIs accept (4x the CPUs, at least 64)."""
    return max(64, 4 * (os.cpu_count() or 1))


def check_number(value, name: str, *, lo=None, hi=None, lo_open: bool = False, integer: bool = False):
    """``value`` as an int/float if finite and within ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``), else
    ``ValueError`` with a message that says what is accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        if integer:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            number = int(value)
        else:
            number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}") from None
    if not integer and not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    rng = (f"{'>' if lo_open else '>='} {lo}" if lo is not None else "") + \
          (" and " if lo is not None and hi is not None else "") + (f"<= {hi}" if hi is not None else "")
    if lo is not None and (number < lo or (lo_open and number == lo)) or hi is not None and number > hi:
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    return number


def _option(name: str, integer: bool, lo, hi, lo_open: bool):
    def parse(text: str):
        try:
            return check_number(text, name, lo=lo() if callable(lo) else lo, hi=hi() if callable(hi) else hi,
                                lo_open=lo_open, integer=integer)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "integer" if integer else "number"
    return parse


def int_option(name: str, lo: int | None = None, hi=None):
    """argparse ``type=``: an integer in ``[lo, hi]`` (``hi`` may be a callable)."""
    return _option(name, True, lo, hi, False)


def float_option(name: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False):
    """argparse ``type=``: a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    return _option(name, False, lo, hi, lo_open)


def log_folder() -> Path:
    for candidate in (os.environ.get("FNOREG_LOG_DIR"), os.path.join(os.path.expanduser("~"), ".cache", "fnoreg",
                                                                     "logs"), tempfile.gettempdir()):
        if not candidate:
            continue
        try:
            Path(candidate).mkdir(parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK):
                return Path(candidate)
        except OSError:
            continue
    return Path(tempfile.gettempdir())


def log_traceback(prog: str, exc: BaseException) -> Path | None:
    """Write ``exc``'s traceback (and the command line) to a new log file; return its path (None if impossible)."""
    try:
        fd, path = tempfile.mkstemp(prefix=f"{prog}-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log",
                                    dir=log_folder())
        with os.fdopen(fd, "w", errors="replace") as fh:
            fh.write(f"{prog} {' '.join(map(str, sys.argv[1:]))}\npython {sys.version.split()[0]}\n\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return Path(path)
    except Exception:  # noqa: BLE001 - the log is a courtesy; never fail on it
        return None


def user_errors() -> tuple[type[BaseException], ...]:
    """The documented input-error types every CLI reports as exit 2 (the tool adds its own)."""
    from .geometry import ImageError
    from .staging import OutputError

    return ImageError, OutputError


def run_cli(prog: str, body: Callable[[], int], errors: Iterable[type[BaseException]] = ()) -> int:
    """Run a CLI body under the exit-code rule (see the module docstring); returns the exit code."""
    known = tuple(errors) + user_errors()
    try:
        return int(body() or 0)
    except SystemExit as exc:  # argparse inside the body
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; no output written", file=sys.stderr)
        return 130
    except known as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prog}: error: out of memory; use smaller images (or --res / --work-res) or a larger machine",
              file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno in (28, 122):  # ENOSPC, EDQUOT
            print(f"{prog}: error: no space left on the device ({exc.filename or ''}); free some space and "
                  "run again. Nothing was written", file=sys.stderr)
            return 2
        return _internal(prog, exc)
    except Exception as exc:  # noqa: BLE001 - the one place internal errors are reported
        return _internal(prog, exc)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:2000] + (" ..." if len(text) > 2000 else "")


def _internal(prog: str, exc: BaseException) -> int:
    log = log_traceback(prog, exc)
    where = f"full traceback in {log}" if log else "no log could be written"
    print(f"{prog}: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} ({where}; please report it)",
          file=sys.stderr)
    return 1
