"""What can be known about TensorRT without TensorRT: the ONNX graph uses only operators (and data
types) that TensorRT's ONNX parser lists as supported, shapes are static per engine, and there is
no DFT and nothing complex. Small hand-made graphs cover each rule; one real export of a tiny
(Tucker-factorised) FNOReg shows that the project's static graphs pass."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from fnoreg_export.trt_support import OPS_FILE, analyse_graph, check_graph, load_op_list  # noqa: E402


def _save(tmp_path, nodes, inputs, outputs, name="g.onnx", opset=20, value_info=(), initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers), value_info=list(value_info))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _t(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def test_op_list_is_versioned_and_parsed():
    ops = load_op_list()
    assert ops.tensorrt_version == "10.15"
    assert "onnx-tensorrt" in ops.source and ops.source.endswith("operators.md")
    assert (ops.opset_min, ops.opset_max) == (9, 24)
    assert ops.ops["MatMul"].supported and "FP16" in ops.ops["MatMul"].types
    assert ops.ops["Gelu"].supported and ops.ops["GridSample"].supported
    assert not ops.ops["DFT"].supported and not ops.ops["Unique"].supported
    assert len(ops.ops) > 180
    header = OPS_FILE.read_text().splitlines()[:4]
    assert any("tensorrt_version: 10.15" in line for line in header)


def test_malformed_op_list_is_refused(tmp_path):
    bad = tmp_path / "ops.txt"
    bad.write_text("# source: x\n# tensorrt_version: 1\n# opset_range: 9-20\nMatMul maybe\n")
    with pytest.raises(ValueError, match="expected 'op"):
        load_op_list(bad)
    bad.write_text("MatMul\tY\tFP32\n")
    with pytest.raises(ValueError, match="header line"):
        load_op_list(bad)


def test_supported_static_graph_passes(tmp_path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel().tolist())
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Gelu", ["h"], ["y"])]
    path = _save(tmp_path, nodes, [_t("x", [1, 4])], [_t("y", [1, 4])], initializers=[w])
    report = analyse_graph(path)
    assert report.ok and report.problems == [] and report.op_types == ["Gelu", "MatMul"]
    assert check_graph(path) == []


def test_dft_and_complex_are_rejected(tmp_path):
    nodes = [helper.make_node("DFT", ["x"], ["y"], axis=1)]
    path = _save(tmp_path, nodes, [_t("x", [1, 8, 1])], [_t("y", [1, 8, 2])])
    assert any("DFT" in p for p in check_graph(path))

    nodes = [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.COMPLEX64)]
    path = _save(tmp_path, nodes, [_t("x", [1, 8])], [_t("y", [1, 8], TensorProto.COMPLEX64)], name="c.onnx")
    problems = check_graph(path)
    assert any("complex" in p for p in problems), problems


def test_unsupported_unknown_and_custom_ops_are_named(tmp_path):
    nodes = [helper.make_node("Unique", ["x"], ["u"]), helper.make_node("Fancy", ["x"], ["f"], domain="com.example"),
             helper.make_node("Relu", ["x"], ["y"])]
    path = _save(tmp_path, nodes, [_t("x", [4])], [_t("y", [4]), _t("u", [4]), _t("f", [4])])
    problems = " | ".join(check_graph(path))
    assert "Unique is listed as unsupported by TensorRT 10.15" in problems
    assert "custom domain 'com.example'" in problems
    assert "Relu" not in problems


def test_unsupported_data_type_and_float64_warning(tmp_path):
    nodes = [helper.make_node("Sin", ["i"], ["s"]), helper.make_node("Cos", ["d"], ["c"])]
    path = _save(tmp_path, nodes, [_t("i", [4], TensorProto.INT32), _t("d", [4], TensorProto.DOUBLE)],
                 [_t("s", [4], TensorProto.INT32), _t("c", [4], TensorProto.DOUBLE)])
    report = analyse_graph(path)
    assert any("Sin on INT32" in p for p in report.problems), report.problems
    assert not any("Cos" in p for p in report.problems)
    assert any("Cos runs on float64" in w for w in report.warnings)


def test_dynamic_shapes_fail_only_engine_graphs(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    path = _save(tmp_path, nodes, [_t("x", ["batch", 1, "h", "w"])], [_t("y", ["batch", 1, "h", "w"])])
    problems = check_graph(path, static=True)
    assert any("non-static shape" in p and "'x'" in p for p in problems), problems
    assert check_graph(path, static=False) == []


def test_gridsample_3d_and_opset_range(tmp_path):
    nodes = [helper.make_node("GridSample", ["img", "grid"], ["out"], align_corners=1)]
    path = _save(tmp_path, nodes, [_t("img", [1, 1, 4, 4, 4]), _t("grid", [1, 4, 4, 4, 3])],
                 [_t("out", [1, 1, 4, 4, 4])])
    assert any("rank-5" in p and "11.2" in p for p in check_graph(path))
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [_t("x", [2])], [_t("y", [2])],
                 name="o.onnx", opset=25)
    assert any("opset 25" in p for p in check_graph(path))


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(ValueError, match="not an ONNX model"):
        analyse_graph(bad)
    with pytest.raises(ValueError, match="does not exist"):
        analyse_graph(tmp_path / "missing.onnx")


@pytest.mark.slow
def test_static_export_of_tucker_fnoreg_passes(tmp_path):
    torch = pytest.importorskip("torch")
    from fnoreg_core.models import create_model
    from fnoreg_export.onnx_export import export_onnx

    torch.manual_seed(0)
    model = create_model("fnoreg", dims=2, hidden_channels=4, n_layers=1, n_modes=(8, 8), projection_channels=8,
                         factorization="tucker", st_fft_axes=(0,))  # one Fourier-unit axis: a faster export
    path = export_onnx(model, tmp_path / "m.onnx", (32, 48), dynamic=False)
    report = analyse_graph(path, static=True)
    assert report.problems == [], report.problems
    assert not {"DFT", "STFT"} & set(report.op_types)
    graph = onnx.load(str(path))
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 32, 48]
