"""Stand-ins for ``tensorrt`` and cuda-python's ``cuda.bindings.runtime`` that record every call.

They follow the documented APIs (TensorRT 10 Python API: Runtime, ICudaEngine name-based I/O,
IExecutionContext.execute_async_v3(stream_handle); cuda-python: calls return ``(cudaError_t, value)``,
``cudaStream_t`` objects whose ``int()`` is the handle and whose ``getPtr()`` is the address of the
Python wrapper's field). "Device" and "pinned host" memory are ctypes buffers, so copies are real
memmoves and the fake engine computes on what the runner copied in. The fake engine's output is
``concat(moving - fixed, moving + fixed, ...)`` over ``dims`` channels, in the engine's dtype.

An engine file for the fake runtime is JSON: ``{"shape": [1, 1, H, W], "dtype": "FLOAT",
"out_dtype": ..., "no_context": false}``; the bytes ``b"stale"`` stand for an engine of another
TensorRT version (deserialisation returns None).
"""

from __future__ import annotations

import ctypes
import enum
import json
import types

import numpy as np

__all__ = ["FakeCudart", "make_fake_tensorrt", "install"]


class FakeCudart(types.ModuleType):
    """``cuda.bindings.runtime`` with a log of calls (``self.log``) and leak accounting."""

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorInsufficientDriver = 35
        cudaErrorInvalidResourceHandle = 400

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToHost = 0
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStream_t:
        def __init__(self, handle: int):
            self._handle = handle
            self._field = ctypes.c_uint64(handle)

        def __int__(self):
            return self._handle

        def getPtr(self):  # the address of the wrapper's field, NOT the stream
            return ctypes.addressof(self._field)

    def __init__(self, devices: int = 1):
        super().__init__("cuda.bindings.runtime")
        self.devices = devices
        self.log: list[tuple] = []
        self.device: dict[int, ctypes.Array] = {}
        self.pinned: dict[int, ctypes.Array] = {}
        self.streams: dict[int, "FakeCudart.cudaStream_t"] = {}
        self.destroyed: list[int] = []
        self._next_stream = 0x7F00

    # -- device and errors
    def cudaGetDeviceCount(self):
        if self.devices < 0:
            return (self.cudaError_t.cudaErrorInsufficientDriver, None)
        return (self.cudaError_t.cudaSuccess, self.devices)

    def cudaGetErrorName(self, err):
        return (self.cudaError_t.cudaSuccess, self.cudaError_t(int(err)).name.encode())

    # -- streams
    def cudaStreamCreate(self):
        self._next_stream += 0x10
        stream = self.cudaStream_t(self._next_stream)
        self.streams[int(stream)] = stream
        self.log.append(("stream_create", int(stream)))
        return (self.cudaError_t.cudaSuccess, stream)

    def cudaStreamDestroy(self, stream):
        if not isinstance(stream, self.cudaStream_t) or int(stream) not in self.streams:
            return (self.cudaError_t.cudaErrorInvalidResourceHandle,)
        del self.streams[int(stream)]
        self.destroyed.append(int(stream))
        self.log.append(("stream_destroy", int(stream)))
        return (self.cudaError_t.cudaSuccess,)

    def cudaStreamSynchronize(self, stream):
        self._stream_ok(stream)
        self.log.append(("sync", int(stream)))
        return (self.cudaError_t.cudaSuccess,)

    def _stream_ok(self, stream):
        if not isinstance(stream, self.cudaStream_t) or int(stream) not in self.streams:
            raise AssertionError(f"not a live stream: {stream!r}")

    # -- memory
    def cudaMalloc(self, nbytes):
        buf = (ctypes.c_uint8 * int(nbytes))()
        self.device[ctypes.addressof(buf)] = buf
        self.log.append(("malloc", ctypes.addressof(buf), int(nbytes)))
        return (self.cudaError_t.cudaSuccess, ctypes.addressof(buf))

    def cudaFree(self, ptr):
        del self.device[int(ptr)]
        return (self.cudaError_t.cudaSuccess,)

    def cudaMallocHost(self, nbytes):
        buf = (ctypes.c_uint8 * int(nbytes))()
        self.pinned[ctypes.addressof(buf)] = buf
        self.log.append(("malloc_host", ctypes.addressof(buf), int(nbytes)))
        return (self.cudaError_t.cudaSuccess, ctypes.addressof(buf))

    def cudaFreeHost(self, ptr):
        del self.pinned[int(ptr)]
        return (self.cudaError_t.cudaSuccess,)

    def _inside(self, table, ptr, count):
        return any(base <= ptr and ptr + count <= base + len(buf) for base, buf in table.items())

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):
        self._stream_ok(stream)
        dst, src, count = int(dst), int(src), int(count)
        if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice:
            assert self._inside(self.device, dst, count), "H2D destination is not device memory"
            assert self._inside(self.pinned, src, count), "H2D source is not pinned host memory"
            self.log.append(("h2d", dst, count))
        elif kind == self.cudaMemcpyKind.cudaMemcpyDeviceToHost:
            assert self._inside(self.pinned, dst, count), "D2H destination is not pinned host memory"
            assert self._inside(self.device, src, count), "D2H source is not device memory"
            self.log.append(("d2h", src, count))
        else:
            raise AssertionError(f"unexpected copy kind {kind}")
        ctypes.memmove(dst, src, count)
        return (self.cudaError_t.cudaSuccess,)

    def device_array(self, ptr: int, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape)) * dtype.itemsize
        assert self._inside(self.device, ptr, count), f"{ptr:#x} (+{count}) is not device memory"
        return np.ctypeslib.as_array((ctypes.c_uint8 * count).from_address(ptr)).view(dtype).reshape(shape)


