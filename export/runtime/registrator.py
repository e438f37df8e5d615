"""The torch-free FNOReg runtime: register image pairs with an exported model (numpy + onnxruntime).

>>> from fnoreg_export.runtime import Registrator
>>> reg = Registrator.load("fnoreg-3d.onnx", threads=4)            # doctest: +SKIP
>>> result = reg.register(nib.load("fixed.nii.gz"), nib.load("moving.nii.gz"))   # doctest: +SKIP
>>> result.moved.shape, result.ddf_mm.shape, result.folding["nonpositive_pct"]   # doctest: +SKIP

What :meth:`Registrator.register` does, in order
--------------------------------------------------
1. **Inputs.** numpy arrays (array order, voxel -> world = identity unless ``fixed_affine`` /
   ``moving_affine`` are given) or nibabel images (their ``affine``). Both must have the model's
   dimensionality; values must be finite.
2. **Network frame.** The network sees the FIXED image's grid, reoriented (3-D only, lossless axis
   permutation/flip) to the closest RAS+ orientation, the orientation the models are trained in
   (``canonical=False`` turns this off). The moving image is resampled onto that grid through the
   two affines (linear; outside its field of view: 0). Nothing else is reoriented: every output
   lies on the fixed image's grid exactly as given, with its affine.
3. **Intensities** are normalised as the model card says (:mod:`fnoreg_core.intensity`).
4. **Size.** A grid the graph cannot take (``card.accepts``) is resized, corners aligned, to
   ``card.nearest_accepted``; the predicted field (normalised units, which do not depend on the
   grid under corner alignment) is resized back channel by channel.
5. **Units.** normalised -> voxels -> world RAS mm (fixed affine) -> the fixed grid's voxels
   (:mod:`fnoreg_core.fields`). ``ddf_mm`` is what ITK needs (after RAS -> LPS).
6. **Moved image.** The ORIGINAL-intensity moving image, on its own grid, is sampled at
   ``x + ddf_mm(x)`` for every fixed voxel centre ``x``, trilinearly, the way ITK's
   ``ResampleImageFilter`` with a ``DisplacementFieldTransform`` does it: points up to half a voxel
   outside the moving image take the edge value, points further out are 0. Labels use nearest
   neighbour (:func:`warp_labels`).
7. **Metrics** (:mod:`fnoreg_core.metrics`): Jacobian determinant of the voxel field (identical to
   the physical one with spacing), % folded voxels, SDlogJ.

Backends: ``"onnxruntime-cpu"``, ``"onnxruntime-cuda"`` (package onnxruntime-gpu), ``"tensorrt"``
(``*.engine`` files with a ``<file>.json`` card; needs tensorrt and cuda-python or cupy), and
``"auto"``: tensorrt for ``.engine`` files, else onnxruntime-cuda where its provider is available,
else onnxruntime-cpu. One inference session per :class:`Registrator`, reused by every call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fnoreg_core.fields import ddf_norm_to_vox, ddf_ras_to_lps, ddf_vox_to_mm, ddf_vox_to_norm
from fnoreg_core.intensity import IntensityNorm, normalise
from fnoreg_core.io import ImageError
from fnoreg_core.metrics import folding_fraction, jacobian_determinant, sdlogj

from .model_card import ModelCard, ModelCardError, read_card

__all__ = ["Registrator", "RegistrationResult", "BackendError", "RunInterrupted", "BACKENDS", "warp_labels", "warp_image",
           "resample_to_fixed", "resample_to_grid", "available_backends", "ort_session_options"]

#: Backend names accepted by :meth:`Registrator.load`.
BACKENDS = ("auto", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt")

_SLAB_VOXELS = 1 << 21  # resampling works in slabs of about this many voxels (bounded memory)


class BackendError(RuntimeError):
    """The requested inference backend cannot run here (package or GPU missing, engine mismatch)."""


class RunInterrupted(RuntimeError):
    """A network call was aborted by :meth:`Registrator.interrupt` (from another thread)."""


# ------------------------------------------------------------------------------------------------
# backends: callables (moving, fixed) (B, 1, *spatial) float32 -> ddf_norm (B, dims, *spatial) float32


def available_backends() -> list[str]:
    """Backends that can run on this machine (``"auto"`` excluded)."""
    out = []
    try:
        import onnxruntime as ort

        out.append("onnxruntime-cpu")
        if "CUDAExecutionProvider" in ort.get_available_providers():
            out.append("onnxruntime-cuda")
    except ImportError:
        pass
    try:
        import tensorrt  # noqa: F401

        out.append("tensorrt")
    except ImportError:
        pass
    return out


def ort_session_options(threads: int | None = None):
    """The onnxruntime ``SessionOptions`` every FNOReg tool uses (runtime, fnoreg-eval, benchmarks).

    Sequential execution, all graph optimisations, ``threads`` intra-op threads (None or 0:
    onnxruntime's default, all physical cores). The CPU memory arena and memory-pattern
    pre-allocation are off: volumes are few and large, and with them on a 3-D model at 160x192x224
    peaks at twice the memory (measured: 8.8 GB -> 4.3 GB, no slower; ``benchmarks/latency.py``).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads) if threads else 0
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = False
    opts.enable_mem_pattern = False
    opts.log_severity_level = 3
    return opts


