"""One-call check of the GPU path on a lent GPU machine (issue 17); a dry run on CPUs.

Run through ``benchmarks/gpu/validate.sh`` (which sets up imports and the carried wheels). Sections,
each ``ok`` / ``skipped: <reason>`` / ``FAILED: <reason>``:

1. ``env``: torch / CUDA / GPU, onnxruntime providers, tensorrt, cuda-python, cupy.
2. ``torch``: the bundled 3-D (and 2-D) model in eager PyTorch on CUDA vs the CPU, fp32 with TF32
   off (bound 1e-3 voxel), the fp16 / bf16 autocast error against it, latency (median of 5 after
   a warm-up) and peak memory, at the training size and at 160x192x224.
3. ``standin``: the runtime's :class:`TensorRTRunner` driven by a stand-in ``tensorrt`` module whose
   engine runs the real model on the runner's own CUDA buffers, on the stream whose handle the
   runner passed to ``execute_async_v3`` (``torch.cuda.ExternalStream``): checks the stream handle,
   buffer sizes, FLOAT and HALF I/O, pinned host buffers and stream ordering with the device memory
   helper present (torch there; cuda-python when carried), without TensorRT.
4. ``onnxruntime``: ``backend="auto"`` on the bundled model.onnx (the CUDA provider when it starts,
   else the CPU fallback with its reason), parity with torch.
5. ``presets``: random-weight FNOReg presets (``3d-cpu``, the bundled size, and ``3d``, the paper's
   94 M-parameter one) at 160x192x224 on the GPU: fp32 / bf16 latency and peak memory.
6. ``tensorrt``: when tensorrt is importable: static export, ``build_engine`` (TF32 off), the
   runtime's TensorRTRunner, parity with onnxruntime CPU (bound 1e-3 voxel) and latency.

Writes ``$OUT/gpu_check.json`` and ``$OUT/gpu_check.md``; exit 0 when nothing FAILED. Without CUDA
(or with ``--dry``) it runs small sizes on the CPU and skips the GPU sections with their reasons.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
VOXEL_BOUND = 1e-3  # fp32 parity bound, voxels (as fnoreg-export)


def setup_imports() -> list[str]:
    """Make ``fnoreg_core`` / ``fnoreg_export`` importable from the checkout without installing it and
    without nibabel / monai (the device image lacks them unless carried). Returns notes."""
    notes = []
    sys.path.insert(0, str(ROOT))
    try:
        import fnoreg_export  # noqa: F401
    except ImportError:
        pkg = types.ModuleType("fnoreg_export")
        pkg.__path__ = [str(ROOT / "export")]
        sys.modules["fnoreg_export"] = pkg
        notes.append("fnoreg_export mapped to export/ (not installed)")
    try:
        import nibabel  # noqa: F401
    except ImportError:  # the runtime package's __init__ needs nibabel: load its backends module alone
        sub = types.ModuleType("fnoreg_export.runtime")
        sub.__path__ = [str(ROOT / "export" / "runtime")]
        sys.modules["fnoreg_export.runtime"] = sub
        notes.append("nibabel missing: fnoreg_export.runtime loaded without its __init__ (backends only)")
    try:
        import monai  # noqa: F401
    except ImportError:  # only VoxelMorph needs it; the bundled models are FNOReg
        for name in ("monai", "monai.networks", "monai.networks.nets"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["monai.networks.nets"].VoxelMorphUNet = None
        notes.append("monai missing: stubbed (VoxelMorph unavailable; the bundled FNOReg models do not need it)")
    return notes


class Report:
    def __init__(self):
        self.sections: dict[str, dict] = {}
        self.started = time.perf_counter()

    def run(self, name: str, fn, *args):
        t0 = time.perf_counter()
        entry = {"status": "ok", "lines": [], "data": {}}
        self.sections[name] = entry
        try:
            fn(entry, *args)
        except Skip as exc:
            entry["status"] = f"skipped: {exc}"
        except Exception as exc:  # report, continue with the next section
            entry["status"] = f"FAILED: {type(exc).__name__}: {str(exc)[:400]}"
            entry["traceback"] = traceback.format_exc()[-2000:]
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        print(f"[{name}] {entry['status']} ({entry['seconds']:.1f} s)", flush=True)
        for line in entry["lines"]:
            print(f"    {line}", flush=True)
        return entry

    @property
    def failed(self) -> bool:
        return any(e["status"].startswith("FAILED") for e in self.sections.values())


class Skip(Exception):
    pass


def smooth_pair(shape, seed=0):
    """Two smooth random volumes in [0, 1], ``(1, 1, *shape)`` float32 (a blob shifted a little)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    def blob(shift):
        r2 = sum((g - s) ** 2 for g, s in zip(grids, shift))
        return np.exp(-3 * r2).astype(np.float32)
    fixed = blob(rng.uniform(-0.1, 0.1, len(shape))) + 0.05 * rng.random(shape, dtype=np.float32)
    moving = blob(rng.uniform(-0.2, 0.2, len(shape))) + 0.05 * rng.random(shape, dtype=np.float32)
    return moving[None, None], fixed[None, None]


