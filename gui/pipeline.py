"""Qt-free work behind the buttons: load a model, register a pair in stages, save outputs.

The Qt worker (:mod:`fnoreg_gui.worker`) runs :func:`register_pair` in a thread; everything here is
callable (and tested) without Qt. Nothing imports torch.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .state import ViewerState, Volume

__all__ = ["Cancelled", "ModelCache", "check_model_fits", "register_pair", "save_outputs", "OUTPUT_NAMES"]


class Cancelled(Exception):
    """The user cancelled; raised between stages."""


#: File names written by :func:`save_outputs` (key -> name).
OUTPUT_NAMES = {
    "moved": "moved.nii.gz",
    "warp": "warp_itk.nii.gz",
    "jacobian": "jacobian.nii.gz",
    "moved_labels": "moved_labels.nii.gz",
    "report": "report.json",
}


def check_model_fits(card: Any, fixed: Volume) -> None:
    """Raise ImageError (saying what to do) unless the model takes images like ``fixed``.

    Checks the dimensionality and the model card's minimum size per axis. Larger sizes and sizes
    that are not a multiple of ``card.size_multiple`` are fine: the runtime resizes them.

    Raises
    ------
    fnoreg_core.io.ImageError
    """
    from fnoreg_core.io import ImageError

    if card.dims != fixed.ndim:
        raise ImageError(f"the model {card.name} is {card.dims}-D but the images are {fixed.ndim}-D {fixed.shape}; "
                         f"choose a {fixed.ndim}-D model (Model > bundled models, or Open model...) or open "
                         f"{card.dims}-D images")
    small = [(n, lo) for n, lo in zip(fixed.shape, card.min_size) if n < lo]
    if small:
        raise ImageError(f"the images are {'x'.join(map(str, fixed.shape))} voxels, below the minimum of the model "
                         f"{card.name} ({'x'.join(map(str, card.min_size))}; trained at "
                         f"{'x'.join(map(str, card.train_resolution))}). Open images with at least that many "
                         f"voxels per axis (resample them to a finer spacing), or choose a model made for smaller "
                         f"images")


class ModelCache:
    """One loaded :class:`fnoreg_export.runtime.Registrator`, reloaded when path or backend change."""

    def __init__(self) -> None:
        self._key: tuple[str, str] | None = None
        self.registrator: Any = None

    def get(self, path: str | Path, backend: str = "auto", threads: int | None = None):
        from fnoreg_export.runtime import Registrator

        key = (str(Path(path).resolve()), backend)
        if self._key != key or self.registrator is None:
            self.registrator = Registrator.load(path, backend=backend, threads=threads)
            self._key = key
        return self.registrator


def register_pair(fixed: Volume, moving: Volume, model_path: str | Path, backend: str = "auto", *,
                  moving_labels: Volume | None = None, cache: ModelCache | None = None,
                  progress: Callable[[int, str], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> tuple[Any, np.ndarray | None, float]:
    """Register ``moving`` to ``fixed`` in stages (load model, register, warp labels).

    ``progress(percent, message)`` is called at every stage; ``cancelled()`` is checked between
    stages. A network call in flight is aborted by ``cache.registrator.interrupt()`` from another
    thread (onnxruntime backends), which ends here as :class:`Cancelled`; TensorRT runs to completion
    and its result is dropped. Returns ``(result, moved_labels or None, seconds)``.

    Raises
    ------
    Cancelled, fnoreg_export.model_card.ModelCardError, fnoreg_export.runtime.BackendError,
    fnoreg_core.io.ImageError
    """
    from fnoreg_export.runtime import RunInterrupted

    progress = progress or (lambda p, m: None)
    cancelled = cancelled or (lambda: False)
    t0 = time.perf_counter()

    def check():
        if cancelled():
            raise Cancelled("registration cancelled")

    progress(5, "loading the model")
    cache = cache or ModelCache()
    reg = cache.get(model_path, backend)
    check()
    check_model_fits(reg.card, fixed)
    progress(20, f"registering on {reg.backend}")
    try:
        result = reg.register(fixed.data, moving.data, fixed_affine=fixed.affine, moving_affine=moving.affine)
    except RunInterrupted:
        raise Cancelled("registration cancelled") from None
    check()
    moved_labels = None
    if moving_labels is not None:
        progress(85, "warping labels")
        moved_labels = reg.warp_labels(moving_labels.data, result, moving_labels.affine)
        check()
    progress(100, "done")
    return result, moved_labels, time.perf_counter() - t0


def save_outputs(state: ViewerState, folder: str | Path, which: tuple[str, ...] | None = None) -> list[Path]:
    """Write the result: moved image, ITK displacement field, Jacobian, moved labels, report JSON.

    Everything lies on the fixed grid with the fixed affine. ``which`` picks keys of
    :data:`OUTPUT_NAMES` (default: all that exist). Returns the written paths.

    Raises
    ------
    ValueError
        No result yet (press Register first).
    """
    from fnoreg_core.io import save_image, save_warp_itk

    res = state.result
    if res is None:
        raise ValueError("nothing to save yet: press Register first")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    which = tuple(OUTPUT_NAMES) if which is None else which
    unknown = set(which) - set(OUTPUT_NAMES)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; choose from {list(OUTPUT_NAMES)}")
    aff = state.fixed.affine
    written: list[Path] = []
    if "moved" in which:
        written.append(save_image(res.moved, aff, folder / OUTPUT_NAMES["moved"]))
    if "warp" in which:
        written.append(save_warp_itk(res.ddf_mm_lps, aff, folder / OUTPUT_NAMES["warp"]))
    if "jacobian" in which:
        written.append(save_image(res.jacobian, aff, folder / OUTPUT_NAMES["jacobian"]))
    if "moved_labels" in which and state.moved_labels is not None:
        written.append(save_image(state.moved_labels, aff, folder / OUTPUT_NAMES["moved_labels"]))
    if "report" in which:
        path = folder / OUTPUT_NAMES["report"]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state.report(), indent=2, default=_json_default))
        tmp.replace(path)
        written.append(path)
    return written


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
