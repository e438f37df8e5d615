"""The main window's menu bar: File (open, demo pairs, recent files, save, quit) and Model (bundled, open,
register). The actions call the window's own methods; nothing here holds state.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["build_menus", "fill_recent_menu", "fill_bundled_menu"]


def build_menus(win: MainWindow) -> tuple[QMenu, QMenu]:
    """Add the File and Model menus to ``win``'s menu bar.

    Parameters
    ----------
    win : MainWindow

    Returns
    -------
    recent_menu : QMenu
        File > Recent files (filled by :func:`fill_recent_menu`).
    bundled_menu : QMenu
        Model > Bundled models (filled by :func:`fill_bundled_menu`).
    """
    m = win.menuBar().addMenu("&File")
    for text, slot, key in (
        ("Open fixed image...", lambda: win.open_dialog("fixed"), QKeySequence.StandardKey.Open),
        ("Open moving image...", lambda: win.open_dialog("moving"), None),
        ("Open fixed labels...", lambda: win.open_dialog("fixed_labels"), None),
        ("Open moving labels...", lambda: win.open_dialog("moving_labels"), None),
        ("Open 3-D demo pair (2 mm)", lambda: win.open_demo("3d_2mm"), None),
        ("Open 2-D demo pair", lambda: win.open_demo("2d"), None),
    ):
        act = QAction(text, win)
        act.triggered.connect(slot)
        if key is not None:
            act.setShortcut(key)
        m.addAction(act)
    recent_menu = m.addMenu("Recent files")
    m.addSeparator()
    for text, slot in (("Save outputs...", win.save_dialog), ("Save screenshot...", win.screenshot_dialog)):
        act = QAction(text, win)
        act.triggered.connect(slot)
        m.addAction(act)
    m.addSeparator()
    act = QAction("Quit", win)
    act.setShortcut(QKeySequence.StandardKey.Quit)
    act.triggered.connect(win.close)
    m.addAction(act)
    mm = win.menuBar().addMenu("&Model")
    bundled_menu = mm.addMenu("Bundled models")
    act = QAction("Open model...", win)
    act.triggered.connect(win.choose_model)
    mm.addAction(act)
    act = QAction("Register", win)
    act.setShortcut(QKeySequence("Ctrl+R"))
    act.triggered.connect(win.start_registration)
    mm.addAction(act)
    return recent_menu, bundled_menu


def fill_recent_menu(win: MainWindow, paths: list[str]) -> None:
    """One action per recent file in ``win.recent_menu``; it opens the file as if dropped."""
    win.recent_menu.clear()
    for p in paths:
        act = QAction(p, win)
        act.triggered.connect(lambda _=False, p=p: win.open_dropped([p]))
        win.recent_menu.addAction(act)


def fill_bundled_menu(win: MainWindow, bundled: dict[str, Path]) -> None:
    """One action per bundled model in ``win.bundled_menu`` (name -> model file), or a disabled hint."""
    win.bundled_menu.clear()
    for name, path in bundled.items():
        act = QAction(name, win)
        act.triggered.connect(lambda _=False, p=path: win.set_model(p))
        win.bundled_menu.addAction(act)
    if not bundled:
        act = QAction("(none found: see assets/models or set FNOREG_MODELS)", win)
        act.setEnabled(False)
        win.bundled_menu.addAction(act)
