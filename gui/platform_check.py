"""Can the desktop app open a window here? (Qt-free: ``make demo`` asks before starting the GUI.)

Qt's X11 platform plugin (``libqxcb.so``) needs system libraries that the PySide6 wheels do not ship
(``libxcb-cursor0`` and friends). Without them Qt prints "Could not load the Qt platform plugin
"xcb"" and aborts the process. :func:`gui_problem` finds that beforehand: no display at all, or the
plugin's missing libraries (``ldd``), and says in one line what to install.

    python -m fnoreg_gui.platform_check     # exit 0: the GUI can start; else one line on stderr, exit 3

``make demo`` runs the headless demo (``python -m fnoreg_export.demo``) when this exits non-zero.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping

__all__ = ["XCB_PACKAGES", "APT_LINE", "display_problem", "missing_xcb_libraries", "gui_problem", "main"]

#: shared library -> Debian/Ubuntu package (the libraries Qt 6's xcb plugin loads)
XCB_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0", "libxcb-shape.so.0": "libxcb-shape0", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0", "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1", "libxcb-shm.so.0": "libxcb-shm0", "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1", "libX11-xcb.so.1": "libx11-xcb1", "libX11.so.6": "libx11-6",
    "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1", "libfreetype.so.6": "libfreetype6", "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}
#: the one command that installs them all (README, "The desktop app")
APT_LINE = ("sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 "
            "libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libegl1 libgl1 libfontconfig1 "
            "libdbus-1-3")


def display_problem(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why no window can open (no ``$DISPLAY`` / ``$WAYLAND_DISPLAY``), or None."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin", "cygwin")) or environ.get("QT_QPA_PLATFORM"):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return ("no display: $DISPLAY and $WAYLAND_DISPLAY are unset. Run fnoreg-gui in a desktop session (or ssh -X); "
            "without one, register headless with fnoreg-register, or run the demo with fnoreg-demo")


def _xcb_plugin() -> Path | None:
    try:
        import importlib.util

        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def _ldd(path: Path) -> str:
    try:
        return subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def missing_xcb_libraries(plugin: Path | None = None, ldd: Callable[[Path], str] = _ldd) -> list[str]:
    """Shared libraries Qt's xcb plugin needs that the system lacks (``ldd ... => not found``)."""
    plugin = plugin or _xcb_plugin()
    if plugin is None:
        return []
    return sorted(set(re.findall(r"^\s*(\S+)\s*=>\s*not found", ldd(plugin), flags=re.M)))


def gui_problem(environ: Mapping[str, str] | None = None, platform: str | None = None,
                missing: Callable[[], list[str]] = missing_xcb_libraries) -> str | None:
    """One line saying why the GUI cannot start here and what to do, or None."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    problem = display_problem(environ, platform)
    if problem or not platform.startswith(("linux", "freebsd")):
        return problem
    qpa = environ.get("QT_QPA_PLATFORM", "")
    if qpa and not qpa.startswith("xcb"):
        return None
    if not qpa and environ.get("WAYLAND_DISPLAY"):
        return None  # Qt picks its Wayland plugin
    libs = missing()
    if not libs:
        return None
    packages = sorted({XCB_PACKAGES.get(lib, lib) for lib in libs})
    return (f"Qt's X11 plugin (xcb) cannot load: missing {', '.join(libs)}; install them with "
            f"`sudo apt-get install {' '.join(packages)}` (Debian/Ubuntu; README: The desktop app)")


def main(argv: list[str] | None = None) -> int:
    problem = gui_problem()
    if problem:
        print(f"fnoreg-gui: {problem}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
