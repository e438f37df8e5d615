"""Images and label maps as the GUI holds them: :class:`Volume`, :func:`load_volume`, display windows.

Qt-free (numpy; Pillow or, without it, Qt's QImage for 2-D rasters). :func:`window_preset` gives the
window/level presets of the Display box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Volume", "load_volume", "robust_window", "window_preset", "WINDOW_PRESETS", "RASTER_SUFFIXES"]

#: 2-D raster formats read with Pillow (or Qt's QImage when Pillow is absent).
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

#: Window presets (name -> low and high percentile of the image's intensities).
WINDOW_PRESETS = {"robust 0.5-99.5 %": (0.5, 99.5), "wide 0-100 % (min-max)": (0.0, 100.0),
                  "1-99 %": (1.0, 99.0), "soft 5-95 %": (5.0, 95.0), "bright 20-99.9 %": (20.0, 99.9)}


@dataclass
class Volume:
    """An image or label map: array (X, Y[, Z]) in RAS array order, its affine and where it came from."""

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    labels: bool = False
    window: tuple[float, float] = (0.0, 1.0)
    #: (shape, affine) of the grid it was resampled from (:meth:`ViewerState.resample_moving_to_fixed`)
    source_grid: tuple[tuple[int, ...], np.ndarray] | None = None

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def robust_window(data: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5) -> tuple[float, float]:
    """Display window (lo, hi) from percentiles of a subsample (fast on 1 mm brains)."""
    flat = np.asarray(data, dtype=np.float32).ravel()
    if flat.size > 1_000_000:
        flat = flat[:: flat.size // 1_000_000 + 1]
    lo, hi = (float(v) for v in np.percentile(flat, [lo_pct, hi_pct]))
    if not hi > lo:
        lo, hi = float(flat.min()), float(flat.max())
        if not hi > lo:
            hi = lo + 1.0
    return lo, hi


def _read_raster(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:  # Qt is there whenever the GUI runs
        from PySide6.QtGui import QImage

        qimg = QImage(str(path))
        if qimg.isNull():
            raise ValueError("Qt cannot read it")
        qimg = qimg.convertToFormat(QImage.Format.Format_Grayscale8)
        w, h, bpl = qimg.width(), qimg.height(), qimg.bytesPerLine()
        buf = np.frombuffer(qimg.constBits(), dtype=np.uint8, count=h * bpl).reshape(h, bpl)
        return buf[:, :w].astype(np.float32)
    with Image.open(path) as img:
        img.seek(0)
        if img.mode in ("I;16", "I;16B", "I", "F"):
            arr = np.asarray(img, dtype=np.float32)
        else:
            arr = np.asarray(img.convert("L"), dtype=np.float32)
    return arr


def load_volume(path: str | Path, labels: bool = False) -> Volume:
    """Open NIfTI / MGZ (via :func:`fnoreg_core.io.load_image`) or a 2-D PNG/JPG/TIFF/BMP.

    Raster images are read as grey values; array order (X, Y) with X = column and Y = row counted
    from the bottom (so they display upright), identity affine (1 mm pixels).

    Raises
    ------
    fnoreg_core.io.ImageError
        Missing or unreadable file, unsupported format, 4-D data, non-finite values, non-integer labels.
    """
    from fnoreg_core.io import IMAGE_SUFFIXES, ImageError, load_image

    path = Path(path)
    name = path.name.lower()
    if name.endswith(RASTER_SUFFIXES):
        try:
            is_file = path.is_file()
        except OSError as exc:  # a name too long for the file system
            raise ImageError(f"cannot open {str(path)[:120]}: {exc.strerror or exc}") from None
        if not is_file:
            raise ImageError(f"image {path} does not exist; check the path")
        try:
            img = _read_raster(path)
        except Exception as exc:
            raise ImageError(f"{path} is not a readable image ({type(exc).__name__}: {exc}); "
                             f"expected PNG, JPG, TIFF or BMP") from None
        from fnoreg_export.runtime.inputs import as_image

        # the runtime's one validation layer: finite values, integer labels within 32 bits, >= 2 pixels
        data, _ = as_image(np.ascontiguousarray(img[::-1, :].T), None, path.name, dims=2, labels=labels)
        if labels:
            data = data.astype(np.int32)
        return Volume(data=data, affine=np.eye(4), path=path, labels=labels,
                      window=(0.0, 1.0) if labels else robust_window(data))
    if not name.endswith(IMAGE_SUFFIXES):
        raise ImageError(f"{path.name}: unsupported file type; open NIfTI/MGZ ({', '.join(IMAGE_SUFFIXES)}) "
                         f"or, for 2-D, {', '.join(RASTER_SUFFIXES)}")
    li = load_image(path, canonical=True, labels=labels)
    return Volume(data=li.data, affine=li.affine, path=path, labels=labels,
                  window=(0.0, 1.0) if labels else robust_window(li.data))




def window_preset(data: np.ndarray, name: str) -> tuple[float, float]:
    """The display window (lo, hi) of preset ``name`` (:data:`WINDOW_PRESETS`) for an image.

    Raises
    ------
    ValueError
        Unknown preset name.
    """
    if name not in WINDOW_PRESETS:
        raise ValueError(f"window preset must be one of {list(WINDOW_PRESETS)}, got {name!r}")
    return robust_window(data, *WINDOW_PRESETS[name])
