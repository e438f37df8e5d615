"""The main window's menu bar: File, Model, View and Help. The actions call the window's own methods
(:meth:`MainWindow.shortcut_slots`); their keys come from :data:`fnoreg_gui.shortcuts.SHORTCUTS`.
Nothing here holds state.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from .shortcuts import SHORTCUTS

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["build_menus", "fill_recent_menu", "fill_bundled_menu", "ROLE_TITLES"]

#: How a recent file is listed per role.
ROLE_TITLES = {"fixed": "fixed", "moving": "moving", "fixed_labels": "fixed labels",
               "moving_labels": "moving labels", "model": "model"}


def _shortcut_action(win: MainWindow, ident: str) -> QAction:
    _, _, text, keys = next(row for row in SHORTCUTS if row[0] == ident)
    act = QAction(text, win)
    act.setShortcuts([QKeySequence(k) for k in keys])
    act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    act.triggered.connect(win.shortcut_slots()[ident])
    win.shortcut_actions[ident] = act
    return act


def build_menus(win: MainWindow) -> tuple[QMenu, QMenu]:
    """Add the File, Model, View and Help menus to ``win``'s menu bar.

    Returns
    -------
    recent_menu : QMenu
        File > Recent files (filled by :func:`fill_recent_menu`).
    bundled_menu : QMenu
        Model > Bundled models (filled by :func:`fill_bundled_menu`).
    """
    m = win.menuBar().addMenu("&File")
    m.addAction(_shortcut_action(win, "open_fixed"))
    for text, slot in (
        ("Open moving image...", lambda: win.open_dialog("moving")),
        ("Open fixed labels...", lambda: win.open_dialog("fixed_labels")),
        ("Open moving labels...", lambda: win.open_dialog("moving_labels")),
        ("Open 3-D demo pair (2 mm)", lambda: win.open_demo("3d_2mm")),
        ("Open 3-D demo pair (1 mm)", lambda: win.open_demo("3d_1mm")),
        ("Open 2-D demo pair", lambda: win.open_demo("2d")),
    ):
        act = QAction(text, win)
        act.triggered.connect(slot)
        m.addAction(act)
    recent_menu = m.addMenu("Recent files")
    m.addSeparator()
    m.addAction(_shortcut_action(win, "save_outputs"))
    m.addAction(_shortcut_action(win, "save_screenshot"))
    m.addSeparator()
    m.addAction(_shortcut_action(win, "quit"))
    mm = win.menuBar().addMenu("&Model")
    bundled_menu = mm.addMenu("Bundled models")
    act = QAction("Open model...", win)
    act.triggered.connect(win.choose_model)
    mm.addAction(act)
    mm.addAction(_shortcut_action(win, "register"))
    vm = win.menuBar().addMenu("&View")
    hm = win.menuBar().addMenu("&Help")
    for ident, menu, _, _ in SHORTCUTS:
        if menu == "View":
            vm.addAction(_shortcut_action(win, ident))
            if ident in ("prev_slice_fast", "fit", "flicker_off", "layout_column", "orientation"):
                vm.addSeparator()
        elif menu == "Help":
            hm.addAction(_shortcut_action(win, ident))
    act = QAction("Clear landmarks", win)
    act.triggered.connect(win.state.clear_landmarks)
    vm.addAction(act)
    act = QAction("About fnoreg-gui", win)
    act.triggered.connect(win.show_about)
    hm.addAction(act)
    return recent_menu, bundled_menu


def fill_recent_menu(win: MainWindow, entries: list[tuple[str, str | None]]) -> None:
    """One action per recent file (role, path) in ``win.recent_menu``; it reopens the file in its role
    (entries without a role, from older settings, open as if dropped)."""
    win.recent_menu.clear()
    for role, p in entries:
        act = QAction(f"{ROLE_TITLES.get(role, 'file')}: {p}", win)
        act.triggered.connect(lambda _=False, r=role, p=p: win.open_recent(r, p))
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
