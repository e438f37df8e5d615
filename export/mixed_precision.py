"""fp16 ONNX graphs that keep chosen layers in float32 ("fp32 islands" inside an fp16 graph).

A trained FNOReg network does not survive a plain fp16 conversion (0.18 voxel on a 2-D model
trained for 300 steps, bound 0.1): its spectral transforms are DFTs written as matmuls with cos/sin
bases (each output sums every input sample of an axis, so the fp16 rounding of 11 significant bits
grows with the axis length), and its normalisations divide by small running variances, which
amplifies the rounding of the layers before them (the lifting layer most). Training already keeps
the spectral layers in float32 under autocast (:mod:`fnoreg_core.layers.precision`); the exported
fp16 graph does the same here:

* every node whose module (the exporter's ``pkg.torch.onnx.class_hierarchy`` /
  ``pkg.torch.onnx.name_scopes`` node metadata) is one of ``keep`` (default :data:`DEFAULT_KEEP_FP32`:
  the spectral transforms, the normalisations and the lifting layer) computes in float32, with the
  weights it alone reads left in float32;
* every other float tensor is float16 (weights rounded to nearest, values beyond +-65504 clipped),
  inputs and outputs included, so the graph is fp16 at its interface and in the pointwise layers;
* ``Cast`` nodes are inserted where a tensor crosses between the two, once per tensor.

TensorRT builds such a graph as a strongly typed network (the casts fix each layer's precision).

:func:`fp16_error_per_layer` measures what each layer kind costs in fp16 (that layer kind alone
in fp16, everything else float32), the numbers behind :data:`DEFAULT_KEEP_FP32`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

__all__ = ["DEFAULT_KEEP_FP32", "LAYER_KINDS", "convert_mixed_fp16", "node_classes", "node_scopes", "fp32_matcher",
           "fp16_error_per_layer"]

#: What computes in float32 inside fp16 graphs (module class-name prefixes, or module names): the
#: spectral transforms (truncated DFT convolutions, the Fourier units' full-spectrum DFTs and the
#: Spectral Transform blocks around them, whose 1x1 convolutions carry the folded batch norms), the
#: normalisations, and the ``lifting`` layer that reads the raw intensities. fp16 is left to the FNO
#: layers' pointwise skips, the activations and the projection. Measured with
#: :func:`fp16_error_per_layer` at 160x192, max |ddf error| vs PyTorch fp32, bound 0.1 voxel:
#: a 2d-cpu model trained 300 steps (max|u| 12 voxels): all fp16 0.183, spectral + norms fp32
#: 0.130 (the lifting alone in fp16 costs 0.158: its rounding is amplified by the folded batch norm
#: after it), this default 0.016; the bundled fnoreg2d: all fp16 0.055, this default 0.006.
DEFAULT_KEEP_FP32 = ("SpectralConv", "FourierUnit", "SpectralTransform", "BatchNorm", "InstanceNorm", "LayerNorm",
                     "GroupNorm", "lifting")

#: Layer kinds for :func:`fp16_error_per_layer`: name -> module class names (prefix match).
LAYER_KINDS = {
    "spectral conv (truncated DFT)": ("SpectralConv",),
    "Fourier unit (full DFT)": ("FourierUnit",),
    "normalisation": ("BatchNorm", "InstanceNorm", "LayerNorm", "GroupNorm"),
    "lifting (first 1x1 conv, raw intensities)": ("lifting",),
    "pointwise conv (lifting, skips, projection)": ("PointwiseConv", "Linear", "Conv"),
    "activation": ("GELU", "ReLU", "LeakyReLU", "SiLU", "Tanh"),
}


def node_classes(node) -> list[str]:
    """Module class names (unqualified) a node of a torch-exported ONNX graph belongs to, outermost first."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.class_hierarchy":
            text = prop.value.strip("[]")
            return [c.strip().strip("'\"").rsplit(".", 1)[-1] for c in text.split(",") if c.strip()]
    return []


