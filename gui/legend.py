"""What the colours of the current frame mean: the rows of the legend in the info panel (Qt-free)."""

from __future__ import annotations

import numpy as np

__all__ = ["legend"]


def legend(state) -> list[tuple]:
    """What the colours of the current frame mean, as rows for the legend widget.

    Each row is ``("swatch", (r, g, b), text)``, ``("bar", kind, (lo, mid, hi), text)`` (a
    :func:`fnoreg_gui.colours.colour_bar`) or ``("text", text)``.
    """
    from .render import FOLD_COLOUR, GRID_COLOUR

    d = state.display
    rows: list[tuple] = []
    if d.flicker != "off":
        rows.append(("text", f"flicker: {d.flicker} alone (F toggles fixed / moved, Shift+F back to {d.mode})"))
    elif d.mode == "side_by_side":
        rows.append(("text", "panels: fixed | moving | moved"))
    elif d.mode == "red_cyan":
        rows += [("swatch", (255, 0, 0), "fixed"), ("swatch", (0, 255, 255), "moved"),
                 ("swatch", (200, 200, 200), "both (aligned)")]
    elif d.mode == "blend":
        rows.append(("text", f"blend: {1 - d.blend:.2f} fixed + {d.blend:.2f} moved (blend slider)"))
    elif d.mode == "checkerboard":
        rows.append(("text", f"checkerboard: fixed / moved tiles of {d.checker_tile} px"))
    elif d.mode == "difference":
        rows.append(("bar", "diverging", ("-1", "0", "+1"), "fixed - moved (windowed intensities)"))
    if d.cmap != "grey" and (d.flicker != "off" or d.mode in ("side_by_side", "blend", "checkerboard")):
        lo, hi = state.current_window() if d.window is not None else ("low", "high")
        rows.append(("bar", d.cmap, (f"{lo:.3g}" if d.window else lo, "", f"{hi:.3g}" if d.window else hi),
                     f"image colour map {d.cmap}"))
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
    if d.label_mode != "none" and (state.fixed_labels is not None or state.moved_labels_or_moving() is not None):
        both = (d.label_layers == "both" and d.mode != "side_by_side" and d.flicker == "off"
                and state.moved_labels_or_moving() is not None)
        what = f"fixed {d.label_mode}, moved dotted contours" if both else f"{d.label_layers} labels ({d.label_mode})"
        rows.append(("text", f"labels: {what}; colours as in the Dice table"))
    if state.landmarks:
        rows.append(("swatch", (255, 60, 200), f"{len(state.landmarks)} landmark(s); in the moving panel: where "
                                                "the transform sends them"))
    return rows