def make_fake_tensorrt(cudart: FakeCudart, version: str = "10.16.0") -> types.ModuleType:
    """A ``tensorrt`` module whose engines run the toy model on ``cudart``'s device memory."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.executions: list[dict] = []

    class DataType(enum.Enum):
        FLOAT = 0
        HALF = 1
        INT8 = 2
        INT32 = 3
        BOOL = 4
        UINT8 = 5
        FP8 = 6
        BF16 = 7
        INT64 = 8

    class TensorIOMode(enum.Enum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class Logger:
        WARNING = 2

        def __init__(self, severity=None):
            self.severity = severity

    numpy_of = {"FLOAT": np.float32, "HALF": np.float16}

    class Context:
        def __init__(self, engine):
            self.engine = engine
            self.shapes: dict[str, tuple] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name, shape):
            if tuple(shape) != tuple(self.engine.spec["shape"]):
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            shape = list(self.engine.spec["shape"])
            return [shape[0], len(shape) - 2, *shape[2:]] if name == "ddf_norm" else shape

        def set_tensor_address(self, name, ptr):
            assert isinstance(ptr, int), f"tensor address of {name} must be an int, got {type(ptr).__name__}"
            self.addresses[name] = ptr
            return True

        def execute_async_v3(self, stream_handle):
            trt.executions.append({"stream_handle": stream_handle, "addresses": dict(self.addresses)})
            assert type(stream_handle) is int, f"stream handle must be an int, got {type(stream_handle).__name__}"
            if stream_handle not in cudart.streams:
                raise AssertionError(f"execute_async_v3 got {stream_handle:#x}, not a live CUDA stream "
                                     f"(live: {[hex(s) for s in cudart.streams]})")
            cudart.log.append(("exec", stream_handle))
            spec = self.engine.spec
            in_dtype = numpy_of[spec["dtype"]]
            moving = cudart.device_array(self.addresses["moving"], spec["shape"], in_dtype).astype(np.float32)
            fixed = cudart.device_array(self.addresses["fixed"], spec["shape"], in_dtype).astype(np.float32)
            out_shape = self.get_tensor_shape("ddf_norm")
            channels = [moving - fixed, moving + fixed, 2 * moving][: out_shape[1]]
            out = cudart.device_array(self.addresses["ddf_norm"], out_shape, numpy_of[spec.get("out_dtype",
                                                                                           spec["dtype"])])
            out[...] = np.concatenate(channels, axis=1)
            return True

    class Engine:
        def __init__(self, spec):
            self.spec = spec
            self.num_io_tensors = 3

        def get_tensor_name(self, i):
            return ["moving", "fixed", "ddf_norm"][i]

        def get_tensor_mode(self, name):
            return TensorIOMode.OUTPUT if name == "ddf_norm" else TensorIOMode.INPUT

        def get_tensor_dtype(self, name):
            key = self.spec.get("out_dtype", self.spec["dtype"]) if name == "ddf_norm" else self.spec["dtype"]
            return DataType[key]

        def get_tensor_shape(self, name):
            return Context(self).get_tensor_shape(name)

        def create_execution_context(self):
            return None if self.spec.get("no_context") else Context(self)

    class Runtime:
        def __init__(self, logger):
            self.logger = logger
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, data):
            if data == b"stale":
                return None
            spec = json.loads(bytes(data))
            if spec.get("version_compatible") and not self.engine_host_code_allowed:
                return None  # a lean runtime inside: TensorRT refuses without engine_host_code_allowed
            return Engine(spec)

    def nptype(dtype):
        if dtype.name in numpy_of:
            return numpy_of[dtype.name]
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")

    trt.DataType, trt.TensorIOMode, trt.Logger, trt.Runtime, trt.nptype = DataType, TensorIOMode, Logger, Runtime, nptype
    return trt


def install(monkeypatch, devices: int = 1, version: str = "10.16.0"):
    """Put the fake ``cuda.bindings.runtime`` and ``tensorrt`` into ``sys.modules``; returns both."""
    cudart = FakeCudart(devices)
    cuda_pkg = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda_pkg.bindings = bindings
    trt = make_fake_tensorrt(cudart, version)
    for name, module in {"cuda": cuda_pkg, "cuda.bindings": bindings, "cuda.bindings.runtime": cudart,
                         "tensorrt": trt}.items():
        monkeypatch.setitem(__import__("sys").modules, name, module)
    return cudart, trt
