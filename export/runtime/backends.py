"""Inference backends: one runner per backend, shared by every tool that runs an exported model.

A runner is a callable ``runner(moving, fixed) -> ddf_norm`` on ``(B, 1, *spatial)`` arrays
(float32 in, float32 out, whatever the graph's own dtype), created once and reused:

* :class:`OrtRunner`: onnxruntime, CPU (``"onnxruntime-cpu"``) or CUDA (``"onnxruntime-cuda"``,
  package onnxruntime-gpu), with :func:`ort_session_options`;
* :class:`TensorRTRunner`: a serialised TensorRT engine (``"tensorrt"``; device memory through
  cuda-python or cupy).

:func:`make_runner` picks one from a file and a backend name (``"auto"``: tensorrt for ``.engine``
files, else onnxruntime-cuda where its provider is available, else onnxruntime-cpu). The runtime
(:class:`fnoreg_export.runtime.Registrator`), export-time parity (:mod:`fnoreg_export.parity`,
``fnoreg-export``), ``fnoreg-eval`` (:mod:`fnoreg_export.eval_cli`) and the benchmarks all run
models through these classes, so what is measured is what users deploy. numpy only; no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..model_card import ModelCardError

__all__ = ["BACKENDS", "BackendError", "RunInterrupted", "available_backends", "ort_session_options", "OrtRunner",
           "TensorRTRunner", "make_runner", "ENGINE_SUFFIXES"]

#: Backend names accepted by :func:`make_runner` and :meth:`Registrator.load`.
BACKENDS = ("auto", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt")

#: File suffixes of TensorRT engines.
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class BackendError(RuntimeError):
    """The requested inference backend cannot run here (package or GPU missing, engine mismatch)."""


class RunInterrupted(RuntimeError):
    """A network call was aborted by :meth:`Registrator.interrupt` (from another thread)."""



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


class OrtRunner:
    """An onnxruntime ``InferenceSession`` of an exported graph, created once.

    Parameters
    ----------
    path : the ``.onnx`` file
    cuda : CUDA execution provider (package onnxruntime-gpu) instead of the CPU one
    threads : intra-op threads (None or 0: onnxruntime's default, all physical cores)
    dims : the model's spatial dimensionality (its inputs must have rank ``dims + 2``); None: unchecked

    Raises
    ------
    BackendError
        onnxruntime (or its CUDA provider) is missing.
    fnoreg_export.model_card.ModelCardError
        The file cannot be loaded or is not shaped like an FNOReg export (2 inputs, 1 output).
    """

    def __init__(self, path: str | Path, cuda: bool = False, threads: int | None = None, dims: int | None = None):
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
            if dims is not None and len(i.shape) != dims + 2:
                raise ModelCardError(f"{path}: input {i.name!r} has rank {len(i.shape)}, but the card says "
                                     f"{dims}D (rank {dims + 2})")
        self.threads = opts.intra_op_num_threads

    def __call__(self, moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        """``(B, dims, *spatial)`` float32 ddf_norm of ``(B, 1, *spatial)`` moving and fixed images."""
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


class _TorchMemory:
    """Device memory and a stream through a CUDA build of PyTorch: the last resort, for the export
    machine (which has torch) when neither cuda-python nor cupy is installed. A runtime with one of
    them never imports torch."""

    def __init__(self):
        import torch

        if not torch.cuda.is_available():
            raise BackendError("no CUDA device found (torch.cuda.is_available() is False)")
        self.torch = torch
        self._stream = torch.cuda.Stream()
        self.stream_handle = int(self._stream.cuda_stream)
        self._buffers: dict[int, Any] = {}  # device pointer -> uint8 tensor

    def alloc(self, nbytes: int):
        buf = self.torch.empty(max(int(nbytes), 1), dtype=self.torch.uint8, device="cuda")
        self._buffers[int(buf.data_ptr())] = buf
        return buf, int(buf.data_ptr())

    def _host(self, host: np.ndarray):
        return self.torch.from_numpy(host.reshape(-1).view(np.uint8))

    def h2d(self, ptr: int, host: np.ndarray) -> None:
        with self.torch.cuda.stream(self._stream):
            self._buffers[ptr][: host.nbytes].copy_(self._host(host))

    def d2h(self, host: np.ndarray, ptr: int) -> None:
        with self.torch.cuda.stream(self._stream):
            self._host(host).copy_(self._buffers[ptr][: host.nbytes])

    def synchronize(self) -> None:
        self._stream.synchronize()

    def free(self, handle) -> None:
        self._buffers.pop(int(handle.data_ptr()), None)


def _cuda_memory():
    """cuda-python if installed, else cupy, else PyTorch (chosen when a TensorRT backend starts)."""
    errors = []
    for cls in (_CudaPythonMemory, _CupyMemory, _TorchMemory):
        try:
            return cls()
        except ImportError as exc:
            errors.append(f"{cls.__name__}: {exc}")
        except BackendError:
            raise
        except Exception as exc:  # driver missing, no device
            raise BackendError(f"CUDA is not usable here ({type(exc).__name__}: {exc})") from None
    raise BackendError("backend 'tensorrt' needs cuda-python (pip install cuda-python) or cupy for device memory "
                       f"({'; '.join(errors)})")


class TensorRTRunner:
    """A deserialised TensorRT engine (TensorRT 10/11 name-based I/O API), one execution context.

    Device buffers are kept between calls of one shape. Only run engines you built (an engine file
    is executable code for the GPU).

    Raises
    ------
    BackendError
        tensorrt or CUDA (cuda-python / cupy) missing, or an engine built for another GPU / TensorRT.
    """

    name = "tensorrt"

    def __init__(self, path: str | Path, dims: int | None = None):
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
        if set(self.inputs) == {"moving", "fixed"}:  # else: two inputs in export order (moving, fixed)
            self.inputs = ["moving", "fixed"]
        self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        rank = len(engine.get_tensor_shape(self.inputs[0]))
        if dims is not None and rank != dims + 2:
            raise ModelCardError(f"{path}: input {self.inputs[0]!r} has rank {rank}, but the card says {dims}D")
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


def make_runner(path: str | Path, backend: str = "auto", threads: int | None = None, dims: int | None = None):
    """The runner of ``backend`` (one of :data:`BACKENDS`) for a model file (``.onnx`` or engine).

    Raises
    ------
    BackendError
        Unknown backend, a backend that cannot run here, or a file of the other kind.
    """
    path = Path(path)
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}, expected one of {', '.join(BACKENDS)}")
    is_engine = path.suffix in ENGINE_SUFFIXES
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
        return TensorRTRunner(path, dims=dims)
    if is_engine:
        raise BackendError(f"{path.name} is a TensorRT engine; use backend 'tensorrt' (or 'auto')")
    return OrtRunner(path, cuda=backend == "onnxruntime-cuda", threads=threads, dims=dims)
