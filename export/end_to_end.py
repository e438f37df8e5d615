"""The end-to-end ONNX graph: raw images in, displacement in voxels and mm (and the moved image) out.

Any onnxruntime application (C++, C#, Java, JavaScript, Python) can call it with nothing but the
graph and ``docs/DEPLOY.md``::

    inputs   fixed, moving   float32 (B, 1, nz, ny, nx)   raw intensities, voxel-buffer order
             fixed_affine    float32 (4, 4)               voxel -> RAS mm of fixed (identity: ddf_mm = ddf_vox)
    outputs  ddf_vox         float32 (B, 3, nz, ny, nx)   channel c: voxels along voxel axis c (i, j, k)
             ddf_mm          float32 (B, 3, nz, ny, nx)   channel c: mm along world axis c (R, A, S)
             moved           float32 (B, 1, nz, ny, nx)   (variant with the warp) moving at p + ddf_vox(p)

(2-D models: one spatial axis less, ``fixed_affine`` (3, 3).) The graph is the network graph
(``model.onnx``, unchanged, its names prefixed ``net/``) wrapped in the steps of
:mod:`fnoreg_export.contract`: transpose to array order, the card's intensity normalisation,
network, normalised units -> voxels -> mm, transpose back, GridSample (opset 20) for ``moved``.
It is built from an exported ``model.onnx`` in seconds (no torch): :func:`build_end_to_end`, or

    python -m fnoreg_export.end_to_end assets/models/fnoreg3d/model.onnx -o model.e2e.onnx

Parity with the Python path (numpy normalisation, the network graph in onnxruntime, numpy units
and warp: :func:`measure_parity`) is measured when it is built and stored in its card; the build
fails above :data:`fnoreg_export.parity.FP32_BOUND_VOX`. The network-only graph stays the one for
TensorRT (5-D GridSample and TopK with a data-dependent k are not TensorRT material).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from fnoreg_core.intensity import IntensityNorm

from . import contract as C
from .model_card import ModelCard, read_card

__all__ = ["build_end_to_end", "end_to_end_card", "measure_parity", "parity_inputs", "time_paths", "write", "E2EParityError",
           "main"]

_NET_PREFIX = "net/"
#: Largest |moved - reference| allowed at export, as a fraction of the moving image's intensity range.
MOVED_BOUND_REL = 1e-4


class E2EParityError(RuntimeError):
    """The end-to-end graph disagrees with the Python path beyond the bound."""


def build_end_to_end(network_path: str | Path, out_path: str | Path, *, moved: bool = True,
                     norm: IntensityNorm | None = None, dims: int | None = None) -> Path:
    """Wrap the network graph ``network_path`` into an end-to-end graph written to ``out_path``.

    Parameters
    ----------
    network_path : an exported fp32 network graph (``model.onnx`` or a static ``model.<size>.onnx``)
        with its card (embedded or ``<file>.json``)
    out_path : the ``.onnx`` to write (atomically; no card is written here, see :func:`end_to_end_card`)
    moved : include the ``moved`` output (GridSample, opset 20)
    norm, dims : override the card's intensity normalisation / dimensionality (tests)

    Raises
    ------
    ValueError
        An fp16 graph, or a graph that is not an FNOReg network (inputs ``moving``/``fixed``,
        output ``ddf_norm``).
    """
    import onnx
    from onnx import TensorProto, compose, helper

    network_path, out_path = Path(network_path), Path(out_path)
    card = read_card(network_path)
    if card.extra.get("graph", "network") != "network":
        raise ValueError(f"{network_path} is already an end-to-end graph; wrap the network graph (model.onnx)")
    if card.precision != "fp32":
        raise ValueError(f"{network_path} is an {card.precision} graph; build the end-to-end graph from the fp32 one")
    norm = norm or IntensityNorm.from_dict(card.intensity_norm or {})
    dims = dims or card.dims
    net = onnx.load(str(network_path))
    names_in = [i.name for i in net.graph.input if i.name not in {t.name for t in net.graph.initializer}]
    names_out = [o.name for o in net.graph.output]
    if sorted(names_in) != sorted(C.NETWORK_INPUTS) or names_out != [C.NETWORK_OUTPUT]:
        raise ValueError(f"{network_path} has inputs {names_in} and outputs {names_out}; expected an FNOReg network "
                         f"graph ({', '.join(C.NETWORK_INPUTS)} -> {C.NETWORK_OUTPUT})")
    net = compose.add_prefix(net, _NET_PREFIX)

    g = C.GraphBuilder("e2e/")
    perm = C.buffer_perm(dims)
    for name in ("fixed", "moving"):
        array_order = g.op("Transpose", name, perm=perm)
        C.normalise_nodes(g, array_order, norm, out=_NET_PREFIX + name)
    C.ddf_units_nodes(g, _NET_PREFIX + C.NETWORK_OUTPUT, "fixed_affine", dims, out_vox="ddf_vox", out_mm="ddf_mm")
    if moved:
        C.warp_nodes(g, "moving", "ddf_vox", dims, out="moved")

    # symbolic sizes, or the static network graph's sizes (spatial axes reversed: buffer order)
    fixed_in = next(i for i in net.graph.input if i.name == _NET_PREFIX + "fixed")
    known = [d.dim_value if d.HasField("dim_value") else None for d in fixed_in.type.tensor_type.shape.dim]
    known = known[:2] + known[2:][::-1] if len(known) == 2 + dims else [None] * (2 + dims)
    batch = known[0] or "batch"
    spatial = [k or name for k, name in zip(known[2:], ["nz", "ny", "nx"][-dims:])]
    image = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, 1] + spatial)  # noqa: E731
    field = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, dims] + spatial)  # noqa: E731
    inputs = [image("fixed"), image("moving"),
              helper.make_tensor_value_info("fixed_affine", TensorProto.FLOAT, [dims + 1, dims + 1])]
    outputs = [field("ddf_vox"), field("ddf_mm")] + ([image("moved")] if moved else [])
    split = _first_post(g, _NET_PREFIX)  # builder nodes before it only read graph inputs: pre, network, post
    graph = helper.make_graph(
        g.nodes[:split] + list(net.graph.node) + g.nodes[split:], "fnoreg_end_to_end", inputs, outputs,
        initializer=list(net.graph.initializer) + g.initializers,
        value_info=list(net.graph.value_info))
    model = helper.make_model(graph, opset_imports=list(net.opset_import), functions=list(net.functions),
                              ir_version=net.ir_version, producer_name="fnoreg-export end-to-end")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(tmp))
        tmp.replace(out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_path


def _first_post(g: C.GraphBuilder, prefix: str) -> int:
    """Index of the first builder node that consumes the network's output (pre nodes come before it)."""
    for i, node in enumerate(g.nodes):
        if any(name == prefix + C.NETWORK_OUTPUT for name in node.input):
            return i
    return len(g.nodes)


