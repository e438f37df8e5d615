"""make demo on a desktop without Qt's xcb libraries: detected beforehand, one line saying what to install."""

from pathlib import Path

from fnoreg_gui import platform_check as P

LDD = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-cursor.so.0 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
"""


def test_missing_libraries_from_ldd():
    assert P.missing_xcb_libraries(Path("libqxcb.so"), ldd=lambda p: LDD) == ["libxcb-cursor.so.0",
                                                                              "libxkbcommon-x11.so.0"]


def test_gui_problem_names_the_packages():
    missing = lambda: ["libxcb-cursor.so.0", "libxkbcommon-x11.so.0"]  # noqa: E731
    line = P.gui_problem({"DISPLAY": ":0"}, "linux", missing)
    assert "\n" not in line and "libxcb-cursor0 libxkbcommon-x11-0" in line and "apt-get install" in line
    assert P.gui_problem({"DISPLAY": ":0"}, "linux", lambda: []) is None
    assert P.gui_problem({"WAYLAND_DISPLAY": "w"}, "linux", missing) is None  # Qt uses its Wayland plugin
    assert P.gui_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux", missing) is None
    assert "no display" in P.gui_problem({}, "linux", missing)
    for lib in ("libxcb-cursor.so.0", "libxkbcommon-x11.so.0", "libxcb-icccm.so.4"):
        assert P.XCB_PACKAGES[lib] in P.APT_LINE


def test_app_exits_2_with_one_line_instead_of_qt_abort(monkeypatch, capsys):
    from PySide6.QtWidgets import QApplication

    from fnoreg_gui import app

    if QApplication.instance() is not None:  # the check only guards a process without a Qt application yet
        monkeypatch.setattr(QApplication, "instance", staticmethod(lambda: None))
    monkeypatch.setattr(app, "display_problem", lambda: None)
    monkeypatch.setattr(P, "gui_problem", lambda: "Qt's X11 plugin (xcb) cannot load: missing libxcb-cursor.so.0")
    assert app.main(["--no-register"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "libxcb-cursor" in err


def test_make_demo_falls_back_to_the_headless_demo():
    text = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    demo = text[text.index("\ndemo:"):].split("\n\n")[0]
    assert "fnoreg_gui.platform_check" in demo and "fnoreg_export.demo" in demo
