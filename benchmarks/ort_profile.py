"""Where an exported FNOReg graph spends its time in onnxruntime CPU: per node type, per layer.

For each ONNX file given (e.g. the bundled ``model.onnx`` as shipped and a fresh export of the
same checkpoint), at one spatial size, in ONE run so that ratios are comparable on a shared host:

* latency of ``session.run`` at each thread count (1, 2), each in its own process whose VmHWM is
  that graph's peak RSS (the processes never import torch);
* the FFT floor in the same run: ``scipy.fft.rfftn`` + ``irfftn`` of every Fourier Unit's input
  tensor (shape from the model card: ``(1, hidden // 2, *size)`` per unit), ``workers=threads``;
* an onnxruntime profile (``enable_profiling``) of one run at the highest thread count, aggregated
  per op type and per layer (the ``pkg.torch.onnx.name_scopes`` of each node in the exported
  graph; nodes onnxruntime fused are attributed through the name of the node they came from);
* with ``--preset``, a random-weight FNOReg preset exported in the same run (Tucker weights folded
  to dense, as ``fnoreg-export`` does), e.g. the paper's 3-D configuration;
* the issue-16 targets for the first graph (the bundled model by default), from the rows above.

Usage::

    python benchmarks/ort_profile.py --size 160x192x224,80x96x112 --threads 1,2 --preset 3d
    python benchmarks/ort_profile.py --onnx old=a.onnx --onnx new=b.onnx --size 80x96x112
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

NAME = "ort_profile"
BUNDLED = C.ROOT / "assets" / "models" / "fnoreg3d" / "model.onnx"


def sz(size) -> str:
    return "x".join(str(s) for s in size)


def fourier_unit_shapes(card: dict, size) -> list[tuple[int, ...]]:
    """Input shape of every Fourier Unit of an FNOReg model (from its card's config)."""
    cfg = card["config"]
    half = int(cfg["hidden_channels"]) // 2
    axes = cfg.get("st_fft_axes")
    n_units = 4  # encoder and decoder: two Spectral Transforms each, one Fourier Unit per transform
    return [(1, half, *size)] * n_units if half else [], axes


# ------------------------------------------------------------------------------------------------
# children


def run_ort(case: dict, out: C.ResultWriter) -> None:
    import numpy as np
    import onnxruntime as ort

    from fnoreg_export.runtime import ort_session_options

    opts = ort_session_options(case["threads"])
    for name, value in case.get("session_overrides", {}).items():  # --session-variant
        setattr(opts, name, value)
    if case.get("profile"):
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(case["workdir"]) / f"prof_{case['label']}")
    t0 = time.perf_counter()
    sess = ort.InferenceSession(case["onnx"], opts, providers=["CPUExecutionProvider"])
    out["session_s"] = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    size = tuple(case["size"])
    feed = {"moving": rng.random(size, dtype=np.float32)[None, None],
            "fixed": rng.random(size, dtype=np.float32)[None, None]}
    (ddf,) = sess.run(None, feed)
    if case.get("reference"):
        ref = Path(case["reference"])
        if ref.exists():
            out["max_abs_diff"] = float(np.abs(ddf - np.load(ref)).max())
        else:
            np.save(ref, ddf)
    del ddf
    if case.get("profile"):
        sess.run(None, feed)
        out["profile"] = sess.end_profiling()
        return
    out["time"] = C.measure(lambda: sess.run(None, feed), **case["timing"])


def run_floor(case: dict, out: C.ResultWriter) -> None:
    import numpy as np
    import scipy.fft

    rng = np.random.default_rng(0)
    shapes = [tuple(s) for s in case["shapes"]]
    axes = tuple(range(2, 2 + len(case["size"])))
    data = [rng.standard_normal(s, dtype=np.float32) for s in shapes]

    def once():
        for x in data:
            spec = scipy.fft.rfftn(x, axes=axes, norm="ortho", workers=case["threads"])
            scipy.fft.irfftn(spec, s=[x.shape[a] for a in axes], axes=axes, norm="ortho", workers=case["threads"])

    out["time"] = C.measure(once, **case["timing"])


def run_export(case: dict, out: C.ResultWriter) -> None:
    """Export a random-weight FNOReg preset (seed 0, Tucker folded) to ``case['onnx']``."""
    import torch

    from fnoreg_core.models import create_model
    from fnoreg_export.onnx_export import export_onnx

    torch.manual_seed(0)
    model = create_model("fnoreg", preset=case["preset"]).eval()
    out["params"] = sum(p.numel() for p in model.parameters())  # as trained (Tucker), before folding
    for module in model.modules():
        if hasattr(module, "fold_factorization"):
            module.fold_factorization()
    multiple = model.size_multiple()  # smallest exportable example: every axis >= its modes, a multiple of 16
    example = tuple(max(m, 2 * multiple) + (-max(m, 2 * multiple)) % multiple for m in model.min_spatial_size())
    t0 = time.perf_counter()
    export_onnx(model, case["onnx"], example)
    out["export_s"] = time.perf_counter() - t0


