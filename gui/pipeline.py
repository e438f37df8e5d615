"""Qt-free work behind the buttons: load a model, register a pair in stages, save outputs.

The Qt worker (:mod:`fnoreg_gui.worker`) runs :func:`register_pair` in a thread; everything here is
callable (and tested) without Qt. Nothing imports torch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fnoreg_export.runtime.outputs import OUTPUT_FILES

from .state import ViewerState, Volume

__all__ = ["Cancelled", "ModelCache", "check_model_fits", "register_pair", "save_outputs", "OUTPUT_NAMES"]


class Cancelled(Exception):
    """The user cancelled; raised between stages."""


#: File names written by :func:`save_outputs` (key -> name): the runtime writer's, as fnoreg-register.
OUTPUT_NAMES = OUTPUT_FILES


def check_model_fits(card: Any, fixed: Volume) -> None:
    """Raise ImageError (saying what to do) unless the model takes images like ``fixed``.

    Checks the dimensionality and the model card's minimum size per axis
    (:func:`fnoreg_export.runtime.check_size`, the rule the runtime enforces). Larger sizes and sizes
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
    from fnoreg_export.runtime import check_size

    check_size(card, fixed.shape)


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
                  cancelled: Callable[[], bool] | None = None, pipeline: Any = None,
                  stage_labels: dict[str, np.ndarray] | None = None) -> tuple[Any, np.ndarray | None, float]:
    """Register ``moving`` to ``fixed`` in stages (load model, register, warp labels).

    ``progress(percent, message)`` is called at every stage; ``cancelled()`` is checked between
    stages. A network call in flight is aborted by ``cache.registrator.interrupt()`` from another
    thread (onnxruntime backends), which ends here as :class:`Cancelled`; TensorRT runs to completion
    and its result is dropped. ``pipeline``: the stages (:class:`fnoreg_export.runtime.PipelineOptions`,
    default the runtime's); with ``moving_labels``, ``stage_labels`` (a dict) receives the labels after
    each earlier stage. Returns ``(result, moved_labels or None, seconds)``.

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
    steps = {"affine": (20, "affine pre-alignment"), "network": (40, f"network on {reg.backend}"),
             "refine": (55, "refining"), "warp": (80, "warping")}

    def on_stage(stage: str, fraction: float) -> None:
        if stage in steps:
            pct, msg = steps[stage]
            if stage == "refine" and fraction > 0.5:
                pct = int(55 + (fraction - 0.5) / 0.4 * 25)
            progress(pct, msg)

    try:
        result = reg.register(fixed=fixed.data, moving=moving.data, fixed_affine=fixed.affine,
                              moving_affine=moving.affine, pipeline=pipeline,
                              keep_stages=moving_labels is not None, progress=on_stage)
    except RunInterrupted:
        raise Cancelled("registration cancelled") from None
    check()
    moved_labels = None
    if moving_labels is not None:
        progress(85, "warping labels")
        moved_labels = reg.warp_labels(moving_labels.data, result, moving_labels.affine)
        if stage_labels is not None:
            for stage in result.stage_ddf_mm:
                stage_labels[stage] = reg.warp_labels(moving_labels.data, result, moving_labels.affine, stage=stage)
        check()
    progress(100, "done")
    return result, moved_labels, time.perf_counter() - t0


def save_outputs(state: ViewerState, folder: str | Path, which: tuple[str, ...] | None = None,
                 overwrite: bool = False) -> list[Path]:
    """Write the result with the runtime's writer (:func:`fnoreg_export.runtime.outputs.write_outputs`).

    The files, their names and report.json's keys are those of ``fnoreg-register``, on the fixed
    image's own grid as stored in its file (the GUI works on its RAS+ reorientation; the writer maps
    back). Written to a private staging folder and moved into place when complete. ``which`` picks
    keys of ``OUTPUT_FILES`` (default: all that exist). Returns the written paths. The output rule
    (:mod:`fnoreg_core.staging`): files already in ``folder`` are replaced only with ``overwrite``
    and only when an earlier fnoreg save wrote them; a user's file is never replaced.

    Raises
    ------
    ValueError
        No result yet (press Register first), or unknown keys in ``which``.
    fnoreg_core.staging.OutputError (a ValueError)
        A file is in the way (nothing was written; ``overwrite`` replaces the tool's own earlier files),
        or another run is writing to ``folder``.
    """
    from fnoreg_core.staging import StagedOutputs
    from fnoreg_export.runtime.outputs import dice_report, model_info, write_outputs

    res = state.result
    if res is None:
        raise ValueError("nothing to save yet: press Register first")
    which = tuple(OUTPUT_FILES) if which is None else tuple(which)
    unknown = set(which) - set(OUTPUT_FILES)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; choose from {list(OUTPUT_FILES)}")
    dice = None
    if state.moved_labels is not None and state.fixed_labels is not None and state.moving_labels is not None:
        ml = state.moving_labels
        dice = dice_report(res, state.moved_labels, state.fixed_labels.data, ml.data,
                           moving_labels_affine=ml.affine)
    paths = {k: getattr(getattr(state, k, None), "path", None)
             for k in ("fixed", "moving", "moving_labels", "fixed_labels")}
    card = state.card
    model = model_info(path=state.model_path, card=card, backend=res.backend)
    staged = StagedOutputs(how="files", overwrite=overwrite, tool="fnoreg-gui")
    staged.check(folder, [OUTPUT_FILES[k] for k in which  # before creating anything
                          if k != "moved_labels" or state.moved_labels is not None])
    with staged:
        report = write_outputs(staged.folder(Path(folder)), res, moved_labels=state.moved_labels,
                               native_grid=_native_grid(state.fixed), which=which,
                               name=Path(paths["fixed"]).name if paths["fixed"] else "pair", inputs=paths,
                               model=model, dice=dice)
    return [Path(folder) / OUTPUT_FILES[k] for k in OUTPUT_FILES if k in report["outputs"]]


def _native_grid(fixed: Volume) -> tuple[tuple[int, ...], np.ndarray] | None:
    """(shape, affine) of a 3-D fixed image as stored in its NIfTI/MGZ file (header only), else None.

    2-D images (rasters, single-slice NIfTI) are written on the grid they were loaded on.
    """
    from fnoreg_core.geometry import squeeze_shape
    from fnoreg_core.io import IMAGE_SUFFIXES

    path = fixed.path
    if fixed.ndim != 3 or path is None or not str(path).lower().endswith(IMAGE_SUFFIXES) or not Path(path).is_file():
        return None
    import nibabel as nib

    img = nib.load(str(path))
    return squeeze_shape(img.shape, fixed.ndim), np.asarray(img.affine, dtype=np.float64)
