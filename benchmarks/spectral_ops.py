"""Benchmark the exportable spectral layers against torch.fft, in PyTorch eager and ONNX Runtime.

Layers (the paper's configurations):

* ``SpectralConv`` (FNO layer): 2D 16 channels, n_modes (40, 48); 3D 12 channels, n_modes (40, 48, 56)
  (TOTAL modes per axis). Reference: ``torch.fft.rfftn`` (norm="forward"), the same kept modes
  (both frequency ends on non-last axes, one-sided on the last), the same complex weight
  (``view_as_complex(conv.dense_weight())``) applied with ``einsum``, zero-padded ``irfftn``.
* ``FourierUnit`` (full spectrum): 2D 8 channels, 3D 6 channels, all spatial axes, eval mode.
  Reference: ``torch.fft.rfftn`` / ``irfftn`` (norm="ortho") around the same module's conv, bn, act.

For each spatial size it measures forward (under ``torch.no_grad``) and forward+backward (input and
parameters requiring grad, backward of a fixed random output gradient) for ours and the reference,
and the forward time in ONNX Runtime of the layer exported with dynamic spatial axes (one export per
layer, small example input, run at every size) and, for the Fourier Unit, of a static export per
size. Each (layer, size) runs in its own process (per-case peak RSS; an out-of-memory failure is
reported in the table instead of ending the run).

Usage::

    python benchmarks/spectral_ops.py            # full run (several minutes), writes results/spectral_ops.md
    python benchmarks/spectral_ops.py --quick    # smoke run: small sizes, 2 timed runs
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
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

NAME = "spectral_ops"
SEED = 0

# (layer, dims) -> channels, n_modes (SpectralConv), example input spatial size for the dynamic export
LAYERS = {
    ("SpectralConv", 2): dict(channels=16, n_modes=(40, 48), example=(48, 48)),
    ("SpectralConv", 3): dict(channels=12, n_modes=(40, 48, 56), example=(48, 48, 64)),
    ("FourierUnit", 2): dict(channels=8, example=(32, 48)),
    ("FourierUnit", 3): dict(channels=6, example=(32, 48, 32)),
}
SIZES_FULL = [(160, 192), (80, 96, 112), (160, 192, 224)]
SIZES_QUICK = [(160, 192), (80, 96, 112)]
EXPORT_MULTIPLE = 16  # dynamic axes are 16 * Dim: the Fourier Unit's four-step export radix


def sz(size) -> str:
    return "x".join(str(s) for s in size)


# ------------------------------------------------------------------------------------------------
# modules and torch.fft references


def build(layer: str, dims: int):
    from fnoreg_core.layers.fourier_unit import FourierUnit
    from fnoreg_core.layers.spectral_conv import SpectralConv

    cfg = LAYERS[(layer, dims)]
    if layer == "SpectralConv":
        return SpectralConv(cfg["channels"], cfg["channels"], cfg["n_modes"]).eval()
    return FourierUnit(cfg["channels"], dims).eval()


def ref_spectral_conv(conv, x):
    """torch.fft twin of ``SpectralConv.forward``."""
    import torch

    d = conv.spatial_dims
    hs = conv.halves
    dims = tuple(range(2, 2 + d))
    sizes = tuple(x.shape[2:])
    spec = torch.fft.rfftn(x, dim=dims, norm="forward")
    kept = spec[..., : hs[-1]]
    for ax, h in zip(dims[:-1], hs[:-1]):
        kept = torch.cat([kept.narrow(ax, 0, h), kept.narrow(ax, kept.shape[ax] - h, h)], dim=ax)
    weight = torch.view_as_complex(conv.dense_weight().contiguous())
    letters = "xyz"[:d]
    mixed = torch.einsum(f"bi{letters},io{letters}->bo{letters}", kept, weight)
    out = torch.zeros(x.shape[0], conv.out_channels, *sizes[:-1], sizes[-1] // 2 + 1,
                      dtype=mixed.dtype, device=x.device)
    for corner in itertools.product((0, 1), repeat=d - 1):
        dst, src = [slice(None)] * 2, [slice(None)] * 2
        for c, h in zip(corner, hs[:-1]):
            dst.append(slice(0, h) if c == 0 else slice(-h, None))
            src.append(slice(0, h) if c == 0 else slice(h, 2 * h))
        dst.append(slice(0, hs[-1]))
        src.append(slice(None))
        out[tuple(dst)] = mixed[tuple(src)]
    return torch.fft.irfftn(out, s=sizes, dim=dims, norm="forward")


def ref_fourier_unit(fu, x):
    """torch.fft twin of ``FourierUnit.forward``."""
    import torch

    b, c = x.shape[0], x.shape[1]
    dims = tuple(2 + a for a in fu.fft_axes)
    sizes = tuple(x.shape[a] for a in dims)
    spec = torch.fft.rfftn(x, dim=dims, norm="ortho")
    # the unit's point-wise 1x1 conv / BN / ReLU act on the interleaved (c, [re, im]) features
    z = torch.stack((spec.real, spec.imag), dim=2)  # (B, C, 2, *spec)
    z = fu.spectral_mix(z.reshape(b, 2 * c, -1)).reshape(z.shape)
    return torch.fft.irfftn(torch.complex(z[:, :, 0], z[:, :, 1]), s=sizes, dim=dims, norm="ortho")


def reference(layer: str):
    return ref_spectral_conv if layer == "SpectralConv" else ref_fourier_unit


def dynamic_shapes(dims: int):
    from torch.export import Dim

    names = ("d", "h", "w")[-dims:]
    return {"x": {2 + i: EXPORT_MULTIPLE * Dim(n) for i, n in enumerate(names)}}


def export(module, x, path: Path, dynamic_dims: int | None) -> dict:
    """Export with the dynamo exporter (opset 20); returns {"seconds", "mb", "nodes"} or {"error"}."""
    import onnx
    import torch

    t0 = time.perf_counter()
    try:
        kwargs = dict(dynamo=True, opset_version=20)
        if dynamic_dims is not None:
            kwargs["dynamic_shapes"] = dynamic_shapes(dynamic_dims)
        with contextlib.redirect_stdout(sys.stderr):  # keep the exporter's progress lines out of the table
            torch.onnx.export(module, (x,), str(path), **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return {"error": C.describe_error(exc)}
    seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
    return {"seconds": seconds, "mb": size / 1e6, "nodes": nodes}


# ------------------------------------------------------------------------------------------------
# one case (child process): one layer at one size


def ort_session(path: str, threads: int, profile_prefix: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def top_share(totals: dict, k: int = 4) -> str:
    total = sum(totals.values())
    if total <= 0:
        return "n/a"
    best = sorted(totals.items(), key=lambda kv: -kv[1])[:k]
    return ", ".join(f"{name} {100 * v / total:.0f}%" for name, v in best)


def torch_hotspots(fn) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    totals = {}
    for evt in prof.key_averages():
        totals[evt.key] = totals.get(evt.key, 0.0) + evt.self_cpu_time_total
    del torch
    return top_share(totals)


def ort_hotspots(path: str, feed: dict, threads: int, prefix: str) -> str:
    sess = ort_session(path, threads, profile_prefix=prefix)
    for _ in range(2):
        sess.run(None, feed)
    prof_file = sess.end_profiling()
    events = json.loads(Path(prof_file).read_text())
    Path(prof_file).unlink(missing_ok=True)
    totals = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            totals[op] = totals.get(op, 0.0) + float(e.get("dur", 0))
    return top_share(totals)


def run_case(case: dict, out_path: str) -> None:
    C.limit_memory(case["mem_limit_gb"])
    import numpy as np
    import torch

    torch.set_num_threads(case["threads"])
    out = C.ResultWriter(out_path)
    layer, dims, size = case["layer"], case["dims"], tuple(case["size"])
    t = case["timing"]

    def timed(fn):
        gc.collect()
        return C.measure(fn, t["warmup"], t["repeats"], t["min_repeats"], t["budget_s"])

    torch.manual_seed(SEED)
    module = build(layer, dims)
    module.load_state_dict(torch.load(case["state"], weights_only=True))
    ref = reference(layer)
    channels = LAYERS[(layer, dims)]["channels"]
    gen = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(1, channels, *size, generator=gen)
    params = [p for p in module.parameters() if p.requires_grad]

    y_ours = None
    try:
        with torch.no_grad():
            y_ours = module(x)
            y_ref = ref(module, x)
        out["max_abs_diff"] = float((y_ours - y_ref).abs().max())
        out["max_abs_out"] = float(y_ref.abs().max())
        del y_ref
    except Exception as exc:  # noqa: BLE001
        out["max_abs_diff"] = C.describe_error(exc)

    for key, fn in (("fwd_ours", module), ("fwd_ref", lambda v: ref(module, v))):
        try:
            def run(fn=fn):
                with torch.no_grad():
                    fn(x)
            out[key] = timed(run)
        except Exception as exc:  # noqa: BLE001
            out[key] = C.describe_error(exc)

    xg = x.clone().requires_grad_(True)
    grad_out = torch.randn(1, channels, *size, generator=gen)
    fb = {}
    for key, fn in (("fb_ours", module), ("fb_ref", lambda v: ref(module, v))):
        def step(fn=fn):
            for p in params:
                p.grad = None
            xg.grad = None
            fn(xg).backward(grad_out)
        fb[key] = step
        try:
            out[key] = timed(step)
        except Exception as exc:  # noqa: BLE001
            out[key] = C.describe_error(exc)
        finally:
            for p in params:
                p.grad = None
            xg.grad = None

    if case.get("profile") and isinstance(out.get("fb_ours"), dict):
        try:
            out["hot_torch"] = torch_hotspots(fb["fb_ours"])
        except Exception as exc:  # noqa: BLE001
            out["hot_torch"] = C.describe_error(exc)
    del xg, fb, grad_out
    gc.collect()

    graphs = []
    if case.get("onnx_dynamic"):
        graphs.append(("dynamic", case["onnx_dynamic"]))
    if case.get("static_export"):
        static_path = Path(case["workdir"]) / f"{layer}_{dims}d_{sz(size)}_static.onnx"
        module.eval()
        info = export(module, x, static_path, dynamic_dims=None)
        out["export_static"] = info
        if "error" not in info:
            graphs.append(("static", str(static_path)))
        else:
            out["ort_static"] = info["error"]
    feed_array = x.numpy()
    for kind, path in graphs:
        try:
            sess = ort_session(path, case["threads"])
            feed = {sess.get_inputs()[0].name: feed_array}
            y = sess.run(None, feed)[0]
            if y_ours is not None:
                out[f"ort_{kind}_diff"] = float(np.abs(y - y_ours.numpy()).max())
            del y
            out[f"ort_{kind}"] = timed(lambda: sess.run(None, feed))
            del sess
            if case.get("profile") and kind == "dynamic":
                out["hot_ort"] = ort_hotspots(path, feed, case["threads"],
                                              str(Path(case["workdir"]) / f"prof_{layer}_{dims}_{sz(size)}"))
        except Exception as exc:  # noqa: BLE001
            out[f"ort_{kind}"] = C.describe_error(exc)
        gc.collect()
    out["done"] = True


# ------------------------------------------------------------------------------------------------
# parent: exports, cases, tables


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: sizes 160x192 and 80x96x112, 2 timed runs")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads (default 2)")
    C.add_timing_args(p, budget_s=30)
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX exports and onnxruntime timings")
    p.add_argument("--no-profile", action="store_true", help="skip the op hotspot profiles")
    C.add_case_runner_args(p, NAME, "(layer, size) case", 3600)
    args = p.parse_args()
    if args._case:
        run_case(json.loads(args._case), args._out)
        return

    import torch

    torch.set_num_threads(args.threads)
    quick = args.quick
    timing = C.timing_from_args(args, quick, budget_s=30)
    mem_limit = C.mem_limit_from_args(args)
    sizes = SIZES_QUICK if quick else SIZES_FULL
    fingerprint = C.source_fingerprint()
    head = C.header(
        "Spectral layers: ours (real-arithmetic DFT) vs torch.fft, eager and ONNX Runtime (CPU)", args.threads,
        [f"- timing: median of up to {timing['repeats']} timed runs (at least {timing['min_repeats']}; no new run "
         f"after {timing['budget_s']:.0f} s) after {timing['warmup']} warm-up run(s); batch 1; float32; "
         f"forward under torch.no_grad(); forward+backward with input and parameters requiring grad",
         f"- each (layer, size) case runs in its own process, address space capped at {mem_limit} GiB "
         f"(0: no cap) so an out-of-memory failure is reported, not fatal",
         f"- other load: before each case the script waits (at most {args.max_wait:.0f} s) until other processes "
         f"use < {args.max_other_load} cores; the column 'other load' is the cores they used during the case "
         f"(on 2 cores, anything above ~0.1 can slow small ops many-fold)",
         f"- busiest other processes at start: {C.busy_processes() or 'none above 5% CPU'}"])
    print("\n".join(head), flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="fnoreg_bench_spectral_"))
    try:
        exports = {}
        states = {}
        needed = sorted({(layer, len(s)) for layer in ("SpectralConv", "FourierUnit") for s in sizes})
        for layer, dims in needed:
            torch.manual_seed(SEED)
            module = build(layer, dims)
            state = workdir / f"{layer}_{dims}d.pt"
            torch.save(module.state_dict(), state)
            states[(layer, dims)] = str(state)
            if not args.no_onnx:
                ex = LAYERS[(layer, dims)]["example"]
                x = torch.randn(1, LAYERS[(layer, dims)]["channels"], *ex)
                path = workdir / f"{layer}_{dims}d_dynamic.onnx"
                print(f"[export] {layer} {dims}D dynamic, example {sz(ex)} ...", file=sys.stderr, flush=True)
                info = export(module, x, path, dynamic_dims=dims)
                info["path"] = str(path)
                info["example"] = ex
                exports[(layer, dims)] = info
                print(f"[export] {info}", file=sys.stderr, flush=True)

        results = {}
        for size in sizes:
            for layer in ("SpectralConv", "FourierUnit"):
                dims = len(size)
                dyn = exports.get((layer, dims), {})
                case = dict(layer=layer, dims=dims, size=list(size), threads=args.threads, timing=timing,
                            state=states[(layer, dims)], workdir=str(workdir), mem_limit_gb=mem_limit,
                            profile=not args.no_profile,
                            onnx_dynamic=dyn.get("path") if dyn and "error" not in dyn else None,
                            static_export=(layer == "FourierUnit" and not args.no_onnx))
                print(f"[case] {layer} {sz(size)} ...", file=sys.stderr, flush=True)
                if args.max_wait > 0:
                    C.wait_for_quiet(args.max_other_load, args.max_wait)
                t0 = time.perf_counter()
                res, failure = C.run_child(__file__, case, workdir / f"case_{layer}_{sz(size)}.json", args.case_timeout)
                res["failure"] = failure
                results[(layer, size)] = res
                print(f"[case] {layer} {sz(size)} done in {time.perf_counter() - t0:.0f} s"
                      + (f" ({failure})" if failure else ""), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    lines = head + [""] + tables(results, exports, sizes, args) + [""] + C.footer(fingerprint)
    print("\n".join(lines[len(head):]), flush=True)
    path = C.write_results(args.output or (f"{NAME}_quick" if args.quick else NAME), lines)
    print(f"\nwritten to {os.path.relpath(path, C.ROOT)}", file=sys.stderr)


def cell(res: dict, key: str) -> str:
    """A measurement, or why it is missing (error in the child, or the child died before it)."""
    if key in res:
        return C.fmt_ms(res[key])
    if res.get("failure"):
        return res["failure"]
    return "n/a"


def input_desc(layer: str, size) -> str:
    return f"(1, {LAYERS[(layer, len(size))]['channels']}, {', '.join(map(str, size))})"


def tables(results: dict, exports: dict, sizes, args) -> list[str]:
    lines = ["## Eager PyTorch: ours vs torch.fft", ""]
    rows = []
    for size in sizes:
        for layer in ("SpectralConv", "FourierUnit"):
            r = results[(layer, size)]
            diff = r.get("max_abs_diff", r.get("failure") or "n/a")
            diff = f"{diff:.2e} (max abs out {r['max_abs_out']:.2g})" if isinstance(diff, float) else diff
            rows.append([layer, input_desc(layer, size), diff,
                         cell(r, "fwd_ours"), cell(r, "fwd_ref"), C.ratio(r.get("fwd_ours"), r.get("fwd_ref")),
                         cell(r, "fb_ours"), cell(r, "fb_ref"), C.ratio(r.get("fb_ours"), r.get("fb_ref")),
                         f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "n/a",
                         f"{r['other_load']:.2f}" if "other_load" in r else "n/a"])
    lines += C.markdown_table(
        ["layer", "input", "max abs diff ours vs torch.fft", "fwd ours ms", "fwd torch.fft ms", "fwd ours/fft",
         "fwd+bwd ours ms", "fwd+bwd torch.fft ms", "fwd+bwd ours/fft", "case peak RSS MB",
         "other load (cores)"], rows)
    lines.append("")
    lines.append("SpectralConv: 2D 16 channels, n_modes (40, 48); 3D 12 channels, n_modes (40, 48, 56) (total modes "
                 "per axis). FourierUnit: 2D 8 channels, 3D 6 channels, all spatial axes transformed, eval mode.")

    if not args.no_onnx:
        lines += ["", "## ONNX Runtime forward (CPUExecutionProvider)", ""]
        rows = []
        for size in sizes:
            for layer in ("SpectralConv", "FourierUnit"):
                r = results[(layer, size)]
                kinds = ["dynamic"] + (["static"] if layer == "FourierUnit" else [])
                for kind in kinds:
                    d = r.get(f"ort_{kind}_diff")
                    rows.append([layer, input_desc(layer, size), kind, cell(r, f"ort_{kind}"), cell(r, "fwd_ref"),
                                 C.ratio(r.get(f"ort_{kind}"), r.get("fwd_ref")), cell(r, "fwd_ours"),
                                 C.ratio(r.get(f"ort_{kind}"), r.get("fwd_ours")),
                                 f"{d:.2e}" if isinstance(d, float) else "n/a"])
        lines += C.markdown_table(
            ["layer", "input", "graph", "ORT ms", "torch.fft eager fwd ms", "ORT/fft", "ours eager fwd ms",
             "ORT/ours eager", "max abs ORT vs eager"], rows)
        lines.append("")
        lines.append("dynamic: one graph per layer, exported with spatial axes 16*Dim from a small example input and "
                     "run at every size; static: exported at that size (no dynamic_shapes).")
        lines += ["", "### Exports", ""]
        rows = []
        for (layer, dims), info in sorted(exports.items()):
            rows.append([f"{layer} {dims}D dynamic", f"(1, {LAYERS[(layer, dims)]['channels']}, "
                         f"{', '.join(map(str, info['example']))})"] + export_cells(info))
        for size in sizes:
            r = results[("FourierUnit", size)]
            info = r.get("export_static")
            if info is not None:
                rows.append([f"FourierUnit {len(size)}D static", input_desc("FourierUnit", size)] + export_cells(info))
        lines += C.markdown_table(["graph", "example input", "export s", "file MB", "ONNX nodes"], rows)

    if not args.no_profile:
        lines += ["", "## Hotspots (share of op time in one profiled run)", ""]
        rows = []
        for size in sizes:
            for layer in ("SpectralConv", "FourierUnit"):
                r = results[(layer, size)]
                rows.append([layer, input_desc(layer, size), r.get("hot_torch", "n/a"),
                             r.get("hot_ort", "n/a") if not args.no_onnx else "skipped"])
        lines += C.markdown_table(["layer", "input", "ours eager fwd+bwd: top ops by self CPU time",
                                   "ORT dynamic graph: top op types by kernel time"], rows)

    lines += ["", "## Targets (reported, not tuned for)", ""]
    lines += targets(results, sizes, args)

    lines += ["", "## Raw timings (ms: min / median / max over n timed runs)", ""]
    rows = []
    keys = [("fwd_ours", "fwd ours"), ("fwd_ref", "fwd torch.fft"), ("fb_ours", "fwd+bwd ours"),
            ("fb_ref", "fwd+bwd torch.fft"), ("ort_dynamic", "ORT dynamic"), ("ort_static", "ORT static")]
    for size in sizes:
        for layer in ("SpectralConv", "FourierUnit"):
            r = results[(layer, size)]
            for key, label in keys:
                m = r.get(key)
                if isinstance(m, dict):
                    rows.append([layer, sz(size), label, f"{m['min_ms']:.1f}", f"{m['median_ms']:.1f}",
                                 f"{m['max_ms']:.1f}", m["n"]])
    lines += C.markdown_table(["layer", "size", "measurement", "min", "median", "max", "n"], rows)
    return lines


def export_cells(info: dict) -> list[str]:
    if "error" in info:
        return [info["error"], "n/a", "n/a"]
    return [f"{info['seconds']:.1f}", f"{info['mb']:.2f}", str(info["nodes"])]


def targets(results: dict, sizes, args) -> list[str]:
    out = []
    size = (80, 96, 112)
    if size in sizes:
        r = results[("SpectralConv", size)]
        a, b = C.median_of(r.get("fb_ours")), C.median_of(r.get("fb_ref"))
        if a and b:
            out.append(f"- SpectralConv forward+backward at {sz(size)}: ours/torch.fft = {a / b:.2f}x "
                       f"(target <= 1.0x): {'met' if a / b <= 1.0 else 'NOT met'}")
        else:
            out.append(f"- SpectralConv forward+backward at {sz(size)}: not measured ({cell(r, 'fb_ours')})")
    else:
        out.append("- SpectralConv forward+backward at 80x96x112: size not in this run")
    size = (160, 192, 224)
    if size in sizes and not args.no_onnx:
        r = results[("FourierUnit", size)]
        for kind in ("dynamic", "static"):
            a, b = C.median_of(r.get(f"ort_{kind}")), C.median_of(r.get("fwd_ref"))
            label = f"- FourierUnit exported ({kind} graph, ORT) at {sz(size)} vs torch.fft eager forward"
            if a and b:
                out.append(f"{label}: {a / b:.2f}x (target <= 3x): {'met' if a / b <= 3.0 else 'NOT met'}")
            else:
                out.append(f"{label}: not measured ({cell(r, f'ort_{kind}')} / {cell(r, 'fwd_ref')})")
    else:
        out.append("- FourierUnit ORT at 160x192x224: size not in this run (full run only) or ONNX skipped")
    return out


if __name__ == "__main__":
    main()
