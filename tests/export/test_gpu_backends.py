"""The GPU backends' calls, checked against recording stand-ins of cuda-python, TensorRT and
onnxruntime-gpu (issue 17): the stream handle given to ``execute_async_v3`` is ``int(stream)``,
copies go through pinned host buffers on that stream in order, buffers have the engine's sizes and
dtypes, the stream and buffers are released, engines of unknown dtypes or without a context are
refused, and ``backend="auto"`` falls back to the CPU when the CUDA provider is listed but does not
start. The real GPU runs are in test_runtime.py (marked gpu) and benchmarks/gpu/check.py."""

import json
import sys
import types
import warnings

import numpy as np
import pytest

from fake_gpu import install

from fnoreg_export.runtime import backends as B
from fnoreg_export.runtime.backends import BackendError, TensorRTRunner


def _engine(tmp_path, name="m.engine", card_engine=None, **spec):
    spec = {"shape": [1, 1, 8, 12], "dtype": "FLOAT", **spec}
    path = tmp_path / name
    path.write_bytes(json.dumps(spec).encode())
    if card_engine is not None:
        (tmp_path / (name + ".json")).write_text(json.dumps({"extra": {"engine": card_engine}}))
    return path


def _pair(shape=(1, 1, 8, 12), seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)


@pytest.fixture
def gpu(monkeypatch):
    return install(monkeypatch)


@pytest.mark.parametrize("dtype", ["FLOAT", "HALF"])
def test_tensorrt_runner_stream_buffers_and_order(gpu, tmp_path, dtype):
    cudart, trt = gpu
    runner = TensorRTRunner(_engine(tmp_path, dtype=dtype), dims=2, memory="cuda-python")
    stream = runner.cuda._stream
    assert runner.cuda.stream_handle == int(stream) != stream.getPtr()
    moving, fixed = _pair()
    for call in range(2):  # buffers are reused for a second call of the same shape
        cudart.log.clear()
        out = runner(moving, fixed)
        (execution,) = trt.executions[-1:]
        assert execution["stream_handle"] == int(stream)
        kinds = [entry[0] for entry in cudart.log if entry[0] in ("h2d", "exec", "d2h", "sync")]
        assert kinds == ["h2d", "h2d", "exec", "d2h", "sync"], kinds
        allocs = [entry for entry in cudart.log if entry[0].startswith("malloc")]
        if call == 0:  # one device and one pinned host buffer per tensor, of the engine's sizes
            itemsize = 2 if dtype == "HALF" else 4
            assert sorted(e[2] for e in allocs) == sorted([8 * 12 * itemsize] * 4 + [2 * 8 * 12 * itemsize] * 2)
        else:
            assert allocs == []
        assert all(entry[-1] == int(stream) for entry in cudart.log if entry[0] in ("exec", "sync"))
    itemsize = 2 if dtype == "HALF" else 4
    assert [e[2] for e in cudart.log if e[0] == "h2d"] == [8 * 12 * itemsize] * 2
    assert [e[2] for e in cudart.log if e[0] == "d2h"] == [2 * 8 * 12 * itemsize]
    assert out.dtype == np.float32 and out.shape == (1, 2, 8, 12)
    tol = 2e-3 if dtype == "HALF" else 0
    np.testing.assert_allclose(out, np.concatenate([moving - fixed, moving + fixed], 1), atol=tol)
    assert len(trt.executions) == 2 and len(cudart.device) == 3 and len(cudart.pinned) == 3
    runner.close()
    assert cudart.destroyed == [int(stream)] and not cudart.device and not cudart.pinned
    runner.close()  # idempotent
    with pytest.raises(BackendError, match="closed"):
        runner(moving, fixed)


def test_tensorrt_runner_context_manager_and_new_shape(gpu, tmp_path):
    cudart, _ = gpu
    with TensorRTRunner(_engine(tmp_path), memory="cuda-python") as runner:
        with pytest.raises(ValueError, match="built for one size"):
            runner(*_pair((1, 1, 8, 16)))
        runner(*_pair())
    assert len(cudart.destroyed) == 1 and not cudart.device and not cudart.pinned


