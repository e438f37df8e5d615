"""Build TensorRT engines from static ONNX graphs (TensorRT imported lazily).

One engine per resolution: the static graph ``model.<DxHxW>[.fp16].onnx`` is parsed with
``trt.OnnxParser`` into a strongly typed network (TensorRT >= 10: precision comes from the graph;
TensorRT 11 has no other way), built with ``build_serialized_network`` for exactly that shape, and
written as ``model.<DxHxW>.<fp16|fp32>.engine``. fp32 engines are built without TF32 so that they
keep float32 accuracy (the 1e-3 voxel parity bound).

Engines are tied to the TensorRT version and the GPU architecture they were built with: by default
an engine loads only under the same TensorRT release on a GPU of the same compute capability (a
Triton server runs the TensorRT inside its container). Both go into the sidecar card, with the
compatibility options: ``version_compatible=True`` (``BuilderFlag.VERSION_COMPATIBLE``: later
TensorRT releases of the same major load it; the engine embeds TensorRT's lean runtime, so loading
needs ``Runtime.engine_host_code_allowed``, which the runtime sets from the card, and Triton needs
``--backend-config=tensorrt,version-compatible=true``) and ``hardware_compatibility``
(``"ampere-plus"``: any GPU of compute capability >= 8.0; ``"same-cc"``: other GPUs of the same
compute capability, TensorRT >= 10.x where the level exists). Both may cost speed.

Engines are run (export-time parity, the runtime, benchmarks) by the runtime's one TensorRT runner,
:class:`fnoreg_export.runtime.backends.TensorRTRunner`. The GPU facts of the card come from a CUDA
build of PyTorch (the export machine has one).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TensorRTUnavailable", "EngineBuildError", "INSTALL_HINT", "HARDWARE_COMPATIBILITY", "tensorrt_status",
           "require_tensorrt", "gpu_facts", "build_engine"]

INSTALL_HINT = (
    "TensorRT engines need an NVIDIA GPU with its CUDA driver, a CUDA build of PyTorch (the export machine), "
    "the TensorRT Python package and cuda-python for device memory: pip install 'fnoreg[gpu]' (onnxruntime-gpu, "
    "tensorrt, cuda-python), or pip install tensorrt-cu12 cuda-python (CUDA 12) / tensorrt-cu13 (CUDA 13). "
    "The ONNX files work without it (onnxruntime or onnxruntime-gpu)."
)

#: ``hardware_compatibility`` values of :func:`build_engine` -> ``trt.HardwareCompatibilityLevel`` member.
HARDWARE_COMPATIBILITY = {"none": "NONE", "ampere-plus": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}


class TensorRTUnavailable(RuntimeError):
    """TensorRT or a CUDA GPU is missing; the message says what to install."""


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the graph or build/run the engine."""


