"""Pure numpy rendering: the RGB panels (uint8, rows x cols x 3) of one view of a :class:`ViewerState`.

Display orientation: a 2-D image (X, Y) and each 3-D slice show their first in-plane array axis
left -> right (columns) and the second bottom -> top (rows), i.e. ``panel = slice.T[::-1]``. Images
are RAS+ (``load_image(canonical=True)``), so axial views have anterior at the top. 3-D views whose
columns run along the patient's left-right axis are mirrored in radiological display
(``state.view.radiological``, the default: the patient's right on the screen's left);
:func:`orientation_labels` names every edge.

Views: 2-D: one view (``axis=None``); 3-D: ``axis`` = the array axis sliced (0 sagittal, 1 coronal,
2 axial) at ``state.slices[axis]``. A view has one panel, or three in side-by-side mode
(fixed | moving | moved), each drawn by its own widget (:func:`panels`); :func:`frame` joins them.
"""

from __future__ import annotations

import numpy as np

from .colours import DIVERGING, HEAT, apply_lut, colour_bar, colourise, label_colours
from .legend import legend
from .probe import axis_codes
from .state import ViewerState

__all__ = ["view_axes", "in_plane_axes", "extract", "frame", "panels", "panel_count", "panel_titles",
           "display_to_voxel", "voxel_to_display", "flipped", "orientation_labels", "frame_note", "label_colours",
           "colour_bar", "legend", "FOLD_COLOUR", "GRID_COLOUR"]

#: Colour of folded voxels (J <= 0) in the Jacobian heatmap.
FOLD_COLOUR = np.array([0, 255, 0], dtype=np.float32)
#: Heatmaps and the grid are drawn where the windowed fixed image exceeds this (its foreground).
FOREGROUND = 0.02
#: Colour of the warped grid lines.
GRID_COLOUR = np.array([255, 220, 0], dtype=np.float32)


def view_axes(ndim: int) -> list[int | None]:
    return [None] if ndim == 2 else [0, 1, 2]


def in_plane_axes(ndim: int, axis: int | None) -> tuple[int, int]:
    if ndim == 2:
        return 0, 1
    a = [i for i in range(3) if i != axis]
    return a[0], a[1]


def extract(arr: np.ndarray, axis: int | None, index: int) -> np.ndarray:
    """Slice of a spatial array (2-D: the array) in neurological display orientation (rows, cols)."""
    s = arr if axis is None or arr.ndim == 2 else np.take(arr, index, axis=axis)
    return s.T[::-1]


def flipped(state: ViewerState, axis: int | None) -> bool:
    """The view's columns are mirrored: radiological display of a view whose columns run left-right."""
    if state.fixed is None or state.fixed.ndim != 3 or not state.view.radiological:
        return False
    a0, _ = in_plane_axes(3, axis)
    return axis_codes(state.fixed.affine)[a0] in (("L", "R"), ("R", "L"))


def orientation_labels(state: ViewerState, axis: int | None) -> dict[str, str]:
    """Patient direction at each edge of a 3-D view: ``{"left", "right", "top", "bottom"}`` (2-D: empty)."""
    if state.fixed is None or state.fixed.ndim != 3:
        return {}
    codes = axis_codes(state.fixed.affine)
    a0, a1 = in_plane_axes(3, axis)
    left, right = codes[a0][::-1] if flipped(state, axis) else codes[a0]
    return {"left": left, "right": right, "top": codes[a1][1], "bottom": codes[a1][0]}


def display_to_voxel(state: ViewerState, axis: int | None, row: float, col: float) -> tuple[int, ...]:
    """Voxel (array order, fixed grid) under a display pixel of a panel; ``col`` is taken modulo one
    panel's width (so pixels of :func:`frame`'s joined panels work too)."""
    shape = state.shape
    a0, a1 = in_plane_axes(len(shape), axis)
    col = int(np.floor(col)) % shape[a0]
    if flipped(state, axis):
        col = shape[a0] - 1 - col
    row = int(np.floor(row))
    point = list(state.slices[: len(shape)])
    point[a0] = col
    point[a1] = shape[a1] - 1 - row
    return tuple(int(np.clip(p, 0, n - 1)) for p, n in zip(point, shape))


