"""Pure numpy rendering: the RGB frame (uint8, rows x cols x 3) of one view of a :class:`ViewerState`.

Display orientation: a 2-D image (X, Y) and each 3-D slice show their first in-plane array axis
left -> right (columns) and the second bottom -> top (rows), i.e. ``frame = slice.T[::-1]``. Images
are RAS+ (``load_image(canonical=True)``), so axial views have anterior at the top and the patient's
right on the right ("neurological").

Views: 2-D: one view (``axis=None``); 3-D: ``axis`` = the array axis sliced (0 sagittal, 1 coronal,
2 axial) at ``state.slices[axis]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .state import ViewerState

__all__ = ["view_axes", "in_plane_axes", "extract", "frame", "panel_count", "display_to_voxel", "frame_note",
           "label_colours", "colour_bar", "legend", "FOLD_COLOUR", "GRID_COLOUR"]

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
    """Slice of a spatial array (2-D: the array) in display orientation (rows, cols)."""
    s = arr if axis is None or arr.ndim == 2 else np.take(arr, index, axis=axis)
    return s.T[::-1]


def display_to_voxel(state: ViewerState, axis: int | None, row: float, col: float) -> tuple[int, ...]:
    """Voxel (array order, fixed grid) under a display pixel; ``col`` is taken modulo one panel's width."""
    shape = state.shape
    a0, a1 = in_plane_axes(len(shape), axis)
    col = int(np.floor(col)) % shape[a0]
    row = int(np.floor(row))
    point = list(state.slices[: len(shape)])
    point[a0] = col
    point[a1] = shape[a1] - 1 - row
    return tuple(int(np.clip(p, 0, n - 1)) for p, n in zip(point, shape))


def panel_count(state: ViewerState) -> int:
    return 3 if state.display.mode == "side_by_side" else 1


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
# colour helpers


def _lut(anchors: Sequence[Sequence[float]], n: int = 256) -> np.ndarray:
    anchors = np.asarray(anchors, dtype=np.float32)
    x = np.linspace(0, 1, len(anchors))
    t = np.linspace(0, 1, n)
    return np.stack([np.interp(t, x, anchors[:, c]) for c in range(3)], axis=1).astype(np.float32)


_HEAT = _lut([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)])   # inferno-like
_DIVERGING = _lut([(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)])


def _apply_lut(values01: np.ndarray, lut: np.ndarray) -> np.ndarray:
    idx = np.clip((values01 * (len(lut) - 1)).astype(np.int32), 0, len(lut) - 1)
    return lut[idx]


