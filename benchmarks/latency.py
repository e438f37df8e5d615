"""Inference latency of FNOReg: PyTorch eager vs onnxruntime CPU (dynamic and static graphs) [+ GPU].

For each spatial size (2D 160x192 with the 2D preset; 3D 80x96x112 and 160x192x224 with the 3D
preset) it measures, at one thread count for everyone:

* ``torch eager``: ``model(moving, fixed)`` under ``torch.inference_mode()``;
* ``ORT dynamic``: onnxruntime CPU on the ONE dynamic-size graph (exported once per model from a
  small example input, run at every size);
* ``ORT static``: onnxruntime CPU on a graph exported at exactly that size;
* ``runtime``: ``fnoreg_export.runtime.Registrator.register`` end to end on the dynamic graph
  (numpy in; normalisation, network, unit conversions, warp of the moving image, Jacobian, folding);
* ``ORT CUDA`` / ``TensorRT`` rows where onnxruntime-gpu / tensorrt and a GPU are present.

Each (size, backend) is a separate process: its peak RSS is that backend's alone (the onnxruntime
processes never import torch), and an out-of-memory failure or timeout becomes a table entry.
Parity: max |ddf difference| against torch eager, in voxels. The ONNX exports also run in child
processes (the static export at 160x192x224 traces at full size: minutes, several GB).

Targets: onnxruntime CPU no slower than PyTorch eager for FNOReg-3D at 160x192x224; the dynamic
graph within 10 % of the static one.

Usage::

    python benchmarks/latency.py                  # full run (long: the 160x192x224 rows take a while)
    python benchmarks/latency.py --quick          # smoke run: the CPU presets at small sizes, 2 timed runs
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

NAME = "latency"
SEED = 0
SIZES_FULL = [(160, 192), (80, 96, 112), (160, 192, 224)]
SIZES_QUICK = [(80, 96), (48, 64, 48)]
PRESETS_FULL = {2: "2d-small", 3: "3d"}
PRESETS_QUICK = {2: "2d-cpu", 3: "3d-cpu"}
EXAMPLE = {2: (64, 64), 3: (48, 64, 64)}  # dynamic export example input (multiples of 16, >= n_modes)
TARGET_SIZE = (160, 192, 224)


def sz(size) -> str:
    return "x".join(str(s) for s in size)


# ------------------------------------------------------------------------------------------------
# child processes


def _inputs(case: dict):
    import numpy as np

    data = np.load(case["inputs"])
    return data["moving"], data["fixed"]


def run_export(case: dict, out: C.ResultWriter) -> None:
    import torch

    from fnoreg_core.models import create_model
    from fnoreg_export.onnx_export import export_onnx

    torch.set_num_threads(case["threads"])
    model = create_model(case["arch"], preset=case["preset"]).eval()
    model.load_state_dict(torch.load(case["state"], weights_only=True))
    t0 = time.perf_counter()
    path = Path(case["path"])
    export_onnx(model, path, tuple(case["size"]), dynamic=case["dynamic"])
    out["seconds"] = time.perf_counter() - t0
    out["mb"] = sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6


def run_torch(case: dict, out: C.ResultWriter) -> None:
    import numpy as np
    import torch

    from fnoreg_core.models import create_model

    torch.set_num_threads(case["threads"])
    model = create_model(case["arch"], preset=case["preset"]).eval()
    model.load_state_dict(torch.load(case["state"], weights_only=True))
    moving, fixed = (torch.from_numpy(a)[None, None] for a in _inputs(case))
    with torch.inference_mode():
        ddf = model(moving, fixed)
        np.save(case["reference"], ddf[0].numpy())
        from fnoreg_core.fields import ddf_norm_to_vox

        out["max_ddf_vox"] = float(np.abs(ddf_norm_to_vox(ddf[0].numpy(), tuple(case["size"]))).max())
        del ddf
        gc.collect()
        out["time"] = C.measure(lambda: model(moving, fixed), **case["timing"])


def _parity(case: dict, ddf) -> float | None:
    import numpy as np

    from fnoreg_core.fields import ddf_norm_to_vox

    ref = case.get("reference")
    if not ref or not Path(ref).exists():
        return None
    return float(np.abs(ddf_norm_to_vox(ddf - np.load(ref), tuple(case["size"]))).max())


def run_ort(case: dict, out: C.ResultWriter) -> None:
    import onnxruntime as ort

    from fnoreg_export.runtime import ort_session_options

    opts = ort_session_options(case["threads"])
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if case["cuda"] else ["CPUExecutionProvider"]
    t0 = time.perf_counter()
    sess = ort.InferenceSession(case["onnx"], opts, providers=providers)
    out["session_s"] = time.perf_counter() - t0
    moving, fixed = _inputs(case)
    feed = {"moving": moving[None, None], "fixed": fixed[None, None]}
    (ddf,) = sess.run(None, feed)
    out["parity_vox"] = _parity(case, ddf[0])
    del ddf
    out["time"] = C.measure(lambda: sess.run(None, feed), **case["timing"])


def run_runtime(case: dict, out: C.ResultWriter) -> None:
    import statistics

    from fnoreg_export.runtime import Registrator

    reg = Registrator.load(case["onnx"], backend=case.get("backend", "onnxruntime-cpu"), threads=case["threads"])
    moving, fixed = _inputs(case)
    res = reg.register(fixed=fixed, moving=moving)
    out["parity_vox"] = _parity(case, res.ddf_norm)
    stages = []

    def once():
        stages.append(reg.register(fixed=fixed, moving=moving).timings)

    out["time"] = C.measure(once, **case["timing"])
    timed = stages[case["timing"]["warmup"]:] or stages
    out["stages_ms"] = {k: 1e3 * statistics.median(t[k] for t in timed) for k in timed[0]}


def run_tensorrt(case: dict, out: C.ResultWriter) -> None:
    """Build an engine for this size from the static graph (or the dynamic one with a fixed
    profile), then time the runtime's TensorRT backend."""
    import tensorrt as trt

    from fnoreg_export.model_card import ModelCard
    from fnoreg_export.runtime import Registrator

    size = tuple(case["size"])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(case["onnx"]):
        raise RuntimeError("TensorRT cannot parse the graph: " + "; ".join(
            str(parser.get_error(i)) for i in range(parser.num_errors)))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name in ("moving", "fixed"):
        profile.set_shape(name, (1, 1, *size), (1, 1, *size), (1, 1, *size))
    config.add_optimization_profile(profile)
    t0 = time.perf_counter()
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise RuntimeError("TensorRT engine build failed")
    out["build_s"] = time.perf_counter() - t0
    engine = Path(case["workdir"]) / f"trt_{sz(size)}.engine"
    engine.write_bytes(bytes(blob))
    card = ModelCard.from_dict(json.loads(Path(case["card"]).read_text()))
    card.static_size = list(size)
    card.save(engine.with_name(engine.name + ".json"))
    reg = Registrator.load(engine, backend="tensorrt")
    moving, fixed = _inputs(case)
    out["parity_vox"] = _parity(case, reg.predict(moving=moving, fixed=fixed))
    out["time"] = C.measure(lambda: reg.predict(moving=moving, fixed=fixed), **case["timing"])