# ------------------------------------------------------------------------------------------------
# parity with the Python path


def _python_path(network_runner, fixed: np.ndarray, moving: np.ndarray, affine: np.ndarray, norm: IntensityNorm,
                 dims: int) -> dict[str, np.ndarray]:
    """What the Python runtime computes for one pair of array-order images on one grid (contract, numpy)."""
    fixed_n, _ = C.normalise_image(fixed, norm)
    moving_n, _ = C.normalise_image(moving, norm)
    ddf_norm = network_runner(moving_n[None, None], fixed_n[None, None])[0]
    ddf_vox, ddf_mm = C.ddf_units(ddf_norm, affine)
    return {"ddf_vox": ddf_vox, "ddf_mm": ddf_mm, "moved": C.warp_image_vox(moving, ddf_vox)}


def parity_inputs(dims: int, size: Sequence[int], demo_dir: str | Path | None = None) -> list[tuple[str, np.ndarray,
                                                                                                     np.ndarray]]:
    """(label, fixed, moving) raw array-order images of ``size``: the demo pair (original intensities,
    resized corner-aligned when its grid differs) and a random smooth pair with a zero background
    and a scanner-like intensity range (exercises the percentile over the foreground)."""
    from fnoreg_export import parity as P

    out = []
    for folder in ([Path(demo_dir)] if demo_dir is not None else P.default_demo_dirs()):
        found = P._candidate_pairs(dims, folder)
        target = np.log(np.asarray(size, dtype=np.float64))
        found.sort(key=lambda item: float(np.abs(np.log(np.asarray(item[2], dtype=np.float64)) - target).sum()))
        if found:
            from fnoreg_core.geometry import resize
            from fnoreg_core.io import load_image

            moving_path, fixed_path, _ = found[0]
            images = [resize(np.asarray(load_image(p).data, dtype=np.float32), size) for p in (fixed_path, moving_path)]
            out.append((f"demo pair {moving_path.parent.name}/{moving_path.name} -> {fixed_path.name} (raw intensities)",
                        images[0], images[1]))
            break
    case = P.random_pair(size, seed=0)
    raw = []
    for img in (case.fixed[0, 0], case.moving[0, 0]):
        scaled = (img * 1200.0 + 40.0).astype(np.float32)
        scaled[img < 0.3] = 0.0
        raw.append(scaled)
    out.append(("random smooth, zero background, intensities 0-1240 (seed 0)", raw[0], raw[1]))
    return out


