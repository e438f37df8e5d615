"""fnoreg-export end to end on a tiny 2D FNOReg: bad input is refused with exit code 2 and leaves no
files; one full run (dynamic + static graph, fp16, --trt, --triton) writes checked ONNX files with
model cards and parity, stops with exit code 2 and an install hint where TensorRT is missing, and a
run whose parity fails exits 1 and leaves the output folder exactly as it was."""

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from fnoreg_core.checkpoint import save_checkpoint  # noqa: E402
from fnoreg_core.fields import DDF_CONVENTION, ddf_norm_to_vox  # noqa: E402
from fnoreg_core.models import create_model  # noqa: E402
from fnoreg_export.cli import Plan, UsageError, build_parser, main, parse_res  # noqa: E402
from fnoreg_export.model_card import ONNX_METADATA_KEY, ModelCard, read_card  # noqa: E402
from fnoreg_export.tensorrt_build import tensorrt_status  # noqa: E402

TINY = dict(dims=2, hidden_channels=4, n_layers=1, n_modes=(8, 8), projection_channels=8, factorization=None)
NORM = {"method": "percentile", "high_pct": 99.0}


def _tiny_model():
    torch.manual_seed(0)
    model = create_model("fnoreg", **TINY)
    # displacements of a few voxels (the init is near identity, which would make parity trivial)
    torch.nn.init.normal_(model.projection[-1].weight, std=0.02)
    return model.eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, _tiny_model(), train_resolution=[32, 48], intensity_norm=NORM, step=7,
                    name="fnoreg-tiny")
    return path


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------- bad input


def test_help_has_an_example():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = out.getvalue()
    assert "examples:" in text and "fnoreg-export best.pt --res 160x192x224" in text and "--triton" in text


def test_parse_res():
    assert parse_res("160x192x224") == (160, 192, 224) and parse_res("32X48") == (32, 48)
    for bad in ("axb", "160x", "0x48", "-16x32"):
        with pytest.raises(UsageError):
            parse_res(bad)


def test_missing_or_foreign_checkpoint_exits_2_without_files(tmp_path):
    out = tmp_path / "out"
    code, _, err = _run([tmp_path / "nope.pt", "--out", out])
    assert code == 2 and "does not exist" in err and err.startswith("fnoreg-export: error:")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    code, _, err = _run([garbage, "--out", out])
    assert code == 2 and "not a readable FNOReg checkpoint" in err
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    code, _, err = _run([foreign, "--out", out])
    assert code == 2 and "not an FNOReg checkpoint" in err
    code, _, err = _run([tmp_path, "--out", out])
    assert code == 2 and "is a folder" in err
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--res", "32x48x32"], "has 3 sizes, but this is a 2D model"),
    (["--res", "4x48"], "below this model's minimum size 8x8"),
    (["--res", "40x48"], "multiples of 16"),
    (["--res", "32by48"], "is not a size"),
    (["--res", "32x2048"], "above --max-size"),
    (["--trt"], "--trt builds one engine per resolution"),
    (["--no-dynamic"], "--no-dynamic leaves nothing to export"),
    (["--opset", "17"], "expected 20 or higher"),
    (["--max-size", "8"], "below the smallest size the dynamic graph can take (16x16)"),
])
def test_bad_arguments_exit_2_without_files(tmp_path, ckpt, argv, message):
    out, tri = tmp_path / "out", tmp_path / "tri"
    code, stdout, err = _run([ckpt, "--out", out, "--triton", tri, *argv])
    assert code == 2, (stdout, err)
    assert message in err and err.startswith("fnoreg-export: error:")
    assert not out.exists() and not tri.exists()


def test_static_only_graphs_take_any_size_above_the_minimum(ckpt):
    from fnoreg_core.checkpoint import load_model

    model, payload = load_model(ckpt)
    args = build_parser().parse_args([str(ckpt), "--no-dynamic", "--res", "40x50", "--res", "40x50", "24x30"])
    plan = Plan(args, model, payload)
    assert plan.sizes == [(40, 50), (24, 30)]
    args = build_parser().parse_args([str(ckpt)])
    plan = Plan(args, model, payload)
    assert plan.dynamic_parity_sizes == [(32, 48)]  # the training size
    assert plan.out == ckpt.parent / "tiny-export"
    assert all(n % 16 == 0 for n in plan.example_size())


# ------------------------------------------------------------------------------- a full run


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    root = tmp_path_factory.mktemp("exported")
    out, tri = root / "out", root / "triton"
    code, stdout, err = _run([ckpt, "--res", "32x48", "--fp16", "--trt", "--out", out, "--triton", tri])
    return {"code": code, "out": out, "tri": tri, "stdout": stdout, "stderr": err}


