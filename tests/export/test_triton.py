"""Triton model repository: layout, config.pbtxt contents, and that the config parses as protobuf
text of Triton's ModelConfig (a schema subset built here; Triton's own model_config_pb2 is used
too when the tritonclient package is installed)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fnoreg_export.triton import config_pbtxt, triton_model_name, write_triton_model  # noqa: E402

DYNAMIC_CARD = {
    "name": "fnoreg-2d-cpu-2d",
    "inputs": {"moving": {"shape": ["batch", 1, "16*h", "16*w"], "dtype": "float32"},
               "fixed": {"shape": ["batch", 1, "16*h", "16*w"], "dtype": "float32"}},
    "outputs": {"ddf_norm": {"shape": ["batch", 2, "16*h", "16*w"], "dtype": "float32"}},
}
STATIC_CARD = {
    "name": "fnoreg-2d-cpu-2d",
    "static_size": [32, 48],
    "inputs": {"moving": {"shape": [1, 1, 32, 48], "dtype": "float16"},
               "fixed": {"shape": [1, 1, 32, 48], "dtype": "float16"}},
    "outputs": {"ddf_norm": {"shape": [1, 2, 32, 48], "dtype": "float16"}},
}


def _model_config_class():
    """A subset of Triton's ``inference.ModelConfig`` (field and enum names as in model_config.proto)."""
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="triton_subset.proto", package="inference", syntax="proto3")
    dtype = fdp.enum_type.add(name="DataType")
    for number, name in enumerate(["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32",
                                   "TYPE_UINT64", "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16",
                                   "TYPE_FP32", "TYPE_FP64", "TYPE_STRING", "TYPE_BF16"]):
        dtype.value.add(name=name, number=number)

    def field(msg, name, number, kind, repeated=False, type_name=None):
        f = msg.field.add(name=name, number=number, type=kind,
                          label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if type_name:
            f.type_name = type_name

    tensor = fdp.message_type.add(name="ModelTensor")
    field(tensor, "name", 1, F.TYPE_STRING)
    field(tensor, "data_type", 2, F.TYPE_ENUM, type_name=".inference.DataType")
    field(tensor, "dims", 3, F.TYPE_INT64, repeated=True)
    fdp.message_type.add(name="ModelDynamicBatching")
    policy = fdp.message_type.add(name="ModelVersionPolicy")
    latest = policy.nested_type.add(name="Latest")
    field(latest, "num_versions", 1, F.TYPE_UINT32)
    field(policy, "latest", 1, F.TYPE_MESSAGE, type_name=".inference.ModelVersionPolicy.Latest")
    config = fdp.message_type.add(name="ModelConfig")
    field(config, "name", 1, F.TYPE_STRING)
    field(config, "platform", 2, F.TYPE_STRING)
    field(config, "version_policy", 3, F.TYPE_MESSAGE, type_name=".inference.ModelVersionPolicy")
    field(config, "max_batch_size", 4, F.TYPE_INT32)
    field(config, "input", 5, F.TYPE_MESSAGE, repeated=True, type_name=".inference.ModelTensor")
    field(config, "output", 6, F.TYPE_MESSAGE, repeated=True, type_name=".inference.ModelTensor")
    field(config, "default_model_filename", 8, F.TYPE_STRING)
    field(config, "dynamic_batching", 11, F.TYPE_MESSAGE, type_name=".inference.ModelDynamicBatching")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def _triton_model_config_class():
    """Triton's own generated ModelConfig, if tritonclient is installed (loaded without grpc)."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "grpc" / "model_config_pb2.py"
    if not path.is_file():
        return None
    module_spec = importlib.util.spec_from_file_location("_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.ModelConfig


def _parse(text):
    msg = text_format.Parse(text, _model_config_class()())
    real = _triton_model_config_class()
    if real is not None:
        text_format.Parse(text, real())
    return msg


def test_dynamic_graph_config_batches_with_symbolic_spatial_dims():
    text = config_pbtxt("fnoreg", "onnxruntime_onnx", DYNAMIC_CARD["inputs"], DYNAMIC_CARD["outputs"], max_batch_size=4)
    msg = _parse(text)
    assert msg.name == "fnoreg" and msg.platform == "onnxruntime_onnx" and msg.max_batch_size == 4
    assert [t.name for t in msg.input] == ["moving", "fixed"] and msg.output[0].name == "ddf_norm"
    assert list(msg.input[0].dims) == [1, -1, -1] and list(msg.output[0].dims) == [2, -1, -1]
    assert msg.input[0].data_type == msg.DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name[
        "data_type"].enum_type.values_by_name["TYPE_FP32"].number
    assert msg.HasField("dynamic_batching") and msg.version_policy.latest.num_versions == 1


def test_static_graph_config_has_full_dims_and_no_batching():
    text = config_pbtxt("m", "tensorrt_plan", STATIC_CARD["inputs"], STATIC_CARD["outputs"])
    msg = _parse(text)
    assert msg.max_batch_size == 0 and not msg.HasField("dynamic_batching")
    assert list(msg.input[1].dims) == [1, 1, 32, 48] and list(msg.output[0].dims) == [1, 2, 32, 48]
    assert "TYPE_FP16" in text
    with pytest.raises(ValueError, match="fixed batch axis"):
        config_pbtxt("m", "tensorrt_plan", STATIC_CARD["inputs"], STATIC_CARD["outputs"], max_batch_size=2)
    with pytest.raises(ValueError, match="no Triton type"):
        config_pbtxt("m", "onnxruntime_onnx", {"x": {"shape": [1], "dtype": "complex64"}}, {})


def _tiny_onnx(path, external=False):
    w = numpy_helper.from_array(np.full((1,), 2.0, np.float32), "w")  # raw data: can live externally
    nodes = [helper.make_node("Add", ["moving", "fixed"], ["s"]), helper.make_node("Mul", ["s", "w"], ["m"]),
             helper.make_node("Concat", ["m", "m"], ["ddf_norm"], axis=1)]
    spec = ["batch", 1, "h", "w"]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("moving", TensorProto.FLOAT, spec),
                                           helper.make_tensor_value_info("fixed", TensorProto.FLOAT, spec)],
                              [helper.make_tensor_value_info("ddf_norm", TensorProto.FLOAT, ["batch", 2, "h", "w"])],
                              initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def test_repository_layout_for_onnx_with_external_weights(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    src = _tiny_onnx(tmp_path / "model.fp16.onnx", external=True)
    assert (tmp_path / "model.fp16.onnx.data").is_file()
    repo = tmp_path / "repo"
    folder = write_triton_model(repo, src, DYNAMIC_CARD, "fnoreg-2d.fp16")
    assert folder == repo / "fnoreg-2d_fp16"
    assert (folder / "1" / "model.onnx").is_file() and (folder / "1" / "model.fp16.onnx.data").is_file()
    msg = _parse((folder / "config.pbtxt").read_text())
    assert msg.name == folder.name and msg.max_batch_size == 4
    assert json.loads((folder / "fnoreg_model_card.json").read_text())["name"] == "fnoreg-2d-cpu-2d"
    # the copied graph still finds its weights
    session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    ones = np.ones((1, 1, 2, 2), np.float32)
    (out,) = session.run(None, {"moving": ones, "fixed": ones})
    assert out.shape == (1, 2, 2, 2) and np.allclose(out, 4.0)


def test_repository_layout_for_engine(tmp_path):
    engine = tmp_path / "model.32x48.fp16.engine"
    engine.write_bytes(b"not a real plan")
    folder = write_triton_model(tmp_path / "repo", engine, STATIC_CARD, "fnoreg-2d-cpu-2d.32x48.fp16.trt")
    assert (folder / "1" / "model.plan").read_bytes() == b"not a real plan"
    msg = _parse((folder / "config.pbtxt").read_text())
    assert msg.platform == "tensorrt_plan" and msg.max_batch_size == 0
    assert list(msg.input[0].dims) == [1, 1, 32, 48]


def test_engine_config_records_the_build_and_what_triton_needs(tmp_path):
    engine = tmp_path / "model.32x48.fp16.engine"
    engine.write_bytes(b"not a real plan")
    facts = {"tensorrt_version": "10.16.0.72", "gpu_name": "NVIDIA H200", "compute_capability": "9.0",
             "cuda_version": "12.8", "precision": "fp16", "version_compatible": False, "hardware_compatibility": "none"}
    folder = write_triton_model(tmp_path / "repo", engine, {**STATIC_CARD, "extra": {"engine": facts}}, "plain")
    text = (folder / "config.pbtxt").read_text()
    msg = _parse(text)  # comment lines are valid protobuf text (and Triton's own ModelConfig, when installed)
    assert msg.platform == "tensorrt_plan" and list(msg.input[0].dims) == [1, 1, 32, 48]
    assert "# TensorRT engine built with TensorRT 10.16.0.72 on NVIDIA H200 (compute capability 9.0" in text
    assert "ships TensorRT 10.16.0.72 exactly" in text and "runs only on GPUs of compute capability 9.0" in text
    facts.update(version_compatible=True, hardware_compatibility="ampere-plus")
    folder = write_triton_model(tmp_path / "repo", engine, {**STATIC_CARD, "extra": {"engine": facts}}, "portable")
    text = (folder / "config.pbtxt").read_text()
    _parse(text)
    assert "--backend-config=tensorrt,version-compatible=true" in text and "compute capability 8.0 or newer" in text
    # no facts: still a warning; ONNX models get none
    assert "build facts are missing" in (write_triton_model(tmp_path / "repo", engine, STATIC_CARD, "bare")
                                         / "config.pbtxt").read_text()
    onnx_folder = write_triton_model(tmp_path / "repo", _tiny_onnx(tmp_path / "m.onnx"), DYNAMIC_CARD, "onnx")
    assert not (onnx_folder / "config.pbtxt").read_text().startswith("#")


def test_triton_model_config_is_checked_with_tritonclient_when_installed():
    if _triton_model_config_class() is None:
        pytest.skip("tritonclient is not installed (pip install tritonclient): parsed with the schema subset only")
    real = _triton_model_config_class()()
    text_format.Parse(config_pbtxt("m", "onnxruntime_onnx", DYNAMIC_CARD["inputs"], DYNAMIC_CARD["outputs"],
                                   max_batch_size=4, notes=["a note"]), real)
    assert real.platform == "onnxruntime_onnx" and real.version_policy.latest.num_versions == 1


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"\.onnx or \.engine"):
        write_triton_model(tmp_path, tmp_path / "model.pt", DYNAMIC_CARD, "x")
    with pytest.raises(ValueError, match="cannot make"):
        triton_model_name("...")
    assert triton_model_name("fnoreg 3d/cpu.fp16") == "fnoreg_3d_cpu_fp16"
