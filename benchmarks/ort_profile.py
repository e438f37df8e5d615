"""Where an exported FNOReg graph spends its time in onnxruntime CPU: per node type, per layer.

For each ONNX file given (e.g. the bundled ``model.onnx`` as shipped and a fresh export of the
same checkpoint), at one spatial size, in ONE run so that ratios are comparable on a shared host:

* latency of ``session.run`` at each thread count (1, 2), each in its own process whose VmHWM is
  that graph's peak RSS (the processes never import torch);
* the FFT floor in the same run: ``scipy.fft.rfftn`` + ``irfftn`` of every Fourier Unit's input
  tensor (shape from the model card: ``(1, hidden // 2, *size)`` per unit), ``workers=threads``;
* an onnxruntime profile (``enable_profiling``) of one run at the highest thread count, aggregated
  per op type and per layer (the ``pkg.torch.onnx.name_scopes`` of each node in the exported
  graph; nodes onnxruntime fused are attributed through the name of the node they came from).

Usage::

    python benchmarks/ort_profile.py                                    # bundled model, 160x192x224
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


KINDS = {"ort": run_ort, "floor": run_floor}


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", action="append", default=None,
                   help="LABEL=PATH of a graph to measure (repeatable; default: the bundled model)")
    p.add_argument("--size", default="160x192x224", help="spatial size (default 160x192x224)")
    p.add_argument("--threads", default="1,2", help="thread counts to time (default 1,2)")
    p.add_argument("--no-profile", action="store_true", help="skip the onnxruntime profile")
    C.add_timing_args(p, budget_s=60)
    C.add_case_runner_args(p, NAME, "case", 1800)
    args = p.parse_args()
    if args._case:
        run_case(json.loads(args._case), args._out)
        return

    size = tuple(int(n) for n in args.size.split("x"))
    threads = [int(t) for t in args.threads.split(",")]
    graphs = []
    for spec in args.onnx or [f"bundled={BUNDLED}"]:
        label, _, path = spec.partition("=")
        graphs.append((label, str(Path(path).resolve())))
    timing = C.timing_from_args(args, False, budget_s=60)
    card = json.loads(Path(graphs[0][1] + ".json").read_text()) if Path(graphs[0][1] + ".json").exists() \
        else json.loads((BUNDLED.parent / "model.onnx.json").read_text())
    shapes, _ = fourier_unit_shapes(card, size)
    load0 = os.getloadavg()
    head = C.header(f"onnxruntime CPU profile of the exported FNOReg graph at {sz(size)}", max(threads), [
        f"- graphs: {', '.join(f'{l} = {os.path.relpath(q, C.ROOT)}' for l, q in graphs)}",
        f"- timing: median of up to {timing['repeats']} runs after {timing['warmup']} warm-up; every (graph, threads) "
        "in its own process (peak RSS = its VmHWM), onnxruntime session options of the runtime "
        "(fnoreg_export.runtime.ort_session_options: arena off, all graph optimisations)",
        f"- FFT floor: scipy.fft rfftn + irfftn (norm ortho) of the {len(shapes)} Fourier Units' inputs "
        f"{shapes[0] if shapes else ''}, workers = threads, same run",
        f"- load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}",
        f"- command: python benchmarks/ort_profile.py {' '.join(sys.argv[1:])}"])
    print("\n".join(head), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="fnoreg_ort_profile_"))
    counter = [0]

    def child(case: dict, label: str) -> dict:
        case = dict(case, workdir=str(workdir), size=list(size), timing=timing)
        print(f"[case] {label} ...", file=sys.stderr, flush=True)
        counter[0] += 1
        t0 = time.perf_counter()
        res, failure = C.run_child(__file__, case, workdir / f"case_{counter[0]}.json", args.case_timeout)
        res["failure"] = failure or res.get("error")
        print(f"[case] {label} done in {time.perf_counter() - t0:.0f} s" + (f" ({res['failure']})" if res["failure"] else ""),
              file=sys.stderr, flush=True)
        return res

    reference = str(workdir / "reference.npy")
    results: dict = {}
    # interleave graphs within each thread count, so that load drifts hit all of them alike
    for t in threads:
        results[("floor", t)] = child(dict(kind="floor", shapes=shapes, threads=t), f"FFT floor, {t} thread(s)")
        for label, path in graphs:
            results[(label, t)] = child(dict(kind="ort", onnx=path, threads=t, label=label, reference=reference),
                                        f"{label}, {t} thread(s)")
    profiles = {}
    if not args.no_profile:
        for label, path in graphs:
            res = child(dict(kind="ort", onnx=path, threads=max(threads), label=label, profile=True), f"{label} profile")
            if res.get("profile"):
                profiles[label] = aggregate(res["profile"], path)

    lines = ["## Latency, peak memory, thread scaling", ""]
    rows = []
    for t in threads:
        floor = C.median_of(results[("floor", t)].get("time"))
        rows.append(["FFT floor (scipy)", str(t), C.fmt_ms(results[("floor", t)].get("time")), "1.00x", "-",
                     f"{results[('floor', t)].get('hwm_mb', 0):.0f}", f"{results[('floor', t)].get('other_load', 0):.2f}"])
        for label, _ in graphs:
            r = results[(label, t)]
            tm = C.median_of(r.get("time"))
            one = C.median_of(results[(label, threads[0])].get("time"))
            rows.append([label, str(t), C.fmt_ms(r.get("time")) if tm else r.get("failure") or "n/a",
                         f"{tm / floor:.2f}x" if tm and floor else "n/a",
                         f"{one / tm:.2f}x" if tm and one else "n/a",
                         f"{r.get('hwm_mb', 0):.0f}", f"{r.get('other_load', 0):.2f}"])
    lines += C.markdown_table(["graph", "threads", "median ms", "vs FFT floor", f"speed-up vs {threads[0]} thread(s)",
                               "peak RSS MB (VmHWM)", "other load (cores)"], rows)
    diffs = [f"{label}: {results[(label, threads[0])].get('max_abs_diff', 0.0):.1e}" for label, _ in graphs[1:]]
    if diffs:
        lines += ["", f"max |ddf_norm difference| vs {graphs[0][0]} (same inputs): " + ", ".join(diffs)]
    for label, prof in profiles.items():
        total = prof["total_ms"]
        lines += ["", f"## Profile of {label} ({max(threads)} threads, one run, sum of node kernel times {total:.0f} ms)", "",
                  "### Per op type", ""]
        lines += C.markdown_table(["op", "nodes run", "ms", "%"], [
            [op, str(prof["count_op"][op]), f"{us / 1e3:.0f}", f"{100 * us / 1e3 / total:.1f}"]
            for op, us in prof["by_op"].most_common()])
        lines += ["", "### Per layer", ""]
        lines += C.markdown_table(["layer", "ms", "%"], [
            [layer, f"{us / 1e3:.0f}", f"{100 * us / 1e3 / total:.1f}"] for layer, us in prof["by_layer"].most_common()])
        lines += ["", "### Per module (top 12)", ""]
        lines += C.markdown_table(["module", "ms", "%"], [
            [s, f"{us / 1e3:.0f}", f"{100 * us / 1e3 / total:.1f}"] for s, us in prof["by_scope"].most_common(12)])
    load1 = os.getloadavg()
    lines += ["", f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}"]
    print("\n".join(lines), flush=True)
    path = C.write_results(args.output or f"{NAME}_{sz(size)}", head + [""] + lines)
    print(f"\nwritten to {os.path.relpath(path, C.ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
