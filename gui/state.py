"""The GUI's state, Qt-free: images, labels, the registration result, display settings, slices.

Widgets observe a :class:`ViewerState` (``state.subscribe(callback)``; the callback receives one
event name from :data:`EVENTS`) and draw the RGB frames that :mod:`fnoreg_gui.render` composes from
it. Everything here is plain Python + numpy, so the logic is tested without drawing anything.
Zoom/pan, orientation, layout, the hovered voxel and landmarks live in :mod:`fnoreg_gui.view_state`
(mixed into :class:`ViewerState`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .colours import CMAPS
from .view_state import LAYOUTS, ViewSettings, ViewStateMixin
from .volume import RASTER_SUFFIXES, Volume, load_volume, robust_window

__all__ = ["Volume", "ViewerState", "Display", "MODES", "OVERLAYS", "LABEL_MODES", "LABEL_LAYERS", "FLICKER",
           "EVENTS", "LAYOUTS", "RASTER_SUFFIXES", "load_volume", "robust_window"]

#: Display modes: how fixed and moved (before registration: moving) are shown together.
MODES = ("side_by_side", "red_cyan", "blend", "checkerboard", "difference")
#: Deformation overlays (need a registration result).
OVERLAYS = ("none", "grid", "displacement", "jacobian")
#: How label maps are drawn.
LABEL_MODES = ("none", "fill", "contour")
#: Which label maps the compare modes draw: "both" = fixed (as ``label_mode``) + moved (dotted contours).
LABEL_LAYERS = ("both", "fixed", "moved")
#: Flicker: one image alone in every view (the F key toggles fixed / moved); "off" shows ``mode``.
FLICKER = ("off", "fixed", "moved")
#: Event names passed to observers. "view": zoom / pan; "layout": layout / maximised view;
#: "cursor": the voxel under the mouse; "landmarks": landmarks added or removed.
EVENTS = ("images", "labels", "result", "display", "slice", "model", "view", "layout", "cursor", "landmarks")


@dataclass
class Display:
    """Display settings (all plain values). Each opacity belongs to one layer; none doubles as another."""

    mode: str = "side_by_side"
    overlay: str = "none"
    label_mode: str = "none"
    label_layers: str = "both"   # see LABEL_LAYERS
    blend: float = 0.5           # blend mode only: weight of the moved image (0 fixed .. 1 moved)
    overlay_opacity: float = 0.6  # |u| / Jacobian heatmap and warped grid
    label_opacity: float = 0.45  # filled labels (contours are opaque)
    cmap: str = "grey"           # colour map of the images (side by side, blend, checkerboard, flicker)
    checker_tile: int = 16       # checkerboard tile, pixels
    grid_spacing: int = 8        # warped grid line spacing, voxels
    grid_on_heatmap: bool = False  # also draw the warped grid over the |u| / Jacobian heatmaps
    window: tuple[float, float] | None = None  # None: each image's own robust window
    jac_range: float = 1.0       # Jacobian heatmap: |log J| mapped to full colour at this value
    disp_max_mm: float | None = None  # |u| heatmap: full colour at this (None: the field's 99th pct)
    flicker: str = "off"         # see FLICKER


_CHOICES = {"mode": MODES, "overlay": OVERLAYS, "label_mode": LABEL_MODES, "label_layers": LABEL_LAYERS,
            "flicker": FLICKER, "cmap": tuple(CMAPS)}


class ViewerState(ViewStateMixin):
    """Everything the app shows, with Qt-free observers.

    Attributes are read freely; change them through the ``set_*`` / ``load_*`` methods, which
    validate, update and notify observers with an event from :data:`EVENTS`.
    """

    def __init__(self) -> None:
        self.fixed: Volume | None = None
        self.moving: Volume | None = None
        self.fixed_labels: Volume | None = None
        self.moving_labels: Volume | None = None
        self.result: Any = None              # fnoreg_export.runtime.RegistrationResult
        self.moved_labels: np.ndarray | None = None
        self.model_path: Path | None = None
        self.backend: str = "auto"
        self.card: Any = None                # fnoreg_export.model_card.ModelCard
        self.label_names: dict[int, str] = {}  # label value -> name (shown in the Dice table)
        self.display = Display()
        self.slices: list[int] = [0, 0, 0]   # crosshair, voxel index per array axis
        self.view = ViewSettings()           # zoom/pan, orientation, layout (fnoreg_gui.view_state)
        self.hover: tuple[int, ...] | None = None  # voxel under the mouse (None: outside the views)
        self.landmarks: list[tuple[float, ...]] = []  # fixed-grid voxel coordinates (array order)
        self.affine_mode: str = "auto"       # the pipeline's affine stage: auto | rigid | none
        self.refine_iterations: int = 40     # coarse refinement iterations (0: off); fine level as the CLI's
        self.stage_moved_labels: dict[str, np.ndarray] = {}  # moving labels after each earlier stage
        self._observers: list[Callable[[str], None]] = []
        self._disp_max_cache: float | None = None

    # -- observers ---------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after every change; returns a function that unsubscribes."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    def _emit(self, event: str) -> None:
        for cb in list(self._observers):
            cb(event)

    # -- derived -----------------------------------------------------------------------------
    @property
    def ndim(self) -> int | None:
        return self.fixed.ndim if self.fixed is not None else None

    @property
    def shape(self) -> tuple[int, ...] | None:
        return self.fixed.shape if self.fixed is not None else None

    @property
    def same_grid(self) -> bool:
        """Fixed and moving share one grid (shape and affine): they can be compared before registration."""
        if self.fixed is None or self.moving is None:
            return False
        return self.fixed.shape == self.moving.shape and np.allclose(self.fixed.affine, self.moving.affine, atol=1e-4)

    def moved_or_moving(self) -> np.ndarray | None:
        """What is compared with the fixed image: the moved image, else the moving one if on the fixed grid."""
        if self.result is not None:
            return self.result.moved
        if self.same_grid:
            return self.moving.data
        return None

    def moved_labels_or_moving(self) -> np.ndarray | None:
        if self.moved_labels is not None:
            return self.moved_labels
        if self.moving_labels is not None and self.fixed is not None and self.moving_labels.shape == self.fixed.shape \
                and self.same_grid:
            return self.moving_labels.data
        return None

    def disp_max_mm(self) -> float:
        if self.display.disp_max_mm is not None:
            return self.display.disp_max_mm
        if self._disp_max_cache is None and self.result is not None:
            mag = np.sqrt((self.result.ddf_mm.astype(np.float32) ** 2).sum(axis=0)).ravel()
            mag = mag[:: max(1, mag.size // 500_000)]
            self._disp_max_cache = max(float(np.percentile(mag, 99)), 1e-3)
        return self._disp_max_cache or 1.0

    # -- loading -----------------------------------------------------------------------------
    def load_pair(self, fixed: str | Path | Volume, moving: str | Path | Volume) -> None:
        """Open a fixed/moving pair (both 2-D or both 3-D). Clears labels and any result.

        Raises ImageError (fnoreg_core.io) with a message that says what to do.
        """
        from fnoreg_core.io import ImageError

        f = fixed if isinstance(fixed, Volume) else load_volume(fixed)
        m = moving if isinstance(moving, Volume) else load_volume(moving)
        if f.ndim != m.ndim:
            raise ImageError(f"fixed is {f.ndim}-D {f.shape} but moving is {m.ndim}-D {m.shape}; "
                             "open two 2-D or two 3-D images")
        self.fixed, self.moving = f, m
        self.fixed_labels = self.moving_labels = None
        self.label_names = {}
        self._clear_result()
        self.slices = [n // 2 for n in f.shape] + [0] * (3 - f.ndim)
        self._new_grid()
        self._emit("images")

    def load_image(self, role: str, source: str | Path | Volume) -> None:
        """Replace one image (``role`` = "fixed" or "moving"); the other must match its dimensionality."""
        from fnoreg_core.io import ImageError

        if role not in ("fixed", "moving"):
            raise ValueError(f"role must be 'fixed' or 'moving', got {role!r}")
        vol = source if isinstance(source, Volume) else load_volume(source)
        other = self.moving if role == "fixed" else self.fixed
        if other is not None and other.ndim != vol.ndim:
            raise ImageError(f"the {role} image is {vol.ndim}-D {vol.shape} but the other one is {other.ndim}-D; "
                             "open images of one dimensionality")
        setattr(self, role, vol)
        if role == "fixed":
            self.fixed_labels = None
            self.slices = [n // 2 for n in vol.shape] + [0] * (3 - vol.ndim)
            self._new_grid()
        else:
            self.moving_labels = None
        self._clear_result()
        self._emit("images")

    def load_labels(self, role: str, source: str | Path | Volume) -> None:
        """Attach a label map to the fixed or moving image (same shape as that image)."""
        from fnoreg_core.io import ImageError

        img = self.fixed if role == "fixed" else self.moving if role == "moving" else None
        if role not in ("fixed", "moving"):
            raise ValueError(f"role must be 'fixed' or 'moving', got {role!r}")
        if img is None:
            raise ImageError(f"open the {role} image before its labels")
        vol = source if isinstance(source, Volume) else load_volume(source, labels=True)
        if vol.shape != img.shape and img.source_grid is not None and vol.shape == img.source_grid[0]:
            from fnoreg_export.runtime import resample_to_grid  # labels of a resampled image follow it

            vol = Volume(data=np.asarray(resample_to_grid(vol.data, img.shape, img.affine, vol.affine, labels=True)),
                         affine=img.affine.copy(), path=vol.path, labels=True)
        if vol.shape != img.shape:
            raise ImageError(f"the {role} labels have shape {vol.shape} but the {role} image has {img.shape}; "
                             f"open the label map made for this image")
        vol.labels = True
        vol.data = np.asarray(vol.data).astype(np.int32, copy=False)
        setattr(self, f"{role}_labels", vol)
        if role == "moving":
            self.moved_labels = None
            if self.result is not None:
                from fnoreg_export.runtime import warp_labels

                self.moved_labels = warp_labels(vol.data, self.result, vol.affine)
        self._emit("labels")

    def resample_moving_to_fixed(self) -> None:
        """Put the moving image (and its labels) on the fixed grid through the two affines (world
        coordinates; linear for the image, nearest for labels; outside its field of view: 0).

        Before registration the compare modes then show both; registering gives the same field as on
        the original grid (the runtime does this resampling itself).
        """
        from fnoreg_export.runtime import resample_to_grid

        if self.fixed is None or self.moving is None:
            raise ValueError("open a fixed and a moving image first")
        f, m = self.fixed, self.moving
        data = resample_to_grid(m.data, f.shape, f.affine, m.affine)
        self.moving = Volume(data=np.asarray(data, dtype=np.float32), affine=f.affine.copy(), path=m.path,
                             window=m.window, source_grid=(m.shape, m.affine))
        if self.moving_labels is not None:
            ml = self.moving_labels
            lab = resample_to_grid(ml.data, f.shape, f.affine, ml.affine, labels=True)
            self.moving_labels = Volume(data=np.asarray(lab, dtype=np.int32), affine=f.affine.copy(), path=ml.path,
                                        labels=True)
        self._clear_result()
        self._emit("images")

    def set_model(self, path: str | Path | None, card: Any = None, backend: str | None = None) -> None:
        self.model_path = Path(path) if path is not None else None
        self.card = card
        if backend is not None:
            self.backend = backend
        self._emit("model")

    # -- result ------------------------------------------------------------------------------
    def set_pipeline(self, affine_mode: str | None = None, refine_iterations: int | None = None) -> None:
        """Choose the stages the next registration runs (affine: auto | rigid | none; refinement
        iterations at the coarse level, 0 = off)."""
        if affine_mode is not None:
            if affine_mode not in ("auto", "rigid", "none"):
                raise ValueError(f"affine mode must be auto, rigid or none, got {affine_mode!r}")
            self.affine_mode = affine_mode
        if refine_iterations is not None:
            if not isinstance(refine_iterations, (int, np.integer)) or not 0 <= refine_iterations <= 1000:
                raise ValueError(f"refinement iterations must be an integer in [0, 1000], got {refine_iterations!r}")
            self.refine_iterations = int(refine_iterations)
        self._emit("model")

    def pipeline_options(self, threads: int | None = None):
        """The :class:`fnoreg_export.runtime.PipelineOptions` of the current settings."""
        from fnoreg_export.runtime import PipelineOptions, parse_refine

        refine = parse_refine(str(self.refine_iterations)) if self.refine_iterations > 0 else None
        return PipelineOptions(affine=self.affine_mode, refine=refine, work_res="auto", threads=threads)

    def stage_table(self) -> list[tuple[str, float | None, float]]:
        """Rows (stage, mean Dice after it or None, seconds) of the last registration."""
        from fnoreg_core.metrics import mean_dice

        if self.result is None:
            return []
        fl = self.fixed_labels.data if self.fixed_labels is not None else None
        rows: list[tuple[str, float | None, float]] = []
        if fl is not None and self.moving_labels is not None and self.same_grid:
            rows.append(("none", mean_dice(self.moving_labels.data, fl), 0.0))
        stages = [r for r in getattr(self.result, "stages", []) if r["stage"] != "working_grid"]
        for k, r in enumerate(stages):
            labels = self.moved_labels if k == len(stages) - 1 else self.stage_moved_labels.get(r["stage"])
            dice = mean_dice(labels, fl) if fl is not None and labels is not None else None
            rows.append((r["stage"], dice, float(r.get("seconds", 0.0))))
        return rows

    def _clear_result(self) -> None:
        self.result = None
        self.moved_labels = None
        self.stage_moved_labels = {}
        self._disp_max_cache = None

    def set_result(self, result: Any, moved_labels: np.ndarray | None = None,
                   stage_moved_labels: dict[str, np.ndarray] | None = None) -> None:
        """Store a registration result (on the fixed grid), the warped moving labels and the moving
        labels after each earlier stage (for :meth:`stage_table`)."""
        if self.fixed is None:
            raise ValueError("no fixed image")
        if tuple(result.moved.shape) != self.fixed.shape:
            raise ValueError(f"result of shape {tuple(result.moved.shape)} does not match the fixed image {self.fixed.shape}")
        self.result = result
        self.moved_labels = moved_labels
        self.stage_moved_labels = dict(stage_moved_labels or {})
        self._disp_max_cache = None
        self._emit("result")

    def dice_table(self) -> list[tuple[int, float | None, float | None]]:
        """Rows (label, Dice before, Dice after) against the fixed labels; None where not available."""
        from fnoreg_core.metrics import dice_per_label

        if self.fixed_labels is None:
            return []
        fl = self.fixed_labels.data
        before: dict[int, float] = {}
        if self.moving_labels is not None and self.same_grid:
            before = dice_per_label(fl, self.moving_labels.data)
        after: dict[int, float] = dice_per_label(fl, self.moved_labels) if self.moved_labels is not None else {}
        keys = sorted(set(before) | set(after))
        return [(k, before.get(k), after.get(k)) for k in keys]

    # -- display -----------------------------------------------------------------------------
    def set_display(self, **changes: Any) -> None:
        """Change display settings (fields of :class:`Display`); one "display" event.

        Raises
        ------
        ValueError
            Unknown setting, a value outside its choices, or a window without high > low.
        """
        d = self.display
        for key, value in changes.items():
            if not hasattr(d, key):
                raise ValueError(f"unknown display setting {key!r}; expected one of {list(vars(d))}")
            if key in _CHOICES and value not in _CHOICES[key]:
                raise ValueError(f"{key} must be one of {_CHOICES[key]}, got {value!r}")
            if key in ("blend", "overlay_opacity", "label_opacity", "checker_tile", "grid_spacing"):
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = float("nan")
                if isinstance(value, bool) or not np.isfinite(number):
                    raise ValueError(f"{key} must be a finite number, got {value!r}")
                value = float(np.clip(number, 0.0, 1.0)) if key in ("blend", "overlay_opacity", "label_opacity") \
                    else int(min(max(2, number), 4096))
            if key == "grid_on_heatmap":
                value = bool(value)
            if key == "window" and value is not None:
                lo, hi = (float(v) for v in value)
                if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                    raise ValueError(f"window needs finite values with high > low, got low {lo:g}, high {hi:g}")
                value = (lo, hi)
            setattr(d, key, value)
        self._emit("display")

    def set_slice(self, axis: int, index: int) -> None:
        """Move the crosshair along one array axis (clamped to the image)."""
        if self.fixed is None:
            return
        if not 0 <= axis < self.fixed.ndim:
            raise ValueError(f"axis {axis} out of range for a {self.fixed.ndim}-D image")
        n = self.fixed.shape[axis]
        index = int(np.clip(index, 0, n - 1))
        if self.slices[axis] != index:
            self.slices[axis] = index
            self._emit("slice")

    def set_crosshair(self, point: tuple[int, ...]) -> None:
        if self.fixed is None:
            return
        changed = False
        for axis, v in enumerate(point[: self.fixed.ndim]):
            v = int(np.clip(v, 0, self.fixed.shape[axis] - 1))
            if self.slices[axis] != v:
                self.slices[axis] = v
                changed = True
        if changed:
            self._emit("slice")

    # -- report ------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """JSON-ready report: inputs, model, the result's summary, Dice before/after."""
        rep: dict[str, Any] = {
            "fixed": str(self.fixed.path) if self.fixed is not None and self.fixed.path else None,
            "moving": str(self.moving.path) if self.moving is not None and self.moving.path else None,
            "fixed_labels": str(self.fixed_labels.path) if self.fixed_labels is not None and self.fixed_labels.path else None,
            "moving_labels": str(self.moving_labels.path) if self.moving_labels is not None and self.moving_labels.path else None,
            "model": str(self.model_path) if self.model_path else None,
            "model_card": self.card.to_dict() if self.card is not None and hasattr(self.card, "to_dict") else None,
        }
        if self.result is not None:
            rep["result"] = self.result.summary()
        rows = self.dice_table()
        if rows:
            rep["dice"] = {str(k): {"before": b, "after": a} for k, b, a in rows}
            bs = [b for _, b, _ in rows if b is not None]
            as_ = [a for _, _, a in rows if a is not None]
            rep["mean_dice_before"] = float(np.mean(bs)) if bs else None
            rep["mean_dice_after"] = float(np.mean(as_)) if as_ else None
        return rep
