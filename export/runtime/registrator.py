"""The registration pipeline: an exported model run as a sequence of stages (numpy; no torch).

(Over 500 lines on purpose: one class whose stage methods share the ``_Work`` record, so the
whole pipeline reads in one place; the stage helpers live in :mod:`.stages`.)

>>> from fnoreg_export.runtime import Registrator
>>> reg = Registrator.load("fnoreg-3d.onnx", threads=4)                                   # doctest: +SKIP
>>> result = reg.register(fixed=nib.load("fixed.nii.gz"), moving=nib.load("moving.nii.gz"))  # doctest: +SKIP
>>> result.moved.shape, result.ddf_mm.shape, result.folding["nonpositive_pct"]          # doctest: +SKIP

The stages of :meth:`Registrator.register` (each timed in ``result.timings`` under its name)
---------------------------------------------------------------------------------------------
1. ``prepare`` (:meth:`Registrator._prepare`)

   * **Inputs.** numpy arrays (array order, voxel -> world = identity unless ``fixed_affine`` /
     ``moving_affine`` are given) or nibabel images (their ``affine``), validated by
     :func:`fnoreg_export.runtime.inputs.as_image`. Both must have the model's dimensionality.
   * **Network frame.** The network sees the FIXED image's grid, reoriented (3-D only, lossless
     axis permutation/flip) to the closest RAS+ orientation, the orientation the models are trained
     in (``canonical=False`` turns this off). The moving image is resampled onto that grid through
     the two affines (linear; outside its field of view: 0). Nothing else is reoriented: every
     output lies on the fixed image's grid exactly as given, with its affine.
   * **Intensities** are normalised as the model card says (:mod:`fnoreg_core.intensity`).
   * **Size.** A grid below the card's minimum size is refused (:func:`check_size`: upsampling
     would give the network detail it never saw and a field that looks valid but is not). A grid
     the graph cannot take otherwise (``card.accepts``: above the maximum, not a multiple) is
     resized, corners aligned, to ``card.nearest_accepted``.
2. ``inference`` (:meth:`Registrator._network`): the backend runner
   (:mod:`fnoreg_export.runtime.backends`) predicts the normalised field.
3. ``postprocess`` (:meth:`Registrator._to_fixed_grid`): the field (normalised units, which do not
   depend on the grid under corner alignment) is resized back channel by channel and converted
   normalised -> voxels -> world RAS mm -> the fixed grid's voxels (:mod:`fnoreg_core.fields`).
4. ``warp`` (:meth:`Registrator._warp`): the ORIGINAL-intensity moving image, on its own grid, is
   sampled at ``x + ddf_mm(x)`` for every fixed voxel centre ``x``, the way ITK's
   ``ResampleImageFilter`` with a ``DisplacementFieldTransform`` does it
   (:func:`fnoreg_core.geometry.sample`). Labels: :func:`warp_labels`.
5. ``metrics`` (:meth:`Registrator._metrics`, :mod:`fnoreg_core.metrics`): Jacobian determinant of
   the voxel field, % folded voxels, SDlogJ.

New stages (affine pre-alignment before the network, instance refinement after it) are methods
of the same shape: they take and return the :class:`_Work` of the registration, and
:meth:`Registrator.register` calls them in order through :meth:`Registrator._stage`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fnoreg_core.affine import AffineResult
from fnoreg_core.fields import ddf_vox_to_norm
from fnoreg_core.geometry import ImageError, RASFrame, affine_nd, pull, resize, same_grid
from fnoreg_core.intensity import IntensityNorm
from fnoreg_core.metrics import folding_fraction, jacobian_determinant, sdlogj

from ..contract import ddf_units, normalise_image
from ..model_card import ModelCard, ModelCardError, read_card
from .backends import BackendError, make_runner
from .inputs import as_image, check_network_output, input_ndim, input_shape
from .backends import RunInterrupted
from .result import RegistrationResult, warp_labels
from .stages import (PipelineOptions, StageRecord, affine_displacement_mm, compose_mm, restrict, run_affine,
                     working_grid)

__all__ = ["Registrator", "check_size", "PipelineOptions", "NETWORK_ONLY"]

#: The network alone on the fixed grid as given: no affine, no refinement, native working grid.
NETWORK_ONLY = PipelineOptions(affine="none", refine=None, work_res="native", guard=False)


def check_size(card: ModelCard, shape: tuple[int, ...]) -> None:
    """Refuse images below the model's minimum size (the documented rule of the runtime and the GUI).

    Parameters
    ----------
    card : the model card (``min_size``, ``train_resolution``)
    shape : spatial shape of the fixed image in the network frame (voxels)

    Raises
    ------
    fnoreg_core.io.ImageError
        Some axis has fewer voxels than ``card.min_size``; the message says what to do.
    """
    small = [(n, lo) for n, lo in zip(shape, card.min_size) if n < lo]
    if small:
        raise ImageError(f"the images are {'x'.join(map(str, shape))} voxels, below the minimum of the model "
                         f"{card.name} ({'x'.join(map(str, card.min_size))}; trained at "
                         f"{'x'.join(map(str, card.train_resolution or ['?']))}). Use images with at least that many "
                         f"voxels per axis (resample them to a finer spacing), or choose a model made for smaller "
                         f"images")


@dataclass
class _Work:
    """What the stages of one registration hand to each other (all numpy).

    fixed, moving : original data on their own grids; fixed_affine4, moving_affine4 their 4x4 affines
    frame : the network frame of the fixed grid (RAS+ in 3-D)
    fixed_net, moving_net : normalised images in the network frame
    run_shape : size the network runs at (``resampled`` when it differs from the frame's)
    ddf_norm_run : (dims, *run_shape) the network's field
    ddf_norm, ddf_vox, ddf_mm : (dims, *fixed_shape) the field on the fixed grid
    moved, jacobian, folding, sdlogj : the warp and metric stages' outputs
    """

    fixed: np.ndarray
    moving: np.ndarray
    fixed_affine4: np.ndarray
    moving_affine4: np.ndarray
    frame: RASFrame
    fixed_net: np.ndarray
    moving_net: np.ndarray
    intensity: dict[str, Any]
    run_shape: tuple[int, ...]
    ddf_norm_run: np.ndarray | None = None
    ddf_norm: np.ndarray | None = None
    ddf_vox: np.ndarray | None = None
    ddf_mm: np.ndarray | None = None
    moved: np.ndarray | None = None
    jacobian: np.ndarray | None = None
    folding: dict[str, float] = field(default_factory=dict)
    sdlogj: float = float("nan")
    # pipeline stages (stages.py): working grid, affine, deformable field there, records
    work_shape: tuple[int, ...] = ()
    work_affine: np.ndarray | None = None
    fixed_w: np.ndarray | None = None
    moving_w: np.ndarray | None = None
    affine_map: np.ndarray | None = None
    affine_result: AffineResult | None = None
    ddf_vox_w: np.ndarray | None = None
    ddf_mm_deformable: np.ndarray | None = None
    stage_ddf_mm: dict[str, np.ndarray] = field(default_factory=dict)
    records: list[StageRecord] = field(default_factory=list)

    @property
    def dims(self) -> int:
        return self.fixed.ndim

    @property
    def net_shape(self) -> tuple[int, ...]:
        return tuple(self.fixed_net.shape)

    @property
    def resampled(self) -> bool:
        return tuple(self.run_shape) != self.net_shape


class Registrator:
    """An exported FNOReg model ready to register image pairs (torch-free).

    Create with :meth:`load`. The inference session is created once and reused by every call;
    ``threads`` sets onnxruntime's intra-op thread count.

    Examples
    --------
    >>> reg = Registrator.load("model.onnx", backend="onnxruntime-cpu", threads=2)   # doctest: +SKIP
    >>> res = reg.register(fixed=fixed_array, moving=moving_array)                   # doctest: +SKIP
    >>> moved_labels = reg.warp_labels(moving_labels, res)                          # doctest: +SKIP
    """

    def __init__(self, card: ModelCard, backend: Any, path: Path, canonical: bool = True):
        self.card = card
        self._backend = backend
        self.path = path
        self.canonical = canonical
        self.norm = IntensityNorm.from_dict(card.intensity_norm or {})

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", threads: int | None = None,
             canonical: bool = True) -> "Registrator":
        """Open an exported model (``.onnx`` or TensorRT ``.engine``) with its model card.

        Parameters
        ----------
        path : the model file; its card is ``<file>.json`` beside it or (ONNX) embedded
        backend : one of :data:`fnoreg_export.runtime.BACKENDS`; default ``"auto"``
        threads : onnxruntime intra-op threads (default: onnxruntime's choice, all physical cores)
        canonical : run the network on the RAS+ reorientation of 3-D fixed grids (the training
            orientation); outputs are always on the fixed grid as given

        Raises
        ------
        fnoreg_export.model_card.ModelCardError
            The file is missing, has no FNOReg card, or cannot be loaded: not an FNOReg export.
        fnoreg_export.runtime.BackendError
            The backend is unknown or cannot run here.
        """
        path = Path(path)
        if not path.exists():
            raise ModelCardError(f"model file {path} does not exist; check the path")
        if path.is_dir():
            raise ModelCardError(f"{path} is a folder; expected an exported model file (.onnx or .engine)")
        if threads is not None and (not isinstance(threads, (int, np.integer)) or threads < 1):
            raise ValueError(f"expected threads as a positive integer or None, got {threads!r}")
        card = read_card(path)
        if card.dims not in (2, 3):
            raise ModelCardError(f"the model card of {path} says dims={card.dims}; expected 2 or 3")
        runner = make_runner(path, backend, threads, dims=card.dims)
        return cls(card, runner, path, canonical=canonical)

    # -- properties ----------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """Name of the backend in use (``"onnxruntime-cpu"``, ``"onnxruntime-cuda"``, ``"tensorrt"``)."""
        return self._backend.name

    @property
    def dims(self) -> int:
        return self.card.dims

    @property
    def threads(self) -> int | None:
        """onnxruntime intra-op threads (0: onnxruntime's default), None for TensorRT."""
        return getattr(self._backend, "threads", None)

    @property
    def session(self):
        """The onnxruntime ``InferenceSession`` (None for TensorRT)."""
        return getattr(self._backend, "session", None)

    def __repr__(self) -> str:
        return f"Registrator({self.card.name!r} v{self.card.version}, {self.dims}D, backend={self.backend!r})"

    def interrupt(self) -> bool:
        """Abort the network call in flight, from another thread (e.g. a GUI's Cancel button).

        The interrupted :meth:`predict` / :meth:`register` raises
        :class:`fnoreg_export.runtime.RunInterrupted` in its own thread. onnxruntime backends only
        (``RunOptions.terminate``); returns False when no call is running or the backend cannot be
        interrupted (TensorRT).
        """
        stop = getattr(self._backend, "interrupt", None)
        stopped = bool(stop()) if stop is not None else False
        if getattr(self, "_running", False):  # a register(): its numpy stages check this between steps
            self._stop = True
            return True
        return stopped

    # -- network -------------------------------------------------------------------------------
    def predict(self, *, moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        """Run the network on normalised images of an accepted size.

        Parameters
        ----------
        moving, fixed : (*spatial) float arrays in [0, 1], one shape the graph accepts
            (``card.accepts``), network orientation; keyword-only (two arrays of one shape would
            swap silently)

        Returns
        -------
        (dims, *spatial) float32 ddf_norm, fixed -> moving, normalised units

        Raises
        ------
        ValueError
            Shapes that differ, wrong dimensionality, or a size the graph does not take.
        """
        moving, fixed = np.asarray(moving), np.asarray(fixed)
        if moving.shape != fixed.shape or moving.ndim != self.dims:
            raise ValueError(f"expected moving and fixed of one {self.dims}-D shape, got {moving.shape} and "
                             f"{fixed.shape}")
        if not self.card.accepts(fixed.shape):
            raise ValueError(f"the model does not take size {fixed.shape} directly; nearest accepted size: "
                             f"{tuple(self.card.nearest_accepted(fixed.shape))} (register() resamples)")
        try:
            out = self._backend(moving[None, None].astype(np.float32, copy=False),
                                fixed[None, None].astype(np.float32, copy=False))
        except (BackendError, RunInterrupted, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. onnxruntime refusing float32 inputs: not an FNOReg graph
            raise BackendError(f"the model {self.path} failed to run ({type(exc).__name__}: {str(exc)[:200]}); "
                               "is it an FNOReg export (float32 inputs moving, fixed)?") from None
        return check_network_output(out, (1, self.dims) + tuple(fixed.shape), self.path)[0]

    # -- registration --------------------------------------------------------------------------
    def register(self, *, fixed: Any, moving: Any, fixed_affine: Any = None, moving_affine: Any = None,
                 pipeline: PipelineOptions | None = None, keep_stages: bool = False,
                 progress: Callable[[str, float], None] | None = None) -> RegistrationResult:
        """Register ``moving`` to ``fixed`` (keyword-only: ``register(fixed=..., moving=...)``).

        Parameters
        ----------
        fixed, moving : (*spatial) numpy arrays or nibabel images (2-D or 3-D, the model's dims;
            trailing singleton axes are dropped). Bare arrays of different shapes need affines.
        fixed_affine, moving_affine : 4x4 voxel -> RAS mm, overriding the images' own (default:
            nibabel's ``img.affine``; identity for bare arrays)
        pipeline : the stages around the network (:class:`PipelineOptions`; default: the
            recommended pipeline ``PipelineOptions()``: affine, network, refinement off, 2 mm
            working grid in 3-D). :data:`NETWORK_ONLY` runs the network alone on the given grid.
        keep_stages : also keep the composed field after the affine and after the network
            (``result.stage_ddf_mm``) so that every stage can be scored (``warp_labels(stage=...)``)
        progress : called as ``progress(stage, fraction)`` while the registration runs

        Returns
        -------
        RegistrationResult
            Everything on the fixed grid; ``timings`` holds seconds per stage and ``total``;
            ``stages`` what each stage did; ``affine_ras`` the affine part (RAS, fixed -> moving).

        Raises
        ------
        fnoreg_core.io.ImageError
            Wrong dimensionality, fixed and moving of different dimensionality, bare arrays of
            different shapes without affines, an axis with < 2 voxels, an image below the model's
            minimum size (:func:`check_size`), non-finite values, a singular affine, no overlap
            of the two images after the affine stage.
        fnoreg_core.affine.AffineError
            An affine file that cannot be read or is singular.
        fnoreg_core.refine.RefineError
            Refinement settings out of range, or a refinement that diverged.
        RunInterrupted
            :meth:`interrupt` was called from another thread during the registration.
        TypeError
            Inputs that are neither arrays nor images.
        """
        opts = PipelineOptions() if pipeline is None else pipeline
        opts.validate()
        self._stop, self._running = False, True
        try:
            return self._register(fixed, moving, fixed_affine, moving_affine, opts, keep_stages, progress)
        finally:
            self._running = False

    def _register(self, fixed, moving, fixed_affine, moving_affine, opts, keep_stages, progress):
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        report = progress or (lambda stage, fraction: None)
        work = self._stage(timings, "prepare", self._prepare, fixed, moving, fixed_affine, moving_affine)
        work = self._stage(timings, "working_grid", self._working_grid, work, opts)
        report("affine", 0.1)
        work = self._stage(timings, "affine", self._affine, work, opts)
        self._check_stop()
        report("network", 0.3)
        if opts.network:
            work = self._stage(timings, "inference", self._network, work, opts.guard)
        else:
            work.ddf_vox_w = np.zeros((work.dims, *work.work_shape), np.float32)
        if keep_stages:  # the composed field after every stage but the last (that one is the result's)
            refine = opts.refine is not None
            if opts.network or refine:
                work.stage_ddf_mm["affine"] = self._compose_to_fixed(work, deformable=False)[0]
            if opts.network and refine:
                work.stage_ddf_mm["network"] = self._compose_to_fixed(work)[0]
        self._check_stop()
        if opts.refine is not None:
            report("refine", 0.5)
            work = self._stage(timings, "refine", self._refine, work, opts, report)
        report("warp", 0.9)
        work = self._stage(timings, "postprocess", self._to_fixed_grid, work)
        work = self._stage(timings, "warp", self._warp, work)
        work = self._stage(timings, "metrics", self._metrics, work)
        timings["total"] = time.perf_counter() - t_start
        report("done", 1.0)
        return self._result(work, timings)

    def _check_stop(self) -> None:
        if getattr(self, "_stop", False):
            raise RunInterrupted("the registration was interrupted")

    @staticmethod
    def _stage(timings: dict[str, float], name: str, fn: Callable[..., "_Work"], *args: Any) -> "_Work":
        """Run one stage and record its wall time under ``name``."""
        t0 = time.perf_counter()
        out = fn(*args)
        timings[name] = time.perf_counter() - t0
        return out

    def _prepare(self, fixed: Any, moving: Any, fixed_affine: Any, moving_affine: Any) -> _Work:
        """Validate, put both images into the network frame, normalise, choose the run size."""
        dims = self.dims
        for name, img in (("fixed", fixed), ("moving", moving)):
            nd = input_ndim(img)
            if nd is not None and nd != dims:
                raise ImageError(f"expected a {dims}-D {name} image for this {dims}D model ({self.card.name}), got "
                                 f"{nd}-D of shape {input_shape(img)}")
        fixed_data, fixed_aff4 = as_image(fixed, fixed_affine, "fixed", dims)
        moving_data, moving_aff4 = as_image(moving, moving_affine, "moving", dims)
        bare = not hasattr(fixed, "affine") and not hasattr(moving, "affine")
        if bare and fixed_affine is None and moving_affine is None and fixed_data.shape != moving_data.shape:
            raise ImageError(f"fixed {fixed_data.shape} and moving {moving_data.shape} arrays differ in shape; pass "
                             "nibabel images or fixed_affine/moving_affine so they can be put on one grid")
        fixed_aff, moving_aff = affine_nd(fixed_aff4, dims), affine_nd(moving_aff4, dims)
        frame = RASFrame(fixed_data.shape, fixed_aff4, self.canonical)
        check_size(self.card, frame.ras_shape)
        if min(moving_data.shape) < min(self.card.min_size):  # a tiny moving image is upsampled just the same
            check_size(self.card, moving_data.shape)
        fixed_norm, fixed_params = normalise_image(fixed_data, self.norm)  # the contract: as the end-to-end graph
        moving_norm, moving_params = normalise_image(moving_data, self.norm)
        fixed_net = frame.to_ras(fixed_norm)
        if same_grid(moving_data.shape, moving_aff, fixed_data.shape, fixed_aff):
            moving_net = frame.to_ras(moving_norm)
        elif same_grid(moving_data.shape, moving_aff, frame.ras_shape, frame.affine):
            moving_net = moving_norm
        else:
            moving_net = pull(moving_norm, moving_aff, frame.affine, frame.ras_shape, None, order=1)
        net_shape = tuple(fixed_net.shape)
        run_shape = net_shape if self.card.accepts(net_shape) else tuple(self.card.nearest_accepted(net_shape))
        return _Work(fixed=fixed_data, moving=moving_data, fixed_affine4=fixed_aff4, moving_affine4=moving_aff4,
                     frame=frame, fixed_net=fixed_net, moving_net=moving_net, run_shape=run_shape,
                     intensity={"method": self.norm.method, "fixed": fixed_params, "moving": moving_params})

    def _working_grid(self, work: _Work, opts: PipelineOptions) -> _Work:
        """The grid the affine, the network and the refinement run on (:func:`stages.working_grid`)."""
        frame = work.frame
        shape_w, aff_w, note = working_grid(frame.ras_shape, frame.affine, opts.work_res, self.card.min_size)
        work.work_shape, work.work_affine = tuple(shape_w), aff_w
        if tuple(shape_w) == work.net_shape:
            work.fixed_w, work.moving_w = work.fixed_net, work.moving_net
        else:
            work.fixed_w, work.moving_w = resize(work.fixed_net, shape_w), resize(work.moving_net, shape_w)
        accepted = self.card.accepts(shape_w)
        work.run_shape = tuple(shape_w) if accepted else tuple(self.card.nearest_accepted(shape_w))
        info = {"shape": list(shape_w), "spacing_mm": [round(float(v), 4) for v in
                                                        np.linalg.norm(aff_w[:-1, :-1], axis=0)],
                "network_shape": list(work.run_shape)}
        if note:
            info["note"] = note
        work.records.append(StageRecord("working_grid", 0.0, info))
        return work

    def _affine(self, work: _Work, opts: PipelineOptions) -> _Work:
        """Affine pre-alignment on the working grid; the moving image is resampled through it."""
        t0 = time.perf_counter()
        res = run_affine(opts.affine, work.fixed_w, work.moving_w, work.work_affine, opts.threads)
        work.affine_result = res
        work.affine_map = restrict(res.fixed_to_moving_ras, work.dims)
        if res.applied:
            shift = affine_displacement_mm(work.affine_map, work.work_affine, work.work_shape)
            moved = pull(work.moving_net, work.frame.affine, work.work_affine, work.work_shape, shift, order=1)
            if not np.any(moved > 0.01 * max(float(work.moving_w.max()), 1e-6)):
                raise ImageError("the moving image does not overlap the fixed image after the affine stage; check "
                                 "the images' orientation headers or the affine file (or use --affine none)")
            work.moving_w = moved
        work.records.append(StageRecord("affine", time.perf_counter() - t0, {
            "mode": res.mode, "applied": res.applied, "note": res.note, "iterations": res.iterations,
            "similarity_before": res.metric_before, "similarity_after": res.metric_after,
            "fixed_to_moving_ras": res.fixed_to_moving_ras.tolist()}))
        return work

    def _network(self, work: _Work, guard: bool = True) -> _Work:
        """The network's field on the working grid (the inputs resized to the run size when needed)."""
        t0 = time.perf_counter()
        fixed_run, moving_run = work.fixed_w, work.moving_w
        resampled = tuple(work.run_shape) != tuple(work.work_shape)
        if resampled:
            fixed_run, moving_run = resize(fixed_run, work.run_shape), resize(moving_run, work.run_shape)
        work.ddf_norm_run = self.predict(moving=moving_run, fixed=fixed_run)
        ddf_norm_w = (np.stack([resize(c, work.work_shape) for c in work.ddf_norm_run]) if resampled
                      else work.ddf_norm_run)
        work.ddf_vox_w = ddf_units(ddf_norm_w, work.work_affine, work.work_shape)[0]  # the contract, as the e2e graph
        # the guard of every stage: a field that does not raise the similarity (local NCC, the
        # training loss) is not applied; e.g. an image registered to itself stays the identity
        from fnoreg_core.geometry import warp_vox
        from fnoreg_core.refine import lncc

        info = {"model": f"{self.card.name} {self.card.version}", "run_shape": list(work.run_shape), "applied": True}
        if guard:
            before = lncc(work.fixed_w, work.moving_w)
            after = lncc(work.fixed_w, warp_vox(work.moving_w, work.ddf_vox_w, order=1))
            info.update(applied=bool(after > before), lncc_before=before, lncc_after=after)
        if not info["applied"]:
            work.ddf_vox_w = np.zeros_like(work.ddf_vox_w)
            info["note"] = f"not applied: local NCC {after:.4f} is not above {before:.4f} without it"
        work.records.append(StageRecord("network", time.perf_counter() - t0, info))
        return work

    def _refine(self, work: _Work, opts: PipelineOptions, report: Callable[[str, float], None]) -> _Work:
        """Instance refinement of the deformable field (:func:`fnoreg_core.refine.refine_field`)."""
        from fnoreg_core.refine import RefineCancelled, refine_field

        t0 = time.perf_counter()
        try:
            res = refine_field(work.fixed_w, work.moving_w, work.ddf_vox_w, opts.refine,
                               progress=lambda done, total: report("refine", 0.5 + 0.4 * done / max(total, 1)),
                               cancel=lambda: getattr(self, "_stop", False))
        except RefineCancelled:
            raise RunInterrupted("the registration was interrupted during refinement") from None
        work.ddf_vox_w = res.ddf_vox
        work.records.append(StageRecord("refine", time.perf_counter() - t0, {
            "iterations": res.iterations, "levels": list(opts.refine.iterations), "reg_weight": opts.refine.reg_weight,
            "lncc_before": res.lncc_before, "lncc_after": res.lncc_after, "stopped": res.stopped}))
        return work

    def _compose_to_fixed(self, work: _Work, deformable: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(total, deformable) displacement in world RAS mm on the fixed grid as given.

        total = ``A(x + d(x)) - x`` with ``A`` the affine and ``d`` the working grid's field
        (``deformable=False``: ``d = 0``); the deformable part ``d`` alone is returned too.
        """
        dims, frame = work.dims, work.frame
        lin_w = work.work_affine[:dims, :dims]
        if deformable and work.ddf_vox_w is not None:
            d_mm_w = np.einsum("ij,j...->i...", lin_w, work.ddf_vox_w.astype(np.float64)).astype(np.float32)
            d_mm = (d_mm_w if tuple(work.work_shape) == work.net_shape
                    else np.stack([resize(c, work.net_shape) for c in d_mm_w]))
        else:
            d_mm = np.zeros((dims, *work.net_shape), np.float32)
        total = (d_mm if work.affine_result is None or not work.affine_result.applied
                 else compose_mm(work.affine_map, frame.affine, d_mm))
        if frame.reoriented:
            total = np.stack([frame.from_ras(c) for c in total])
            d_mm = np.stack([frame.from_ras(c) for c in d_mm])
        return total, d_mm

    def _to_fixed_grid(self, work: _Work) -> _Work:
        """The composed field on the fixed grid as given, in world RAS mm, voxels and normalised units."""
        dims = work.dims
        work.ddf_mm, work.ddf_mm_deformable = self._compose_to_fixed(work)
        lin_inv = np.linalg.inv(affine_nd(work.fixed_affine4, dims)[:dims, :dims])
        work.ddf_vox = np.einsum("ij,j...->i...", lin_inv, work.ddf_mm.astype(np.float64)).astype(np.float32)
        work.ddf_norm = ddf_vox_to_norm(work.ddf_vox, work.fixed.shape).astype(np.float32, copy=False)
        return work

    def _warp(self, work: _Work) -> _Work:
        """The original moving image at ``x + ddf_mm(x)`` for every fixed voxel ``x``."""
        dims = work.dims
        work.moved = pull(work.moving, affine_nd(work.moving_affine4, dims), affine_nd(work.fixed_affine4, dims),
                          work.fixed.shape, work.ddf_mm, order=1)
        return work

    def _metrics(self, work: _Work) -> _Work:
        """Jacobian determinant, folding and SDlogJ of the voxel field."""
        work.jacobian = jacobian_determinant(work.ddf_vox).astype(np.float32, copy=False)
        work.folding = folding_fraction(work.jacobian)
        work.sdlogj = sdlogj(work.jacobian)
        return work

    def _result(self, work: _Work, timings: dict[str, float]) -> RegistrationResult:
        return RegistrationResult(
            moved=work.moved, ddf_norm=work.ddf_norm, ddf_vox=work.ddf_vox, ddf_mm=work.ddf_mm,
            jacobian=work.jacobian, folding=work.folding, sdlogj=work.sdlogj, timings=timings,
            fixed_affine=work.fixed_affine4, moving_affine=work.moving_affine4,
            moving_shape=tuple(work.moving.shape), network_shape=tuple(work.run_shape),
            resampled=work.resampled,
            reoriented=work.frame.reoriented, intensity=work.intensity, backend=self.backend,
            model=f"{self.card.name} {self.card.version}",
            stages=[r.as_dict() for r in work.records],
            affine_ras=work.affine_result.fixed_to_moving_ras if work.affine_result is not None else np.eye(4),
            ddf_mm_deformable=work.ddf_mm_deformable, stage_ddf_mm=dict(work.stage_ddf_mm),
        )

    def warp_labels(self, labels: Any, result: RegistrationResult, affine: Any = None,
                    stage: str | None = None) -> np.ndarray:
        """:func:`fnoreg_export.runtime.warp_labels` (nearest neighbour onto the fixed grid)."""
        return warp_labels(labels, result, affine, stage=stage)