def measure_parity(e2e_path: str | Path, network_path: str | Path, size: Sequence[int] | None = None,
                   demo_dir: str | Path | None = None, threads: int | None = None) -> dict:
    """Run the end-to-end graph and the Python path on :func:`parity_inputs`; the card's parity entry.

    Returns ``{"<size>": {"max_abs_vox", "mean_abs_vox", "max_abs_mm", "moved_max_abs_rel", "bound_vox",
    "passed", "reference", "candidate", "inputs": [...]}}``; ``passed`` needs the fp32 bound on
    ``ddf_vox`` and :data:`MOVED_BOUND_REL` of the intensity range on ``moved``.
    """
    import onnxruntime as ort

    from fnoreg_export.parity import FP32_BOUND_VOX, OrtRunner

    card = read_card(network_path)
    dims = card.dims
    norm = IntensityNorm.from_dict(card.intensity_norm or {})
    size = tuple(size or (card.static_size or card.nearest_accepted(card.train_resolution)))
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(str(e2e_path), opts, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in session.get_outputs()]
    network = OrtRunner(network_path)
    affine = np.diag([0.8, 1.1, 1.4, 1.0][-(dims + 1):]).astype(np.float64)
    affine[0, 1] = 0.05  # a sheared, anisotropic affine: channels must be world axes
    rows = []
    for label, fixed, moving in parity_inputs(dims, size, demo_dir):
        ref = _python_path(network, fixed, moving, affine, norm, dims)
        feeds = {"fixed": np.ascontiguousarray(C.to_buffer_order(fixed[None, None], dims)),
                 "moving": np.ascontiguousarray(C.to_buffer_order(moving[None, None], dims)),
                 "fixed_affine": affine.astype(np.float32)}
        got = dict(zip(out_names, session.run(None, feeds)))
        vox = C.from_buffer_order(got["ddf_vox"], dims)[0]
        mm = C.from_buffer_order(got["ddf_mm"], dims)[0]
        row = {"label": label,
               "max_abs_vox": float(np.abs(vox - ref["ddf_vox"]).max()),
               "mean_abs_vox": float(np.abs(vox - ref["ddf_vox"]).mean()),
               "max_abs_mm": float(np.abs(mm - ref["ddf_mm"]).max()),
               "ref_max_abs_vox": float(np.abs(ref["ddf_vox"]).max())}
        if "moved" in got:
            span = float(moving.max() - moving.min()) or 1.0
            moved = C.from_buffer_order(got["moved"], dims)[0, 0]
            row["moved_max_abs_rel"] = float(np.abs(moved - ref["moved"]).max() / span)
        rows.append(row)
    worst = max(r["max_abs_vox"] for r in rows)
    moved_worst = max((r.get("moved_max_abs_rel", 0.0) for r in rows), default=0.0)
    key = "x".join(str(n) for n in size)
    return {key: {
        "max_abs_vox": worst, "mean_abs_vox": float(np.mean([r["mean_abs_vox"] for r in rows])),
        "max_abs_mm": max(r["max_abs_mm"] for r in rows), "moved_max_abs_rel": moved_worst,
        "bound_vox": FP32_BOUND_VOX, "moved_bound_rel": MOVED_BOUND_REL, "precision": "fp32",
        "passed": worst <= FP32_BOUND_VOX and moved_worst <= MOVED_BOUND_REL,
        "reference": "Python runtime path: fnoreg_export.contract numpy steps + network graph in onnxruntime CPU",
        "candidate": "end-to-end graph in onnxruntime CPU", "inputs": rows}}