def max_vox(a, b) -> float:
    from fnoreg_core.fields import ddf_norm_to_vox

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(ddf_norm_to_vox(a - b, a.shape[2:])).max())


def load_bundled(dims: int):
    from fnoreg_core.checkpoint import load_model

    path = ROOT / "assets" / "models" / f"fnoreg{dims}d" / "checkpoint.pt"
    if not path.is_file():
        raise Skip(f"{path} not found")
    model, ckpt = load_model(path)
    return model, path.parent


# ------------------------------------------------------------------------------------------------ sections


def section_env(entry, ctx):
    import torch

    d = entry["data"]
    d.update(python=platform.python_version(), torch=torch.__version__, torch_cuda=torch.version.cuda,
             cuda_available=torch.cuda.is_available(), cpu_cores=os.cpu_count(), import_notes=ctx["notes"])
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        d.update(gpu=props.name, compute_capability=f"{props.major}.{props.minor}",
                 gpu_memory_gib=round(props.total_memory / 2**30, 1))
    for mod in ("onnxruntime", "tensorrt", "cupy", "onnx"):
        try:
            m = __import__(mod)
            d[mod] = getattr(m, "__version__", "?")
        except Exception as exc:
            d[mod] = f"absent ({type(exc).__name__})"
    try:
        from cuda.bindings import runtime  # noqa: F401
        d["cuda-python"] = "present"
    except Exception as exc:
        d["cuda-python"] = f"absent ({type(exc).__name__})"
    if not str(d["onnxruntime"]).startswith("absent"):
        import onnxruntime as ort
        d["onnxruntime_providers"] = ort.get_available_providers()
    entry["lines"] += [f"{k}: {v}" for k, v in d.items()]