def test_tensorrt_runner_refuses_bad_engines(gpu, tmp_path):
    cudart, _ = gpu
    with pytest.raises(BackendError, match=r"tensor 'moving' is BF16; FNOReg engines take and return FLOAT or HALF"):
        TensorRTRunner(_engine(tmp_path, dtype="BF16"), memory="cuda-python")
    with pytest.raises(BackendError, match="tensor 'ddf_norm' is INT32"):
        TensorRTRunner(_engine(tmp_path, out_dtype="INT32"), memory="cuda-python")
    with pytest.raises(BackendError, match="could not create an execution context"):
        TensorRTRunner(_engine(tmp_path, no_context=True), memory="cuda-python")
    stale = tmp_path / "stale.engine"
    stale.write_bytes(b"stale")
    (tmp_path / "stale.engine.json").write_text(json.dumps({"extra": {"engine": {
        "tensorrt_version": "10.3.0", "gpu_name": "NVIDIA A100", "compute_capability": "8.0"}}}))
    with pytest.raises(BackendError, match=r"TensorRT 10.16.0 cannot load .*built with TensorRT 10.3.0 on NVIDIA A100 "
                                           r"\(compute capability 8.0\)"):
        TensorRTRunner(stale, memory="cuda-python")
    # every failed start released what it took
    assert len(cudart.destroyed) == 4 and not cudart.streams and not cudart.device


def test_version_compatible_engine_allows_host_code_from_its_card(gpu, tmp_path):
    path = _engine(tmp_path, version_compatible=True)
    with pytest.raises(BackendError, match="cannot load"):
        TensorRTRunner(path, memory="cuda-python")  # no card: host code not allowed
    path = _engine(tmp_path, "vc.engine", card_engine={"version_compatible": True, "exclude_lean_runtime": False},
                   version_compatible=True)
    with TensorRTRunner(path, memory="cuda-python") as runner:
        assert runner._runtime.engine_host_code_allowed is True
        assert runner.build_facts["version_compatible"] is True
    with TensorRTRunner(_engine(tmp_path, "plain.engine", card_engine={"version_compatible": False}),
                        memory="cuda-python") as runner:
        assert runner._runtime.engine_host_code_allowed is False


def test_dtype_map_refuses_types_without_numpy_equivalent(gpu):
    trt = gpu[1]
    assert B.trt_numpy_dtype(trt.DataType.HALF) == np.float16
    assert B.trt_numpy_dtype(trt.DataType.INT64) == np.int64
    for name in ("BF16", "FP8"):
        with pytest.raises(BackendError, match=f"TensorRT data type {name} has no numpy equivalent"):
            B.trt_numpy_dtype(trt.DataType[name])


def test_no_device_or_driver(monkeypatch, tmp_path):
    cudart, _ = install(monkeypatch, devices=0)
    assert "tensorrt" not in B.available_backends()
    with pytest.raises(BackendError, match="no CUDA device"):
        TensorRTRunner(_engine(tmp_path))
    cudart.devices = -1  # no driver
    assert B.cuda_device_count() == 0
    with pytest.raises(BackendError, match="CUDA error cudaErrorInsufficientDriver"):
        TensorRTRunner(_engine(tmp_path))
    cudart.devices = 1
    assert "tensorrt" in B.available_backends()


def test_tensorrt_without_cuda_memory_package_says_what_to_install(monkeypatch, tmp_path):
    install(monkeypatch)
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cupy", "torch"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails
    with pytest.raises(BackendError, match=r"needs cuda-python \(pip install cuda-python, or 'fnoreg\[gpu\]'\)"):
        TensorRTRunner(_engine(tmp_path))


# ----------------------------------------------------------------------------------------- onnxruntime-gpu


