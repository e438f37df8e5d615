"""The end-to-end ONNX graph (fnoreg_export.end_to_end) and its contract (fnoreg_export.contract).

* every ONNX step of the contract equals its numpy step (the Python runtime's) on random inputs,
  batches, 2-D and 3-D, odd sizes, constant images;
* the graph built from the shipped 3-D model: names, card, parity measured at build time;
* the Node.js example (examples/node) registers the 2 mm demo pair and its field equals the Python
  runtime's to 1e-4 voxel (skipped only where node/npm are absent).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from fnoreg_core.intensity import IntensityNorm  # noqa: E402
from fnoreg_export import contract as C  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "assets" / "models" / "fnoreg3d" / "model.onnx"
DEMO = ROOT / "assets" / "demo" / "3d_2mm"
NODE_EXAMPLE = ROOT / "examples" / "node"


def _run_nodes(build, inputs: dict[str, np.ndarray], n_out: int = 1):
    """Build a small graph with ``build(g, *input_names) -> output names`` and run it in onnxruntime."""
    from onnx import TensorProto, helper

    g = C.GraphBuilder("t/")
    outs = build(g, *inputs)
    outs = [outs] if isinstance(outs, str) else list(outs)
    graph = helper.make_graph(
        g.nodes, "t", [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def _images(rng, shape, batch):
    out = []
    for b in range(batch):
        img = (rng.random(shape) ** 2 * rng.uniform(10, 3000) + rng.uniform(-50, 50)).astype(np.float32)
        img[rng.random(shape) < 0.4] = img.min()  # background at the minimum: percentile over the rest
        out.append(img)
    if batch > 2:
        out[2] = np.full(shape, 7.0, np.float32)  # constant image -> zeros
    return np.stack(out)[:, None]


@pytest.mark.parametrize("method", ["percentile", "minmax", "none"])
@pytest.mark.parametrize("shape", [(7, 9, 11), (13, 6), (40, 48, 56)])
def test_normalise_nodes_equal_numpy(method, shape):
    rng = np.random.default_rng(len(shape) * 7 + len(method))
    norm = IntensityNorm(method=method, high_pct=99.5 if method != "minmax" else 99.5)
    x = _images(rng, shape, batch=3)
    if method == "none":
        x = x / 3000.0
    (got,) = _run_nodes(lambda g, name: C.normalise_nodes(g, name, norm), {"x": x})
    want = np.stack([C.normalise_image(img[0], norm)[0] for img in x])[:, None]
    assert got.shape == x.shape and got.dtype == np.float32
    # numpy's float32 arithmetic; a fresh CI machine's onnxruntime may fuse the scale differently (1 ulp)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("pct", [50.0, 99.0, 100.0])
def test_normalise_nodes_other_percentiles(pct):
    rng = np.random.default_rng(1)
    norm = IntensityNorm(high_pct=pct)
    x = _images(rng, (9, 10, 11), batch=2)
    (got,) = _run_nodes(lambda g, name: C.normalise_nodes(g, name, norm), {"x": x})
    want = np.stack([C.normalise_image(img[0], norm)[0] for img in x])[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dims", [2, 3])
def test_ddf_units_and_warp_nodes_equal_numpy(dims):
    rng = np.random.default_rng(dims)
    shape = (9, 12, 7)[:dims]
    batch = 2
    ddf_norm = (rng.standard_normal((batch, dims) + shape) * 0.3).astype(np.float32)
    affine = np.eye(dims + 1)
    affine[:dims, :dims] = np.diag(rng.uniform(0.5, 2.0, dims)) + 0.1 * rng.standard_normal((dims, dims))
    affine[:dims, dims] = rng.uniform(-50, 50, dims)
    moving = (rng.random((batch, 1) + shape) * 100).astype(np.float32)

    def build(g, ddf, aff, mov):
        vox, mm = C.ddf_units_nodes(g, ddf, aff, dims)
        return vox, mm, C.warp_nodes(g, g.op("Transpose", mov, perm=C.buffer_perm(dims)), vox, dims)

    vox, mm, moved = _run_nodes(build, {"ddf": ddf_norm, "aff": affine.astype(np.float32), "mov": moving})
    for b in range(batch):
        want_vox, want_mm = C.ddf_units(ddf_norm[b], affine)
        np.testing.assert_allclose(C.from_buffer_order(vox, dims)[b], want_vox, rtol=0, atol=1e-6)
        np.testing.assert_allclose(C.from_buffer_order(mm, dims)[b], want_mm, rtol=0, atol=1e-5)
        want_moved = C.warp_image_vox(moving[b, 0], want_vox)
        np.testing.assert_allclose(C.from_buffer_order(moved, dims)[b, 0], want_moved, rtol=0, atol=1e-4)
        assert (want_moved == 0).any() and (want_moved != 0).any()  # both sides of the border rule are exercised


# ------------------------------------------------------------------------------------------------
# the graph built from the shipped model


@pytest.fixture(scope="module")
def e2e3d(tmp_path_factory):
    from fnoreg_export.end_to_end import write

    if not MODEL.is_file():
        pytest.skip(f"{MODEL} is missing")
    out = tmp_path_factory.mktemp("e2e") / "model.e2e.onnx"
    path, parity = write(MODEL, out)
    return path, parity


def test_e2e_graph_contract_and_card(e2e3d):
    from fnoreg_export.model_card import read_card

    path, parity = e2e3d
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(C.E2E_INPUTS)
    assert [o.name for o in session.get_outputs()] == list(C.E2E_OUTPUTS)
    assert session.get_inputs()[0].shape == ["batch", 1, "nz", "ny", "nx"]
    assert session.get_inputs()[2].shape == [4, 4]
    card = read_card(path)
    sidecar = json.loads(path.with_name(path.name + ".json").read_text())
    assert sidecar["extra"]["graph"] == card.extra["graph"] == "end-to-end"
    assert card.extra["end_to_end"]["network_graph"] == "model.onnx"
    assert card.intensity_norm == {"method": "percentile", "high_pct": 99.5}
    assert card.displacement == C.E2E_CONVENTION
    (size, entry), = card.parity.items()  # at the model's training size, rounded to an accepted one
    assert read_card(MODEL).accepts([int(n) for n in size.split("x")])
    assert entry["passed"] and entry["max_abs_vox"] <= 1e-4 and entry["moved_max_abs_rel"] <= 1e-4
    assert any("demo pair 3d_2mm" in row["label"] for row in entry["inputs"])
    assert parity == card.parity


def test_e2e_refuses_non_network_graphs(e2e3d, tmp_path):
    from fnoreg_export.end_to_end import build_end_to_end, main

    path, _ = e2e3d
    with pytest.raises(ValueError, match="already an end-to-end graph"):
        build_end_to_end(path, tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()
    assert main([str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.onnx")]) == 2


@pytest.mark.slow
def test_time_paths_reports_every_path(e2e3d):
    from fnoreg_export.end_to_end import time_paths

    path, _ = e2e3d
    times = time_paths(path, MODEL, threads=2, repeats=1)
    assert set(times) == {"network", "python_path", "end_to_end", "end_to_end_field"}
    assert all(t["n"] == 1 and 0 < t["min_s"] <= t["median_s"] for t in times.values())


def test_e2e_batch_and_2d(fno2d, tmp_path):
    """A 2-D model, a batch of two pairs of different intensity ranges, one of them constant."""
    from fnoreg_export.end_to_end import build_end_to_end
    from fnoreg_export.parity import OrtRunner

    _, net_path = fno2d
    out = build_end_to_end(net_path, tmp_path / "e2e2d.onnx")
    rng = np.random.default_rng(3)
    fixed = _images(rng, (32, 48), batch=3)
    moving = _images(rng, (32, 48), batch=3)
    affine = np.array([[0.9, 0.1, 3.0], [0.0, 1.2, -4.0], [0, 0, 1]])
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"fixed": np.ascontiguousarray(C.to_buffer_order(fixed, 2)),
                             "moving": np.ascontiguousarray(C.to_buffer_order(moving, 2)),
                             "fixed_affine": affine.astype(np.float32)})
    norm = IntensityNorm()
    network = OrtRunner(net_path)
    for b in range(3):
        f = C.normalise_image(fixed[b, 0], norm)[0]
        m = C.normalise_image(moving[b, 0], norm)[0]
        want_vox, want_mm = C.ddf_units(network(m[None, None], f[None, None])[0], affine)
        np.testing.assert_allclose(C.from_buffer_order(got[0], 2)[b], want_vox, rtol=0, atol=1e-4)
        np.testing.assert_allclose(C.from_buffer_order(got[1], 2)[b], want_mm, rtol=0, atol=1e-4)
        want_moved = C.warp_image_vox(moving[b, 0], want_vox)
        span = float(np.ptp(moving[b, 0])) or 1.0  # GridSample vs scipy: float32 rounding of the coordinates
        np.testing.assert_allclose(C.from_buffer_order(got[2], 2)[b, 0], want_moved, rtol=0, atol=1e-5 * span)


# ------------------------------------------------------------------------------------------------
# Node.js


def _npm_install() -> None:
    """``npm ci`` into examples/node unless its node_modules already holds the locked onnxruntime-node."""
    lock = json.loads((NODE_EXAMPLE / "package-lock.json").read_text())
    want = lock["packages"]["node_modules/onnxruntime-node"]["version"]
    installed = NODE_EXAMPLE / "node_modules" / "onnxruntime-node" / "package.json"
    if installed.is_file() and json.loads(installed.read_text()).get("version") == want:
        return
    proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_EXAMPLE, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"npm ci failed in {NODE_EXAMPLE}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


@pytest.mark.slow
def test_node_example_matches_python_runtime(e2e3d, tmp_path):
    nib = pytest.importorskip("nibabel")
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: the Node.js example cannot run here")
    from fnoreg_export.runtime import Registrator

    _npm_install()
    path, _ = e2e3d
    out = tmp_path / "node_out"
    proc = subprocess.run(["node", "register.mjs", "--model", str(path), "--fixed", str(DEMO / "fixed.nii.gz"),
                           "--moving", str(DEMO / "moving.nii.gz"), "--out", str(out), "--threads", "2"],
                          cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["size"] == [80, 96, 112] and summary["outputs"] == list(C.E2E_OUTPUTS)

    fixed, moving = nib.load(DEMO / "fixed.nii.gz"), nib.load(DEMO / "moving.nii.gz")
    stages = {}
    try:  # the runtime's pipeline: compare its network stage (the end-to-end graph has no affine stage)
        from fnoreg_export.runtime.stages import PipelineOptions

        stages["pipeline"] = PipelineOptions(affine="none", work_res="native")
    except ImportError:
        pass
    result = Registrator.load(MODEL, backend="onnxruntime-cpu", threads=2).register(fixed=fixed, moving=moving,
                                                                                    **stages)

    warp = nib.load(out / "warp.nii.gz")
    assert warp.shape == (80, 96, 112, 1, 3) and int(warp.header["intent_code"]) == 1007
    assert np.allclose(warp.affine, fixed.affine)
    lps = np.asarray(warp.dataobj, dtype=np.float64)[:, :, :, 0, :].transpose(3, 0, 1, 2)
    ras = lps * np.array([-1.0, -1.0, 1.0])[:, None, None, None]
    ddf_vox = np.einsum("ij,j...->i...", np.linalg.inv(fixed.affine[:3, :3]), ras)
    assert np.abs(result.ddf_vox).max() > 1.0  # a real registration, not a zero field
    assert np.abs(ddf_vox - result.ddf_vox).max() <= 1e-4
    moved = nib.load(out / "moved.nii.gz")
    assert np.allclose(moved.affine, fixed.affine)
    span = float(np.ptp(np.asarray(moving.dataobj, dtype=np.float32)))
    assert np.abs(moved.get_fdata() - result.moved).max() <= 1e-4 * span
    # the warp file is what ITK reads as a displacement field: resampling with it gives the moved image
    sitk = pytest.importorskip("SimpleITK")
    field = sitk.Cast(sitk.ReadImage(str(out / "warp.nii.gz")), sitk.sitkVectorFloat64)
    resampled = sitk.Resample(sitk.ReadImage(str(DEMO / "moving.nii.gz"), sitk.sitkFloat64),
                              sitk.ReadImage(str(DEMO / "fixed.nii.gz"), sitk.sitkFloat64),
                              sitk.DisplacementFieldTransform(field), sitk.sitkLinear, 0.0)
    assert np.abs(sitk.GetArrayFromImage(resampled).T - moved.get_fdata()).max() <= 1e-4 * span


# ------------------------------------------------------------------------------------------------
# fnoreg-export --end-to-end


@pytest.mark.slow
def test_fnoreg_export_end_to_end_flag(tmp_path):
    """A static graph of a tiny 2-D FNOReg and its end-to-end graph (fixed sizes), in one run."""
    import contextlib
    import io

    torch = pytest.importorskip("torch")
    from fnoreg_core.checkpoint import save_checkpoint
    from fnoreg_core.models import create_model
    from fnoreg_export.cli import main
    from fnoreg_export.model_card import read_card

    torch.manual_seed(0)
    model = create_model("fnoreg", dims=2, hidden_channels=4, n_layers=1, n_modes=(8, 8), projection_channels=8,
                         factorization=None)
    torch.nn.init.normal_(model.projection[-1].weight, std=0.02)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, model.eval(), train_resolution=[32, 48], intensity_norm={"method": "minmax"}, step=1,
                    name="fnoreg-tiny")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(ckpt), "--no-dynamic", "--res", "32x48", "--end-to-end", "field", "--out", str(tmp_path / "o")])
    assert code == 0, err.getvalue()
    assert "end-to-end graph -> model.32x48.e2e.onnx" in out.getvalue()
    path = tmp_path / "o" / "model.32x48.e2e.onnx"
    card = read_card(path)
    assert card.extra["graph"] == "end-to-end" and card.intensity_norm["method"] == "minmax"
    assert card.parity["32x48"]["passed"] and card.parity["32x48"]["max_abs_vox"] <= 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["ddf_vox", "ddf_mm"]  # 'field': no moved image
    assert session.get_inputs()[0].shape == [1, 1, 48, 32]  # static sizes, spatial axes in buffer order
