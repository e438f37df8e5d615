"""Export a registration network to ONNX with dynamic batch and spatial axes.

torch is imported lazily so that ``import fnoreg_export`` stays torch-free.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

__all__ = ["export_onnx", "fold_batchnorm", "convert_to_fp16", "io_spec", "graph_opset", "size_range", "DEFAULT_OPSET",
           "DEFAULT_MAX_SIZE", "INPUT_NAMES", "OUTPUT_NAMES"]

#: Opset 20 is the first with 5-D GridSample; all our graphs use it.
DEFAULT_OPSET = 20
INPUT_NAMES = ("moving", "fixed")
OUTPUT_NAMES = ("ddf_norm",)
#: Upper bound of every spatial axis of a dynamic graph (the symbolic dims' range).
DEFAULT_MAX_SIZE = 1024
#: Weights above this many bytes go to an external ``<file>.data`` (protobuf files stop at 2 GiB).
_INLINE_LIMIT = 1_500_000_000


def _fold_into(linear, bn):
    """A copy of ``linear`` (PointwiseConv or nn.Linear, weight (out, in)) with the eval-mode ``bn``
    after it folded in: ``bn(linear(x)) == folded(x)``."""
    import copy

    import torch

    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
        bias = linear.bias if linear.bias is not None else torch.zeros_like(bn.running_mean)
        folded = copy.deepcopy(linear)
        folded.weight = torch.nn.Parameter(linear.weight * scale[:, None])
        folded.bias = torch.nn.Parameter(bias * scale + shift)
    return folded


def fold_batchnorm(model):
    """Fold every eval-mode batch norm that follows a 1x1 convolution into that convolution.

    Covers the Spectral Transforms (``Sequential(PointwiseConv, BatchNorm, ReLU)``) and the Fourier
    Units (``conv`` = ``nn.Linear`` then ``bn``). Works on a deep copy (the model and its state_dict
    are untouched) and returns it in eval mode; outputs are equal to float rounding. The exported
    graph then has no BatchNormalization nodes: one pass over each volume fewer.
    """
    import copy

    import torch
    from torch import nn

    from fnoreg_core.layers.fourier_unit import FourierUnit
    from fnoreg_core.layers.pointwise import PointwiseConv

    model = copy.deepcopy(model).eval()
    bns = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    for module in model.modules():
        if isinstance(module, FourierUnit) and isinstance(module.bn, bns) and module.bn.track_running_stats:
            module.conv = _fold_into(module.conv, module.bn)
            module.bn = nn.Identity()
        elif isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, bn = module[i], module[i + 1]
                if isinstance(conv, (PointwiseConv, nn.Linear)) and isinstance(bn, bns) and bn.track_running_stats:
                    if conv.bias is None and isinstance(conv, PointwiseConv):
                        biased = PointwiseConv(conv.in_channels, conv.out_channels, bias=True)
                        biased.weight = conv.weight
                        torch.nn.init.zeros_(biased.bias)
                        conv = biased
                    module[i] = _fold_into(conv, bn)
                    module[i + 1] = nn.Identity()
    return model


def export_onnx(model, path: str | Path, example_size: tuple[int, ...], dynamic: bool = True,
                opset: int = DEFAULT_OPSET, max_size: int = DEFAULT_MAX_SIZE,
                external_data: bool | None = None, fold_bn: bool = True) -> Path:
    """Export ``model(moving, fixed) -> ddf_norm`` to ``path``.

    Parameters
    ----------
    model : fnoreg_core.models RegistrationNet (put in eval mode here)
    path : output ``.onnx`` file (written atomically: removed again if the export fails)
    example_size : spatial size of the tracing example, e.g. (32, 48, 32); with ``dynamic`` each
        entry must be a multiple of ``model.size_multiple()``
    dynamic : dynamic batch and spatial axes (one graph for every size that is a multiple of
        ``model.size_multiple()``, up to ``max_size``); otherwise a static graph for batch 1 and
        exactly ``example_size``
    opset : ONNX opset (>= 20)
    max_size : largest size of every spatial axis of a dynamic graph
    external_data : weights in a separate ``<file>.data``; None (default): only when they are too
        large for one protobuf file (> 1.5 GB), so ordinary models are one self-contained file
    fold_bn : fold the batch norms into the 1x1 convolutions before them (:func:`fold_batchnorm`;
        the exported graph only, the model is untouched)

    Returns
    -------
    Path of the written model. Inputs ``moving``/``fixed`` (B, 1, *spatial) float32, output
    ``ddf_norm`` (B, dims, *spatial) float32 (see ``fnoreg_core.fields``).

    Raises
    ------
    ValueError
        Opset below 20, or an example size the model cannot take.
    """
    import onnx
    import torch

    if opset < DEFAULT_OPSET:
        raise ValueError(f"expected opset >= {DEFAULT_OPSET} (5-D GridSample), got {opset}")
    dims = model.dims
    example_size = tuple(int(n) for n in example_size)
    if len(example_size) != dims:
        raise ValueError(f"expected {dims} spatial sizes, got {example_size}")
    multiple = model.size_multiple() if dynamic else 1
    if any(n % multiple for n in example_size):
        raise ValueError(f"expected example sizes that are multiples of {multiple}, got {example_size}")
    model = fold_batchnorm(model) if fold_bn else model.eval()
    batch = 2 if dynamic else 1  # an example batch of 1 would be specialised to 1
    gen = torch.Generator().manual_seed(0)
    # distinct example tensors: passing one tensor twice makes the exporter alias the inputs
    moving = torch.rand(batch, 1, *example_size, generator=gen)
    fixed = torch.rand(batch, 1, *example_size, generator=gen)
    dynamic_shapes = None
    if dynamic:
        Dim = torch.export.Dim
        spatial = {}
        smallest = model.min_spatial_size()  # the model's own checks become export guards: start the range there
        for axis, name, low in zip(range(2, 2 + dims), "dhw"[-dims:], smallest):
            if multiple > 1:
                spatial[axis] = multiple * Dim(name, min=max(1, -(-int(low) // multiple)), max=max_size // multiple)
            else:
                spatial[axis] = Dim(name, min=max(2, int(low)), max=max_size)
        shape = {0: Dim("batch", min=1, max=64), **spatial}
        dynamic_shapes = {"moving": shape, "fixed": shape}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data is None:
        n_bytes = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
        external_data = n_bytes > _INLINE_LIMIT
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            torch.onnx.export(
                model, (moving, fixed), str(path), dynamo=True, opset_version=opset,
                input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                dynamic_shapes=dynamic_shapes, verbose=False, external_data=external_data,
            )
        onnx.checker.check_model(str(path))
    except BaseException:
        path.unlink(missing_ok=True)
        Path(str(path) + ".data").unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------------------------------------
# facts about an exported graph (for model cards, Triton configs and checks)

_DTYPE_NAMES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16", 6: "int32", 7: "int64", 9: "bool",
                2: "uint8", 3: "int8"}


def size_range(model, dynamic: bool = True, max_size: int = DEFAULT_MAX_SIZE) -> tuple[list[int], list[int], int]:
    """Spatial sizes a graph of ``model`` accepts: ``(min_size, max_size, size_multiple)`` per axis.

    A dynamic graph takes every size ``min <= n <= max`` with ``n % size_multiple == 0`` on each
    axis (the multiple comes from the factorised Fourier transforms, ``model.size_multiple()``);
    a static graph's range is its one size, so callers pass ``dynamic=False`` to get multiple 1.
    """
    multiple = int(model.size_multiple()) if dynamic else 1
    lows = []
    for n in model.min_spatial_size():
        lo = max(int(n), 2, multiple if multiple > 1 else 2)
        lows.append(-(-lo // multiple) * multiple)
    high = (int(max_size) // multiple) * multiple
    return lows, [high] * model.dims, multiple


def _value_info_spec(value) -> dict:
    tensor_type = value.type.tensor_type
    shape = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        else:
            shape.append(dim.dim_param or "?")
    return {"shape": shape, "dtype": _DTYPE_NAMES.get(tensor_type.elem_type, str(tensor_type.elem_type))}


def io_spec(path: str | Path) -> tuple[dict, dict]:
    """``(inputs, outputs)`` of an ONNX file as ``{name: {"shape": [...], "dtype": "float32"}}``.

    Symbolic dimensions are their names (e.g. ``"batch"``, ``"16*d"``); weights are not loaded.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    inputs = {v.name: _value_info_spec(v) for v in graph.input if v.name not in inits}
    outputs = {v.name: _value_info_spec(v) for v in graph.output}
    return inputs, outputs