@pytest.fixture
def ort_gpu_without_gpu(monkeypatch):
    """onnxruntime as onnxruntime-gpu on a machine without a usable GPU: CUDAExecutionProvider is
    listed, a session asked for it starts on the CPU (what the CPU build does with the request too)."""
    ort = pytest.importorskip("onnxruntime")
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    calls = []
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: (calls.append(1), print("Failed to load libcudnn.so.9")),
                        raising=False)
    monkeypatch.setattr(B, "_PRELOAD_REPORT", None)
    B.ort_cuda_usable.cache_clear()
    yield calls
    B.ort_cuda_usable.cache_clear()


def test_auto_falls_back_to_cpu_when_cuda_provider_does_not_start(fno2d, ort_gpu_without_gpu):
    path = fno2d[1]
    with pytest.warns(RuntimeWarning, match="onnxruntime-cuda is listed but cannot run here"):
        runner = B.make_runner(path, "auto")
    assert runner.name == "onnxruntime-cpu"
    assert "could not start its CUDA provider" in runner.fallback and "libcudnn.so.9" in runner.fallback
    assert ort_gpu_without_gpu == [1]  # preload_dlls once, before the CUDA session
    with pytest.raises(BackendError, match="could not start its CUDA provider"):
        B.make_runner(path, "onnxruntime-cuda")
    assert ort_gpu_without_gpu == [1]
    usable, reason = B.ort_cuda_usable()
    assert not usable and "did not start" in reason
    assert "onnxruntime-cuda" not in B.available_backends()
    moving, fixed = _pair((1, 1, 48, 64))
    assert runner(moving, fixed).shape == (1, 2, 48, 64)


def test_auto_uses_cuda_when_it_starts(fno2d, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])

    class Session:  # a CUDA session that starts
        def __init__(self, path, opts, providers):
            self.providers = providers

        def get_providers(self):
            return self.providers

        def get_inputs(self):
            return [types.SimpleNamespace(name=n, type="tensor(float)", shape=[1, 1, "h", "w"])
                    for n in ("moving", "fixed")]

        def get_outputs(self):
            return [types.SimpleNamespace(name="ddf_norm")]

    monkeypatch.setattr(ort, "InferenceSession", Session)
    monkeypatch.setattr(ort, "preload_dlls", lambda: None, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runner = B.make_runner(fno2d[1], "auto")
    assert runner.name == "onnxruntime-cuda" and runner.fallback is None
    assert runner.session.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cpu_build_never_preloads(fno2d, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setattr(ort, "preload_dlls", lambda: pytest.fail("preload_dlls on the CPU path"), raising=False)
    monkeypatch.setattr(B, "_PRELOAD_REPORT", None)
    assert B.make_runner(fno2d[1], "onnxruntime-cpu").name == "onnxruntime-cpu"


# ----------------------------------------------------------------------------------------- engine building


def _fake_builder_trt(monkeypatch, levels=("NONE", "AMPERE_PLUS", "SAME_COMPUTE_CAPABILITY")):
    """A tensorrt module with the builder half of the API; records the config it builds with."""
    import enum

    from fnoreg_export import tensorrt_build as TB

    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.16.0"
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 5})
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", {"FP16": 0, "TF32": 7, "VERSION_COMPATIBLE": 15,
                                                   "EXCLUDE_LEAN_RUNTIME": 16})
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})
    if levels:
        trt.HardwareCompatibilityLevel = enum.IntEnum("HardwareCompatibilityLevel", {n: i for i, n in enumerate(levels)})
    trt.DataType = enum.Enum("DataType", {"FLOAT": 0, "HALF": 1})
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, s=None: None})
    trt.built = []

    class Config:
        def __init__(self):
            self.flags = {trt.BuilderFlag.TF32}  # TensorRT's default on Ampere and newer
            self.hardware_compatibility_level = trt.HardwareCompatibilityLevel.NONE if levels else None

        def set_flag(self, flag):
            self.flags.add(flag)

        def clear_flag(self, flag):
            self.flags.discard(flag)

        def set_memory_pool_limit(self, pool, size):
            self.workspace = size

    tensor = lambda name, c: types.SimpleNamespace(name=name, shape=(1, c, 8, 12), dtype=trt.DataType.FLOAT)  # noqa: E731

    class Network:
        num_inputs, num_outputs = 2, 1

        def get_input(self, i):
            return tensor(["moving", "fixed"][i], 1)

        def get_output(self, i):
            return tensor("ddf_norm", 2)

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            assert flags == 1 << 5, "strongly typed network expected"
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            trt.built.append(config)
            return b"plan"

    trt.Builder = Builder
    trt.OnnxParser = lambda network, logger: types.SimpleNamespace(parse_from_file=lambda p: True, num_errors=0)
    monkeypatch.setattr(TB, "require_tensorrt", lambda: trt)
    monkeypatch.setattr(TB, "gpu_facts", lambda: {"tensorrt_version": trt.__version__, "gpu_name": "NVIDIA H200",
                                                  "compute_capability": "9.0", "cuda_version": "12.8"})
    return TB, trt


