"""Colour maps of the GUI, numpy only: image colour maps, heatmap LUTs, label colours, colour bars.

Every LUT is (256, 3) float32 RGB in 0..255; :func:`apply_lut` maps values in 0..1 through one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["CMAPS", "HEAT", "DIVERGING", "lut", "apply_lut", "colourise", "label_colours", "colour_bar"]


def lut(anchors: Sequence[Sequence[float]], n: int = 256) -> np.ndarray:
    """(n, 3) float32 LUT interpolating the RGB ``anchors`` (0..255) evenly from 0 to 1."""
    anchors = np.asarray(anchors, dtype=np.float32)
    x = np.linspace(0, 1, len(anchors))
    t = np.linspace(0, 1, n)
    return np.stack([np.interp(t, x, anchors[:, c]) for c in range(3)], axis=1).astype(np.float32)


HEAT = lut([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)])   # inferno-like
DIVERGING = lut([(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)])

#: Colour maps for the images (name -> LUT; "grey" is drawn without a LUT).
CMAPS = {
    "grey": lut([(0, 0, 0), (255, 255, 255)]),
    "hot": lut([(0, 0, 0), (230, 0, 0), (255, 210, 0), (255, 255, 255)]),
    "inferno": HEAT,
    "viridis": lut([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]),
    "bone": lut([(0, 0, 0), (84, 84, 116), (167, 199, 199), (255, 255, 255)]),
}


def apply_lut(values01: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(..., 3) float32 colours of values in 0..1 (clipped) through a LUT."""
    idx = np.clip((values01 * (len(table) - 1)).astype(np.int32), 0, len(table) - 1)
    return table[idx]


def colourise(img01: np.ndarray, cmap: str = "grey") -> np.ndarray:
    """(rows, cols, 3) float32 RGB 0..255 of a windowed image (0..1) in colour map ``cmap``."""
    if cmap == "grey":
        return np.repeat(img01[..., None] * 255.0, 3, axis=2)
    if cmap not in CMAPS:
        raise ValueError(f"cmap must be one of {list(CMAPS)}, got {cmap!r}")
    return apply_lut(img01, CMAPS[cmap])


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


def colour_bar(kind: str, width: int = 256, height: int = 14) -> np.ndarray:
    """A horizontal colour bar (uint8, height x width x 3) of ``"heat"``, ``"diverging"`` or an image cmap."""
    table = {"heat": HEAT, "diverging": DIVERGING, **CMAPS}.get(kind)
    if table is None:
        raise ValueError(f"kind must be 'heat', 'diverging' or one of {list(CMAPS)}, got {kind!r}")
    row = apply_lut(np.linspace(0.0, 1.0, width, dtype=np.float32), table)
    return np.ascontiguousarray(np.broadcast_to(row[None], (height, width, 3)).astype(np.uint8))