@pytest.mark.slow
def test_full_run_writes_checked_onnx_with_cards(exported):
    out = exported["out"]
    trt_ok, _ = tensorrt_status()
    assert exported["code"] == (0 if trt_ok else 2), exported["stderr"]
    names = {"model.onnx", "model.fp16.onnx", "model.32x48.onnx", "model.32x48.fp16.onnx"}
    for name in names:
        path = out / name
        onnx.checker.check_model(str(path))
        card = read_card(path)
        embedded = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
        assert ModelCard.from_json(embedded.custom_metadata_map[ONNX_METADATA_KEY]) == card
        assert card.name == "fnoreg-tiny" and card.arch == "fnoreg" and card.dims == 2 and card.opset >= 20
        assert card.train_resolution == [32, 48] and card.intensity_norm == NORM
        assert card.displacement == DDF_CONVENTION and card.config["hidden_channels"] == 4
        assert set(card.inputs) == {"moving", "fixed"} and set(card.outputs) == {"ddf_norm"}
        fp16 = "fp16" in name
        assert card.precision == ("fp16" if fp16 else "fp32")
        assert card.inputs["moving"]["dtype"] == ("float16" if fp16 else "float32")
        parity = card.parity["32x48"]
        assert parity["passed"] and parity["bound_vox"] == (0.1 if fp16 else 1e-3)
        assert parity["max_abs_vox"] <= parity["bound_vox"] and parity["mean_abs_vox"] <= parity["max_abs_vox"]
        assert any(i["label"].startswith("random smooth") for i in parity["inputs"])
        assert min(i["ref_max_abs_vox"] for i in parity["inputs"]) > 0.5  # parity on real displacements
        if ".32x48." in name:
            assert card.static_size == [32, 48] and card.min_size == card.max_size == [32, 48]
            assert card.inputs["moving"]["shape"] == [1, 1, 32, 48]
            assert card.extra["tensorrt_check"]["problems"] == []
        else:
            assert card.static_size is None and card.size_multiple == 16
            assert card.min_size == [16, 16] and card.max_size == [1024, 1024]
            assert all(isinstance(d, str) for d in card.inputs["moving"]["shape"][2:])
    assert not list(out.glob(".fnoreg-export-*")), "staging folder left behind"


@pytest.mark.slow
def test_full_run_reports_each_stage_with_its_time(exported):
    lines = exported["stdout"].splitlines()
    stages = [line for line in lines if line.startswith("[")]
    assert stages and all(re.match(r"^\[\d+/\d+\] .+ \.\.\. done in \d+\.\d s$", s) for s in stages), stages
    text = exported["stdout"]
    assert "export dynamic ONNX" in text and "export static 32x48 ONNX" in text
    assert re.search(r"32x48: max \|ddf diff\| \d\.\d\de-\d\d vox, mean", text)
    assert "random smooth" in text
    if Path("assets/demo/2d/moving.nii.gz").is_file():
        assert "demo pair 2d/moving.nii.gz" in text


@pytest.mark.slow
def test_trt_without_tensorrt_says_what_to_install(exported):
    trt_ok, _ = tensorrt_status()
    engines = sorted(exported["out"].glob("*.engine"))
    if trt_ok:  # a GPU machine with TensorRT: one fp16 engine with its sidecar
        assert [e.name for e in engines] == ["model.32x48.fp16.engine"]
        facts = json.loads((exported["out"] / "model.32x48.fp16.engine.json").read_text())["extra"]["engine"]
        assert {"tensorrt_version", "gpu_name", "compute_capability", "build_time_s"} <= set(facts)
        return
    assert engines == []
    assert "pip install tensorrt-cu12" in exported["stderr"] and "NVIDIA GPU" in exported["stderr"]