def test_build_engine_clears_tf32_and_records_compatibility(monkeypatch, tmp_path):
    TB, trt = _fake_builder_trt(monkeypatch)
    onnx_path = tmp_path / "model.8x12.onnx"
    onnx_path.write_bytes(b"graph")
    facts = TB.build_engine(onnx_path, tmp_path / "a.engine", (1, 1, 8, 12))
    config = trt.built[-1]
    assert trt.BuilderFlag.TF32 not in config.flags and trt.BuilderFlag.VERSION_COMPATIBLE not in config.flags
    assert config.hardware_compatibility_level == trt.HardwareCompatibilityLevel.NONE
    assert facts["tf32"] is False and facts["version_compatible"] is False and facts["hardware_compatibility"] == "none"
    assert facts["io_dtypes"] == {"moving": "FLOAT", "fixed": "FLOAT", "ddf_norm": "FLOAT"}
    assert (tmp_path / "a.engine").read_bytes() == b"plan"

    facts = TB.build_engine(onnx_path, tmp_path / "b.engine", (1, 1, 8, 12), version_compatible=True,
                            hardware_compatibility="ampere-plus")
    config = trt.built[-1]
    assert trt.BuilderFlag.VERSION_COMPATIBLE in config.flags and trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME not in config.flags
    assert config.hardware_compatibility_level == trt.HardwareCompatibilityLevel.AMPERE_PLUS
    assert facts["version_compatible"] is True and facts["exclude_lean_runtime"] is False
    TB.build_engine(onnx_path, tmp_path / "c.engine", (1, 1, 8, 12), version_compatible=True,
                    exclude_lean_runtime=True, hardware_compatibility="same-cc")
    assert trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME in trt.built[-1].flags
    assert trt.built[-1].hardware_compatibility_level == trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
    with pytest.raises(ValueError, match="expected hardware_compatibility one of none, ampere-plus, same-cc"):
        TB.build_engine(onnx_path, tmp_path / "d.engine", (1, 1, 8, 12), hardware_compatibility="turing")
    with pytest.raises(ValueError, match="expected precision 'fp32' or 'fp16'"):
        TB.build_engine(onnx_path, tmp_path / "d.engine", (1, 1, 8, 12), precision="bf16")


def test_build_engine_without_the_hardware_level(monkeypatch, tmp_path):
    TB, _ = _fake_builder_trt(monkeypatch, levels=("NONE", "AMPERE_PLUS"))
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"graph")
    with pytest.raises(TB.EngineBuildError, match="no hardware compatibility level SAME_COMPUTE_CAPABILITY"):
        TB.build_engine(onnx_path, tmp_path / "e.engine", (1, 1, 8, 12), hardware_compatibility="same-cc")