class _OrtBackend:
    """onnxruntime InferenceSession, created once."""

    def __init__(self, path: Path, card: ModelCard, cuda: bool, threads: int | None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("the runtime needs onnxruntime: pip install 'fnoreg[cpu]' (or onnxruntime-gpu for "
                               "CUDA)") from None
        self.name = "onnxruntime-cuda" if cuda else "onnxruntime-cpu"
        if cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendError("backend 'onnxruntime-cuda' needs onnxruntime-gpu and an NVIDIA GPU "
                               f"(available providers: {', '.join(ort.get_available_providers())}); "
                               "use --backend onnxruntime-cpu")
        opts = ort_session_options(threads)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelCardError(f"{path} cannot be loaded by onnxruntime ({type(exc).__name__}: "
                                 f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None
        if cuda and self.session.get_providers()[0] != "CUDAExecutionProvider":
            raise BackendError("onnxruntime could not start its CUDA provider (driver or CUDA libraries missing); "
                               "use --backend onnxruntime-cpu")
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if len(inputs) != 2 or len(outputs) != 1:
            raise ModelCardError(f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; an FNOReg export has "
                                 "2 (moving, fixed) and 1 (ddf_norm)")
        names = [i.name for i in inputs]
        self.input_names = ("moving", "fixed") if set(names) == {"moving", "fixed"} else tuple(names)
        self.dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        for i in inputs:
            if len(i.shape) != card.dims + 2:
                raise ModelCardError(f"{path}: input {i.name!r} has rank {len(i.shape)}, but the card says "
                                     f"{card.dims}D (rank {card.dims + 2})")
        self.threads = opts.intra_op_num_threads

    def __call__(self, moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        import onnxruntime as ort

        feed = {self.input_names[0]: moving.astype(self.dtype, copy=False),
                self.input_names[1]: fixed.astype(self.dtype, copy=False)}
        run_options = ort.RunOptions()  # one per call: interrupt() flags only the call in flight
        self._run_options = run_options
        try:
            (out,) = self.session.run(None, feed, run_options)
        except Exception:
            if run_options.terminate:
                raise RunInterrupted("the network call was interrupted") from None
            raise
        finally:
            self._run_options = None
        return np.asarray(out, dtype=np.float32)

    def interrupt(self) -> bool:
        """Abort the ``session.run`` in flight (call from another thread); False when none runs."""
        run_options = getattr(self, "_run_options", None)
        if run_options is None:
            return False
        run_options.terminate = True
        return True


class _CupyMemory:
    """Device memory and a stream through cupy."""

    def __init__(self):
        import cupy

        self.cp = cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise BackendError("no CUDA device found")
        self._stream = cupy.cuda.Stream(non_blocking=True)
        self.stream_handle = self._stream.ptr

    def alloc(self, nbytes: int):
        mem = self.cp.cuda.alloc(max(int(nbytes), 1))
        return mem, int(mem.ptr)

    def h2d(self, ptr: int, host: np.ndarray) -> None:
        self.cp.cuda.runtime.memcpyAsync(ptr, host.ctypes.data, host.nbytes,
                                         self.cp.cuda.runtime.memcpyHostToDevice, self.stream_handle)

    def d2h(self, host: np.ndarray, ptr: int) -> None:
        self.cp.cuda.runtime.memcpyAsync(host.ctypes.data, ptr, host.nbytes,
                                         self.cp.cuda.runtime.memcpyDeviceToHost, self.stream_handle)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def free(self, handle) -> None:
        del handle  # cupy frees on garbage collection


class _CudaPythonMemory:
    """Device memory and a stream through cuda-python (``cuda.bindings.runtime``)."""

    def __init__(self):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:  # cuda-python < 12.6
            from cuda import cudart
        self.rt = cudart
        count = self._check(cudart.cudaGetDeviceCount())
        if count < 1:
            raise BackendError("no CUDA device found")
        self._stream = self._check(cudart.cudaStreamCreate())
        self.stream_handle = int(self._stream.getPtr()) if hasattr(self._stream, "getPtr") else int(self._stream)

    def _check(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            _, name = self.rt.cudaGetErrorName(err)
            raise BackendError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
        return rest[0] if len(rest) == 1 else (tuple(rest) if rest else None)

    def alloc(self, nbytes: int):
        ptr = self._check(self.rt.cudaMalloc(max(int(nbytes), 1)))
        return ptr, int(ptr)

    def h2d(self, ptr: int, host: np.ndarray) -> None:
        self._check(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes,
                                            self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream))

    def d2h(self, host: np.ndarray, ptr: int) -> None:
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes,
                                            self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream))

    def synchronize(self) -> None:
        self._check(self.rt.cudaStreamSynchronize(self._stream))

    def free(self, handle) -> None:
        self._check(self.rt.cudaFree(handle))


def _cuda_memory():
    """cuda-python if installed, else cupy (chosen when a TensorRT backend starts)."""
    errors = []
    for cls in (_CudaPythonMemory, _CupyMemory):
        try:
            return cls()
        except ImportError as exc:
            errors.append(f"{cls.__name__}: {exc}")
        except BackendError:
            raise
        except Exception as exc:  # driver missing, no device
            raise BackendError(f"CUDA is not usable here ({type(exc).__name__}: {exc})") from None
    raise BackendError("backend 'tensorrt' needs cuda-python (pip install cuda-python) or cupy for device memory")


class _TensorRTBackend:
    """A deserialised TensorRT engine (TensorRT 10/11 name-based I/O API), one execution context."""

    name = "tensorrt"

    def __init__(self, path: Path, card: ModelCard):
        try:
            import tensorrt as trt
        except ImportError:
            raise BackendError("backend 'tensorrt' needs the tensorrt package and an NVIDIA GPU "
                               "(pip install 'fnoreg[gpu]'); use an .onnx model with onnxruntime instead") from None
        self.trt = trt
        self.cuda = _cuda_memory()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if engine is None:
            raise BackendError(f"TensorRT {trt.__version__} cannot load {path}: engines are tied to the GPU "
                               "architecture and TensorRT version they were built with; rebuild it on this machine "
                               "(fnoreg-export)")
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(self.inputs) != 2 or len(self.outputs) != 1:
            raise ModelCardError(f"{path} has inputs {self.inputs} and outputs {self.outputs}; an FNOReg engine has "
                                 "moving, fixed -> ddf_norm")
        if set(self.inputs) != {"moving", "fixed"}:
            self.inputs = self.inputs[:2]  # export order: moving, fixed
        else:
            self.inputs = ["moving", "fixed"]
        self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        self._buffers: dict[str, tuple[tuple[int, ...], Any, int]] = {}
        self.threads = None

    def _buffer(self, name: str, shape: tuple[int, ...]) -> int:
        nbytes = int(np.prod(shape)) * self.dtypes[name].itemsize
        held = self._buffers.get(name)
        if held is not None and held[0] == shape:
            return held[2]
        if held is not None:
            self.cuda.free(held[1])
        handle, ptr = self.cuda.alloc(nbytes)
        self._buffers[name] = (shape, handle, ptr)
        return ptr

    def __call__(self, moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        hosts = {}
        for name, arr in zip(self.inputs, (moving, fixed)):
            host = np.ascontiguousarray(arr, dtype=self.dtypes[name])
            if not self.context.set_input_shape(name, host.shape):
                raise ValueError(f"the TensorRT engine does not accept input {name!r} of shape {host.shape} "
                                 f"(engines are built for one size: {self.engine.get_tensor_shape(name)})")
            ptr = self._buffer(name, host.shape)
            self.cuda.h2d(ptr, host)
            self.context.set_tensor_address(name, ptr)
            hosts[name] = host  # keep alive until the copy is done
        out_name = self.outputs[0]
        shape = tuple(int(n) for n in self.context.get_tensor_shape(out_name))
        out_ptr = self._buffer(out_name, shape)
        self.context.set_tensor_address(out_name, out_ptr)
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        out = np.empty(shape, dtype=self.dtypes[out_name])
        self.cuda.d2h(out, out_ptr)
        self.cuda.synchronize()
        return out.astype(np.float32, copy=False)

    def __del__(self):
        for _, handle, _ in getattr(self, "_buffers", {}).values():
            try:
                self.cuda.free(handle)
            except Exception:  # interpreter shutdown
                pass


def _make_backend(path: Path, card: ModelCard, backend: str, threads: int | None):
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}, expected one of {', '.join(BACKENDS)}")
    is_engine = path.suffix in (".engine", ".plan", ".trt")
    if backend == "auto":
        if is_engine:
            backend = "tensorrt"
        else:
            try:
                import onnxruntime as ort

                cuda = "CUDAExecutionProvider" in ort.get_available_providers()
            except ImportError:
                cuda = False
            backend = "onnxruntime-cuda" if cuda else "onnxruntime-cpu"
    if backend == "tensorrt":
        if not is_engine:
            raise BackendError(f"backend 'tensorrt' runs TensorRT engines (*.engine), got {path.name}; build one with "
                               "fnoreg-export or use an onnxruntime backend")
        return _TensorRTBackend(path, card)
    if is_engine:
        raise BackendError(f"{path.name} is a TensorRT engine; use backend 'tensorrt' (or 'auto')")
    return _OrtBackend(path, card, cuda=backend == "onnxruntime-cuda", threads=threads)


# ------------------------------------------------------------------------------------------------
# geometry helpers


def _affine_nd(affine4: np.ndarray, ndim: int) -> np.ndarray:
    """(ndim + 1, ndim + 1) voxel -> world matrix from a 4x4 (2-D: the in-plane block)."""
    if ndim == 3:
        return affine4
    keep = [0, 1, 3]
    return affine4[np.ix_(keep, keep)]


def _check_affine(affine: Any, name: str) -> np.ndarray:
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape == (3, 3):  # a 2-D homogeneous affine: embed
        full = np.eye(4)
        full[np.ix_([0, 1, 3], [0, 1, 3])] = aff
        aff = full
    if aff.shape != (4, 4):
        raise ImageError(f"expected {name} as a 4x4 (or 2-D 3x3) voxel -> RAS matrix, got shape {aff.shape}")
    if not np.all(np.isfinite(aff)):
        raise ImageError(f"{name} contains NaN or inf")
    return aff


def _squeeze_to(data: np.ndarray, dims: int) -> np.ndarray:
    shape = data.shape
    while len(shape) > dims and shape[-1] == 1:
        shape = shape[:-1]
    return data.reshape(shape)


def _as_image(x: Any, affine: Any, name: str, dims: int, labels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(data, 4x4 affine) of an input: numpy array, nibabel image, or LoadedImage-like (.data, .affine)."""
    if x is None:
        raise ImageError(f"expected {name} as a numpy array or a nibabel image, got None")
    if hasattr(x, "dataobj") and hasattr(x, "affine"):  # nibabel SpatialImage
        data = np.asanyarray(x.dataobj)
        img_affine = x.affine
    elif hasattr(x, "data") and hasattr(x, "affine") and isinstance(getattr(x, "data"), np.ndarray):
        data, img_affine = x.data, x.affine
    elif isinstance(x, np.ndarray) or isinstance(x, (list, tuple)):
        data, img_affine = np.asarray(x), None
    elif hasattr(x, "new_tensor"):
        raise TypeError(f"expected {name} as a numpy array, got a torch tensor (call .cpu().numpy())")
    else:
        raise TypeError(f"expected {name} as a numpy array or a nibabel image, got {type(x).__name__}")
    if affine is not None:
        img_affine = affine
    aff = np.eye(4) if img_affine is None else _check_affine(img_affine, f"the affine of {name}")
    data = np.asarray(data)
    if data.dtype == object or np.iscomplexobj(data) or not (
            np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise ImageError(f"expected a real-valued numeric {name}, got dtype {data.dtype}")
    data = _squeeze_to(data, dims)
    if data.ndim != dims:
        raise ImageError(f"expected a {dims}-D {name} for this {dims}D model, got shape {np.shape(data)} "
                         f"({data.ndim}-D)")
    if min(data.shape) < 2:
        raise ImageError(f"{name} has shape {data.shape}; every axis needs at least 2 voxels")
    if abs(np.linalg.det(_affine_nd(aff, dims)[:dims, :dims])) < 1e-12:
        raise ImageError(f"the affine of {name} is singular in its {dims} spatial axes: {aff.tolist()}")
    if labels:
        if np.issubdtype(data.dtype, np.floating):
            if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
                raise ImageError(f"{name} is not a label map (non-integer values); pass an integer segmentation")
            data = data.astype(np.int32)
    else:
        data = data.astype(np.float32, copy=False)
        if not np.all(np.isfinite(data)):
            raise ImageError(f"{name} contains NaN or infinite voxels; replace them (e.g. with 0) and try again")
    return data, aff


def _sample(volume: np.ndarray, coords: np.ndarray, order: int) -> np.ndarray:
    """Sample ``volume`` at voxel coordinates ``coords`` (ndim, N) as ITK's resampler does.

    Inside test as ``itk::ImageFunction::IsInsideBuffer``: ``-0.5 <= c < n - 0.5`` on every axis;
    outside: 0. Linear (order 1) clamps neighbours to the edge; nearest (order 0) rounds half up.
    """
    from scipy import ndimage

    inside = np.ones(coords.shape[1], dtype=bool)
    for axis, n in enumerate(volume.shape):
        c = coords[axis]
        inside &= (c >= -0.5) & (c < n - 0.5)
    if order == 0:
        idx = tuple(np.clip(np.floor(coords[a] + 0.5).astype(np.intp), 0, n - 1) for a, n in enumerate(volume.shape))
        out = volume[idx]
    else:
        out = ndimage.map_coordinates(volume, coords, order=1, mode="nearest", prefilter=False,
                                      output=np.float32 if volume.dtype != np.float64 else np.float64)
    out[~inside] = 0
    return out


def _pull(volume: np.ndarray, volume_affine: np.ndarray, grid_affine: np.ndarray, grid_shape: Sequence[int],
          ddf_mm: np.ndarray | None = None, order: int = 1) -> np.ndarray:
    """``volume`` (own grid) sampled at the world points ``A_grid @ p + ddf_mm(p)`` of a grid.

    volume_affine, grid_affine : (ndim + 1, ndim + 1) voxel -> world
    ddf_mm : (ndim, *grid_shape) world displacement, or None (plain resampling)
    """
    ndim = len(grid_shape)
    grid_shape = tuple(int(n) for n in grid_shape)
    inv_vol = np.linalg.inv(volume_affine)
    grid_to_vol = inv_vol @ grid_affine
    world_to_vol_lin = inv_vol[:ndim, :ndim]
    dtype = volume.dtype if order == 0 else (np.float64 if volume.dtype == np.float64 else np.float32)
    out = np.empty(grid_shape, dtype=dtype)
    per_row = int(np.prod(grid_shape[1:]))
    rows = max(1, _SLAB_VOXELS // max(per_row, 1))
    rest = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in grid_shape[1:]], indexing="ij")
    for start in range(0, grid_shape[0], rows):
        stop = min(start + rows, grid_shape[0])
        first = np.arange(start, stop, dtype=np.float64).reshape((-1,) + (1,) * (ndim - 1))
        pts = [np.broadcast_to(first, (stop - start,) + grid_shape[1:])] + [
            np.broadcast_to(r, (stop - start,) + grid_shape[1:]) for r in rest]
        pts = np.stack([p.reshape(-1) for p in pts])  # (ndim, M) grid voxel indices
        q = grid_to_vol[:ndim, :ndim] @ pts + grid_to_vol[:ndim, ndim:ndim + 1]
        if ddf_mm is not None:
            q += world_to_vol_lin @ ddf_mm[:, start:stop].reshape(ndim, -1).astype(np.float64)
        out[start:stop] = _sample(volume, q, order).reshape((stop - start,) + grid_shape[1:])
    return out


def _same_grid(shape_a, aff_a, shape_b, aff_b, tol: float = 1e-5) -> bool:
    return tuple(shape_a) == tuple(shape_b) and np.allclose(aff_a, aff_b, rtol=0, atol=tol)


_RAS = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])


class _Frame:
    """The network frame of a fixed grid: RAS+ reorientation (3-D) as a lossless axis permutation/flip."""

    def __init__(self, shape: tuple[int, ...], affine4: np.ndarray, canonical: bool):
        from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform

        self.shape = shape
        ndim = len(shape)
        self.ornt = None
        self.affine = _affine_nd(affine4, ndim)
        if canonical and ndim == 3:
            ornt = io_orientation(affine4)
            if not np.array_equal(ornt, _RAS):
                self.ornt = ornt
                self.back = ornt_transform(_RAS, ornt)
                self.affine = affine4 @ inv_ornt_aff(ornt, shape)
                self._apply = apply_orientation
        self.reoriented = self.ornt is not None
        probe = self.to_net(np.empty(shape, dtype=np.uint8)) if self.reoriented else None
        self.net_shape = tuple(probe.shape) if probe is not None else tuple(shape)

    def to_net(self, arr: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._apply(arr, self.ornt)) if self.reoriented else arr

    def from_net(self, arr: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._apply(arr, self.back)) if self.reoriented else arr


# ------------------------------------------------------------------------------------------------
# results


@dataclass
class RegistrationResult:
    """One registration, every array on the FIXED image's grid (array order, affine ``fixed_affine``).

    moved : (*fixed_shape) float32, the moving image (original intensities) warped onto the fixed grid
    ddf_norm : (ndim, *fixed_shape) float32, displacement fixed -> moving in ``grid_sample`` normalised
        units of the fixed grid (align_corners=True), channel i along array axis i (``fnoreg_core.fields``)
    ddf_vox : (ndim, *fixed_shape) float32, the same in fixed-grid voxels
    ddf_mm : (ndim, *fixed_shape) float32, the same in world RAS mm, channel = world axis (R, A[, S]);
        :attr:`ddf_mm_lps` is what ITK/ANTs/Slicer files hold
    jacobian : (*fixed_shape) float32, det(I + grad u) (voxel units; equal to the physical one)
    folding : ``{"nonpositive_pct", "negative_pct"}`` of the Jacobian, in %
    sdlogj : SDlogJ of the Jacobian
    timings : seconds per stage (``prepare``, ``inference``, ``postprocess``, ``warp``, ``metrics``, ``total``)
    fixed_affine, moving_affine : 4x4 voxel -> RAS mm of the inputs (identity for bare arrays)
    moving_shape : spatial shape of the moving image (its own grid)
    network_shape : spatial size the network ran at (network frame: RAS+ orientation in 3-D)
    resampled : the network ran on a resized grid (the fixed size was not accepted by the graph)
    reoriented : the network frame is a reorientation of the fixed grid
    intensity : normalisation parameters used, ``{"fixed": {...}, "moving": {...}, "method": ...}``
    backend, model : inference backend and model name/version
    """

    moved: np.ndarray
    ddf_norm: np.ndarray
    ddf_vox: np.ndarray
    ddf_mm: np.ndarray
    jacobian: np.ndarray
    folding: dict[str, float]
    sdlogj: float
    timings: dict[str, float]
    fixed_affine: np.ndarray
    moving_affine: np.ndarray
    moving_shape: tuple[int, ...]
    network_shape: tuple[int, ...]
    resampled: bool
    reoriented: bool
    intensity: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    model: str = ""

    @property
    def ndim(self) -> int:
        return self.ddf_norm.shape[0]

    @property
    def fixed_shape(self) -> tuple[int, ...]:
        return tuple(self.moved.shape)

    @property
    def ddf_mm_lps(self) -> np.ndarray:
        """(ndim, *fixed_shape) float32 displacement in LPS mm (the ITK convention)."""
        return ddf_ras_to_lps(self.ddf_mm, self.fixed_shape).astype(np.float32, copy=False)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Fixed voxel size in mm per array axis."""
        lin = _affine_nd(self.fixed_affine, self.ndim)[: self.ndim, : self.ndim]
        return tuple(float(v) for v in np.sqrt((lin ** 2).sum(axis=0)))

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers: folding, SDlogJ, Jacobian range, displacement size, grids, timings."""
        mag = np.sqrt((self.ddf_mm.astype(np.float64) ** 2).sum(axis=0))
        return {
            "nonpositive_jac_pct": self.folding["nonpositive_pct"],
            "negative_jac_pct": self.folding["negative_pct"],
            "sdlogj": self.sdlogj,
            "jac_min": float(self.jacobian.min()),
            "jac_max": float(self.jacobian.max()),
            "jac_mean": float(self.jacobian.mean()),
            "displacement_mm_mean": float(mag.mean()),
            "displacement_mm_max": float(mag.max()),
            "fixed_shape": list(self.fixed_shape),
            "moving_shape": list(self.moving_shape),
            "fixed_spacing_mm": [round(s, 6) for s in self.spacing],
            "network_shape": list(self.network_shape),
            "resampled": self.resampled,
            "reoriented": self.reoriented,
            "intensity": self.intensity,
            "backend": self.backend,
            "model": self.model,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


def _labels_on_moving_grid(labels: Any, result: RegistrationResult, affine: Any) -> tuple[np.ndarray, np.ndarray]:
    ndim = result.ndim
    data, aff = _as_image(labels, affine, "labels", ndim, labels=True)
    given_affine = affine is not None or hasattr(labels, "affine")
    if not given_affine:
        if tuple(data.shape) != tuple(result.moving_shape):
            raise ImageError(f"expected labels of the moving image's shape {tuple(result.moving_shape)}, got "
                             f"{tuple(data.shape)} (or pass a nibabel image / an affine)")
        aff = result.moving_affine
    return data, aff


def warp_labels(labels: Any, result: RegistrationResult, affine: Any = None) -> np.ndarray:
    """Warp a label map of the moving image onto the fixed grid with nearest neighbour.

    Parameters
    ----------
    labels : (*spatial) integer array or nibabel image, on the moving image's grid (array: same
        shape as the moving image; a nibabel image or ``affine`` may put it on any grid)
    result : from :meth:`Registrator.register`
    affine : 4x4 voxel -> RAS of ``labels`` (default: the image's own, else the moving affine)

    Returns
    -------
    (*fixed_shape) integer array (dtype of ``labels``, int32 for integer-valued floats); every value
    is one of the input labels, 0 outside the moving image.

    Raises
    ------
    fnoreg_core.io.ImageError
        Wrong dimensionality or shape, non-integer values.
    """
    data, aff = _labels_on_moving_grid(labels, result, affine)
    ndim = result.ndim
    return _pull(data, _affine_nd(aff, ndim), _affine_nd(result.fixed_affine, ndim), result.fixed_shape,
                 result.ddf_mm, order=0)


def warp_image(image: Any, result: RegistrationResult, affine: Any = None, order: int = 1) -> np.ndarray:
    """Warp another image of the moving subject onto the fixed grid (linear, or ``order=0``).

    Same geometry rules as :func:`warp_labels`; returns float32 (order 1) on the fixed grid.
    """
    if order not in (0, 1):
        raise ValueError(f"expected order 0 (nearest) or 1 (linear), got {order}")
    ndim = result.ndim
    data, aff = _as_image(image, affine, "image", ndim)
    if affine is None and not hasattr(image, "affine"):
        if tuple(data.shape) != tuple(result.moving_shape):
            raise ImageError(f"expected an image of the moving image's shape {tuple(result.moving_shape)}, got "
                             f"{tuple(data.shape)}")
        aff = result.moving_affine
    return _pull(data, _affine_nd(aff, ndim), _affine_nd(result.fixed_affine, ndim), result.fixed_shape,
                 result.ddf_mm, order=order)


def resample_to_fixed(image: Any, result: RegistrationResult, affine: Any = None, labels: bool = False) -> np.ndarray:
    """An image (any grid, given by its affine; bare arrays: the fixed grid) on the fixed grid, no deformation.

    Linear for images, nearest for ``labels=True``; ITK border rules as :func:`warp_image`. Used for
    label maps not stored on the fixed grid and for "before registration" scores.
    """
    ndim = result.ndim
    data, aff = _as_image(image, affine, "labels" if labels else "image", ndim, labels=labels)
    if affine is None and not hasattr(image, "affine"):
        if tuple(data.shape) != result.fixed_shape:
            raise ImageError(f"expected an array of the fixed image's shape {result.fixed_shape}, got "
                             f"{tuple(data.shape)} (or pass a nibabel image / an affine)")
        return data
    return resample_to_grid(data, result.fixed_shape, result.fixed_affine, aff, labels=labels)


def resample_to_grid(image: Any, grid_shape: Sequence[int], grid_affine: Any, affine: Any = None,
                     labels: bool = False) -> np.ndarray:
    """An image on its own grid resampled onto another grid through world coordinates (no deformation).

    Parameters
    ----------
    image : (*spatial) array or nibabel image, 2-D or 3-D (``len(grid_shape)``)
    grid_shape : spatial shape of the target grid
    grid_affine : 4x4 voxel -> RAS mm of the target grid
    affine : 4x4 voxel -> RAS mm of ``image`` (default: the nibabel image's own; identity for arrays)
    labels : nearest neighbour (dtype kept) instead of linear (float32)

    Returns
    -------
    (*grid_shape) array; target points outside the image's field of view are 0 (ITK border rules
    as :func:`warp_image`). The image itself when it is already on that grid.
    """
    ndim = len(grid_shape)
    grid_shape = tuple(int(n) for n in grid_shape)
    data, aff = _as_image(image, affine, "labels" if labels else "image", ndim, labels=labels)
    grid_aff4 = _check_affine(grid_affine, "grid_affine")
    if _same_grid(data.shape, aff, grid_shape, grid_aff4):
        return data
    return _pull(data, _affine_nd(aff, ndim), _affine_nd(grid_aff4, ndim), grid_shape, None, order=0 if labels else 1)


# ------------------------------------------------------------------------------------------------
# the registrator


class Registrator:
    """An exported FNOReg model ready to register image pairs (torch-free).

    Create with :meth:`load`. The inference session is created once and reused by every call;
    ``threads`` sets onnxruntime's intra-op thread count.

    Examples
    --------
    >>> reg = Registrator.load("model.onnx", backend="onnxruntime-cpu", threads=2)   # doctest: +SKIP
    >>> res = reg.register(fixed_array, moving_array)                                # doctest: +SKIP
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
        backend : one of :data:`BACKENDS`; default ``"auto"``
        threads : onnxruntime intra-op threads (default: onnxruntime's choice, all physical cores)
        canonical : run the network on the RAS+ reorientation of 3-D fixed grids (the training
            orientation); outputs are always on the fixed grid as given

        Raises
        ------
        fnoreg_export.model_card.ModelCardError
            The file is missing, has no FNOReg card, or cannot be loaded: not an FNOReg export.
        BackendError
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
        impl = _make_backend(path, card, backend, threads)
        return cls(card, impl, path, canonical=canonical)

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

        The interrupted :meth:`predict` / :meth:`register` raises :class:`RunInterrupted` in its own
        thread. onnxruntime backends only (``RunOptions.terminate``); returns False when no call is
        running or the backend cannot be interrupted (TensorRT).
        """
        stop = getattr(self._backend, "interrupt", None)
        return bool(stop()) if stop is not None else False

    # -- network -------------------------------------------------------------------------------
    def predict(self, moving_norm: np.ndarray, fixed_norm: np.ndarray) -> np.ndarray:
        """Run the network on normalised images of an accepted size.

        Parameters
        ----------
        moving_norm, fixed_norm : (*spatial) float arrays in [0, 1], one shape the graph accepts
            (``card.accepts``), network orientation

        Returns
        -------
        (dims, *spatial) float32 ddf_norm, fixed -> moving, normalised units

        Raises
        ------
        ValueError
            Shapes that differ, wrong dimensionality, or a size the graph does not take.
        """
        moving_norm, fixed_norm = np.asarray(moving_norm), np.asarray(fixed_norm)
        if moving_norm.shape != fixed_norm.shape or moving_norm.ndim != self.dims:
            raise ValueError(f"expected moving_norm and fixed_norm of one {self.dims}-D shape, got "
                             f"{moving_norm.shape} and {fixed_norm.shape}")
        if not self.card.accepts(fixed_norm.shape):
            raise ValueError(f"the model does not take size {fixed_norm.shape} directly; nearest accepted size: "
                             f"{tuple(self.card.nearest_accepted(fixed_norm.shape))} (register() resamples)")
        out = self._backend(moving_norm[None, None].astype(np.float32, copy=False),
                            fixed_norm[None, None].astype(np.float32, copy=False))
        want = (1, self.dims) + tuple(fixed_norm.shape)
        if out.shape != want:
            raise RuntimeError(f"the model returned shape {out.shape}, expected {want}")
        return out[0]

    # -- registration --------------------------------------------------------------------------
    def register(self, fixed: Any, moving: Any, *, fixed_affine: Any = None,
                 moving_affine: Any = None) -> RegistrationResult:
        """Register ``moving`` to ``fixed``.

        Parameters
        ----------
        fixed, moving : (*spatial) numpy arrays or nibabel images (2-D or 3-D, the model's dims;
            trailing singleton axes are dropped). Bare arrays of different shapes need affines.
        fixed_affine, moving_affine : 4x4 voxel -> RAS mm, overriding the images' own (default:
            nibabel's ``img.affine``; identity for bare arrays)

        Returns
        -------
        RegistrationResult
            Everything on the fixed grid (see the class).

        Raises
        ------
        fnoreg_core.io.ImageError
            Wrong dimensionality, fixed and moving of different dimensionality, bare arrays of
            different shapes without affines, an axis with < 2 voxels, non-finite values, a
            singular affine.
        TypeError
            Inputs that are neither arrays nor images.
        """
        t_start = time.perf_counter()
        dims = self.dims
        for name, img in (("fixed", fixed), ("moving", moving)):
            nd = _input_ndim(img)
            if nd is not None and nd != dims:
                raise ImageError(f"expected a {dims}-D {name} image for this {dims}D model ({self.card.name}), got "
                                 f"{nd}-D of shape {_input_shape(img)}")
        fixed_data, fixed_aff4 = _as_image(fixed, fixed_affine, "fixed", dims)
        moving_data, moving_aff4 = _as_image(moving, moving_affine, "moving", dims)
        bare = not hasattr(fixed, "affine") and not hasattr(moving, "affine")
        if bare and fixed_affine is None and moving_affine is None and fixed_data.shape != moving_data.shape:
            raise ImageError(f"fixed {fixed_data.shape} and moving {moving_data.shape} arrays differ in shape; pass "
                             "nibabel images or fixed_affine/moving_affine so they can be put on one grid")
        fixed_aff = _affine_nd(fixed_aff4, dims)
        moving_aff = _affine_nd(moving_aff4, dims)
        timings: dict[str, float] = {}

        # -- network inputs: fixed grid in the network frame, both normalised --------------------
        frame = _Frame(tuple(fixed_data.shape), fixed_aff4, self.canonical)
        fixed_norm, fixed_params = normalise(fixed_data, self.norm)
        moving_norm, moving_params = normalise(moving_data, self.norm)
        fixed_net = frame.to_net(fixed_norm)
        if _same_grid(moving_data.shape, moving_aff, fixed_data.shape, fixed_aff):
            moving_net = frame.to_net(moving_norm)
        elif _same_grid(moving_data.shape, moving_aff, frame.net_shape, frame.affine):
            moving_net = moving_norm
        else:
            moving_net = _pull(moving_norm, moving_aff, frame.affine, frame.net_shape, None, order=1)
        net_shape = tuple(fixed_net.shape)
        run_shape = net_shape if self.card.accepts(net_shape) else tuple(self.card.nearest_accepted(net_shape))
        resampled = run_shape != net_shape
        if resampled:
            from fnoreg_core.data.base import resize_image

            fixed_run, moving_run = resize_image(fixed_net, run_shape), resize_image(moving_net, run_shape)
        else:
            fixed_run, moving_run = fixed_net, moving_net
        timings["prepare"] = time.perf_counter() - t_start

        # -- network ----------------------------------------------------------------------------
        t0 = time.perf_counter()
        ddf_norm_run = self.predict(moving_run, fixed_run)
        timings["inference"] = time.perf_counter() - t0

        # -- back to the fixed grid and to voxels / mm --------------------------------------------
        t0 = time.perf_counter()
        if resampled:
            from fnoreg_core.data.base import resize_image

            ddf_norm_net = np.stack([resize_image(c, net_shape) for c in ddf_norm_run])
        else:
            ddf_norm_net = ddf_norm_run
        ddf_vox_net = ddf_norm_to_vox(ddf_norm_net, net_shape).astype(np.float32, copy=False)
        ddf_mm_net = ddf_vox_to_mm(ddf_vox_net, frame.affine).astype(np.float32, copy=False)
        if frame.reoriented:
            ddf_mm = np.stack([frame.from_net(c) for c in ddf_mm_net])
            lin_inv = np.linalg.inv(fixed_aff[:dims, :dims])
            ddf_vox = np.einsum("ij,j...->i...", lin_inv, ddf_mm.astype(np.float64)).astype(np.float32)
        else:
            ddf_mm, ddf_vox = ddf_mm_net, ddf_vox_net
        ddf_norm = ddf_vox_to_norm(ddf_vox, fixed_data.shape).astype(np.float32, copy=False)
        timings["postprocess"] = time.perf_counter() - t0

        # -- moved image: the ORIGINAL moving image at x + u(x) -----------------------------------
        t0 = time.perf_counter()
        moved = _pull(moving_data, moving_aff, fixed_aff, fixed_data.shape, ddf_mm, order=1)
        timings["warp"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        jac = jacobian_determinant(ddf_vox).astype(np.float32, copy=False)
        fold = folding_fraction(jac)
        sd = sdlogj(jac)
        timings["metrics"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        return RegistrationResult(
            moved=moved, ddf_norm=ddf_norm, ddf_vox=ddf_vox, ddf_mm=ddf_mm, jacobian=jac, folding=fold, sdlogj=sd,
            timings=timings, fixed_affine=fixed_aff4, moving_affine=moving_aff4,
            moving_shape=tuple(moving_data.shape), network_shape=tuple(run_shape), resampled=resampled,
            reoriented=frame.reoriented,
            intensity={"method": self.norm.method, "fixed": fixed_params, "moving": moving_params},
            backend=self.backend, model=f"{self.card.name} {self.card.version}",
        )

    def warp_labels(self, labels: Any, result: RegistrationResult, affine: Any = None) -> np.ndarray:
        """:func:`warp_labels` (nearest neighbour onto the fixed grid)."""
        return warp_labels(labels, result, affine)


def _input_ndim(x: Any) -> int | None:
    shape = _input_shape(x)
    if shape is None:
        return None
    shape = list(shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    return len(shape)


def _input_shape(x: Any) -> tuple[int, ...] | None:
    shape = getattr(x, "shape", None)
    if shape is None and hasattr(x, "data"):
        shape = getattr(x.data, "shape", None)
    return tuple(int(n) for n in shape) if shape is not None else None