KINDS = {"export": run_export, "torch": run_torch, "ort": run_ort, "runtime": run_runtime, "trt": run_tensorrt}


def run_case(case: dict, out_path: str) -> None:
    C.limit_memory(case.get("mem_limit_gb", 0))
    out = C.ResultWriter(out_path)
    try:
        KINDS[case["kind"]](case, out)
        out["done"] = True
    except Exception as exc:  # noqa: BLE001 - reported in the table
        out["error"] = C.describe_error(exc)
    finally:
        out["hwm_mb"] = C.peak_rss_mb()


# ------------------------------------------------------------------------------------------------
# parent


def gpu_backends() -> list[str]:
    """GPU backends the runtime can use here, in this script's short names ("ort-cuda", "trt")."""
    from fnoreg_export.runtime import available_backends

    short = {"onnxruntime-cuda": "ort-cuda", "tensorrt": "trt"}
    return [short[b] for b in available_backends() if b in short]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: presets 2d-cpu / 3d-cpu at 80x96 and 48x64x48, 2 timed runs")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads (default 2)")
    p.add_argument("--arch", default="fnoreg", help="registered model name (default fnoreg)")
    p.add_argument("--preset-2d", default=None, help="2D preset (default 2d-small; --quick: 2d-cpu)")
    p.add_argument("--preset-3d", default=None, help="3D preset (default 3d, the paper's; --quick: 3d-cpu)")
    p.add_argument("--sizes", default=None,
                   help="spatial sizes to run, e.g. '160x192,80x96x112' (default: 160x192,80x96x112,160x192x224)")
    p.add_argument("--no-static", action="store_true", help="skip the static graphs (their export is slow)")
    p.add_argument("--no-runtime", action="store_true", help="skip the end-to-end runtime rows")
    C.add_timing_args(p, budget_s=60)
    C.add_case_runner_args(p, NAME, "case", 3600)
    args = p.parse_args()
    if args._case:
        run_case(json.loads(args._case), args._out)
        return

    import numpy as np
    import torch

    from fnoreg_core.fields import DDF_CONVENTION
    from fnoreg_core.models import config_to_dict, create_model
    from fnoreg_export.model_card import ModelCard
    from fnoreg_export.onnx_export import DEFAULT_OPSET

    torch.set_num_threads(args.threads)
    quick = args.quick
    timing = C.timing_from_args(args, quick, budget_s=60)
    presets = dict(PRESETS_QUICK if quick else PRESETS_FULL)
    if args.preset_2d:
        presets[2] = args.preset_2d
    if args.preset_3d:
        presets[3] = args.preset_3d
    if args.sizes:
        sizes = [tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",") if s]
    else:
        sizes = SIZES_QUICK if quick else SIZES_FULL
    mem_limit = C.mem_limit_from_args(args)
    gpu = gpu_backends()
    fingerprint = C.source_fingerprint()
    head = C.header(
        "Inference latency: PyTorch eager vs onnxruntime (dynamic and static graphs)", args.threads,
        [f"- models: {args.arch} presets {presets[2]} (2D) and {presets[3]} (3D), random weights (seed {SEED}; last "
         "layer std 0.02 for displacements of a few voxels), batch 1, float32, random inputs in [0, 1) (the runtime's "
         "card says intensity normalisation 'none', so every backend sees the same inputs)",
         f"- timing: median of up to {timing['repeats']} timed runs (at least {timing['min_repeats']}; no new run "
         f"after {timing['budget_s']:.0f} s) after {timing['warmup']} warm-up run(s); torch under "
         "torch.inference_mode(); onnxruntime CPUExecutionProvider, intra-op threads as torch, inter-op 1, "
         "sequential; session creation not timed",
         f"- each (size, backend) runs in its own process (peak RSS = that process's VmHWM; the onnxruntime "
         f"and runtime processes do not import torch), address space capped at {mem_limit} GiB (0: no cap)",
         f"- GPU backends here: {', '.join(gpu) if gpu else 'none (no onnxruntime CUDA provider, no tensorrt)'}",
         f"- other load: before each case the script waits (at most {args.max_wait:.0f} s) until other processes "
         f"use < {args.max_other_load} cores; 'other load' is the cores they used during the case",
         f"- busiest other processes at start: {C.busy_processes() or 'none above 5% CPU'}"])
    print("\n".join(head), flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="fnoreg_bench_latency_"))
    results: dict = {}
    exports: dict = {}
    counter = [0]

    def child(case: dict, label: str) -> dict:
        case = dict(case, threads=args.threads, mem_limit_gb=mem_limit, workdir=str(workdir))
        print(f"[case] {label} ...", file=sys.stderr, flush=True)
        if args.max_wait > 0:
            C.wait_for_quiet(args.max_other_load, args.max_wait)
        t0 = time.perf_counter()
        counter[0] += 1
        res, failure = C.run_child(__file__, case, workdir / f"case_{counter[0]}.json", args.case_timeout)
        res["failure"] = failure or res.get("error")
        print(f"[case] {label} done in {time.perf_counter() - t0:.0f} s"
              + (f" ({res['failure']})" if res["failure"] else ""), file=sys.stderr, flush=True)
        return res

    try:
        models = {}
        for dims in sorted({len(s) for s in sizes}):
            torch.manual_seed(SEED)
            model = create_model(args.arch, preset=presets[dims]).eval()
            # the last layer starts near zero (identity transform); give it weights for displacements
            # of a few voxels so that the parity column means something (timing does not care)
            last = getattr(model, "projection", [None])[-1]
            if last is not None and hasattr(last, "weight"):
                torch.nn.init.normal_(last.weight, std=0.02)
            state = workdir / f"{dims}d.pt"
            torch.save(model.state_dict(), state)
            multiple = model.size_multiple()
            lo = [-(-int(n) // multiple) * multiple for n in model.min_spatial_size()]
            card = ModelCard(name=f"{args.arch}-{presets[dims]}-bench", arch=args.arch, preset=presets[dims], dims=dims,
                             config=config_to_dict(model), train_resolution=list(EXAMPLE[dims]), min_size=lo,
                             max_size=[1024] * dims, size_multiple=multiple, displacement=DDF_CONVENTION,
                             opset=DEFAULT_OPSET, intensity_norm={"method": "none", "high_pct": 100.0})
            example = tuple(max(e, m) for e, m in zip(EXAMPLE[dims], lo))
            path = workdir / f"{dims}d_dynamic.onnx"
            res = child(dict(kind="export", arch=args.arch, preset=presets[dims], state=str(state), path=str(path),
                             size=list(example), dynamic=True, timing=timing), f"export {dims}D dynamic")
            res["example"] = example
            exports[(dims, "dynamic")] = res
            if not res["failure"]:
                card.save(path.with_name(path.name + ".json"))
            models[dims] = dict(state=str(state), dynamic=str(path) if not res["failure"] else None,
                                card=str(path) + ".json", params=sum(p.numel() for p in model.parameters()))
            del model

        for size in sizes:
            dims = len(size)
            m = models[dims]
            rng = np.random.default_rng(SEED)
            inputs = workdir / f"inputs_{sz(size)}.npz"
            np.savez(inputs, moving=rng.random(size, dtype=np.float32), fixed=rng.random(size, dtype=np.float32))
            reference = workdir / f"torch_{sz(size)}.npy"
            base = dict(size=list(size), inputs=str(inputs), timing=timing, arch=args.arch, preset=presets[dims],
                        state=m["state"], reference=str(reference), card=m["card"])
            row = {}
            row["torch"] = child(dict(base, kind="torch"), f"{sz(size)} torch eager")
            if m["dynamic"]:
                row["ort_dynamic"] = child(dict(base, kind="ort", onnx=m["dynamic"], cuda=False),
                                           f"{sz(size)} ORT dynamic")
            static = None
            if not args.no_static:
                static_path = workdir / f"{sz(size)}_static.onnx"
                res = child(dict(base, kind="export", path=str(static_path), dynamic=False),
                            f"export {sz(size)} static")
                exports[(size, "static")] = res
                if not res["failure"]:
                    static = str(static_path)
                    row["ort_static"] = child(dict(base, kind="ort", onnx=static, cuda=False),
                                              f"{sz(size)} ORT static")
            if m["dynamic"] and not args.no_runtime:
                row["runtime"] = child(dict(base, kind="runtime", onnx=m["dynamic"]), f"{sz(size)} runtime")
            if "ort-cuda" in gpu and m["dynamic"]:
                row["ort_cuda"] = child(dict(base, kind="ort", onnx=m["dynamic"], cuda=True),
                                        f"{sz(size)} ORT CUDA dynamic")
            if "trt" in gpu and (static or m["dynamic"]):
                row["trt"] = child(dict(base, kind="trt", onnx=static or m["dynamic"]), f"{sz(size)} TensorRT")
            results[size] = row
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    lines = head + [""] + tables(results, exports, models, sizes, presets, args, gpu) + [""] + C.footer(fingerprint)
    print("\n".join(lines[len(head):]), flush=True)
    path = C.write_results(args.output or (f"{NAME}_quick" if quick else NAME), lines)
    print(f"\nwritten to {os.path.relpath(path, C.ROOT)}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# tables

ROWS = [("torch", "PyTorch eager", "-"), ("ort_dynamic", "onnxruntime CPU", "dynamic"),
        ("ort_static", "onnxruntime CPU", "static"), ("runtime", "runtime register() (ORT CPU)", "dynamic"),
        ("ort_cuda", "onnxruntime CUDA", "dynamic"), ("trt", "TensorRT", "engine")]


def cell(res: dict | None, key: str = "time") -> str:
    if res is None:
        return "n/a"
    if key in res:
        return C.fmt_ms(res[key])
    return res.get("failure") or "n/a"


def rss(res: dict) -> str:
    if res.get("hwm_mb"):
        return f"{res['hwm_mb']:.0f}"
    return f"{res['peak_rss_mb']:.0f}" if "peak_rss_mb" in res else "n/a"


def tables(results, exports, models, sizes, presets, args, gpu) -> list[str]:
    lines = ["## Latency per pair", ""]
    rows = []
    for size in sizes:
        dims = len(size)
        r = results.get(size, {})
        torch_t = r.get("torch", {}).get("time")
        for key, backend, graph in ROWS:
            if key not in r:
                continue
            res = r[key]
            t = res.get("time")
            par = res.get("parity_vox")
            rows.append([f"{args.arch} {presets[dims]}", sz(size), backend, graph, cell(res),
                         f"{t['min_ms']:.1f} / {t['max_ms']:.1f} / {t['n']}" if isinstance(t, dict) else "n/a",
                         "1.00x" if key == "torch" and isinstance(t, dict) else C.ratio(t, torch_t),
                         f"{par:.1e}" if isinstance(par, float) else (
                             f"- (max abs ddf {res['max_ddf_vox']:.2f})" if "max_ddf_vox" in res else
                             ("-" if key == "torch" else "n/a")),
                         rss(res), f"{res['other_load']:.2f}" if "other_load" in res else "n/a"])
    lines += C.markdown_table(["model", "size", "backend", "graph", "median ms", "min / max ms / n", "vs torch eager",
                               "max abs ddf diff vs torch (vox)", "peak RSS MB", "other load (cores)"], rows)
    lines += ["", "vs torch eager: median time / torch eager median time (< 1: faster than PyTorch). The runtime row "
              "is the whole `Registrator.register` call (normalisation, network, unit conversions, warp of the moving "
              "image, Jacobian and folding); its stages are below. On 2 shared cores, PyTorch eager with more than one "
              "OpenMP thread slows down many-fold (spin-waiting threads) whenever other processes are busy: trust rows "
              "whose 'other load' is near 0."]
    if not gpu:
        lines += ["", "TensorRT / onnxruntime CUDA rows: not measured here (no GPU, tensorrt not installed)."]

    stage_rows = []
    for size in sizes:
        res = results.get(size, {}).get("runtime")
        st = res.get("stages_ms") if res else None
        if st:
            stage_rows.append([sz(size)] + [f"{st.get(k, float('nan')):.1f}" for k in
                                             ("prepare", "inference", "postprocess", "warp", "metrics", "total")])
    if stage_rows:
        lines += ["", "### Runtime stages (median ms)", ""]
        lines += C.markdown_table(["size", "prepare", "inference", "postprocess", "warp", "metrics", "total"],
                                  stage_rows)

    lines += ["", "### Exports", ""]
    rows = []
    for dims in sorted(models):
        e = exports.get((dims, "dynamic"), {})
        rows.append([f"{dims}D dynamic (example {sz(e.get('example', ()))})",
                     f"{e['seconds']:.1f}" if "seconds" in e else e.get("failure") or "n/a",
                     f"{e['mb']:.1f}" if "mb" in e else "n/a", rss(e)])
    for size in sizes:
        e = exports.get((size, "static"))
        if e is not None:
            rows.append([f"static {sz(size)}", f"{e['seconds']:.1f}" if "seconds" in e else e.get("failure") or "n/a",
                         f"{e['mb']:.1f}" if "mb" in e else "n/a", rss(e)])
    lines += C.markdown_table(["graph", "export s", "file MB", "export peak RSS MB"], rows)

    lines += ["", "## Targets", ""]
    lines += targets(results, sizes, presets)
    return lines


def targets(results, sizes, presets) -> list[str]:
    out = []
    if TARGET_SIZE not in sizes:
        out.append(f"- {sz(TARGET_SIZE)} not in this run (full run only): targets not evaluated")
        size = max((s for s in sizes if len(s) == 3), key=lambda s: s[0] * s[1] * s[2], default=None)
        if size is None:
            return out
        out.append(f"- shown for the largest 3D size of this run, {sz(size)}, for information:")
    else:
        size = TARGET_SIZE
    r = results.get(size, {})
    torch_t = C.median_of(r.get("torch", {}).get("time"))
    for key in ("ort_dynamic", "ort_static"):
        t = C.median_of(r.get(key, {}).get("time"))
        label = f"- onnxruntime CPU ({key.split('_')[1]} graph) vs PyTorch eager, {presets[3]} at {sz(size)}"
        if t and torch_t:
            out.append(f"{label}: {t / torch_t:.2f}x (target <= 1.00x): {'met' if t <= torch_t else 'NOT met'}")
        else:
            out.append(f"{label}: not measured")
    dyn = C.median_of(r.get("ort_dynamic", {}).get("time"))
    sta = C.median_of(r.get("ort_static", {}).get("time"))
    label = f"- dynamic vs static graph (onnxruntime CPU) at {sz(size)}"
    if dyn and sta:
        out.append(f"{label}: {dyn / sta:.2f}x (target <= 1.10x): {'met' if dyn <= 1.10 * sta else 'NOT met'}")
    else:
        out.append(f"{label}: not measured")
    return out


if __name__ == "__main__":
    main()
