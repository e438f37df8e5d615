"""The registration pipeline: an exported model run as a sequence of stages (numpy; no torch).

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

from fnoreg_core.fields import ddf_vox_to_norm
from fnoreg_core.geometry import ImageError, RASFrame, affine_nd, pull, resize, same_grid
from fnoreg_core.intensity import IntensityNorm
from fnoreg_core.metrics import folding_fraction, jacobian_determinant, sdlogj

from ..contract import ddf_units, normalise_image
from ..model_card import ModelCard, ModelCardError, read_card
from .backends import make_runner
from .inputs import as_image, input_ndim, input_shape
from .result import RegistrationResult, warp_labels

__all__ = ["Registrator", "check_size"]


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
                         f"{'x'.join(map(str, card.train_resolution))}). Use images with at least that many "
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
        return bool(stop()) if stop is not None else False

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
        out = self._backend(moving[None, None].astype(np.float32, copy=False),
                            fixed[None, None].astype(np.float32, copy=False))
        want = (1, self.dims) + tuple(fixed.shape)
        if out.shape != want:
            raise RuntimeError(f"the model returned shape {out.shape}, expected {want}")
        return out[0]

    # -- registration --------------------------------------------------------------------------
    def register(self, *, fixed: Any, moving: Any, fixed_affine: Any = None,
                 moving_affine: Any = None) -> RegistrationResult:
        """Register ``moving`` to ``fixed`` (keyword-only: ``register(fixed=..., moving=...)``).

        Parameters
        ----------
        fixed, moving : (*spatial) numpy arrays or nibabel images (2-D or 3-D, the model's dims;
            trailing singleton axes are dropped). Bare arrays of different shapes need affines.
        fixed_affine, moving_affine : 4x4 voxel -> RAS mm, overriding the images' own (default:
            nibabel's ``img.affine``; identity for bare arrays)

        Returns
        -------
        RegistrationResult
            Everything on the fixed grid; ``timings`` holds seconds per stage and ``total``.

        Raises
        ------
        fnoreg_core.io.ImageError
            Wrong dimensionality, fixed and moving of different dimensionality, bare arrays of
            different shapes without affines, an axis with < 2 voxels, an image below the model's
            minimum size (:func:`check_size`), non-finite values, a singular affine.
        TypeError
            Inputs that are neither arrays nor images.
        """
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        work = self._stage(timings, "prepare", self._prepare, fixed, moving, fixed_affine, moving_affine)
        work = self._stage(timings, "inference", self._network, work)
        work = self._stage(timings, "postprocess", self._to_fixed_grid, work)
        work = self._stage(timings, "warp", self._warp, work)
        work = self._stage(timings, "metrics", self._metrics, work)
        timings["total"] = time.perf_counter() - t_start
        return self._result(work, timings)

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

    def _network(self, work: _Work) -> _Work:
        """The network's field at the run size (the inputs resized there when needed)."""
        fixed_run, moving_run = work.fixed_net, work.moving_net
        if work.resampled:
            fixed_run, moving_run = resize(fixed_run, work.run_shape), resize(moving_run, work.run_shape)
        work.ddf_norm_run = self.predict(moving=moving_run, fixed=fixed_run)
        return work

    def _to_fixed_grid(self, work: _Work) -> _Work:
        """The network's field on the fixed grid as given, in normalised units, voxels and RAS mm."""
        dims, frame, net_shape = work.dims, work.frame, work.net_shape
        if work.resampled:
            ddf_norm_net = np.stack([resize(c, net_shape) for c in work.ddf_norm_run])
        else:
            ddf_norm_net = work.ddf_norm_run
        ddf_vox_net, ddf_mm_net = ddf_units(ddf_norm_net, frame.affine, net_shape)  # the contract, as the e2e graph
        if frame.reoriented:
            work.ddf_mm = np.stack([frame.from_ras(c) for c in ddf_mm_net])
            lin_inv = np.linalg.inv(affine_nd(work.fixed_affine4, dims)[:dims, :dims])
            work.ddf_vox = np.einsum("ij,j...->i...", lin_inv, work.ddf_mm.astype(np.float64)).astype(np.float32)
        else:
            work.ddf_mm, work.ddf_vox = ddf_mm_net, ddf_vox_net
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
            moving_shape=tuple(work.moving.shape), network_shape=tuple(work.run_shape), resampled=work.resampled,
            reoriented=work.frame.reoriented, intensity=work.intensity, backend=self.backend,
            model=f"{self.card.name} {self.card.version}",
        )

    def warp_labels(self, labels: Any, result: RegistrationResult, affine: Any = None) -> np.ndarray:
        """:func:`fnoreg_export.runtime.warp_labels` (nearest neighbour onto the fixed grid)."""
        return warp_labels(labels, result, affine)
