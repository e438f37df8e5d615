"""fp16 graphs with fp32 islands (fnoreg_export.mixed_precision, issue 21 point 2)."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from fnoreg_export.mixed_precision import (DEFAULT_KEEP_FP32, convert_mixed_fp16,  # noqa: E402
                                           fp16_error_per_layer, fp32_matcher, node_classes)


def _float_inputs(model):
    """name -> elem type of every value of a (type-inferred) graph."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def test_spectral_nodes_compute_in_fp32_inside_an_fp16_graph(fno2d, tmp_path):
    from onnx import TensorProto

    _, path = fno2d
    dst = tmp_path / "model.fp16.onnx"
    facts = convert_mixed_fp16(path, dst)
    assert facts["fp32_nodes"] > 0 and facts["fp16_nodes"] > 0 and facts["casts"] > 0
    model = onnx.load(str(dst))
    onnx.checker.check_model(model)
    assert {v.type.tensor_type.elem_type for v in list(model.graph.input) + list(model.graph.output)} \
        == {TensorProto.FLOAT16}
    types = _float_inputs(model)
    spectral = [n for n in model.graph.node if n.op_type == "MatMul" and "SpectralConv" in node_classes(n)]
    kept = fp32_matcher(DEFAULT_KEEP_FP32)
    pointwise = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Conv", "Einsum")
                 and node_classes(n) and not kept(n)]
    lifting = [n for n in model.graph.node if n.op_type in ("MatMul", "Conv") and kept(n) and "SpectralConv" not in node_classes(n)]
    assert lifting and all(types[i] == TensorProto.FLOAT for n in lifting for i in n.input), "lifting not fp32"
    assert spectral and pointwise
    assert all(types[i] == TensorProto.FLOAT for n in spectral for i in n.input), "spectral matmuls not fp32"
    assert all(types[i] == TensorProto.FLOAT16 for n in pointwise for i in n.input
               if types.get(i) in (TensorProto.FLOAT, TensorProto.FLOAT16)), "pointwise layers not fp16"


def test_mixed_graph_matches_pytorch_and_runs_in_the_runtime(fno2d, tmp_path):
    from fnoreg_export import parity as P

    model, path = fno2d
    dst = tmp_path / "model.fp16.onnx"
    convert_mixed_fp16(path, dst)
    results = P.measure(lambda m, f: P.torch_ddf(model, m, f), P.OrtRunner(dst), P.parity_cases(2, (32, 48)))
    assert all(r.ref_max_abs_vox > 0.5 for r in results)
    assert max(r.max_abs_vox for r in results) <= P.bound_for("fp16", max(r.ref_max_abs_vox for r in results))


def test_error_per_layer_names_every_kind(fno2d, tmp_path):
    from fnoreg_export import parity as P

    model, path = fno2d
    table = fp16_error_per_layer(path, lambda m, f: P.torch_ddf(model, m, f), [P.random_pair((32, 48))], tmp_path)
    assert "all fp16" in table and "only spectral conv (truncated DFT) fp16" in table
    assert all(np.isfinite(v["max_abs_vox"]) and v["max_abs_vox"] >= 0 for v in table.values())
