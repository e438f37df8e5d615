"""Inference backends: one runner per backend, shared by every tool that runs an exported model.

(Over 500 lines on purpose: onnxruntime CPU/CUDA and TensorRT runners share one interface, the
provider checks and the CUDA memory helpers; splitting them would split that contract.)

A runner is a callable ``runner(moving, fixed) -> ddf_norm`` on ``(B, 1, *spatial)`` arrays
(float32 in, float32 out, whatever the graph's own dtype), created once and reused:

* :class:`OrtRunner`: onnxruntime, CPU (``"onnxruntime-cpu"``) or CUDA (``"onnxruntime-cuda"``,
  package onnxruntime-gpu), with :func:`ort_session_options`;
* :class:`TensorRTRunner`: a serialised TensorRT engine (``"tensorrt"``; device memory through
  cuda-python or cupy).

:func:`make_runner` picks one from a file and a backend name (``"auto"``: tensorrt for ``.engine``
files, else onnxruntime-cuda where its provider starts, else onnxruntime-cpu with a
``RuntimeWarning``: onnxruntime-gpu lists ``CUDAExecutionProvider`` even where no GPU, driver or
cuDNN is usable). The runtime
(:class:`fnoreg_export.runtime.Registrator`), export-time parity (:mod:`fnoreg_export.parity`,
``fnoreg-export``), ``fnoreg-eval`` (:mod:`fnoreg_export.eval_cli`) and the benchmarks all run
models through these classes, so what is measured is what users deploy. numpy only; no torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..model_card import ModelCardError

__all__ = ["BACKENDS", "BackendError", "RunInterrupted", "available_backends", "ort_session_options", "OrtRunner",
           "TensorRTRunner", "make_runner", "ENGINE_SUFFIXES", "ort_cuda_usable", "preload_cuda_libraries",
           "cuda_device_count", "CUDA_MEMORY", "TRT_NUMPY_DTYPES", "trt_numpy_dtype", "engine_build_facts"]

#: Backend names accepted by :func:`make_runner` and :meth:`Registrator.load`.
BACKENDS = ("auto", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt")

#: File suffixes of TensorRT engines.
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class BackendError(RuntimeError):
    """The requested inference backend cannot run here (package or GPU missing, engine mismatch)."""


class RunInterrupted(RuntimeError):
    """A network call was aborted by :meth:`Registrator.interrupt` (from another thread)."""



#: A one-node ONNX graph (Identity of a float[1]) that starts an onnxruntime session cheaply: the
#: probe of whether the CUDA provider really runs here (see :func:`ort_cuda_usable`).
_PROBE_ONNX = (b'\x08\x08\x12\x00:;\n\x10\n\x01x\x12\x01y"\x08Identity\x12\x05probeZ\x0f\n\x01x\x12\n\n\x08\x08'
               b'\x01\x12\x04\n\x02\x08\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01B\x04\n\x00\x10\r')


_PRELOAD_REPORT: str | None = None  # what preload_dlls printed; None: not called yet


def preload_cuda_libraries(ort) -> str:
    """``onnxruntime.preload_dlls()`` (onnxruntime-gpu >= 1.21) once per process, before a CUDA session.

    It loads the CUDA and cuDNN libraries from the ``nvidia-*`` wheels (those PyTorch installs, or
    onnxruntime-gpu's ``[cuda,cudnn]`` extra), so no ``LD_LIBRARY_PATH`` is needed. Older versions
    and CPU builds: nothing happens. Returns what it printed (library load failures), or "".
    """
    global _PRELOAD_REPORT
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return ""
    if _PRELOAD_REPORT is None:
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer):  # it prints its failures
                preload()
        except Exception as exc:  # a missing directory or library: the session then says what fails
            buffer.write(f"preload_dlls failed: {type(exc).__name__}: {exc}")
        _PRELOAD_REPORT = " ".join(buffer.getvalue().split())
    return _PRELOAD_REPORT


@functools.lru_cache(maxsize=1)
def ort_cuda_usable() -> tuple[bool, str]:
    """``(usable, reason)``: whether onnxruntime's CUDA provider starts a session here (a probe
    session of a one-node graph; cached). Listing ``CUDAExecutionProvider`` is not enough:
    onnxruntime-gpu lists it without a GPU, driver or cuDNN and then runs on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False, "onnxruntime is not installed"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False, "CUDAExecutionProvider is not available (the onnxruntime CPU package is installed)"
    report = preload_cuda_libraries(ort)
    try:
        session = ort.InferenceSession(_PROBE_ONNX, ort_session_options(1),
                                       providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    except Exception as exc:
        return False, f"the CUDA provider failed to start ({type(exc).__name__}: {str(exc).strip()[:200]})"
    if session.get_providers()[0] != "CUDAExecutionProvider":
        return False, ("onnxruntime-gpu is installed but its CUDA provider did not start (no GPU, driver, CUDA or "
                       f"cuDNN library){': ' + report if report else ''}")
    return True, "onnxruntime CUDA provider started"


def cuda_device_count() -> int:
    """CUDA devices visible here through cuda-python, else cupy, else PyTorch (0 when none or no driver).

    Asked only when TensorRT is importable; torch is imported only when neither cuda-python nor cupy is.
    """
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:  # cuda-python < 12.6
            from cuda import cudart
        err, count = cudart.cudaGetDeviceCount()
        return int(count) if int(err) == 0 else 0
    except ImportError:
        pass
    try:
        import cupy

        try:
            return int(cupy.cuda.runtime.getDeviceCount())
        except Exception:  # cupy raises CUDARuntimeError without a driver
            return 0
    except ImportError:
        pass
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def available_backends() -> list[str]:
    """Backends that can run on this machine (``"auto"`` excluded): ``onnxruntime-cuda`` only when its
    provider really starts (:func:`ort_cuda_usable`), ``tensorrt`` only with a CUDA device."""
    out = []
    try:
        import onnxruntime  # noqa: F401

        out.append("onnxruntime-cpu")
        if ort_cuda_usable()[0]:
            out.append("onnxruntime-cuda")
    except ImportError:
        pass
    try:
        import tensorrt  # noqa: F401

        if cuda_device_count() > 0:
            out.append("tensorrt")
    except ImportError:
        pass
    return out


def ort_session_options(threads: int | None = None):
    """The onnxruntime ``SessionOptions`` every FNOReg tool uses (runtime, fnoreg-eval, benchmarks).

    Sequential execution, all graph optimisations, ``threads`` intra-op threads (None or 0:
    onnxruntime's default, all physical cores). Memory, for volumes that are few and large:

    * the CPU memory arena is ON: without it every intermediate volume is a fresh ``mmap`` whose
      pages the kernel zeroes on first touch, and at 160x192x224 that page-fault time is larger than
      the compute (bundled FNOReg-3D, 2 threads: 8.1 s without, 3.0 s with);
    * the allocation planner's buffer REUSE is OFF: with symbolic shapes it pins every buffer it
      means to hand to a later node of the same shape, so memory only grows through the encoder
      (4.1 GB peak RSS with reuse, 1.1 GB without, same speed);
    * memory patterns are off (with them the earlier graph peaked at 8.8 GB, ``benchmarks/latency.py``).

    Measured with ``python benchmarks/ort_profile.py --session-variant ...``
    (``benchmarks/results/ort_session_options_160x192x224.md``).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads) if threads else 0
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = True
    opts.enable_mem_reuse = False
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
        #: why ``make_runner(backend="auto")`` fell back to this CPU runner (None: it did not)
        self.fallback: str | None = None
        report = preload_cuda_libraries(ort) if cuda else ""
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if cuda:  # the CUDA provider, or the file? A CPU session tells them apart
                try:
                    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                except Exception:
                    pass
                else:
                    raise BackendError(f"onnxruntime's CUDA provider failed on {Path(path).name} "
                                       f"({type(exc).__name__}: {first}); use --backend onnxruntime-cpu") from None
            raise ModelCardError(f"{path} cannot be loaded by onnxruntime ({type(exc).__name__}: {first})") from None
        if cuda and self.session.get_providers()[0] != "CUDAExecutionProvider":
            raise BackendError("onnxruntime could not start its CUDA provider (no GPU, or the driver, CUDA or cuDNN "
                               f"libraries missing{': ' + report if report else ''}); use --backend onnxruntime-cpu")
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


class _CudaPythonMemory:
    """Device memory, pinned host memory and one stream through cuda-python (``cuda.bindings.runtime``),
    as NVIDIA's ``samples/python/common_runtime.py`` does.

    The stream is a ``cudaStream_t`` object: calls of cuda-python take the object itself, TensorRT's
    ``execute_async_v3`` takes its handle ``int(stream)`` (``stream.getPtr()`` is the host address of
    the Python wrapper's field, not the stream).
    """

    name = "cuda-python"

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
        self.stream_handle = int(self._stream)

    def _check(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            _, name = self.rt.cudaGetErrorName(err)
            raise BackendError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
        return rest[0] if len(rest) == 1 else (tuple(rest) if rest else None)

    def alloc(self, nbytes: int):
        ptr = self._check(self.rt.cudaMalloc(max(int(nbytes), 1)))
        return ptr, int(ptr)

    def free(self, handle) -> None:
        self._check(self.rt.cudaFree(handle))

    def alloc_host(self, nbytes: int):
        """Page-locked host memory (``cudaMallocHost``) as a uint8 array, so copies are truly asynchronous."""
        ptr = int(self._check(self.rt.cudaMallocHost(max(int(nbytes), 1))))
        return ptr, np.ctypeslib.as_array((ctypes.c_uint8 * max(int(nbytes), 1)).from_address(ptr))[: int(nbytes)]

    def free_host(self, handle) -> None:
        self._check(self.rt.cudaFreeHost(handle))

    def h2d(self, ptr: int, host: np.ndarray) -> None:
        self._check(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes,
                                            self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream))

    def d2h(self, host: np.ndarray, ptr: int) -> None:
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes,
                                            self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream))

    def synchronize(self) -> None:
        self._check(self.rt.cudaStreamSynchronize(self._stream))

    def close(self) -> None:
        """Destroy the stream (once)."""
        stream, self._stream = getattr(self, "_stream", None), None
        if stream is not None:
            self._check(self.rt.cudaStreamDestroy(stream))


class _CupyMemory:
    """Device memory, pinned host memory and a stream through cupy."""

    name = "cupy"

    def __init__(self):
        import cupy

        self.cp = cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise BackendError("no CUDA device found")
        self._stream = cupy.cuda.Stream(non_blocking=True)
        self.stream_handle = int(self._stream.ptr)

    def alloc(self, nbytes: int):
        mem = self.cp.cuda.alloc(max(int(nbytes), 1))
        return mem, int(mem.ptr)

    def free(self, handle) -> None:
        del handle  # cupy frees on garbage collection

    def alloc_host(self, nbytes: int):
        mem = self.cp.cuda.alloc_pinned_memory(max(int(nbytes), 1))
        return mem, np.frombuffer(mem, np.uint8, int(nbytes))

    def free_host(self, handle) -> None:
        del handle

    def h2d(self, ptr: int, host: np.ndarray) -> None:
        self.cp.cuda.runtime.memcpyAsync(ptr, host.ctypes.data, host.nbytes,
                                         self.cp.cuda.runtime.memcpyHostToDevice, self.stream_handle)

    def d2h(self, host: np.ndarray, ptr: int) -> None:
        self.cp.cuda.runtime.memcpyAsync(host.ctypes.data, ptr, host.nbytes,
                                         self.cp.cuda.runtime.memcpyDeviceToHost, self.stream_handle)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def close(self) -> None:
        self._stream = None  # cupy destroys the stream on garbage collection


class _TorchMemory:
    """Device memory, pinned host memory and a stream through a CUDA build of PyTorch: the last resort,
    for the export machine (which has torch) when neither cuda-python nor cupy is installed. A runtime
    with one of them never imports torch."""

    name = "torch"

    def __init__(self):
        import torch

        if not torch.cuda.is_available():
            raise BackendError("no CUDA device found (torch.cuda.is_available() is False)")
        self.torch = torch
        self._stream = torch.cuda.Stream()
        self.stream_handle = int(self._stream.cuda_stream)
        self._buffers: dict[int, Any] = {}  # device pointer -> uint8 tensor
        self._pinned: dict[int, Any] = {}  # host address -> pinned uint8 tensor

    def alloc(self, nbytes: int):
        buf = self.torch.empty(max(int(nbytes), 1), dtype=self.torch.uint8, device="cuda")
        self._buffers[int(buf.data_ptr())] = buf
        return buf, int(buf.data_ptr())

    def free(self, handle) -> None:
        self._buffers.pop(int(handle.data_ptr()), None)

    def alloc_host(self, nbytes: int):
        buf = self.torch.empty(max(int(nbytes), 1), dtype=self.torch.uint8, pin_memory=True)
        self._pinned[int(buf.data_ptr())] = buf
        return buf, buf.numpy()[: int(nbytes)]

    def free_host(self, handle) -> None:
        self._pinned.pop(int(handle.data_ptr()), None)

    def _host(self, host: np.ndarray):
        pinned = self._pinned.get(int(host.ctypes.data))
        return pinned[: host.nbytes] if pinned is not None else self.torch.from_numpy(host.reshape(-1).view(np.uint8))

    def h2d(self, ptr: int, host: np.ndarray) -> None:
        with self.torch.cuda.stream(self._stream):
            self._buffers[ptr][: host.nbytes].copy_(self._host(host), non_blocking=True)

    def d2h(self, host: np.ndarray, ptr: int) -> None:
        with self.torch.cuda.stream(self._stream):
            self._host(host).copy_(self._buffers[ptr][: host.nbytes], non_blocking=True)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def close(self) -> None:
        self._stream = None


#: The device-memory helpers in the order :func:`_cuda_memory` tries them.
CUDA_MEMORY = {"cuda-python": _CudaPythonMemory, "cupy": _CupyMemory, "torch": _TorchMemory}


def _cuda_memory(prefer: str | None = None):
    """cuda-python if installed, else cupy, else PyTorch (chosen when a TensorRT backend starts);
    ``prefer`` (a :data:`CUDA_MEMORY` key) tries only that one."""
    errors = []
    if prefer is not None and prefer not in CUDA_MEMORY:
        raise BackendError(f"unknown CUDA memory helper {prefer!r}, expected one of {', '.join(CUDA_MEMORY)}")
    for name, cls in CUDA_MEMORY.items():
        if prefer is not None and name != prefer:
            continue
        try:
            return cls()
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
        except BackendError:
            raise
        except Exception as exc:  # driver missing, no device
            raise BackendError(f"CUDA is not usable here ({type(exc).__name__}: {exc})") from None
    raise BackendError("backend 'tensorrt' needs cuda-python (pip install cuda-python, or 'fnoreg[gpu]') or cupy "
                       f"for device memory ({'; '.join(errors)})")


#: TensorRT I/O data types (``trt.DataType`` member names) and their numpy types. The others (BF16,
#: FP8, INT4, FP4, ...) have no numpy type: such an engine is refused, never fed float32 bytes.
TRT_NUMPY_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
                    "INT64": np.int64, "UINT8": np.uint8, "BOOL": np.bool_}
#: The data types an FNOReg engine's images and displacement may have.
TRT_FLOAT_IO = ("FLOAT", "HALF")


def trt_numpy_dtype(dtype) -> np.dtype:
    """numpy dtype of a ``trt.DataType``; :class:`BackendError` for types numpy has not (BF16, FP8, ...)."""
    name = getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]
    if name not in TRT_NUMPY_DTYPES:
        raise BackendError(f"TensorRT data type {name} has no numpy equivalent (expected one of "
                           f"{', '.join(TRT_NUMPY_DTYPES)})")
    return np.dtype(TRT_NUMPY_DTYPES[name])


def engine_build_facts(path: str | Path) -> dict[str, Any]:
    """The build facts fnoreg-export records in an engine's sidecar card (``<file>.json``, key
    ``extra.engine``: TensorRT version, GPU, compute capability, compatibility flags); {} if none."""
    try:
        card = json.loads(Path(str(path) + ".json").read_text())
        facts = card.get("extra", {}).get("engine", {})
        return facts if isinstance(facts, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


class _HostDeviceBuffer:
    """A page-locked host array and a device buffer of one tensor (``common_runtime.HostDeviceMem``)."""

    def __init__(self, cuda, shape: tuple[int, ...], dtype: np.dtype):
        self.cuda, self.shape, self.dtype = cuda, tuple(shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self._device_handle, self.device = cuda.alloc(self.nbytes)
        try:
            self._host_handle, raw = cuda.alloc_host(self.nbytes)
        except BaseException:
            cuda.free(self._device_handle)
            raise
        self.host = raw.view(self.dtype).reshape(self.shape)

    def free(self) -> None:
        handles, self._device_handle, self._host_handle = (self._device_handle, self._host_handle), None, None
        if handles[0] is not None:
            self.cuda.free(handles[0])
        if handles[1] is not None:
            self.cuda.free_host(handles[1])


class TensorRTRunner:
    """A deserialised TensorRT engine (TensorRT 10/11 name-based I/O API), one execution context.

    Per tensor, one page-locked host buffer and one device buffer, kept between calls of one shape;
    one CUDA stream: host->device copies, ``execute_async_v3(stream handle)`` and the device->host
    copy are queued on it in that order, then the stream is synchronised. :meth:`close` (or leaving a
    ``with`` block) frees the buffers and destroys the stream. Only run engines you built (an engine
    file is executable code for the GPU).

    Parameters
    ----------
    path : the ``.engine`` file
    dims : the model's spatial dimensionality (inputs of rank ``dims + 2``); None: unchecked
    allow_host_code : set ``Runtime.engine_host_code_allowed`` (needed by version-compatible engines
        that embed TensorRT's lean runtime); None: as the sidecar card's build facts say
    memory : device-memory helper, one of :data:`CUDA_MEMORY` (None: the first installed)

    Raises
    ------
    BackendError
        tensorrt or CUDA (cuda-python / cupy / torch) missing, an engine built for another GPU or
        TensorRT, no execution context (GPU memory), or I/O data types other than FLOAT/HALF.

    >>> with TensorRTRunner("model.160x192x224.fp32.engine", dims=3) as run:   # doctest: +SKIP
    ...     ddf_norm = run(moving, fixed)                                         # (1, 3, 160, 192, 224) float32
    """

    name = "tensorrt"

    def __init__(self, path: str | Path, dims: int | None = None, allow_host_code: bool | None = None,
                 memory: str | None = None):
        self._buffers: dict[str, _HostDeviceBuffer] = {}
        self.cuda = None
        try:
            import tensorrt as trt
        except ImportError:
            raise BackendError("backend 'tensorrt' needs the tensorrt package, cuda-python and an NVIDIA GPU "
                               "(pip install 'fnoreg[gpu]'); use an .onnx model with onnxruntime instead") from None
        self.trt = trt
        self.threads = None
        path = Path(path)
        facts = engine_build_facts(path)
        self.build_facts = facts
        self.cuda = _cuda_memory(memory)
        try:
            self._load(trt, path, dims, facts, allow_host_code)
        except BaseException:
            self.close()
            raise

    def _load(self, trt, path: Path, dims, facts: dict, allow_host_code) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if allow_host_code is None:
            allow_host_code = bool(facts.get("version_compatible")) and not facts.get("exclude_lean_runtime")
        if allow_host_code:
            self._runtime.engine_host_code_allowed = True
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            built = ""
            if facts:
                built = (f" It was built with TensorRT {facts.get('tensorrt_version', '?')} on "
                         f"{facts.get('gpu_name', '?')} (compute capability {facts.get('compute_capability', '?')}"
                         f"{', version-compatible' if facts.get('version_compatible') else ''}"
                         f"{', hardware compatibility ' + str(facts['hardware_compatibility']) if facts.get('hardware_compatibility') not in (None, 'none') else ''}).")
            raise BackendError(f"TensorRT {trt.__version__} cannot load {path}: engines are tied to the GPU "
                               f"architecture and TensorRT version they were built with.{built} Rebuild it on this "
                               "machine (fnoreg-export --trt), or build it --trt-version-compatible / "
                               "--trt-hardware-compat ampere-plus")
        self.engine = engine
        context = engine.create_execution_context()
        if context is None:
            raise BackendError(f"TensorRT could not create an execution context for {path.name} (not enough free "
                               "GPU memory?)")
        self.context = context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(self.inputs) != 2 or len(self.outputs) != 1:
            raise ModelCardError(f"{path} has inputs {self.inputs} and outputs {self.outputs}; an FNOReg engine has "
                                 "moving, fixed -> ddf_norm")
        if set(self.inputs) == {"moving", "fixed"}:  # else: two inputs in export order (moving, fixed)
            self.inputs = ["moving", "fixed"]
        self.dtypes = {}
        for n in names:
            dtype = engine.get_tensor_dtype(n)
            kind = getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]
            if kind not in TRT_FLOAT_IO:
                raise BackendError(f"{path.name}: tensor {n!r} is {kind}; FNOReg engines take and return FLOAT or "
                                   "HALF tensors (build the engine from the fp32 or fp16 graph)")
            self.dtypes[n] = trt_numpy_dtype(dtype)
        rank = len(engine.get_tensor_shape(self.inputs[0]))
        if dims is not None and rank != dims + 2:
            raise ModelCardError(f"{path}: input {self.inputs[0]!r} has rank {rank}, but the card says {dims}D")

    def _buffer(self, name: str, shape: tuple[int, ...]) -> _HostDeviceBuffer:
        held = self._buffers.get(name)
        if held is not None and held.shape == shape:
            return held
        if held is not None:
            del self._buffers[name]
            held.free()
        self._buffers[name] = buf = _HostDeviceBuffer(self.cuda, shape, self.dtypes[name])
        return buf

    def __call__(self, moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        """``(B, dims, *spatial)`` float32 ddf_norm of ``(B, 1, *spatial)`` moving and fixed images."""
        if self.cuda is None or getattr(self.cuda, "_stream", None) is None:
            raise BackendError("this TensorRT runner is closed")
        for name, arr in zip(self.inputs, (moving, fixed)):
            arr = np.asarray(arr)
            if not self.context.set_input_shape(name, arr.shape):
                raise ValueError(f"the TensorRT engine does not accept input {name!r} of shape {arr.shape} "
                                 f"(engines are built for one size: {tuple(self.engine.get_tensor_shape(name))})")
            buf = self._buffer(name, tuple(arr.shape))
            np.copyto(buf.host, arr, casting="same_kind")  # float32 -> the engine's float16 where it is fp16
            self.cuda.h2d(buf.device, buf.host)
            self.context.set_tensor_address(name, buf.device)
        out_name = self.outputs[0]
        shape = tuple(int(n) for n in self.context.get_tensor_shape(out_name))
        if any(n < 0 for n in shape):
            raise RuntimeError(f"TensorRT left the output shape unresolved: {shape}")
        out = self._buffer(out_name, shape)
        self.context.set_tensor_address(out_name, out.device)
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        self.cuda.d2h(out.host, out.device)
        self.cuda.synchronize()
        return out.host.astype(np.float32, copy=True)  # the pinned buffer is reused by the next call

    def close(self) -> None:
        """Free the buffers and destroy the stream (idempotent; also on garbage collection)."""
        buffers, self._buffers = getattr(self, "_buffers", {}), {}
        for buf in buffers.values():
            try:
                buf.free()
            except Exception:  # interpreter shutdown, context already gone
                pass
        cuda = getattr(self, "cuda", None)
        if cuda is not None and getattr(cuda, "_stream", None) is not None:
            try:
                cuda.synchronize()  # nothing may still use the buffers or the stream
                cuda.close()
            except Exception:
                pass

    def __enter__(self) -> "TensorRTRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()


def make_runner(path: str | Path, backend: str = "auto", threads: int | None = None, dims: int | None = None):
    """The runner of ``backend`` (one of :data:`BACKENDS`) for a model file (``.onnx`` or engine).

    ``"auto"``: tensorrt for engine files; for ``.onnx``, onnxruntime-cuda where the CUDA provider is
    listed and starts, else onnxruntime-cpu (a ``RuntimeWarning`` says why when the provider is
    listed but does not start; the CPU runner's ``fallback`` holds the reason).

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
            if cuda:
                try:
                    return OrtRunner(path, cuda=True, threads=threads, dims=dims)
                except BackendError as exc:
                    runner = OrtRunner(path, cuda=False, threads=threads, dims=dims)
                    runner.fallback = str(exc)
                    warnings.warn(f"backend 'auto': onnxruntime-cuda is listed but cannot run here ({exc}); running "
                                  "on onnxruntime-cpu", RuntimeWarning, stacklevel=2)
                    return runner
            backend = "onnxruntime-cpu"
    if backend == "tensorrt":
        if not is_engine:
            raise BackendError(f"backend 'tensorrt' runs TensorRT engines (*.engine), got {path.name}; build one with "
                               "fnoreg-export or use an onnxruntime backend")
        return TensorRTRunner(path, dims=dims)
    if is_engine:
        raise BackendError(f"{path.name} is a TensorRT engine; use backend 'tensorrt' (or 'auto')")
    return OrtRunner(path, cuda=backend == "onnxruntime-cuda", threads=threads, dims=dims)
