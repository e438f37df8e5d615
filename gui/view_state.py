"""How the views look at the data, Qt-free: zoom/pan, orientation, layout, hover, landmarks, flicker.

:class:`ViewStateMixin` is part of :class:`fnoreg_gui.state.ViewerState` (it uses the state's
``fixed``, ``slices``, ``display`` and ``_emit``). Coordinates of a view are display pixels of one
panel: ``col`` left -> right, ``row`` top -> bottom, pixel ``(c, r)`` covering ``[c, c+1) x [r, r+1)``
(see :func:`fnoreg_gui.render.display_to_voxel`).

Linking: one zoom factor for every view and panel; one centre per view axis, shared by the panels
of that view (fixed | moving | moved); one crosshair (``state.slices``) drawn in all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ViewSettings", "ViewStateMixin", "LAYOUTS", "ZOOM_LIMITS"]

#: View layouts (3-D): "2x2" axial | coronal / sagittal | info; "row": the three side by side;
#: "column": the three stacked.
LAYOUTS = ("2x2", "row", "column")
#: Smallest and largest zoom (1 = the slice fits its panel).
ZOOM_LIMITS = (0.25, 40.0)


@dataclass
class ViewSettings:
    """Zoom, pan, orientation and layout (plain values)."""

    radiological: bool = True    # 3-D: patient's right on the screen's left (ITK-SNAP, Slicer default)
    zoom: float = 1.0            # 1: fit; linked across all views and panels
    centre: dict = field(default_factory=dict)  # view axis -> (col, row) at the panel centre; absent: fit
    layout: str = "2x2"          # see LAYOUTS
    maximised: int | None = None  # 3-D view axis shown alone, or None
    active_axis: int | None = None  # view the keys act on (last hovered or clicked); None: axial


class ViewStateMixin:
    """Setters of :class:`ViewSettings`, the hover voxel, landmarks and flicker (events in ``EVENTS``)."""

    # -- geometry of a view ------------------------------------------------------------------
    def _new_grid(self) -> None:
        """A new fixed grid: fit every view, forget landmarks and the hovered voxel."""
        self.view.zoom, self.view.centre = 1.0, {}
        self.landmarks, self.hover = [], None

    def panel_size(self, axis: int | None) -> tuple[int, int]:
        """(cols, rows) of one panel of the view along ``axis`` (None: 2-D)."""
        shape = self.fixed.shape
        if len(shape) == 2:
            return shape[0], shape[1]
        a0, a1 = [i for i in range(3) if i != axis]
        return shape[a0], shape[a1]

    def view_centre(self, axis: int | None) -> tuple[float, float]:
        cols, rows = self.panel_size(axis)
        return self.view.centre.get(axis, (cols / 2.0, rows / 2.0))

    def view_range(self, axis: int | None) -> tuple[tuple[float, float], tuple[float, float]]:
        """((col0, col1), (row0, row1)) shown by the panels of a view (before the widget's aspect is applied)."""
        cols, rows = self.panel_size(axis)
        (cx, cy), z = self.view_centre(axis), self.view.zoom
        return (cx - cols / (2 * z), cx + cols / (2 * z)), (cy - rows / (2 * z), cy + rows / (2 * z))

    def active_view_axis(self) -> int | None:
        if self.fixed is None or self.fixed.ndim == 2:
            return None
        a = self.view.active_axis
        return a if a in (0, 1, 2) else 2

    # -- zoom / pan ----------------------------------------------------------------------------
    def set_zoom(self, zoom: float, axis: int | None = None, anchor: tuple[float, float] | None = None) -> None:
        """Zoom every view to ``zoom`` (clamped to :data:`ZOOM_LIMITS`); with ``axis`` and ``anchor``
        (col, row) that point of that view stays where it is on the screen."""
        if self.fixed is None:
            return
        zoom = float(np.clip(zoom, *ZOOM_LIMITS))
        old = self.view.zoom
        if anchor is not None:
            cx, cy = self.view_centre(axis)
            ax, ay = anchor
            self.view.centre[axis] = (ax + (cx - ax) * old / zoom, ay + (cy - ay) * old / zoom)
        self.view.zoom = zoom
        self._emit("view")

    def zoom_by(self, factor: float, axis: int | None = None, anchor: tuple[float, float] | None = None) -> None:
        self.set_zoom(self.view.zoom * float(factor), axis, anchor)

    def pan_by(self, axis: int | None, dcol: float, drow: float) -> None:
        """Move the image of one view (all its panels) by (dcol, drow) display pixels."""
        if self.fixed is None:
            return
        cx, cy = self.view_centre(axis)
        self.view.centre[axis] = (cx - float(dcol), cy - float(drow))
        self._emit("view")

    def fit_views(self) -> None:
        """Zoom 1, every slice centred in its panel (double-click, Home)."""
        self.view.zoom, self.view.centre = 1.0, {}
        self._emit("view")

    # -- orientation / layout ------------------------------------------------------------------
    def set_radiological(self, radiological: bool) -> None:
        """Radiological (patient's right on the screen's left) or neurological display of 3-D images."""
        if self.view.radiological != bool(radiological):
            self.view.radiological = bool(radiological)
            self.view.centre = {a: (self.panel_size(a)[0] - c, r) for a, (c, r) in self.view.centre.items()} \
                if self.fixed is not None else {}
            self._emit("display")

    def set_layout(self, layout: str) -> None:
        """Raises ValueError unless ``layout`` is one of :data:`LAYOUTS`."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.view.layout, self.view.maximised = layout, None
        self._emit("layout")

    def set_maximised(self, axis: int | None) -> None:
        """Show the view along ``axis`` alone (None: all views). Raises ValueError for another axis."""
        if axis is not None and axis not in (0, 1, 2):
            raise ValueError(f"maximised view must be axis 0, 1, 2 or None, got {axis!r}")
        self.view.maximised = axis
        self._emit("layout")

    def toggle_maximised(self, axis: int | None = None) -> None:
        """Maximise the view along ``axis`` (default: the active view), or restore all views."""
        if self.fixed is None or self.fixed.ndim == 2:
            return
        axis = self.active_view_axis() if axis is None else axis
        self.set_maximised(None if self.view.maximised == axis else axis)

    def set_active_axis(self, axis: int | None) -> None:
        """The view the keyboard acts on (no event: the next hover/slice event shows it)."""
        self.view.active_axis = axis

    # -- cursor ----------------------------------------------------------------------------------
    def set_hover(self, point: tuple[int, ...] | None) -> None:
        """The voxel under the mouse (fixed grid, array order), None when the mouse left the views."""
        if point is not None and self.fixed is not None:
            point = tuple(int(np.clip(v, 0, n - 1)) for v, n in zip(point, self.fixed.shape))
        if point != self.hover:
            self.hover = point
            self._emit("cursor")

    def step_slice(self, delta: int, axis: int | None = None) -> None:
        """Move the slice of ``axis`` (default: the active view) by ``delta`` (arrows, Page Up/Down)."""
        axis = self.active_view_axis() if axis is None else axis
        if axis is not None:
            self.set_slice(axis, self.slices[axis] + int(delta))

    # -- window ----------------------------------------------------------------------------------
    def current_window(self) -> tuple[float, float]:
        """The window in use: the manual one, else the fixed image's own."""
        if self.display.window is not None:
            return self.display.window
        return self.fixed.window if self.fixed is not None else (0.0, 1.0)

    def nudge_window(self, level_frac: float, width_factor: float) -> None:
        """Mouse window/level: move the level by ``level_frac`` window widths and scale the width.

        Switches to a manual window (from the one in use), as ITK-SNAP's contrast drag does.
        """
        if self.fixed is None:
            return
        lo, hi = self.current_window()
        width, level = hi - lo, (hi + lo) / 2.0
        level += float(level_frac) * width
        width = max(width * float(width_factor), 1e-6 * max(abs(level), 1.0))
        self.set_display(window=(level - width / 2.0, level + width / 2.0))

    # -- flicker -----------------------------------------------------------------------------------
    def toggle_flicker(self) -> None:
        """F key: show the fixed image alone, then the moved one, then fixed again..."""
        self.set_display(flicker="moved" if self.display.flicker == "fixed" else "fixed")

    # -- landmarks ---------------------------------------------------------------------------------
    def add_landmark(self, point: tuple[float, ...] | None = None) -> int:
        """Add a landmark at ``point`` (fixed voxel, array order; default: the crosshair); its index."""
        if self.fixed is None:
            raise ValueError("open a fixed image before placing landmarks")
        point = tuple(self.slices[: self.fixed.ndim]) if point is None else tuple(point)
        if len(point) != self.fixed.ndim:
            raise ValueError(f"a landmark needs {self.fixed.ndim} coordinates, got {len(point)}")
        self.landmarks.append(tuple(float(v) for v in point))
        self._emit("landmarks")
        return len(self.landmarks) - 1

    def remove_landmark(self, index: int = -1) -> None:
        """Remove landmark ``index`` (default: the last one); nothing when there is none."""
        if self.landmarks:
            del self.landmarks[index]
            self._emit("landmarks")

    def clear_landmarks(self) -> None:
        if self.landmarks:
            self.landmarks = []
            self._emit("landmarks")

    def mapped_landmarks(self) -> list[dict]:
        """Every landmark mapped through the registration (:func:`fnoreg_gui.probe.map_points`)."""
        from .probe import map_points

        return map_points(self, self.landmarks)