@pytest.mark.slow
def test_full_run_writes_a_triton_repository(exported):
    tri = exported["tri"]
    dynamic = (tri / "fnoreg-tiny" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in dynamic and "max_batch_size: 4" in dynamic
    assert "dims: [ 1, -1, -1 ]" in dynamic and "TYPE_FP32" in dynamic and "dynamic_batching" in dynamic
    half = (tri / "fnoreg-tiny_fp16" / "config.pbtxt").read_text()
    assert "TYPE_FP16" in half and 'name: "fnoreg-tiny_fp16"' in half
    assert (tri / "fnoreg-tiny" / "1" / "model.onnx").is_file()
    assert read_card(tri / "fnoreg-tiny" / "1" / "model.onnx").name == "fnoreg-tiny"


@pytest.mark.slow
def test_dynamic_graph_serves_other_sizes(exported):
    model = _tiny_model()
    session = ort.InferenceSession(str(exported["out"] / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    moving, fixed = (rng.random((2, 1, 64, 32), dtype=np.float32) for _ in range(2))
    (got,) = session.run(None, {"moving": moving, "fixed": fixed})
    with torch.no_grad():
        want = model(torch.from_numpy(moving), torch.from_numpy(fixed)).numpy()
    assert np.abs(ddf_norm_to_vox(got - want, (64, 32))).max() <= 1e-3


@pytest.mark.slow
def test_parity_failure_exits_1_and_leaves_the_folder_as_it_was(exported, ckpt, tmp_path, monkeypatch):
    import shutil

    from fnoreg_export import onnx_export, parity

    graph = exported["out"] / "model.32x48.onnx"

    def fast_export(model, path, example_size, dynamic=True, **kwargs):  # the run's real graph, no re-export
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(graph, path)
        return Path(path)

    monkeypatch.setattr(onnx_export, "export_onnx", fast_export)
    monkeypatch.setattr(parity, "FP32_BOUND_VOX", 0.0)  # no graph is bit-exact: parity must fail
    out, tri = tmp_path / "out", tmp_path / "triton"
    out.mkdir()
    (out / "model.32x48.onnx").write_bytes(b"the user's own file")
    (out / "notes.txt").write_text("keep me")
    code, stdout, err = _run([ckpt, "--no-dynamic", "--res", "32x48", "--fp16", "--out", out, "--triton", tri])
    assert code == 1, (stdout, err)
    assert "does not match its reference" in err and "no files were written" in err
    assert sorted(p.name for p in out.iterdir()) == ["model.32x48.onnx", "notes.txt"]
    assert (out / "model.32x48.onnx").read_bytes() == b"the user's own file"
    assert not tri.exists()


@pytest.mark.slow
def test_fp16_failure_keeps_the_fp32_files_and_advises_to_drop_fp16(exported, ckpt, tmp_path, monkeypatch):
    """Issue 21: an fp16 copy above its bound fails alone; model.onnx and the other fp32 files stay."""
    import shutil

    from fnoreg_export import onnx_export, parity

    graphs = {True: exported["out"] / "model.onnx", False: exported["out"] / "model.32x48.onnx"}

    def fast_export(model, path, example_size, dynamic=True, **kwargs):  # the run's real graphs, no re-export
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(graphs[dynamic], path)
        return Path(path)

    monkeypatch.setattr(onnx_export, "export_onnx", fast_export)
    monkeypatch.setattr(parity, "FP16_BOUND_VOX", 0.0)  # no fp16 graph is exact: fp16 parity must fail
    monkeypatch.setattr(parity, "FP16_RELATIVE", 0.0)
    out, tri = tmp_path / "out", tmp_path / "triton"
    code, stdout, err = _run([ckpt, "--res", "32x48", "--fp16", "--out", out, "--triton", tri])
    assert code == 1, (stdout, err)
    assert "without --fp16" in err and "model.fp16.onnx" in err and "no files were written" not in err
    names = sorted(p.name for p in out.iterdir() if p.name != ".fnoreg-manifest.json")
    assert names == ["model.32x48.onnx", "model.32x48.onnx.json", "model.onnx", "model.onnx.json"], names
    assert read_card(out / "model.onnx").parity["32x48"]["passed"]
    assert (tri / "fnoreg-tiny" / "1" / "model.onnx").is_file() and not (tri / "fnoreg-tiny_fp16").exists()
    assert "FAILED" in stdout and "is left out" in stdout


def test_bundle_writes_weights_without_optimiser_and_the_training_log(ckpt, tmp_path):
    import shutil

    from fnoreg_core.checkpoint import load_checkpoint, load_model

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(ckpt, run / "best.pt")
    (run / "metrics.csv").write_text("step,metric,value\n10,train/loss,0.5\n")
    code, stdout, err = _run([run / "best.pt", "--no-dynamic", "--res", "32x48", "--bundle", "--out", tmp_path / "b"])
    assert code == 0, err
    bundled = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert "optimizer" not in bundled and bundled["step"] == 7 and bundled["name"] == "fnoreg-tiny"
    load_model(tmp_path / "b" / "checkpoint.pt")
    assert (tmp_path / "b" / "training.csv").read_text().startswith("step,metric")
    assert "bundle" in stdout
