"""fnoreg_gui: the FNOReg desktop app (PySide6 + pyqtgraph). Importing this package does not import Qt or torch;
:mod:`fnoreg_gui.state`, :mod:`fnoreg_gui.render` and :mod:`fnoreg_gui.pipeline` are Qt-free."""

__all__ = ["__version__"]
__version__ = "0.1.0"