def time_paths(e2e_path: str | Path, network_path: str | Path, size: Sequence[int] | None = None,
               threads: int = 2, repeats: int = 7, demo_dir: str | Path | None = None) -> dict[str, dict[str, float]]:
    """Wall-clock seconds per call, one process, interleaved, onnxruntime CPU with ``threads`` threads
    (the runtime's session options) on the first :func:`parity_inputs` pair:

    * ``network``: the network graph alone on inputs already normalised;
    * ``python_path``: numpy normalisation + network graph + numpy units and warp (the Python runtime's steps);
    * ``end_to_end``: the end-to-end graph, all its outputs;
    * ``end_to_end_field``: the end-to-end graph asked for ``ddf_vox`` and ``ddf_mm`` only.

    Returns ``{name: {"median_s", "min_s", "n"}}``.
    """
    import time

    import onnxruntime as ort

    from fnoreg_export.runtime import ort_session_options

    card = read_card(network_path)
    dims = card.dims
    norm = IntensityNorm.from_dict(card.intensity_norm or {})
    size = tuple(size or (card.static_size or card.nearest_accepted(card.train_resolution)))
    _, fixed, moving = parity_inputs(dims, size, demo_dir)[0]
    affine = np.eye(dims + 1)
    net = ort.InferenceSession(str(network_path), ort_session_options(threads), providers=["CPUExecutionProvider"])
    e2e = ort.InferenceSession(str(e2e_path), ort_session_options(threads), providers=["CPUExecutionProvider"])
    network = lambda m, f: net.run(None, {"moving": m, "fixed": f})[0]  # noqa: E731
    fixed_n, moving_n = (C.normalise_image(x, norm)[0][None, None] for x in (fixed, moving))
    feeds = {"fixed": np.ascontiguousarray(C.to_buffer_order(fixed[None, None], dims)),
             "moving": np.ascontiguousarray(C.to_buffer_order(moving[None, None], dims)),
             "fixed_affine": affine.astype(np.float32)}
    calls = {"network": lambda: network(moving_n, fixed_n),
             "python_path": lambda: _python_path(network, fixed, moving, affine, norm, dims),
             "end_to_end": lambda: e2e.run(None, feeds),
             "end_to_end_field": lambda: e2e.run(["ddf_vox", "ddf_mm"], feeds)}
    for call in calls.values():  # warm-up
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return {name: {"median_s": float(np.median(t)), "min_s": float(min(t)), "n": len(t)} for name, t in times.items()}


def end_to_end_card(network_card: ModelCard, e2e_path: str | Path, parity: dict, moved: bool,
                    network_name: str) -> ModelCard:
    """The end-to-end graph's card: the network's, with ``extra["graph"] = "end-to-end"``, its own inputs/outputs,
    the buffer-order convention and the parity against the Python path."""
    from .onnx_export import io_spec

    inputs, outputs = io_spec(e2e_path)
    extra = dict(network_card.extra)
    extra["graph"] = "end-to-end"
    extra["end_to_end"] = {
        "network_graph": network_name, "moved_output": moved, "axis_order": "voxel-buffer (B, C, nz, ny, nx)",
        "intensity_norm_in_graph": True, "network_parity": network_card.parity,
        "runs_on": "onnxruntime (CPU and CUDA providers; opset 20 GridSample, TopK); not TensorRT: use the network "
                   "graph there",
    }
    return replace(network_card, displacement=C.E2E_CONVENTION, inputs=inputs, outputs=outputs,
                   parity=parity, extra=extra)


