"""Every keyboard shortcut and mouse gesture of the app, in one table (Qt-free).

:func:`fnoreg_gui.menus.build_menus` makes one menu action per :data:`SHORTCUTS` row (so a key works
exactly when it is listed), and Help > Keyboard and mouse shows :func:`help_text`.
"""

from __future__ import annotations

__all__ = ["SHORTCUTS", "MOUSE", "help_text"]

#: (action id, menu, menu text, keys). The first key is shown in the menu; all of them work.
SHORTCUTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("open_fixed", "File", "Open fixed image...", ("Ctrl+O",)),
    ("save_outputs", "File", "Save outputs...", ("Ctrl+S",)),
    ("save_screenshot", "File", "Save screenshot...", ("Ctrl+Shift+S",)),
    ("quit", "File", "Quit", ("Ctrl+Q",)),
    ("register", "Model", "Register", ("Ctrl+R",)),
    ("next_slice", "View", "Next slice (active view)", ("Up", "Right")),
    ("prev_slice", "View", "Previous slice (active view)", ("Down", "Left")),
    ("next_slice_fast", "View", "5 slices on", ("PgUp",)),
    ("prev_slice_fast", "View", "5 slices back", ("PgDown",)),
    ("zoom_in", "View", "Zoom in", ("+", "=")),
    ("zoom_out", "View", "Zoom out", ("-",)),
    ("fit", "View", "Fit / reset zoom and pan", ("Home",)),
    ("flicker", "View", "Flicker: fixed / moved alone", ("F",)),
    ("flicker_off", "View", "Flicker off (back to the display mode)", ("Shift+F",)),
    ("maximise", "View", "Maximise active view / all views", ("M",)),
    ("layout_2x2", "View", "Layout: 2 x 2", ("Ctrl+1",)),
    ("layout_row", "View", "Layout: views in a row", ("Ctrl+2",)),
    ("layout_column", "View", "Layout: views in a column", ("Ctrl+3",)),
    ("orientation", "View", "Radiological / neurological", ("O",)),
    ("add_landmark", "View", "Landmark at the crosshair", ("L",)),
    ("remove_landmark", "View", "Remove the last landmark", ("Shift+L",)),
    ("help", "Help", "Keyboard and mouse...", ("F1",)),
)

#: (gesture, what it does).
MOUSE: tuple[tuple[str, str], ...] = (
    ("left click / drag", "move the crosshair (all views follow)"),
    ("wheel", "previous / next slice"),
    ("Ctrl + wheel, right drag", "zoom (all views), about the mouse"),
    ("middle drag, Shift + left drag", "pan this view"),
    ("Ctrl + left drag", "window / level: right widens, up brightens"),
    ("double click", "fit every view"),
    ("hover", "cursor inspector: values under the mouse"),
)


def help_text() -> str:
    """HTML of the Help > Keyboard and mouse dialog."""
    rows = "".join(f"<tr><td><b>{' / '.join(keys)}</b></td><td>{text}</td></tr>" for _, _, text, keys in SHORTCUTS)
    mouse = "".join(f"<tr><td><b>{g}</b></td><td>{t}</td></tr>" for g, t in MOUSE)
    return (f"<h3>Keyboard</h3><table cellspacing=4>{rows}</table>"
            f"<h3>Mouse (in a view)</h3><table cellspacing=4>{mouse}</table>"
            "<p>The active view (bold title) is the one last hovered or clicked.</p>")