def graph_opset(path: str | Path) -> int:
    """The default-domain (``ai.onnx``) opset of an ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ValueError(f"{path} imports no default-domain opset")


# ---------------------------------------------------------------------------------------------
# fp16 graphs

#: Node inputs that ONNX requires to stay float32 whatever the data type (op_type -> input indices).
KEEP_FLOAT32_INPUTS = {"Resize": {2}}
#: Largest finite float16.
_FP16_MAX = 65504.0


def half_tensor(tensor, facts: dict):
    """float16 copy of a float32 ``TensorProto`` (rounded to nearest, clipped to +-65504); adds the clipped
    and the nonzero values that became 0 to ``facts["clipped"]`` / ``facts["underflow"]``."""
    import numpy as np
    from onnx import numpy_helper

    values = numpy_helper.to_array(tensor).astype(np.float32)
    facts["clipped"] += int(np.count_nonzero(np.abs(values) > _FP16_MAX))
    converted = np.clip(values, -_FP16_MAX, _FP16_MAX).astype(np.float16)
    facts["underflow"] += int(np.count_nonzero((converted == 0) & (values != 0)))
    return numpy_helper.from_array(converted, tensor.name)


def half_node_attributes(node, keep: set, facts: dict) -> None:
    """Turn a node's float32 tensor attributes and its float32 ``to`` / ``dtype`` targets to float16 in
    place, except on nodes that produce a name in ``keep`` (values that must stay float32)."""
    import onnx
    from onnx import TensorProto

    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
            if not (node.op_type == "Constant" and node.output[0] in keep):
                attr.t.CopyFrom(half_tensor(attr.t, facts))
        elif attr.name in ("to", "dtype") and attr.type == onnx.AttributeProto.INT \
                and attr.i == TensorProto.FLOAT and not any(o in keep for o in node.output):
            attr.i = TensorProto.FLOAT16


def convert_to_fp16(src: str | Path, dst: str | Path) -> dict:
    """Write an fp16 copy of the float32 ONNX graph ``src`` to ``dst``; returns conversion facts.

    Every float32 tensor becomes float16: weights and constants (rounded to nearest, values beyond
    +-65504 clipped), graph inputs and outputs, intermediate value types, and ``Cast(to=float)``
    nodes (the dynamic graph computes its Fourier bases in float64 and casts them: now straight to
    float16). float64, integer and bool tensors are untouched. Inputs and outputs are float16, so
    the graph is fp16 end to end; TensorRT >= 10 builds fp16 kernels from exactly this as a
    strongly typed network (``tensorrt_build.build_engine``; TensorRT 11 has no other way). The result passes ``onnx.checker`` and strict type inference, else
    ValueError; ``dst`` is written atomically and removed again on failure.

    Returns
    -------
    ``{"clipped": n values clipped to the fp16 range, "underflow": n nonzero weights that
    became 0, "converted_initializers": n}``
    """
    import onnx
    from onnx import TensorProto

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    facts = {"clipped": 0, "underflow": 0, "converted_initializers": 0}
    keep = set()
    graphs = []

    def collect(graph):
        graphs.append(graph)
        for node in graph.node:
            for index in KEEP_FLOAT32_INPUTS.get(node.op_type, ()):
                if index < len(node.input) and node.input[index]:
                    keep.add(node.input[index])
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    collect(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        collect(g)

    collect(model.graph)

    def retype(value):
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type == TensorProto.FLOAT and value.name not in keep:
            tensor_type.elem_type = TensorProto.FLOAT16

    for graph in graphs:
        for i, tensor in enumerate(graph.initializer):
            if tensor.data_type == TensorProto.FLOAT and tensor.name not in keep:
                graph.initializer[i].CopyFrom(half_tensor(tensor, facts))
                facts["converted_initializers"] += 1
        for value in list(graph.input) + list(graph.output) + list(graph.value_info):
            retype(value)
        for node in graph.node:
            half_node_attributes(node, keep, facts)
    save_checked(model, dst, f"the fp16 copy of {src.name}")
    return facts


def save_checked(model, dst: Path, what: str) -> None:
    """Check ``model`` (structure and strict type inference), write it to ``dst`` through a temp
    file (external data above 1.5 GB) and check the file; nothing is left behind on failure.

    Raises
    ------
    ValueError
        The graph is invalid or its types are inconsistent (``what`` names it in the message).
    """
    import onnx

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        onnx.checker.check_model(model, full_check=False)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        if model.ByteSize() > _INLINE_LIMIT:
            onnx.save(model, str(tmp), save_as_external_data=True, location=dst.name + ".data")
        else:
            onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp))
        tmp.replace(dst)
    except onnx.checker.ValidationError as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{what} is not a valid ONNX graph: {exc}") from None
    except onnx.shape_inference.InferenceError as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{what} has inconsistent types: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
