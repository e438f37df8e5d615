"""fnoreg_gui: the FNOReg desktop app (PySide6 + pyqtgraph). Importing this package does not import Qt or torch.

Qt-free: :mod:`~fnoreg_gui.state` (images, labels, result, display settings; observers) with
:mod:`~fnoreg_gui.view_state` (zoom/pan, orientation, layout, hover, landmarks) and
:mod:`~fnoreg_gui.volume`; :mod:`~fnoreg_gui.render` (RGB panels as numpy) with
:mod:`~fnoreg_gui.colours` and :mod:`~fnoreg_gui.legend`; :mod:`~fnoreg_gui.probe` (cursor readout,
landmark mapping); :mod:`~fnoreg_gui.shortcuts`; :mod:`~fnoreg_gui.pipeline` (register and save).
Qt: :mod:`~fnoreg_gui.panel` (one image panel), :mod:`~fnoreg_gui.views` (a view of one axis),
:mod:`~fnoreg_gui.view_grid` (layouts), :mod:`~fnoreg_gui.info_panel` with :mod:`~fnoreg_gui.inspector`,
:mod:`~fnoreg_gui.controls` with :mod:`~fnoreg_gui.window_level`, :mod:`~fnoreg_gui.menus`,
:mod:`~fnoreg_gui.main_window` with :mod:`~fnoreg_gui.window_files`, :mod:`~fnoreg_gui.worker`
(registration thread), :mod:`~fnoreg_gui.qt_workarounds` and :mod:`~fnoreg_gui.app` (the
``fnoreg-gui`` command line).
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
