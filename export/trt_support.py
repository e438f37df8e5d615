"""Will TensorRT's ONNX parser take this graph? Checked without TensorRT or a GPU.

TensorRT cannot be installed on the machines this project is developed on, so what can be known
in advance is checked here, from the ONNX file alone, against the parser's published operator
list (``tensorrt_onnx_ops.txt`` beside this module, with its source and TensorRT version):

* every node is an operator the list marks as supported (default ONNX domain, opset in range),
  with its main input of a data type the list names for it;
* no ``DFT``/``STFT`` and no complex tensors (FNOReg's spectral layers are real matmuls by design);
* known restrictions that bite FNOReg-like graphs (GridSample on rank-5 inputs before TensorRT 11.2);
* for a per-engine graph: every input, output and intermediate shape is static.

:func:`check_graph` returns the problems as sentences (empty: the graph is fine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = ["OpSupport", "OpList", "load_op_list", "check_graph", "analyse_graph", "GraphReport", "OPS_FILE"]

OPS_FILE = Path(__file__).with_name("tensorrt_onnx_ops.txt")

#: Operators rejected whatever the list says: FNOReg graphs must be real-valued matmul graphs.
BANNED_OPS = {"DFT": "a DFT node (spectral layers must be real cos/sin matmuls, see fnoreg_core.layers.dft)",
              "STFT": "an STFT node (spectral layers must be real cos/sin matmuls)"}

# ONNX TensorProto data types -> the names used in the operator list
_TYPE_NAMES = {1: "FP32", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FP16", 11: "DOUBLE",
               16: "BF16", 14: "COMPLEX64", 15: "COMPLEX128", 8: "STRING"}
_COMPLEX = {14, 15}


@dataclass(frozen=True)
class OpSupport:
    """One row of the list: operator, supported (Y/N), data types, restriction text."""

    op: str
    supported: bool
    types: tuple[str, ...]
    restriction: str = ""


@dataclass
class OpList:
    """The parser's operator list with its provenance (header lines of the data file)."""

    ops: dict[str, OpSupport]
    source: str
    tensorrt_version: str
    opset_min: int
    opset_max: int


@lru_cache(maxsize=4)
def load_op_list(path: str | Path = OPS_FILE) -> OpList:
    """Parse ``tensorrt_onnx_ops.txt`` (``# key: value`` header, then tab-separated rows)."""
    path = Path(path)
    meta: dict[str, str] = {}
    ops: dict[str, OpSupport] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip() in ("source", "tensorrt_version", "opset_range"):
                meta[key.strip()] = value.strip()
            continue
        parts = line.split("\t")
        if len(parts) < 3 or parts[1] not in ("Y", "N"):
            raise ValueError(f"{path}:{number}: expected 'op<TAB>Y|N<TAB>types[<TAB>restriction]', got {line!r}")
        types = tuple(t for t in parts[2].split(",") if t and t != "-")
        ops[parts[0]] = OpSupport(parts[0], parts[1] == "Y", types, parts[3] if len(parts) > 3 else "")
    for key in ("source", "tensorrt_version", "opset_range"):
        if key not in meta:
            raise ValueError(f"{path}: header line '# {key}: ...' is missing")
    lo, _, hi = meta["opset_range"].partition("-")
    return OpList(ops=ops, source=meta["source"], tensorrt_version=meta["tensorrt_version"],
                  opset_min=int(lo), opset_max=int(hi))


@dataclass
class GraphReport:
    """Outcome of :func:`analyse_graph`.

    problems : sentences, each a reason TensorRT would reject the graph (or this project would)
    warnings : things TensorRT handles with caveats (e.g. float64 tensors it casts down)
    op_types : the operators used, sorted
    tensorrt_version : version of the operator list checked against
    """

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    op_types: list[str] = field(default_factory=list)
    tensorrt_version: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def _dims(value) -> list:
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return ["?"]
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim]


