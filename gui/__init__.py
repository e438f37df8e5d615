"""fnoreg_gui: the FNOReg desktop app (PySide6 + pyqtgraph). Importing this package does not import Qt or torch.

Qt-free: :mod:`~fnoreg_gui.state` (images, labels, result, display settings; observers),
:mod:`~fnoreg_gui.render` (RGB frames as numpy) and :mod:`~fnoreg_gui.pipeline` (register and save).
Qt: :mod:`~fnoreg_gui.views` (image views), :mod:`~fnoreg_gui.info_panel`, :mod:`~fnoreg_gui.controls`,
:mod:`~fnoreg_gui.menus`, :mod:`~fnoreg_gui.main_window`, :mod:`~fnoreg_gui.worker` (registration thread)
and :mod:`~fnoreg_gui.app` (the ``fnoreg-gui`` command line).
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