def _time(fn, sync, repeats):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def section_torch(entry, ctx):
    import torch

    cuda = torch.cuda.is_available() and not ctx["dry"]
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for dims, sizes in ctx["torch_sizes"].items():
        model, _ = load_bundled(dims)
        for shape in sizes:
            key = f"{dims}d {'x'.join(map(str, shape))}"
            moving, fixed = smooth_pair(shape)
            m_t, f_t = torch.from_numpy(moving), torch.from_numpy(fixed)
            row = {}
            with torch.no_grad():
                ref = None
                if ctx["cpu_ref_ok"](shape):
                    t0 = time.perf_counter()
                    ref = model(m_t, f_t).numpy()
                    row["cpu_s"] = round(time.perf_counter() - t0, 3)
                    ctx["cpu_seconds"][key] = row["cpu_s"]
                if not cuda:
                    entry["lines"].append(f"{key}: CPU fp32 {row.get('cpu_s', '-')} s; GPU skipped: "
                                          f"{ctx['dry_reason']}")
                    entry["data"][key] = row
                    continue
                gm = model.to("cuda")
                m_c, f_c = m_t.cuda(), f_t.cuda()
                torch.cuda.reset_peak_memory_stats()
                out32 = gm(m_c, f_c)
                row["fp32_ms"] = round(1e3 * _time(lambda: gm(m_c, f_c), torch.cuda.synchronize, 5), 2)
                row["fp32_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
                out32_np = out32.float().cpu().numpy()
                if ref is not None:
                    row["fp32_vs_cpu_vox"] = max_vox(out32_np, ref)
                    if row["fp32_vs_cpu_vox"] > VOXEL_BOUND:
                        ctx["failures"].append(f"torch {key}: CUDA fp32 vs CPU {row['fp32_vs_cpu_vox']:.2e} voxel "
                                               f"> {VOXEL_BOUND}")
                for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
                    try:
                        with torch.autocast("cuda", dtype=dtype):
                            low = gm(m_c, f_c).float().cpu().numpy()
                            row[f"{name}_ms"] = round(1e3 * _time(lambda: gm(m_c, f_c), torch.cuda.synchronize, 5), 2)
                        row[f"{name}_vs_fp32_vox"] = max_vox(low, out32_np)
                    except Exception as exc:
                        row[f"{name}_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                model.to("cpu")
                del gm, m_c, f_c, out32
                torch.cuda.empty_cache()
            entry["data"][key] = row
            entry["lines"].append(f"{key}: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                                         for k, v in row.items()))
    if ctx["failures"]:
        raise RuntimeError("; ".join(ctx["failures"]))
    if not cuda:
        raise Skip(f"{ctx['dry_reason']} (CPU reference only)")


def section_presets(entry, ctx):
    """Random-weight FNOReg presets (the paper's 3-D one: 94 M parameters) on the GPU at 160x192x224:
    fp32 and bf16-autocast latency and peak memory; where a GPU is needed (issue 16)."""
    import torch

    from fnoreg_core.models import create_model

    cuda = torch.cuda.is_available() and not ctx["dry"]
    device = "cuda" if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for preset in ctx["presets"]:
        torch.manual_seed(0)
        model = create_model("fnoreg", preset=preset).eval().to(device)
        shape = ctx["preset_shape"]
        key = f"{preset} {'x'.join(map(str, shape))}"
        row = {"params_m": round(sum(q.numel() for q in model.parameters()) / 1e6, 1), "device": device}
        moving, fixed = (torch.from_numpy(a).to(device) for a in smooth_pair(shape))
        with torch.no_grad():
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            model(moving, fixed)
            row["fp32_ms"] = round(1e3 * _time(lambda: model(moving, fixed), sync, 3), 1)
            if cuda:
                row["fp32_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    model(moving, fixed)
                    row["bf16_ms"] = round(1e3 * _time(lambda: model(moving, fixed), sync, 3), 1)
        del model, moving, fixed
        if cuda:
            torch.cuda.empty_cache()
        entry["data"][key] = row
        entry["lines"].append(f"{key}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    if not cuda:
        raise Skip(f"{ctx['dry_reason']} (CPU run at a small size only)")


class _CudaArray:
    """A raw device pointer as a ``__cuda_array_interface__`` (v3) so torch can use it in place."""

    def __init__(self, ptr: int, shape, dtype):
        self.__cuda_array_interface__ = {"shape": tuple(int(n) for n in shape), "typestr": np.dtype(dtype).str,
                                         "data": (int(ptr), False), "version": 3, "strides": None}


def _view(ptr: int, shape, dtype, device: str):
    """A torch tensor over the memory at ``ptr`` (no copy): CUDA memory, or (dry run) the host
    memory that the recording fake of cuda-python hands out as device memory."""
    import ctypes

    import torch

    if device == "cuda":
        return torch.as_tensor(_CudaArray(ptr, shape, dtype), device="cuda")
    count = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.ctypeslib.as_array((ctypes.c_uint8 * count).from_address(ptr))
    return torch.from_numpy(raw.view(dtype).reshape(tuple(shape)))


def standin_tensorrt(model, shape, io: str, log: list, device: str = "cuda", live_streams=None):
    """A ``tensorrt`` module (the subset TensorRTRunner uses) whose engine runs ``model`` in place on
    the runner's buffers, on ``torch.cuda.ExternalStream(stream_handle)`` (CUDA), or (dry run) on the
    fake cuda-python's memory after checking the handle against its live streams."""
    import contextlib
    import enum

    import torch

    trt = types.ModuleType("tensorrt")
    trt.__version__ = "stand-in"
    trt.DataType = enum.Enum("DataType", {"FLOAT": 0, "HALF": 1})
    trt.TensorIOMode = enum.Enum("TensorIOMode", {"INPUT": 1, "OUTPUT": 2})
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, s=None: None})
    np_dtype = np.float16 if io == "HALF" else np.float32
    out_shape = [1, len(shape), *shape]

    class Context:
        def __init__(self):
            self.addr = {}

        def set_input_shape(self, name, s):
            return list(s) == [1, 1, *shape]

        def get_tensor_shape(self, name):
            return out_shape if name == "ddf_norm" else [1, 1, *shape]

        def set_tensor_address(self, name, ptr):
            if type(ptr) is not int:
                raise TypeError(f"tensor address of {name} is {type(ptr).__name__}, expected int")
            self.addr[name] = ptr
            return True

        def execute_async_v3(self, stream_handle):
            if type(stream_handle) is not int:
                raise TypeError(f"stream handle is {type(stream_handle).__name__}, expected int")
            log.append(stream_handle)
            if device == "cuda":
                ctx = torch.cuda.stream(torch.cuda.ExternalStream(stream_handle))
            else:
                if stream_handle not in live_streams:
                    raise RuntimeError(f"execute_async_v3 got {stream_handle:#x}, not a live stream")
                ctx = contextlib.nullcontext()
            with ctx, torch.no_grad():
                m = _view(self.addr["moving"], [1, 1, *shape], np_dtype, device)
                f = _view(self.addr["fixed"], [1, 1, *shape], np_dtype, device)
                o = _view(self.addr["ddf_norm"], out_shape, np_dtype, device)
                o.copy_(model(m.float(), f.float()).to(o.dtype))
            return True

    class Engine:
        num_io_tensors = 3

        def get_tensor_name(self, i):
            return ["moving", "fixed", "ddf_norm"][i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.OUTPUT if name == "ddf_norm" else trt.TensorIOMode.INPUT

        def get_tensor_dtype(self, name):
            return trt.DataType[io]

        def get_tensor_shape(self, name):
            return Context().get_tensor_shape(name)

        def create_execution_context(self):
            return Context()

    class Runtime:
        def __init__(self, logger):
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, data):
            return Engine()

    trt.Runtime = Runtime
    return trt


def section_standin(entry, ctx):
    import torch

    from fnoreg_export.runtime import backends as B

    device = "cpu" if ctx["dry"] else "cuda"
    model, folder = load_bundled(3)
    gm = model.to(device)
    shape = ctx["standin_shape"]
    moving, fixed = smooth_pair(shape, seed=3)
    with torch.no_grad():
        direct = gm(torch.from_numpy(moving).to(device), torch.from_numpy(fixed).to(device)).float().cpu().numpy()
    engine = Path(ctx["work"]) / "standin.engine"
    engine.write_bytes(b"stand-in")
    names = ("tensorrt", "cuda", "cuda.bindings", "cuda.bindings.runtime")
    saved = {name: sys.modules.get(name) for name in names}
    live = None
    if device == "cpu":  # the recording fake of cuda-python from the tests: "device" memory is host memory
        sys.path.insert(0, str(ROOT / "tests" / "export"))
        from fake_gpu import FakeCudart

        cudart = FakeCudart()
        live = cudart.streams
        cuda_pkg, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
        cuda_pkg.bindings, bindings.runtime = bindings, cudart
        sys.modules.update({"cuda": cuda_pkg, "cuda.bindings": bindings, "cuda.bindings.runtime": cudart})
        helpers = ["cuda-python"]
        entry["lines"].append(f"dry run: {ctx['dry_reason']}; CUDA memory is the tests' recording fake of cuda-python")
    else:
        helpers = [name for name in B.CUDA_MEMORY if _helper_present(name)]
    try:
        for memory in helpers:
            for io in ("FLOAT", "HALF"):
                log: list[int] = []
                sys.modules["tensorrt"] = standin_tensorrt(gm, shape, io, log, device, live)
                with B.TensorRTRunner(engine, dims=3, memory=memory) as runner:
                    out = runner(moving, fixed)
                    handle = runner.cuda.stream_handle
                    nbytes = {n: b.nbytes for n, b in runner._buffers.items()}
                    t = _time(lambda: runner(moving, fixed), lambda: None, 3 if device == "cuda" else 1)
                itemsize = 2 if io == "HALF" else 4
                want = {"moving": int(np.prod(shape)) * itemsize, "fixed": int(np.prod(shape)) * itemsize,
                        "ddf_norm": 3 * int(np.prod(shape)) * itemsize}
                err = max_vox(out, direct)
                bound = VOXEL_BOUND if io == "FLOAT" else 0.1
                ok = (log and all(h == handle for h in log) and nbytes == want and out.dtype == np.float32
                      and err <= bound)
                entry["data"][f"{memory} {io}"] = {"stream_handle": hex(handle), "executions": len(log),
                                                   "buffer_bytes": nbytes, "max_vox_vs_torch": err,
                                                   "call_ms": round(1e3 * t, 2), "ok": bool(ok)}
                entry["lines"].append(f"{memory} {io}: handle {hex(handle)} passed {len(log)}x, buffers {nbytes}, "
                                      f"|runner - torch| {err:.2e} voxel (bound {bound}), {1e3 * t:.1f} ms/call")
                if not ok:
                    raise RuntimeError(f"stand-in engine via {memory} ({io}) wrong: {entry['data'][f'{memory} {io}']}")
        if device == "cpu" and (cudart.streams or cudart.device or cudart.pinned):
            raise RuntimeError("the runner left streams or buffers behind")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        model.to("cpu")
    entry["lines"].append(f"memory helpers: {helpers}" + ("" if device == "cpu" else
                                                           " (cuda-python/cupy absent unless carried)"))
    if device == "cpu":
        raise Skip(f"{ctx['dry_reason']}: the runner's calls were checked on the CPU with a fake CUDA, not on a GPU")


def _helper_present(name: str) -> bool:
    import importlib.util

    if name == "cuda-python":
        try:
            return importlib.util.find_spec("cuda.bindings") is not None
        except (ImportError, ValueError):
            return False
    return importlib.util.find_spec(name) is not None


def section_onnxruntime(entry, ctx):
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise Skip("onnxruntime is not installed") from None
    import warnings

    import torch
    from fnoreg_export.runtime import backends as B

    usable, reason = B.ort_cuda_usable()
    entry["data"]["cuda_provider"] = reason
    entry["lines"].append(f"CUDA provider: {reason}")
    model, folder = load_bundled(3)
    shape = ctx["ort_shape"]
    moving, fixed = smooth_pair(shape, seed=5)
    with torch.no_grad():
        ref = model(torch.from_numpy(moving), torch.from_numpy(fixed)).numpy()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        runner = B.make_runner(folder / "model.onnx", "auto", threads=ctx["threads"])
    out = runner(moving, fixed)
    t = _time(lambda: runner(moving, fixed), lambda: None, 2 if not usable else 5)
    err = max_vox(out, ref)
    entry["data"].update(backend=runner.name, fallback=getattr(runner, "fallback", None), max_vox_vs_torch=err,
                         call_ms=round(1e3 * t, 1))
    entry["lines"].append(f"auto -> {runner.name}{' (fallback: ' + runner.fallback + ')' if runner.fallback else ''}: "
                          f"|ort - torch| {err:.2e} voxel at {'x'.join(map(str, shape))}, {1e3 * t:.0f} ms/call")
    if err > VOXEL_BOUND:
        raise RuntimeError(f"onnxruntime ({runner.name}) vs torch {err:.2e} voxel > {VOXEL_BOUND}")
    if not usable:
        entry["lines"].append(f"skipped: onnxruntime-cuda ({reason})")


def section_tensorrt(entry, ctx):
    try:
        from fnoreg_export.tensorrt_build import build_engine, tensorrt_status
    except ImportError as exc:
        raise Skip(f"tensorrt_build not importable ({exc})") from None
    ok, reason = tensorrt_status()
    if not ok or ctx["dry"]:
        raise Skip(reason if not ok else ctx["dry_reason"])
    from fnoreg_export.onnx_export import export_onnx
    from fnoreg_export.runtime import backends as B

    model, _ = load_bundled(3)
    shape = ctx["trt_shape"]
    onnx_path = Path(ctx["work"]) / f"model.{'x'.join(map(str, shape))}.onnx"
    t0 = time.perf_counter()
    export_onnx(model, onnx_path, shape, dynamic=False)
    entry["lines"].append(f"static export {onnx_path.name}: {time.perf_counter() - t0:.1f} s")
    engine = onnx_path.with_suffix(".fp32.engine")
    facts = build_engine(onnx_path, engine, (1, 1, *shape), "fp32")
    entry["data"]["build"] = facts
    entry["lines"].append(f"engine built in {facts['build_time_s']} s: TensorRT {facts['tensorrt_version']}, "
                          f"{facts['gpu_name']} (cc {facts['compute_capability']}), {facts['engine_bytes'] / 2**20:.1f} MiB")
    moving, fixed = smooth_pair(shape, seed=7)
    ref = B.OrtRunner(onnx_path, threads=ctx["threads"])(moving, fixed)
    with B.TensorRTRunner(engine, dims=3) as runner:
        out = runner(moving, fixed)
        t = _time(lambda: runner(moving, fixed), lambda: None, 5)
        entry["data"]["memory_helper"] = runner.cuda.name
    err = max_vox(out, ref)
    entry["data"].update(max_vox_vs_ort=err, call_ms=round(1e3 * t, 2))
    entry["lines"].append(f"|TensorRT - onnxruntime CPU| {err:.2e} voxel (bound {VOXEL_BOUND}), {1e3 * t:.1f} ms/call "
                          "(host copies included)")
    if err > VOXEL_BOUND:
        raise RuntimeError(f"TensorRT parity {err:.2e} voxel > {VOXEL_BOUND}")


# ------------------------------------------------------------------------------------------------ main


def write_report(report: Report, out: Path, ctx) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = report.sections.get("env", {}).get("data", {})
    payload = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
               "dry": ctx["dry"], "total_s": round(time.perf_counter() - report.started, 1),
               "sections": report.sections}
    (out / "gpu_check.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    lines = [f"# GPU path check ({payload['date_utc']}, {env.get('gpu', 'no GPU')}, {payload['host']})", "",
             f"`benchmarks/gpu/validate.sh`{' --dry' if ctx['dry'] else ''}: {payload['total_s']} s in all. "
             f"torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')}, tensorrt {env.get('tensorrt')}, "
             f"cuda-python {env.get('cuda-python')}.", "", "| section | status | seconds |", "|---|---|---|"]
    lines += [f"| {name} | {e['status']} | {e['seconds']} |" for name, e in report.sections.items()]
    for name, e in report.sections.items():
        lines += ["", f"## {name}", ""] + [f"- {line}" for line in e["lines"]]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry", action="store_true", help="CPU only, small sizes (what CI runs). Default: only "
                                                      "when no CUDA device is visible")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/fnoreg_gpu_check")),
                   help="report folder. Default: $OUT, else /tmp/fnoreg_gpu_check")
    args = p.parse_args(argv)
    notes = setup_imports()
    import torch

    dry = args.dry or not torch.cuda.is_available()
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    cpu_seconds: dict[str, float] = {}

    def cpu_ref_ok(shape) -> bool:  # the CPU reference of 160x192x224 only where 80x96x112 was quick
        small = cpu_seconds.get("3d 80x96x112")
        return int(np.prod(shape)) <= 80 * 96 * 112 or (small is not None and small * 8 < 60)

    ctx = {"dry": dry, "dry_reason": "--dry" if args.dry else "no CUDA device visible", "notes": notes, "work": str(work), "failures": [], "cpu_seconds": cpu_seconds,
           "cpu_ref_ok": cpu_ref_ok, "threads": os.cpu_count() if not dry else 2,
           "torch_sizes": {2: [(48, 64)], 3: [(32, 48, 48)]} if dry else
           {2: [(160, 192)], 3: [(80, 96, 112), (160, 192, 224)]},
           "standin_shape": (32, 48, 48) if dry else (80, 96, 112), "ort_shape": (32, 48, 48) if dry else (80, 96, 112),
           "trt_shape": (80, 96, 112),
           "presets": ["3d-cpu"] if dry else ["3d-cpu", "3d"], "preset_shape": (48, 48, 64) if dry else (160, 192, 224)}
    if dry:
        print("check.py: dry run (CPU only, small sizes)" + ("" if args.dry else ": no CUDA device visible"))
    report = Report()
    report.run("env", section_env, ctx)
    report.run("torch", section_torch, ctx)
    report.run("presets", section_presets, ctx)
    report.run("standin", section_standin, ctx)
    report.run("onnxruntime", section_onnxruntime, ctx)
    report.run("tensorrt", section_tensorrt, ctx)
    write_report(report, args.out, ctx)
    print(f"check.py: report in {args.out}/gpu_check.md ({time.perf_counter() - report.started:.0f} s)")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