def voxel_to_display(state: ViewerState, axis: int | None, point) -> tuple[float, float]:
    """(col, row) display coordinates of the centre of a (possibly fractional) fixed voxel."""
    shape = state.shape
    a0, a1 = in_plane_axes(len(shape), axis)
    c = float(point[a0])
    if flipped(state, axis):
        c = shape[a0] - 1 - c
    return c + 0.5, shape[a1] - 1 - float(point[a1]) + 0.5


def panel_titles(state: ViewerState) -> list[str]:
    """Titles of the panels of every view (their number is :func:`panel_count`)."""
    d = state.display
    if d.flicker != "off":
        return [f"{d.flicker} (flicker: F)"]
    if d.mode == "side_by_side":
        return ["fixed", "moving", "moved" if state.result is not None else "moved (press Register)"]
    return [{"red_cyan": "fixed red, moved cyan", "blend": f"blend {1 - d.blend:.2f} fixed + {d.blend:.2f} moved",
             "checkerboard": "checkerboard fixed / moved", "difference": "fixed - moved"}[d.mode]]


def panel_count(state: ViewerState) -> int:
    return len(panel_titles(state))


def frame_note(state: ViewerState) -> str:
    """A line for the status bar explaining what the frame cannot show yet ("" when nothing is missing)."""
    if state.fixed is None:
        return "open a fixed and a moving image"
    notes = []
    if state.moved_or_moving() is None:
        notes.append("moving is on another grid: it is compared with fixed after Register")
    if state.display.overlay != "none" and state.result is None:
        notes.append(f"the {state.display.overlay} overlay needs a registration: press Register")
    return "; ".join(notes)


# ------------------------------------------------------------------------------------------------
# layers