KINDS = {"ort": run_ort, "floor": run_floor, "export": run_export}


def run_case(case: dict, out_path: str) -> None:
    out = C.ResultWriter(out_path)
    try:
        KINDS[case["kind"]](case, out)
        out["done"] = True
    except Exception as exc:  # noqa: BLE001 - reported in the table
        out["error"] = C.describe_error(exc)
    finally:
        out["hwm_mb"] = C.peak_rss_mb()


# ------------------------------------------------------------------------------------------------
# profile aggregation


def node_scopes(onnx_path: str) -> dict[str, str]:
    """Exported node name -> its module path (``encoder.st1.fu``), from the dynamo exporter's metadata."""
    import onnx

    graph = onnx.load(onnx_path, load_external_data=False).graph
    scopes = {}
    for node in graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        names = meta.get("pkg.torch.onnx.name_scopes")
        scope = ""
        if names:
            try:
                parts = [p for p in json.loads(names.replace("'", '"'))[:-1] if p]
                scope = parts[-1] if parts else ""
            except json.JSONDecodeError:
                scope = ""
        scopes[node.name] = scope
    return scopes


def layer_of(scope: str) -> str:
    """Coarse layer label: ``encoder.st1.fu`` -> ``encoder.st*.fu`` (FU), ``fourier_layers.2.spectral`` -> ..."""
    parts = scope.split(".")
    if not scope:
        return "(top level)"
    if parts[0] in ("encoder", "decoder"):
        if len(parts) >= 3 and parts[2] == "fu":
            return "Fourier Units (encoder + decoder)"
        return "Spectral Transforms, outside the Fourier Units (1x1 conv, BN, ReLU, adds)"
    if parts[0] == "fourier_layers":
        if len(parts) >= 3 and parts[2] == "spectral":
            return "Fourier layers: truncated spectral convolution"
        return "Fourier layers: 1x1 conv, GELU, adds"
    return parts[0]


