"""fnoreg-gui: the command line of the FNOReg desktop app (PySide6 + pyqtgraph).

    fnoreg-gui                                   # the bundled 3-D demo pair, registered with the bundled model
    fnoreg-gui --fixed F --moving M --model X.onnx [--fixed-labels FL --moving-labels ML]

The window is :class:`fnoreg_gui.main_window.MainWindow`; its rooms: :mod:`~fnoreg_gui.views` (the image
views), :mod:`~fnoreg_gui.info_panel`, :mod:`~fnoreg_gui.controls`, :mod:`~fnoreg_gui.menus`, over the
Qt-free :mod:`~fnoreg_gui.state`, :mod:`~fnoreg_gui.render` and :mod:`~fnoreg_gui.pipeline`; registration
runs in :class:`fnoreg_gui.worker.RegisterWorker`. torch is never imported.
"""

from __future__ import annotations

import argparse
import sys

import pyqtgraph as pg
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from .main_window import MainWindow
from .platform_check import display_problem  # re-exported: the one display check

__all__ = ["build_parser", "parse_args", "build_window", "display_problem", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``fnoreg-gui`` argument parser (options, defaults and examples in ``--help``)."""
    p = argparse.ArgumentParser(
        prog="fnoreg-gui", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="FNOReg desktop app: register an image pair with an exported model and inspect the result "
                    "(overlays, deformation grid, Jacobian / folding map, per-label Dice).",
        epilog="Examples:\n"
               "  fnoreg-gui                      # bundled 3-D demo pair, registered with the bundled model\n"
               "  fnoreg-gui --demo 2d\n"
               "  fnoreg-gui --fixed f.nii.gz --moving m.nii.gz --fixed-labels fl.nii.gz --moving-labels ml.nii.gz "
               "--model model.onnx\n\n"
               "Environment:\n"
               "  FNOREG_MODELS   folder of bundled models (<name>/model.onnx); default: assets/models")
    p.add_argument("--fixed", help="fixed image (NIfTI/MGZ, or PNG/JPG/TIFF for 2-D). Default: the demo pair")
    p.add_argument("--moving", help="moving image. Default: the demo pair")
    p.add_argument("--fixed-labels", help="label map of the fixed image (optional)")
    p.add_argument("--moving-labels", help="label map of the moving image (optional)")
    p.add_argument("--model", help="exported model (.onnx or .engine). Default: the bundled model for the "
                                   "images' dimensionality (fnoreg2d / fnoreg3d)")
    p.add_argument("--backend", default="auto", help="auto | onnxruntime-cpu | onnxruntime-cuda | tensorrt. "
                                                     "Default: auto")
    p.add_argument("--demo", default="3d_2mm", choices=["2d", "3d_2mm", "3d_1mm"],
                   help="demo pair opened without --fixed/--moving. Default: 3d_2mm")
    p.add_argument("--no-register", action="store_true",
                   help="do not register automatically once the window shows. Default: register")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """Parse and check the command line.

    Raises
    ------
    SystemExit
        2 on bad usage (argparse prints why), 0 after ``--help``.
    """
    from fnoreg_export.runtime import BACKENDS

    p = build_parser()
    args = p.parse_args(argv)
    if bool(args.fixed) != bool(args.moving):
        p.error("give both --fixed and --moving (or neither for the demo pair)")
    if args.backend not in BACKENDS:
        p.error(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    return args


def build_window(argv=None, settings: QSettings | None = None) -> MainWindow:
    """The main window for a command line, not shown yet: images and model opened.

    Unless ``--no-register``, registration starts in the worker as soon as the window is shown.
    Needs a QApplication.

    Parameters
    ----------
    argv : list of str or argparse.Namespace, optional
        The arguments (default ``sys.argv[1:]``), or what :func:`parse_args` returned.
    settings : QSettings, optional
        Passed to :class:`~fnoreg_gui.main_window.MainWindow`.

    Returns
    -------
    MainWindow
    """
    args = argv if isinstance(argv, argparse.Namespace) else parse_args(argv)
    pg.setConfigOptions(imageAxisOrder="row-major")
    win = MainWindow(settings=settings)
    win.state.backend = args.backend
    win._refresh_controls()
    if args.model:
        win.set_model(args.model)
    if args.fixed:
        win.open_pair(args.fixed, args.moving, args.fixed_labels, args.moving_labels)
    else:
        win.open_demo(args.demo)
    win.auto_register = not args.no_register
    return win


def main(argv=None) -> int:
    """Entry point of ``fnoreg-gui``: parse, build the window, show it and run the event loop.

    Returns
    -------
    int
        The exit status (2 on bad usage).
    """
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    from .platform_check import gui_problem

    problem = display_problem() or gui_problem()
    if problem and QApplication.instance() is None:  # Qt would abort the process (core dump, exit 134)
        print(f"fnoreg-gui: error: {problem}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = build_window(args)
    win.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