def tensorrt_status() -> tuple[bool, str]:
    """``(available, reason)``: whether TensorRT and a CUDA GPU can be used here, and if not, why."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install raising OSError on its libraries
        return False, f"the TensorRT Python package is not importable ({type(exc).__name__}: {exc})"
    try:
        import torch
    except ImportError:
        return False, "PyTorch is not installed (it provides the GPU buffers)"
    if not torch.cuda.is_available():
        return False, "no CUDA GPU is visible to PyTorch (CPU-only build, no NVIDIA driver, or no GPU)"
    return True, f"TensorRT {tensorrt.__version__} on {torch.cuda.get_device_name(0)}"


def require_tensorrt():
    """The ``tensorrt`` module, or :class:`TensorRTUnavailable` with what to install."""
    ok, reason = tensorrt_status()
    if not ok:
        raise TensorRTUnavailable(f"cannot build TensorRT engines: {reason}. {INSTALL_HINT}")
    import tensorrt

    return tensorrt


def gpu_facts() -> dict[str, Any]:
    """Name and compute capability of the current CUDA device, and the TensorRT/CUDA versions."""
    import tensorrt as trt
    import torch

    device = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(device)
    return {"tensorrt_version": trt.__version__, "gpu_name": torch.cuda.get_device_name(device),
            "compute_capability": f"{major}.{minor}", "cuda_version": torch.version.cuda}


def _logger(trt):
    return trt.Logger(trt.Logger.WARNING)


def _network_flags(trt) -> int:
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    strongly = getattr(creation, "STRONGLY_TYPED", None)
    if strongly is not None:  # TensorRT >= 10 (always on in 11, where the flag may be deprecated)
        flags |= 1 << int(strongly)
    major = int(str(trt.__version__).split(".")[0])
    explicit = getattr(creation, "EXPLICIT_BATCH", None)
    if explicit is not None and major < 10:  # TensorRT 8/9 need it for ONNX graphs
        flags |= 1 << int(explicit)
    return flags


def build_engine(onnx_path: str | Path, engine_path: str | Path, shape: tuple[int, ...],
                 precision: str = "fp32", workspace_bytes: int | None = None, version_compatible: bool = False,
                 hardware_compatibility: str = "none", exclude_lean_runtime: bool = False) -> dict[str, Any]:
    """Build a serialized engine for inputs of exactly ``shape`` (``(1, 1, *spatial)``).

    Parameters
    ----------
    onnx_path : static graph (a dynamic one works too: its optimisation profile is pinned to ``shape``)
    engine_path : output file, written atomically
    precision : "fp32" (TF32 disabled) or "fp16" (the graph must be fp16: strongly typed networks
        take precision from the graph; TensorRT < 10 gets the FP16 builder flag instead)
    workspace_bytes : builder workspace limit (default: TensorRT's, the GPU's memory)
    version_compatible : ``BuilderFlag.VERSION_COMPATIBLE``: later TensorRT releases (same major) load
        the engine; it embeds the lean runtime unless ``exclude_lean_runtime``
    hardware_compatibility : "none" (default: this GPU's compute capability only), "ampere-plus" or
        "same-cc" (``trt.HardwareCompatibilityLevel``)
    exclude_lean_runtime : with ``version_compatible``, ``BuilderFlag.EXCLUDE_LEAN_RUNTIME`` (the
        loading side then needs the lean runtime of its own TensorRT)

    Returns
    -------
    build facts: TensorRT version, GPU name and compute capability, CUDA version, build time in
    seconds, shape, precision, TF32, compatibility flags, I/O data types, engine size.

    Raises
    ------
    ValueError
        Unknown precision or hardware_compatibility.
    TensorRTUnavailable, EngineBuildError
        TensorRT or a GPU missing; this TensorRT lacks a requested compatibility option; the parser
        or builder failed.
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"expected precision 'fp32' or 'fp16', got {precision!r}")
    if hardware_compatibility not in HARDWARE_COMPATIBILITY:
        raise ValueError(f"expected hardware_compatibility one of {', '.join(HARDWARE_COMPATIBILITY)}, "
                         f"got {hardware_compatibility!r}")
    trt = require_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    shape = tuple(int(n) for n in shape)
    logger = _logger(trt)
    builder = trt.Builder(logger)
    flags = _network_flags(trt)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT's ONNX parser rejected {onnx_path.name}: " + "; ".join(errors[:5]))
    config = builder.create_builder_config()
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # keep fp32 matmuls exact to float32
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None) is not None
    if precision == "fp16" and not strongly:
        config.set_flag(trt.BuilderFlag.FP16)
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if exclude_lean_runtime:
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
    if hardware_compatibility != "none":
        level = getattr(getattr(trt, "HardwareCompatibilityLevel", None), HARDWARE_COMPATIBILITY[hardware_compatibility],
                        None)
        if level is None:
            raise EngineBuildError(f"TensorRT {trt.__version__} has no hardware compatibility level "
                                   f"{HARDWARE_COMPATIBILITY[hardware_compatibility]}")
        config.hardware_compatibility_level = level
    dynamic_inputs = [network.get_input(i) for i in range(network.num_inputs)
                      if any(d < 0 for d in network.get_input(i).shape)]
    if dynamic_inputs:
        profile = builder.create_optimization_profile()
        for tensor in dynamic_inputs:
            profile.set_shape(tensor.name, shape, shape, shape)
        config.add_optimization_profile(profile)
    for i in range(network.num_inputs):
        declared = tuple(network.get_input(i).shape)
        if all(d >= 0 for d in declared) and declared != shape:
            raise EngineBuildError(f"{onnx_path.name} takes {declared}, not the requested {shape}")
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path.name} (see its log above)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(memoryview(serialized))
        os.replace(tmp, engine_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    io_dtypes = {}
    for tensor in [network.get_input(i) for i in range(network.num_inputs)] + \
            [network.get_output(i) for i in range(network.num_outputs)]:
        io_dtypes[tensor.name] = getattr(tensor.dtype, "name", str(tensor.dtype))
    return {**gpu_facts(), "build_time_s": round(seconds, 3), "input_shape": list(shape), "precision": precision,
            "strongly_typed": strongly, "tf32": False if precision == "fp32" else None,
            "version_compatible": bool(version_compatible),
            "exclude_lean_runtime": bool(version_compatible and exclude_lean_runtime),
            "hardware_compatibility": hardware_compatibility, "io_dtypes": io_dtypes,
            "onnx": onnx_path.name, "engine_bytes": engine_path.stat().st_size}