def aggregate(profile_path: str, onnx_path: str) -> dict:
    events = json.loads(Path(profile_path).read_text())
    runs = [e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    start = max(runs) if runs else 0  # the last run only (the first one warms up)
    scopes = node_scopes(onnx_path)
    by_op, by_layer, by_scope = collections.Counter(), collections.Counter(), collections.Counter()
    count_op = collections.Counter()
    total = 0.0
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e.get("ts", 0) < start:
            continue
        name = e["name"][: -len("_kernel_time")]
        op = e.get("args", {}).get("op_name", "?")
        us = float(e.get("dur", 0))
        total += us
        by_op[op] += us
        count_op[op] += 1
        scope = scopes.get(name)
        if scope is None:  # fused by onnxruntime: its name starts with the first fused node's name
            match = max((k for k in scopes if name.startswith(k)), key=len, default=None)
            scope = scopes.get(match, "") if match else ""
        by_layer[layer_of(scope)] += us
        by_scope[scope or "(top level)"] += us
    return {"total_ms": total / 1e3, "by_op": by_op, "count_op": count_op, "by_layer": by_layer, "by_scope": by_scope}


# ------------------------------------------------------------------------------------------------
# parent


#: alternatives to fnoreg_export.runtime.ort_session_options, to show what each of its choices buys
SESSION_VARIANTS = {
    "arena-off": {"enable_cpu_mem_arena": False},
    "reuse-on": {"enable_mem_reuse": True},
    "arena-off+reuse-on": {"enable_cpu_mem_arena": False, "enable_mem_reuse": True},  # the options before issue 16
}

#: issue 16, for the first graph: (size, threads, seconds at most, peak RSS MB at most or None)
TARGETS = [((160, 192, 224), 2, 3.0, 2048), ((80, 96, 112), 2, 0.35, None)]
#: issue 16: network time / FFT floor at 160x192x224, 2 threads, at most
FLOOR_RATIO_TARGET = 3.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", action="append", default=None,
                   help="LABEL=PATH of a graph to measure (repeatable; default: the bundled model)")
    p.add_argument("--preset", action="append", default=[],
                   help="also export and measure this random-weight FNOReg preset (repeatable; e.g. 3d, the paper's)")
    p.add_argument("--size", default="160x192x224",
                   help="spatial size(s), comma-separated (default 160x192x224); the profile is taken at the first")
    p.add_argument("--threads", default="1,2", help="thread counts to time (default 1,2)")
    p.add_argument("--no-profile", action="store_true", help="skip the onnxruntime profile")
    p.add_argument("--session-variant", action="append", default=[], choices=sorted(SESSION_VARIANTS),
                   help="also run the first graph with this change to the runtime's session options (repeatable)")
    C.add_timing_args(p, budget_s=60)
    C.add_case_runner_args(p, NAME, "case", 1800)
    args = p.parse_args()
    if args._case:
        run_case(json.loads(args._case), args._out)
        return

    sizes = [tuple(int(n) for n in spec.split("x")) for spec in args.size.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    graphs = []
    for spec in args.onnx or [f"bundled={BUNDLED}"]:
        label, _, path = spec.partition("=")
        graphs.append((label, str(Path(path).resolve())))
    timing = C.timing_from_args(args, False, budget_s=60)
    card = json.loads(Path(graphs[0][1] + ".json").read_text()) if Path(graphs[0][1] + ".json").exists() \
        else json.loads((BUNDLED.parent / "model.onnx.json").read_text())
    load0 = os.getloadavg()
    head = C.header(f"onnxruntime CPU profile of the exported FNOReg graph at {', '.join(sz(s) for s in sizes)}", max(threads), [
        f"- graphs: {', '.join(f'{l} = {os.path.relpath(q, C.ROOT)}' for l, q in graphs)}"
        + "".join(f", {pr} = preset '{pr}' with random weights (seed 0), exported in this run" for pr in args.preset),
        f"- timing: median of up to {timing['repeats']} runs after {timing['warmup']} warm-up; every (graph, size, "
        "threads) in its own process (peak RSS = its VmHWM), onnxruntime session options of the runtime "
        "(fnoreg_export.runtime.ort_session_options: CPU arena on, planner buffer reuse off, all graph optimisations; "
        "rows '[variant]' change one of them, see SESSION_VARIANTS)",
        f"- FFT floor: scipy.fft rfftn + irfftn (norm ortho) of the first graph's {len(fourier_unit_shapes(card, sizes[0])[0])} "
        "Fourier Units' inputs (1, hidden/2, *size), workers = threads, same run",
        f"- load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}",
        f"- command: python benchmarks/ort_profile.py {' '.join(sys.argv[1:])}"])
    print("\n".join(head), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="fnoreg_ort_profile_"))
    counter = [0]

    def child(case: dict, label: str, size=None) -> dict:
        case = dict(case, workdir=str(workdir), size=list(size or sizes[0]), timing=timing)
        print(f"[case] {label} ...", file=sys.stderr, flush=True)
        counter[0] += 1
        t0 = time.perf_counter()
        res, failure = C.run_child(__file__, case, workdir / f"case_{counter[0]}.json", args.case_timeout)
        res["failure"] = failure or res.get("error")
        print(f"[case] {label} done in {time.perf_counter() - t0:.0f} s" + (f" ({res['failure']})" if res["failure"] else ""),
              file=sys.stderr, flush=True)
        return res

    exports = {}
    for preset in args.preset:
        path = str(workdir / f"{preset}.onnx")
        exports[preset] = child(dict(kind="export", preset=preset, onnx=path),
                                f"export preset {preset}")
        if not exports[preset]["failure"]:
            graphs.append((preset, path))

    first_label, first_path = graphs[0]
    variants = {f"{first_label} [{v}]": (first_path, SESSION_VARIANTS[v]) for v in args.session_variant}
    results: dict = {}
    # interleave graphs within each (size, thread count), so that load drifts hit all of them alike
    for size in sizes:
        shapes, _ = fourier_unit_shapes(card, size)
        reference = str(workdir / f"reference_{sz(size)}.npy")
        for t in threads:
            results[("floor", size, t)] = child(dict(kind="floor", shapes=shapes, threads=t),
                                                f"FFT floor, {sz(size)}, {t} thread(s)", size)
            for label, path in graphs:
                results[(label, size, t)] = child(dict(kind="ort", onnx=path, threads=t, label=label,
                                                       reference=reference if label not in exports else None),
                                                  f"{label}, {sz(size)}, {t} thread(s)", size)
            for label, (path, overrides) in variants.items():
                results[(label, size, t)] = child(dict(kind="ort", onnx=path, threads=t, label=label,
                                                       session_overrides=overrides), f"{label}, {sz(size)}, {t} thread(s)", size)
    graphs_and_variants = graphs + [(label, path) for label, (path, _) in variants.items()]
    profiles = {}
    if not args.no_profile:
        for label, path in graphs:
            res = child(dict(kind="ort", onnx=path, threads=max(threads), label=label, profile=True), f"{label} profile")
            if res.get("profile"):
                profiles[label] = aggregate(res["profile"], path)

    lines = ["## Latency, peak memory, thread scaling", ""]
    rows = []
    for size in sizes:
        for t in threads:
            floor = C.median_of(results[("floor", size, t)].get("time"))
            rows.append(["FFT floor (scipy)", sz(size), str(t), C.fmt_ms(results[("floor", size, t)].get("time")), "1.00x", "-",
                         f"{results[('floor', size, t)].get('hwm_mb', 0):.0f}",
                         f"{results[('floor', size, t)].get('other_load', 0):.2f}"])
            for label, _ in graphs_and_variants:
                r = results[(label, size, t)]
                tm = C.median_of(r.get("time"))
                one = C.median_of(results[(label, size, threads[0])].get("time"))
                rows.append([label, sz(size), str(t), C.fmt_ms(r.get("time")) if tm else r.get("failure") or "n/a",
                             f"{tm / floor:.2f}x" if tm and floor else "n/a",
                             f"{one / tm:.2f}x" if tm and one else "n/a",
                             f"{r.get('hwm_mb', 0):.0f}", f"{r.get('other_load', 0):.2f}"])
    lines += C.markdown_table(["graph", "size", "threads", "median ms", "vs FFT floor", f"speed-up vs {threads[0]} thread(s)",
                               "peak RSS MB (VmHWM)", "other load (cores)"], rows)
    for preset, res in exports.items():
        lines += ["", f"preset {preset}: {res.get('params', 0) / 1e6:.1f} M parameters as trained (Tucker), "
                  f"exported in {res.get('export_s', 0):.0f} s" + (f"; export failed: {res['failure']}" if res["failure"] else "")]
    measured = [(label, path) for label, path in graphs if label not in exports]
    for size in sizes:
        diffs = [f"{label}: {results[(label, size, threads[0])].get('max_abs_diff', 0.0):.1e}" for label, _ in measured[1:]]
        if diffs:
            lines += ["", f"max |ddf_norm difference| vs {measured[0][0]} at {sz(size)} (same inputs): " + ", ".join(diffs)]
    for label, prof in profiles.items():
        total = prof["total_ms"]
        lines += ["", f"## Profile of {label} ({sz(sizes[0])}, {max(threads)} threads, one run, sum of node kernel times {total:.0f} ms)",
                  "", "### Per op type", ""]
        lines += C.markdown_table(["op", "nodes run", "ms", "%"], [
            [op, str(prof["count_op"][op]), f"{us / 1e3:.0f}", f"{100 * us / 1e3 / total:.1f}"]
            for op, us in prof["by_op"].most_common()])
        lines += ["", "### Per layer", ""]
        lines += C.markdown_table(["layer", "ms", "%"], [
            [layer, f"{us / 1e3:.0f}", f"{100 * us / 1e3 / total:.1f}"] for layer, us in prof["by_layer"].most_common()])
        lines += ["", "### Per module (top 12)", ""]
        lines += C.markdown_table(["module", "ms", "%"], [
            [s, f"{us / 1e3:.0f}", f"{100 * us / 1e3 / total:.1f}"] for s, us in prof["by_scope"].most_common(12)])
    lines += ["", f"## Targets (issue 16, graph '{graphs[0][0]}')", ""]
    first = graphs[0][0]
    for size, t, seconds, rss_mb in TARGETS:
        r = results.get((first, size, t))
        if r is None:
            lines.append(f"- {sz(size)}, {t} threads: not measured in this run (add --size {sz(size)} --threads {t})")
            continue
        tm = C.median_of(r.get("time"))
        if tm is None:
            lines.append(f"- {sz(size)}, {t} threads: no time ({r.get('failure')})")
            continue
        tm /= 1000.0  # seconds
        lines.append(f"- network time at {sz(size)}, {t} threads: {tm:.2f} s (target <= {seconds} s): "
                     f"{'met' if tm <= seconds else 'NOT met'}")
        if rss_mb:
            lines.append(f"- peak RSS at {sz(size)}, {t} threads: {r.get('hwm_mb', 0):.0f} MB (target <= {rss_mb} MB): "
                         f"{'met' if r.get('hwm_mb', 1e9) <= rss_mb else 'NOT met'}")
        floor = (C.median_of(results[("floor", size, t)].get("time")) or 0) / 1000.0
        if size == TARGETS[0][0] and floor:
            lines.append(f"- time / FFT floor at {sz(size)}, {t} threads: {tm / floor:.2f}x (target <= {FLOOR_RATIO_TARGET}x): "
                         f"{'met' if tm / floor <= FLOOR_RATIO_TARGET else 'NOT met'}")
    load1 = os.getloadavg()
    lines += ["", f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}"]
    print("\n".join(lines), flush=True)
    path = C.write_results(args.output or f"{NAME}_{sz(sizes[0])}", head + [""] + lines)
    print(f"\nwritten to {os.path.relpath(path, C.ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