def _window(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((img.astype(np.float32) - lo) * (1.0 / (hi - lo)), 0.0, 1.0)


def _grey(img01: np.ndarray) -> np.ndarray:
    return np.repeat(img01[..., None] * 255.0, 3, axis=2)


def label_colours(labels: np.ndarray) -> np.ndarray:
    """Deterministic distinct RGB (0-255 float) per label value (golden-ratio hues); 0 -> black."""
    lab = labels.astype(np.int64)
    h = (lab * 0.618033988749895) % 1.0
    s, v = 0.75, 1.0
    i = np.floor(h * 6).astype(np.int32) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    rgb = np.stack([r, g, b], axis=-1).astype(np.float32) * 255.0
    rgb[lab == 0] = 0
    return rgb


def _contour(lab: np.ndarray) -> np.ndarray:
    edge = np.zeros(lab.shape, dtype=bool)
    edge[1:, :] |= lab[1:, :] != lab[:-1, :]
    edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    return edge & (lab != 0)


def _draw_labels(rgb: np.ndarray, lab: np.ndarray | None, mode: str, alpha: float) -> np.ndarray:
    if lab is None or mode == "none":
        return rgb
    mask = _contour(lab) if mode == "contour" else lab != 0
    if not mask.any():
        return rgb
    col = label_colours(lab[mask])
    a = 1.0 if mode == "contour" else alpha
    rgb[mask] = (1 - a) * rgb[mask] + a * col
    return rgb


# ------------------------------------------------------------------------------------------------
# the frame


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
    rgb[line] = (1 - d.alpha) * rgb[line] + d.alpha * GRID_COLOUR if d.alpha < 1 else GRID_COLOUR
    return rgb


def _blend_in(rgb: np.ndarray, heat: np.ndarray, alpha: float, fg: np.ndarray | None) -> np.ndarray:
    if fg is None:
        return (1 - alpha) * rgb + alpha * heat
    out = rgb.copy()
    out[fg] = (1 - alpha) * rgb[fg] + alpha * heat[fg]
    return out


def _overlay(state: ViewerState, rgb: np.ndarray, axis: int | None, index: int,
             fg: np.ndarray | None = None) -> np.ndarray:
    """Deformation overlay on ``rgb``; heatmaps and grid only where ``fg`` (the fixed image's
    foreground) is True, folded voxels everywhere."""
    d, res = state.display, state.result
    if res is None or d.overlay == "none":
        return rgb
    ndim = res.ndim
    if d.overlay == "grid":
        return _draw_grid(res, d, rgb, axis, index, fg)
    if d.overlay == "displacement":
        mag = np.sqrt(sum(extract(res.ddf_mm[c], axis, index).astype(np.float32) ** 2 for c in range(ndim)))
        heat = _apply_lut(mag / state.disp_max_mm(), _HEAT)
        out = _blend_in(rgb, heat, d.alpha, fg)
        return _draw_grid(res, d, out, axis, index, fg) if d.grid_on_heatmap else out
    if d.overlay == "jacobian":
        jac = extract(res.jacobian, axis, index).astype(np.float32)
        logj = np.log(np.maximum(jac, 1e-6))
        heat = _apply_lut(np.clip(logj / d.jac_range, -1, 1) * 0.5 + 0.5, _DIVERGING)
        out = _blend_in(rgb, heat, d.alpha, fg)
        if d.grid_on_heatmap:
            out = _draw_grid(res, d, out, axis, index, fg)
        out[jac <= 0] = FOLD_COLOUR
        return out
    raise ValueError(f"unknown overlay {d.overlay!r}")


def frame(state: ViewerState, axis: int | None = None) -> np.ndarray:
    """The RGB frame (uint8, rows x cols x 3) of one view: 2-D ``axis=None``; 3-D ``axis`` in 0, 1, 2."""
    if state.fixed is None:
        raise ValueError("no fixed image")
    if state.fixed.ndim == 3 and axis not in (0, 1, 2):
        raise ValueError(f"a 3-D view needs axis 0, 1 or 2, got {axis!r}")
    if state.fixed.ndim == 2:
        axis = None
    d = state.display
    index = state.slices[axis] if axis is not None else 0
    (flo, fhi), (mlo, mhi) = _windows(state)
    fixed = _window(extract(state.fixed.data, axis, index), flo, fhi)
    fg = fixed > FOREGROUND if d.overlay != "none" else None
    other = state.moved_or_moving()
    moved = _window(extract(other, axis, index), mlo, mhi) if other is not None else None
    fl = extract(state.fixed_labels.data, axis, index) if state.fixed_labels is not None else None
    ml_arr = state.moved_labels_or_moving()
    ml = extract(ml_arr, axis, index) if ml_arr is not None else None

    if d.mode == "side_by_side":
        shape = fixed.shape
        f_rgb = _draw_labels(_grey(fixed), fl, d.label_mode, d.alpha)
        if state.moving is not None:
            mov = _window(_moving_slice(state, state.moving.data, axis), mlo, mhi)
            mov_lab = _moving_slice(state, state.moving_labels.data, axis) if state.moving_labels is not None else None
            m_rgb = _fit(_draw_labels(_grey(mov), mov_lab, d.label_mode, d.alpha), shape)
        else:
            m_rgb = np.zeros(shape + (3,), dtype=np.float32)
        if state.result is not None:
            r_rgb = _draw_labels(_grey(_window(extract(state.result.moved, axis, index), mlo, mhi)),
                                 ml if state.moved_labels is not None else None, d.label_mode, d.alpha)
            r_rgb = _overlay(state, r_rgb, axis, index, fg)
        else:
            r_rgb = np.zeros(shape + (3,), dtype=np.float32)
        out = np.concatenate([f_rgb, m_rgb, r_rgb], axis=1)
        return np.clip(out, 0, 255).astype(np.uint8)

    if moved is None:
        rgb = _grey(fixed)
    elif d.mode == "red_cyan":
        rgb = np.stack([fixed, moved, moved], axis=-1) * 255.0
    elif d.mode == "blend":
        rgb = _grey((1 - d.alpha) * fixed + d.alpha * moved)
    elif d.mode == "checkerboard":
        t = int(d.checker_tile)
        rr, cc = np.indices(fixed.shape)
        pick = ((rr // t + cc // t) % 2).astype(bool)
        rgb = _grey(np.where(pick, moved, fixed))
    elif d.mode == "difference":
        rgb = _apply_lut(np.clip((fixed - moved) * 0.5 + 0.5, 0, 1), _DIVERGING)
    else:
        raise ValueError(f"unknown mode {d.mode!r}")
    rgb = _draw_labels(rgb, fl, d.label_mode, d.alpha)
    rgb = _overlay(state, rgb, axis, index, fg)
    return np.clip(rgb, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# legend


def colour_bar(kind: str, width: int = 256, height: int = 14) -> np.ndarray:
    """A horizontal colour bar (uint8, height x width x 3) of the ``"heat"`` or ``"diverging"`` map."""
    lut = {"heat": _HEAT, "diverging": _DIVERGING}.get(kind)
    if lut is None:
        raise ValueError(f"kind must be 'heat' or 'diverging', got {kind!r}")
    row = _apply_lut(np.linspace(0.0, 1.0, width, dtype=np.float32), lut)
    return np.ascontiguousarray(np.broadcast_to(row[None], (height, width, 3)).astype(np.uint8))


def legend(state: ViewerState) -> list[tuple]:
    """What the colours of the current frame mean, as rows for the legend widget.

    Each row is ``("swatch", (r, g, b), text)``, ``("bar", kind, (lo, mid, hi), text)`` (a
    :func:`colour_bar`) or ``("text", text)``.
    """
    d = state.display
    rows: list[tuple] = []
    if d.mode == "side_by_side":
        rows.append(("text", "panels: fixed | moving | moved"))
    elif d.mode == "red_cyan":
        rows += [("swatch", (255, 0, 0), "fixed"), ("swatch", (0, 255, 255), "moved"),
                 ("swatch", (200, 200, 200), "both (aligned)")]
    elif d.mode == "blend":
        rows.append(("text", f"blend: {1 - d.alpha:.2f} fixed + {d.alpha:.2f} moved (alpha slider)"))
    elif d.mode == "checkerboard":
        rows.append(("text", f"checkerboard: fixed / moved tiles of {d.checker_tile} px"))
    elif d.mode == "difference":
        rows.append(("bar", "diverging", ("-1", "0", "+1"), "fixed - moved (windowed intensities)"))
    res = state.result
    if d.overlay != "none" and res is None:
        rows.append(("text", f"{d.overlay} overlay: press Register"))
    if res is not None and (d.overlay == "grid" or (d.grid_on_heatmap and d.overlay in ("displacement", "jacobian"))):
        rows.append(("swatch", tuple(int(v) for v in GRID_COLOUR), f"warped grid, every {d.grid_spacing} voxels"))
    if res is not None and d.overlay == "displacement":
        rows.append(("bar", "heat", ("0", "", f"{state.disp_max_mm():.1f} mm"), "displacement magnitude |u|"))
    elif res is not None and d.overlay == "jacobian":
        r = d.jac_range
        rows.append(("bar", "diverging", (f"{np.exp(-r):.2f}", "1", f"{np.exp(r):.2f}"),
                     "Jacobian determinant J (log scale): blue shrinks, red grows"))
        rows.append(("swatch", tuple(int(v) for v in FOLD_COLOUR),
                     f"folded, J <= 0: {res.folding['nonpositive_pct']:.3f} % of voxels"))
    if d.label_mode != "none" and state.fixed_labels is not None:
        rows.append(("text", f"labels ({d.label_mode}): colours as in the Dice table"))
    return rows