def write(network_path: str | Path, out_path: str | Path, *, moved: bool = True, size: Sequence[int] | None = None,
          demo_dir: str | Path | None = None) -> tuple[Path, dict]:
    """Build, measure parity, write the card (embedded and ``<file>.json``); removes the graph and raises
    :class:`E2EParityError` when parity fails. Returns ``(path, parity)``."""
    from .model_card import embed_card

    network_path, out_path = Path(network_path), Path(out_path)
    build_end_to_end(network_path, out_path, moved=moved)
    try:
        parity = measure_parity(out_path, network_path, size, demo_dir)
        entry = next(iter(parity.values()))
        if not entry["passed"]:
            raise E2EParityError(f"end-to-end graph {out_path.name}: ddf_vox differs by {entry['max_abs_vox']:.3g} voxel "
                                 f"(bound {entry['bound_vox']:g}), moved by {entry['moved_max_abs_rel']:.3g} of the "
                                 f"intensity range (bound {entry['moved_bound_rel']:g}) from the Python path")
        card = end_to_end_card(read_card(network_path), out_path, parity, moved, network_path.name)
        embed_card(out_path, card)
        card.save(out_path.with_name(out_path.name + ".json"))
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    return out_path, parity


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m fnoreg_export.end_to_end",
        description="Wrap an exported FNOReg network graph (model.onnx) into an end-to-end graph for any onnxruntime "
                    "application: raw images in, displacement in voxels and mm and the moved image out "
                    "(docs/DEPLOY.md). Parity with the Python path is measured and stored in the card.",
        epilog="example:\n  python -m fnoreg_export.end_to_end assets/models/fnoreg3d/model.onnx -o model.e2e.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("network", type=Path, help="exported fp32 network graph (model.onnx) with its card")
    p.add_argument("-o", "--out", type=Path, default=None, help="output .onnx (default: <network>.e2e.onnx beside it)")
    p.add_argument("--no-moved", action="store_true", help="leave out the moved-image output (no GridSample)")
    p.add_argument("--res", default=None, metavar="DxHxW", help="parity size (default: the training size)")
    p.add_argument("--demo", type=Path, default=None, metavar="DIR", help="demo pairs for parity (default: assets/demo)")
    p.add_argument("--time", type=int, default=0, metavar="N",
                   help="then time N interleaved calls of the end-to-end graph, the network graph and the Python path "
                        "(onnxruntime CPU, --threads threads, the demo pair at the parity size)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads for --time (default: 2)")
    args = p.parse_args(argv)
    from .model_card import ModelCardError

    out = args.out or args.network.with_name(args.network.name[: -len(".onnx")] + ".e2e.onnx")
    try:
        size = tuple(int(n) for n in args.res.lower().split("x")) if args.res else None
        path, parity = write(args.network, out, moved=not args.no_moved, size=size, demo_dir=args.demo)
    except (ModelCardError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except E2EParityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key, entry in parity.items():
        print(f"{path}: parity at {key} vs the Python path: ddf_vox max {entry['max_abs_vox']:.2e} voxel, ddf_mm max "
              f"{entry['max_abs_mm']:.2e} mm, moved max {entry['moved_max_abs_rel']:.2e} of the intensity range")
    if args.time > 0:
        print(f"time per call, {args.threads} onnxruntime threads, {args.time} interleaved calls each (median, min):")
        for name, t in time_paths(path, args.network, size, args.threads, args.time, args.demo).items():
            print(f"  {name:18s} {t['median_s'] * 1000:8.1f} ms  {t['min_s'] * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