def _window(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((img.astype(np.float32) - lo) * (1.0 / (hi - lo)), 0.0, 1.0)


def _contour(lab: np.ndarray) -> np.ndarray:
    edge = np.zeros(lab.shape, dtype=bool)
    edge[1:, :] |= lab[1:, :] != lab[:-1, :]
    edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    return edge & (lab != 0)


def _paint(rgb: np.ndarray, lab: np.ndarray, mask: np.ndarray, a: float) -> np.ndarray:
    if mask.any():
        rgb[mask] = (1 - a) * rgb[mask] + a * label_colours(lab[mask])
    return rgb


def _draw_labels(rgb: np.ndarray, lab: np.ndarray | None, mode: str, opacity: float,
                 dotted: np.ndarray | None = None) -> np.ndarray:
    """Labels of one image: filled (``opacity``) or solid contours; with ``dotted`` (an extra label
    slice, the moved labels) its contours too, every other pixel, so both outlines show together."""
    if mode == "none":
        return rgb
    if lab is not None:
        rgb = _paint(rgb, lab, _contour(lab) if mode == "contour" else lab != 0, 1.0 if mode == "contour" else opacity)
    if dotted is not None:
        rr, cc = np.indices(dotted.shape, sparse=True)
        rgb = _paint(rgb, dotted, _contour(dotted) & ((rr + cc) % 2 == 0), 1.0)
    return rgb


def _windows(state: ViewerState) -> tuple[tuple[float, float], tuple[float, float]]:
    if state.display.window is not None:
        return state.display.window, state.display.window
    fw = state.fixed.window
    mw = state.moving.window if state.moving is not None else fw
    return fw, mw


def _moving_slice(state: ViewerState, arr: np.ndarray, axis: int | None) -> np.ndarray:
    """Moving image slice on its own grid: the same relative position along ``axis``."""
    if axis is None:
        return extract(arr, None, 0)
    n_f, n_m = state.fixed.shape[axis], arr.shape[axis]
    idx = int(round(state.slices[axis] * (n_m - 1) / max(n_f - 1, 1)))
    return extract(arr, axis, idx)


def _fit(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Crop/pad (zeros, bottom-left anchored like the display) a panel to ``shape`` (side by side)."""
    if img.shape[:2] == shape:
        return img
    out = np.zeros(shape + img.shape[2:], dtype=img.dtype)
    r, c = min(shape[0], img.shape[0]), min(shape[1], img.shape[1])
    out[shape[0] - r:, :c] = img[img.shape[0] - r:, :c]
    return out


def _draw_grid(res, d, rgb: np.ndarray, axis: int | None, index: int, fg: np.ndarray | None = None) -> np.ndarray:
    """The warped grid: lines where the deformed coordinate x + u(x) crosses a multiple of the spacing."""
    a0, a1 = in_plane_axes(res.ndim, axis)
    u0 = extract(res.ddf_vox[a0], axis, index)
    u1 = extract(res.ddf_vox[a1], axis, index)
    rows, cols = u0.shape
    i0 = np.arange(cols, dtype=np.float32)[None, :]             # a0 index per column
    i1 = (rows - 1 - np.arange(rows, dtype=np.float32))[:, None]  # a1 index per row
    s = float(d.grid_spacing)
    p0, p1 = (i0 + u0) / s, (i1 + u1) / s
    # a line wherever the deformed coordinate crosses a multiple of the spacing within this pixel
    w0 = np.maximum(np.abs(np.gradient(p0, axis=1)), 1e-3) * 0.5 + np.abs(np.gradient(p0, axis=0)) * 0.5
    w1 = np.maximum(np.abs(np.gradient(p1, axis=0)), 1e-3) * 0.5 + np.abs(np.gradient(p1, axis=1)) * 0.5
    line = (np.abs(p0 - np.round(p0)) <= w0) | (np.abs(p1 - np.round(p1)) <= w1)
    if fg is not None:
        line &= fg
    a = d.overlay_opacity
    rgb[line] = (1 - a) * rgb[line] + a * GRID_COLOUR if a < 1 else GRID_COLOUR
    return rgb


def _blend_in(rgb: np.ndarray, heat: np.ndarray, alpha: float, fg: np.ndarray | None) -> np.ndarray:
    if fg is None:
        return (1 - alpha) * rgb + alpha * heat
    out = rgb.copy()
    out[fg] = (1 - alpha) * rgb[fg] + alpha * heat[fg]
    return out


def _overlay(state: ViewerState, rgb: np.ndarray, axis: int | None, index: int,
             fg: np.ndarray | None = None) -> np.ndarray:
    """Deformation overlay on ``rgb`` (opacity ``overlay_opacity``); heatmaps and grid only where
    ``fg`` (the fixed image's foreground) is True, folded voxels everywhere."""
    d, res = state.display, state.result
    if res is None or d.overlay == "none":
        return rgb
    ndim = res.ndim
    if d.overlay == "grid":
        return _draw_grid(res, d, rgb, axis, index, fg)
    if d.overlay == "displacement":
        mag = np.sqrt(sum(extract(res.ddf_mm[c], axis, index).astype(np.float32) ** 2 for c in range(ndim)))
        heat = apply_lut(mag / state.disp_max_mm(), HEAT)
        out = _blend_in(rgb, heat, d.overlay_opacity, fg)
        return _draw_grid(res, d, out, axis, index, fg) if d.grid_on_heatmap else out
    if d.overlay == "jacobian":
        jac = extract(res.jacobian, axis, index).astype(np.float32)
        logj = np.log(np.maximum(jac, 1e-6))
        heat = apply_lut(np.clip(logj / d.jac_range, -1, 1) * 0.5 + 0.5, DIVERGING)
        out = _blend_in(rgb, heat, d.overlay_opacity, fg)
        if d.grid_on_heatmap:
            out = _draw_grid(res, d, out, axis, index, fg)
        out[jac <= 0] = FOLD_COLOUR
        return out
    raise ValueError(f"unknown overlay {d.overlay!r}")


# ------------------------------------------------------------------------------------------------
# panels


def _finish(rgb: np.ndarray, flip: bool) -> np.ndarray:
    return np.clip(rgb[:, ::-1] if flip else rgb, 0, 255).astype(np.uint8)


def panels(state: ViewerState, axis: int | None = None) -> list[np.ndarray]:
    """The RGB panels (uint8, rows x cols x 3, display orientation) of one view: 2-D ``axis=None``;
    3-D ``axis`` in 0, 1, 2. Three in side-by-side mode (fixed, moving, moved), else one."""
    if state.fixed is None:
        raise ValueError("no fixed image")
    if state.fixed.ndim == 3 and axis not in (0, 1, 2):
        raise ValueError(f"a 3-D view needs axis 0, 1 or 2, got {axis!r}")
    if state.fixed.ndim == 2:
        axis = None
    d = state.display
    flip = flipped(state, axis)
    index = state.slices[axis] if axis is not None else 0
    (flo, fhi), (mlo, mhi) = _windows(state)
    fixed = _window(extract(state.fixed.data, axis, index), flo, fhi)
    fg = fixed > FOREGROUND if d.overlay != "none" else None
    other = state.moved_or_moving()
    fl = extract(state.fixed_labels.data, axis, index) if state.fixed_labels is not None else None
    ml_arr = state.moved_labels_or_moving()
    ml = extract(ml_arr, axis, index) if ml_arr is not None else None
    show_f = d.label_layers in ("both", "fixed")
    show_m = d.label_layers in ("both", "moved")
    shape = fixed.shape

    if d.flicker != "off":
        if d.flicker == "fixed" or other is None:
            return [_finish(_draw_labels(colourise(fixed, d.cmap), fl, d.label_mode, d.label_opacity), flip)]
        moved = _window(extract(other, axis, index), mlo, mhi)
        rgb = _draw_labels(colourise(moved, d.cmap), ml, d.label_mode, d.label_opacity)
        return [_finish(_overlay(state, rgb, axis, index, fg), flip)]

    if d.mode == "side_by_side":
        f_rgb = _draw_labels(colourise(fixed, d.cmap), fl if show_f else None, d.label_mode, d.label_opacity)
        if state.moving is not None:
            mov = _window(_moving_slice(state, state.moving.data, axis), mlo, mhi)
            mov_lab = _moving_slice(state, state.moving_labels.data, axis) \
                if state.moving_labels is not None and show_m else None
            m_rgb = _fit(_draw_labels(colourise(mov, d.cmap), mov_lab, d.label_mode, d.label_opacity), shape)
        else:
            m_rgb = np.zeros(shape + (3,), dtype=np.float32)
        if state.result is not None:
            r_rgb = _draw_labels(colourise(_window(extract(state.result.moved, axis, index), mlo, mhi), d.cmap),
                                 ml if state.moved_labels is not None and show_m else None, d.label_mode,
                                 d.label_opacity)
            r_rgb = _overlay(state, r_rgb, axis, index, fg)
        else:
            r_rgb = np.zeros(shape + (3,), dtype=np.float32)
        return [_finish(f_rgb, flip), _finish(m_rgb, flip), _finish(r_rgb, flip)]

    moved = _window(extract(other, axis, index), mlo, mhi) if other is not None else None
    if moved is None:
        rgb = colourise(fixed, d.cmap)
    elif d.mode == "red_cyan":
        rgb = np.stack([fixed, moved, moved], axis=-1) * 255.0
    elif d.mode == "blend":
        rgb = colourise((1 - d.blend) * fixed + d.blend * moved, d.cmap)
    elif d.mode == "checkerboard":
        t = int(d.checker_tile)
        rr, cc = np.indices(fixed.shape, sparse=True)
        pick = ((rr // t + cc // t) % 2).astype(bool)
        rgb = colourise(np.where(pick, moved, fixed), d.cmap)
    elif d.mode == "difference":
        rgb = apply_lut(np.clip((fixed - moved) * 0.5 + 0.5, 0, 1), DIVERGING)
    else:
        raise ValueError(f"unknown mode {d.mode!r}")
    dotted = ml if show_m and show_f and d.label_mode != "none" else None
    rgb = _draw_labels(rgb, fl if show_f else ml if show_m else None, d.label_mode, d.label_opacity, dotted)
    rgb = _overlay(state, rgb, axis, index, fg)
    return [_finish(rgb, flip)]


def frame(state: ViewerState, axis: int | None = None) -> np.ndarray:
    """The panels of one view side by side in one RGB frame (uint8, rows x cols x 3)."""
    ps = panels(state, axis)
    return ps[0] if len(ps) == 1 else np.concatenate(ps, axis=1)