def analyse_graph(onnx_path: str | Path, static: bool = True, op_list: OpList | None = None) -> GraphReport:
    """Check an ONNX file against TensorRT's parser list; see the module docstring.

    Parameters
    ----------
    onnx_path : the graph (weights are not loaded)
    static : require static shapes everywhere (graphs that become one engine each)
    op_list : defaults to the bundled list

    Raises
    ------
    ValueError
        The file is missing or is not an ONNX model.
    """
    import onnx

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ValueError(f"{onnx_path} does not exist")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ValueError(f"{onnx_path} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    op_list = op_list or load_op_list()
    report = GraphReport(tensorrt_version=op_list.tensorrt_version)
    trt = f"TensorRT {op_list.tensorrt_version}"

    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            if not op_list.opset_min <= entry.version <= op_list.opset_max:
                report.problems.append(f"opset {entry.version} is outside the range {trt}'s parser supports "
                                       f"({op_list.opset_min}-{op_list.opset_max})")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    except Exception:  # keep going with the types the exporter wrote
        inferred = model
    graph = inferred.graph
    types = {}
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        types[value.name] = value.type.tensor_type.elem_type
    for tensor in graph.initializer:
        types[tensor.name] = tensor.data_type

    ops: set[str] = set()
    seen: set[tuple] = set()

    def add(kind: list[str], text: str, key: tuple) -> None:
        if key not in seen:
            seen.add(key)
            kind.append(text)

    def visit(g) -> None:
        for tensor in g.initializer:
            if tensor.data_type in _COMPLEX:
                add(report.problems, f"initializer {tensor.name!r} is complex "
                    f"({_TYPE_NAMES[tensor.data_type]}); TensorRT has no complex tensors", ("cinit", tensor.name))
        for node in g.node:
            ops.add(node.op_type)
            where = f"{node.op_type} node {node.name!r}" if node.name else f"a {node.op_type} node"
            if node.domain not in ("", "ai.onnx"):
                add(report.problems, f"{where} is in custom domain {node.domain!r}, which the parser does not know",
                    ("domain", node.domain, node.op_type))
            elif node.op_type in BANNED_OPS:
                add(report.problems, f"the graph has {BANNED_OPS[node.op_type]}", ("banned", node.op_type))
            else:
                row = op_list.ops.get(node.op_type)
                if row is None:
                    add(report.problems, f"operator {node.op_type} is not in {trt}'s ONNX operator list",
                        ("unknown", node.op_type))
                elif not row.supported:
                    add(report.problems, f"operator {node.op_type} is listed as unsupported by {trt}",
                        ("unsupported", node.op_type))
                else:
                    first = node.input[0] if node.input else ""
                    elem = types.get(first)
                    name = _TYPE_NAMES.get(elem) if elem else None
                    if name == "DOUBLE":
                        add(report.warnings, f"{node.op_type} runs on float64 data; TensorRT casts float64 down "
                            f"to float32 where it can", ("double", node.op_type))
                    elif name and row.types and name not in row.types:
                        add(report.problems, f"{node.op_type} on {name} data is not supported by {trt} "
                            f"(supported: {', '.join(row.types)})", ("type", node.op_type, name))
                    if node.op_type == "GridSample" and first and len(_shape_of(graph, first)) == 5:
                        add(report.problems, "GridSample on a rank-5 (3-D) input: the parser takes it only from "
                            "TensorRT 11.2 on", ("gridsample5d",))
            for attr in node.attribute:
                if attr.name in ("to", "dtype") and attr.type == onnx.AttributeProto.INT and attr.i in _COMPLEX:
                    add(report.problems, f"{where} produces complex tensors ({_TYPE_NAMES[attr.i]})",
                        ("cattr", node.op_type))
                if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type in _COMPLEX:
                    add(report.problems, f"{where} holds a complex constant", ("cconst", node.op_type))
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(graph)
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        elem = value.type.tensor_type.elem_type
        if elem in _COMPLEX:
            add(report.problems, f"tensor {value.name!r} is complex ({_TYPE_NAMES[elem]}); TensorRT has no "
                "complex tensors", ("ctensor", value.name))
    if static:
        inits = {t.name for t in graph.initializer}
        for kind, values in (("input", graph.input), ("output", graph.output)):
            for value in values:
                if value.name in inits:
                    continue
                dims = _dims(value)
                if any(not isinstance(d, int) or d <= 0 for d in dims):
                    add(report.problems, f"graph {kind} {value.name!r} has a non-static shape {dims}; an engine "
                        "graph needs one fixed shape (export it with a fixed --res)", ("dyn", value.name))
        dynamic_inner = [v.name for v in graph.value_info if any(not isinstance(d, int) or d <= 0 for d in _dims(v))]
        if dynamic_inner:
            add(report.problems, f"{len(dynamic_inner)} intermediate tensor(s) have non-static shapes "
                f"(first: {dynamic_inner[0]!r})", ("dyninner",))
    report.op_types = sorted(ops)
    return report


def _shape_of(graph, name: str) -> list:
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        if value.name == name:
            return _dims(value)
    return []


def check_graph(onnx_path: str | Path, static: bool = True, op_list: OpList | None = None) -> list[str]:
    """Problems that keep TensorRT's ONNX parser (or this project's rules) from taking the graph.

    An empty list means: every operator is in TensorRT's supported list with a supported data type,
    nothing is complex or a DFT, and (``static``) all shapes are fixed. See :func:`analyse_graph`.
    """
    return analyse_graph(onnx_path, static=static, op_list=op_list).problems