def node_scopes(node) -> list[str]:
    """Module names (``pkg.torch.onnx.name_scopes``, e.g. ``encoder.st1.conv1``) a node lies in, outermost first."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            return [s.strip().strip("'\"") for s in prop.value.strip("[]").split(",") if s.strip()]
    return []


def fp32_matcher(keep: Iterable[str]) -> Callable[[object], bool]:
    """``node -> bool``: the node lies in a module whose class name starts with an entry of ``keep``,
    or in a module whose name (``lifting``, ``encoder.st1``) is an entry of ``keep``."""
    keep = tuple(keep)

    def is_fp32(node) -> bool:
        return (any(c.startswith(k) for c in node_classes(node) for k in keep)
                or any(s in keep for s in node_scopes(node)))

    return is_fp32


def convert_mixed_fp16(src: str | Path, dst: str | Path, keep: Sequence[str] | Callable[[object], bool]
                       = DEFAULT_KEEP_FP32) -> dict:
    """Write an fp16 copy of the float32 ONNX graph ``src`` to ``dst``, with the nodes of the module
    classes ``keep`` (or the nodes for which ``keep(node)`` is true) computing in float32.

    Inputs and outputs are float16. float64, integer and bool tensors are untouched. The result
    passes ``onnx.checker`` and strict type inference, else ValueError; ``dst`` is written atomically.

    Returns
    -------
    ``{"clipped", "underflow", "converted_initializers", "fp32_nodes", "fp16_nodes", "casts",
    "fp32_layers"}``: counts, and the module classes kept in float32.
    """
    import onnx
    from onnx import TensorProto, helper

    from .onnx_export import KEEP_FLOAT32_INPUTS, half_node_attributes, half_tensor

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    graph = model.graph
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ValueError(f"{src.name}: node {node.name} ({node.op_type}) has a subgraph; mixed fp16 "
                             "conversion supports flat graphs only")
    is_fp32 = keep if callable(keep) else fp32_matcher(keep)
    facts = {"clipped": 0, "underflow": 0, "converted_initializers": 0, "fp32_nodes": 0, "fp16_nodes": 0,
             "casts": 0, "fp32_layers": [] if callable(keep) else list(keep)}

    # element types of every value of the float32 graph
    inferred = onnx.shape_inference.infer_shapes(model)
    elem: dict[str, int] = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        elem[v.name] = v.type.tensor_type.elem_type
    for t in graph.initializer:
        elem[t.name] = t.data_type
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    elem[node.output[0]] = a.t.data_type

    nodes = list(graph.node)
    island = [bool(is_fp32(n)) for n in nodes]
    consumers: dict[str, list[int]] = {}
    for k, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(k)
    pinned = {node.input[i] for node in graph.node for i in KEEP_FLOAT32_INPUTS.get(node.op_type, ())
              if i < len(node.input) and node.input[i]}

    # where each float32 value lives: FLOAT (island producer / island-only weights) or FLOAT16
    home: dict[str, int] = {}
    for k, node in enumerate(nodes):
        for out in node.output:
            if elem.get(out) == TensorProto.FLOAT:
                home[out] = TensorProto.FLOAT if island[k] or out in pinned else TensorProto.FLOAT16
    for t in graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            users = consumers.get(t.name, [])
            home[t.name] = (TensorProto.FLOAT if t.name in pinned or (users and all(island[u] for u in users))
                            else TensorProto.FLOAT16)
    for v in graph.input:
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            home[v.name] = TensorProto.FLOAT16

    for i, t in enumerate(graph.initializer):
        if t.data_type == TensorProto.FLOAT and home[t.name] == TensorProto.FLOAT16:
            graph.initializer[i].CopyFrom(half_tensor(t, facts))
            facts["converted_initializers"] += 1

    casts: dict[tuple[str, int], str] = {}
    new_nodes = []

    def cast_of(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            casts[key] = f"{name}__as_{'fp32' if to == TensorProto.FLOAT else 'fp16'}"
            new_nodes.append(helper.make_node("Cast", [name], [casts[key]], to=to,
                                              name=f"mixed_precision_cast_{len(casts)}"))
        return casts[key]

    for k, node in enumerate(nodes):
        fp32 = island[k]
        facts["fp32_nodes" if fp32 else "fp16_nodes"] += 1
        keep_idx = KEEP_FLOAT32_INPUTS.get(node.op_type, set())
        for i, name in enumerate(node.input):
            if name in home:
                want = TensorProto.FLOAT if (fp32 or i in keep_idx) else TensorProto.FLOAT16
                if home[name] != want:
                    node.input[i] = cast_of(name, want)
        if not fp32:
            half_node_attributes(node, pinned, facts)
        new_nodes.append(node)

    # graph outputs are float16: cast island-produced outputs
    renames = {}
    for v in graph.output:
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            if home.get(v.name) == TensorProto.FLOAT:
                renames[v.name] = f"{v.name}__fp32"
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
    if renames:
        for node in new_nodes:
            for i, name in enumerate(node.output):
                if name in renames:
                    node.output[i] = renames[name]
            for i, name in enumerate(node.input):
                if name in renames:
                    node.input[i] = renames[name]
        for old, new in renames.items():
            new_nodes.append(helper.make_node("Cast", [new], [old], to=TensorProto.FLOAT16,
                                              name=f"mixed_precision_output_cast_{old}"))
            home[new] = TensorProto.FLOAT
    facts["casts"] = len(casts) + len(renames)
    del graph.node[:]
    graph.node.extend(new_nodes)
    for v in graph.value_info:
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = home.get(v.name, TensorProto.FLOAT16)
    for v in graph.input:
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.FLOAT16

    from .onnx_export import save_checked

    save_checked(model, dst, f"the mixed fp16 copy of {src.name}")
    return facts


def fp16_error_per_layer(onnx_path: str | Path, reference: Callable, cases, workdir: str | Path,
                         kinds: dict[str, Sequence[str]] | None = None) -> dict[str, dict]:
    """Max |ddf error| in voxels (vs ``reference``, e.g. PyTorch fp32) of fp16 graphs of ``onnx_path``:
    ``all fp16``; each layer kind of ``kinds`` (default :data:`LAYER_KINDS`) ALONE in fp16 (the rest
    float32: what that kind costs); everything else in fp16 with that kind float32; and the default
    mixed graph (:data:`DEFAULT_KEEP_FP32` float32). ``cases``: :func:`fnoreg_export.parity.parity_cases`.
    Returns ``{name: {"max_abs_vox", "mean_abs_vox", "ref_max_abs_vox"}}``.
    """
    from . import parity as P

    kinds = dict(LAYER_KINDS if kinds is None else kinds)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    variants: dict[str, Callable[[object], bool] | tuple] = {"all fp16": ()}
    for name, classes in kinds.items():
        only = fp32_matcher(classes)
        variants[f"only {name} fp16"] = (lambda node, only=only: not only(node))
        variants[f"all fp16 but {name}"] = tuple(classes)
    variants["default mixed (DEFAULT_KEEP_FP32 in fp32)"] = DEFAULT_KEEP_FP32
    out = {}
    for i, (name, keep) in enumerate(variants.items()):
        path = workdir / f"variant{i}.fp16.onnx"
        convert_mixed_fp16(onnx_path, path, keep)
        results = P.measure(reference, P.OrtRunner(path), cases)
        out[name] = {"max_abs_vox": max(r.max_abs_vox for r in results),
                     "mean_abs_vox": float(sum(r.mean_abs_vox for r in results) / len(results)),
                     "ref_max_abs_vox": max(r.ref_max_abs_vox for r in results)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fnoreg_export.mixed_precision CHECKPOINT GRAPH.onnx --res 160x192``: the per-layer table."""
    import argparse
    import tempfile

    from fnoreg_core.checkpoint import load_model
    from fnoreg_core.intensity import IntensityNorm

    from . import parity as P
    from .model_card import read_card

    p = argparse.ArgumentParser(prog="python -m fnoreg_export.mixed_precision",
                                description="fp16 error per layer kind of an exported fp32 graph vs its PyTorch checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("graph", help="the fp32 ONNX graph fnoreg-export wrote from CHECKPOINT")
    p.add_argument("--res", required=True, help="parity size, e.g. 160x192")
    args = p.parse_args(argv)
    size = tuple(int(n) for n in args.res.lower().split("x"))
    model, _ = load_model(args.checkpoint)
    cases = P.parity_cases(model.dims, size, None, IntensityNorm.from_dict(read_card(args.graph).intensity_norm))
    with tempfile.TemporaryDirectory() as tmp:
        table = fp16_error_per_layer(args.graph, lambda m, f: P.torch_ddf(model, m, f), cases, tmp)
    print(f"| graph variant ({args.res}) | max abs error (voxel) | mean | max abs u | bound |\n|---|---|---|---|---|")
    for name, v in table.items():
        print(f"| {name} | {v['max_abs_vox']:.4f} | {v['mean_abs_vox']:.5f} | {v['ref_max_abs_vox']:.2f} | "
              f"{P.bound_for('fp16', v['ref_max_abs_vox']):.3f} |")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
