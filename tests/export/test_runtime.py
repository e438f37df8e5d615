"""fnoreg_export.runtime: torch-free registration with exported models.

Parity bound: max |ddf difference| <= 1e-4 voxel between the runtime (onnxruntime CPU) and the PyTorch
model on the same normalised inputs (float32 summation order; as tests/export/test_onnx_smoke.py).
Models are tiny and untrained, with a last layer scaled up so that displacements reach a few voxels.
The fast tests use the plain FNO architecture (exports in ~10 s); FNOReg itself is tested in 2D
under ``@pytest.mark.slow`` (its dynamic export takes 1-2 minutes on 2 cores).
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from fnoreg_core.data.base import resize_image
from fnoreg_core.fields import ddf_norm_to_vox
from fnoreg_core.intensity import normalise
from fnoreg_core.io import ImageError
from fnoreg_core.layers.spatial_transformer import warp

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from fnoreg_export.model_card import ModelCardError  # noqa: E402
from fnoreg_export.runtime import (NETWORK_ONLY, BackendError, Registrator, RegistrationResult, RunInterrupted,  # noqa: E402
                                   available_backends, resample_to_fixed, resample_to_grid, warp_image,
                                   warp_labels)

ROOT = Path(__file__).resolve().parents[2]
VOXEL_ATOL = 1e-4

from tiny_models import EXAMPLE, export_tiny, tiny_card, tiny_model  # noqa: E402,F401


@pytest.fixture(scope="session")
def reg2d(fno2d):
    return Registrator.load(fno2d[1], backend="onnxruntime-cpu", threads=1)


def torch_ddf(model, moving_norm, fixed_norm):
    with torch.no_grad():
        return model(torch.from_numpy(moving_norm)[None, None], torch.from_numpy(fixed_norm)[None, None])[0].numpy()


def pair(shape, seed=0, scale=100.0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * scale).astype(np.float32), (rng.random(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------------------------------------ torch-free

TORCH_FREE = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    sys.path.insert(0, {root!r})
    import numpy as np
    import fnoreg_export.runtime as runtime
    import fnoreg_export.register_cli
    reg = runtime.Registrator.load({model!r}, threads=1)
    rng = np.random.default_rng(0)
    res = reg.register(fixed=rng.random((48, 64)).astype(np.float32),
                       moving=rng.random((48, 64)).astype(np.float32))
    assert res.moved.shape == (48, 64) and res.ddf_mm.shape == (2, 48, 64)
    # the CLI too, end to end
    import tempfile, pathlib, nibabel as nib
    from fnoreg_export.register_cli import main
    tmp = pathlib.Path(tempfile.mkdtemp())
    for name in ("f", "m"):
        nib.save(nib.Nifti1Image(rng.random((48, 64)).astype(np.float32), np.eye(4)), str(tmp / (name + ".nii.gz")))
    rc = main(["--model", {model!r}, str(tmp / "f.nii.gz"), str(tmp / "m.nii.gz"), "-o", str(tmp / "out"), "-q"])
    assert rc == 0 and (tmp / "out" / "warp.nii.gz").exists(), rc
    # SimpleITK is the affine stage's library (a base dependency); torch, MONAI and onnx never load
    heavy = sorted(m for m in ("torch", "monai", "onnx") if sys.modules.get(m) is not None)
    print("LOADED", heavy)
    """
)


def test_runtime_and_cli_run_without_torch(fno2d):
    proc = subprocess.run([sys.executable, "-c", TORCH_FREE.format(root=str(ROOT), model=str(fno2d[1]))],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout


# ------------------------------------------------------------------------------------------------ parity


def test_register_matches_torch_at_accepted_size(fno2d, reg2d):
    model, _ = fno2d
    fixed, moving = pair((48, 64))
    res = reg2d.register(fixed=fixed, moving=moving, pipeline=NETWORK_ONLY)
    expected = torch_ddf(model, normalise(moving)[0], normalise(fixed)[0])
    assert not res.resampled and res.network_shape == (48, 64)
    assert np.abs(ddf_norm_to_vox(expected, (48, 64))).max() > 0.5, "outputs too small to test parity"
    diff_vox = np.abs(ddf_norm_to_vox(res.ddf_norm - expected, (48, 64)))
    assert diff_vox.max() <= VOXEL_ATOL, f"max |ddf diff| {diff_vox.max():.2e} voxel"
    np.testing.assert_allclose(res.ddf_vox, ddf_norm_to_vox(expected, (48, 64)), atol=VOXEL_ATOL)
    # identity affine: mm == voxels
    np.testing.assert_allclose(res.ddf_mm, res.ddf_vox, atol=1e-6)
    # the moved image equals PyTorch's warp of the original-intensity moving image wherever every
    # sample point lies inside the image (outside, ITK's rule: 0 beyond half a voxel, differs from border)
    torch_moved = warp(torch.from_numpy(moving)[None, None], torch.from_numpy(res.ddf_norm)[None])[0, 0].numpy()
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in (48, 64)], indexing="ij")) + res.ddf_vox
    inside = np.all((grid >= 0) & (grid <= np.array([47, 63]).reshape(2, 1, 1)), axis=0)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(res.moved[inside], torch_moved[inside], rtol=1e-5, atol=1e-3)


def test_register_resamples_sizes_the_graph_does_not_take(fno2d, reg2d):
    model, _ = fno2d
    shape = (50, 70)  # not multiples of 16
    fixed, moving = pair(shape, seed=1)
    res = reg2d.register(fixed=fixed, moving=moving, pipeline=NETWORK_ONLY)
    assert res.resampled and res.network_shape == (48, 64)
    assert res.ddf_norm.shape == (2, *shape) and res.moved.shape == shape and res.jacobian.shape == shape
    run = torch_ddf(model, resize_image(normalise(moving)[0], (48, 64)), resize_image(normalise(fixed)[0], (48, 64)))
    expected = np.stack([resize_image(c, shape) for c in run])
    diff_vox = np.abs(ddf_norm_to_vox(res.ddf_norm - expected, shape))
    assert diff_vox.max() <= VOXEL_ATOL, f"max |ddf diff| {diff_vox.max():.2e} voxel"


def test_session_reused_and_threads(fno2d, reg2d):
    assert reg2d.threads == 1
    assert reg2d.session.get_session_options().intra_op_num_threads == 1
    session = reg2d.session
    fixed, moving = pair((48, 64), seed=2)
    a = reg2d.register(fixed=fixed, moving=moving, pipeline=NETWORK_ONLY)
    b = reg2d.register(fixed=fixed, moving=moving, pipeline=NETWORK_ONLY)
    assert reg2d.session is session
    np.testing.assert_array_equal(a.ddf_norm, b.ddf_norm)
    assert set(a.timings) >= {"prepare", "inference", "postprocess", "warp", "metrics", "total"}
    assert a.backend == "onnxruntime-cpu" and "tiny-fno-2d" in a.model
    two = Registrator.load(fno2d[1], threads=2)
    assert two.session.get_session_options().intra_op_num_threads == 2


def test_static_card_resamples_to_its_size(fno2d, tmp_path):
    model, path = fno2d
    card = tiny_card(model, "tiny-static")
    card.static_size = [32, 48]
    onnx_path = tmp_path / "static.onnx"
    onnx_path.write_bytes(path.read_bytes())
    card.save(onnx_path.with_name(onnx_path.name + ".json"))
    reg = Registrator.load(onnx_path, threads=1)
    fixed, moving = pair((48, 64), seed=3)
    res = reg.register(fixed=fixed, moving=moving, pipeline=NETWORK_ONLY)
    assert res.resampled and res.network_shape == (32, 48) and res.moved.shape == (48, 64)


# ------------------------------------------------------------------------------------------------ 3-D geometry


def _las(shape, spacing=(1.2, 1.0, 1.5), origin=(40.0, -30.0, -20.0)):
    aff = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    aff[:3, 3] = origin
    return aff


def test_3d_nibabel_reorientation_is_invisible(fno3d):
    """A LAS fixed image gives the same world displacement as its RAS reorientation, and the network
    ran on the RAS frame; all outputs are on the LAS grid as given."""
    model, path = fno3d
    reg = Registrator.load(path, threads=1)
    shape = (32, 16, 32)
    fixed, moving = pair(shape, seed=4)
    aff = _las(shape)
    res = reg.register(fixed=nib.Nifti1Image(fixed, aff), moving=nib.Nifti1Image(moving, aff), pipeline=NETWORK_ONLY)
    assert res.reoriented and res.moved.shape == shape and res.ddf_mm.shape == (3, *shape)
    np.testing.assert_allclose(res.fixed_affine, aff)
    ras = nib.as_closest_canonical(nib.Nifti1Image(fixed, aff))
    ras_m = nib.as_closest_canonical(nib.Nifti1Image(moving, aff))
    ref = reg.register(fixed=ras, moving=ras_m, pipeline=NETWORK_ONLY)
    assert not ref.reoriented
    np.testing.assert_allclose(res.ddf_mm[:, ::-1], ref.ddf_mm, atol=1e-5)  # array axis 0 flipped
    np.testing.assert_allclose(res.moved[::-1], ref.moved, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(res.jacobian[::-1], ref.jacobian, rtol=1e-4, atol=1e-5)
    # voxel field of the LAS grid: axis 0 runs along -x, so its displacement is -x / spacing
    np.testing.assert_allclose(res.ddf_vox[0], -res.ddf_mm[0] / 1.2, rtol=1e-5, atol=1e-6)
    # parity with PyTorch in the RAS frame
    expected = torch_ddf(model, normalise(np.asarray(ras_m.dataobj))[0], normalise(np.asarray(ras.dataobj))[0])
    diff = np.abs(ddf_norm_to_vox(ref.ddf_norm - expected, shape))
    assert diff.max() <= VOXEL_ATOL
    assert np.abs(ddf_norm_to_vox(expected, shape)).max() > 0.3


def test_3d_moving_on_another_grid(fno3d):
    """A moving image on a shifted, coarser grid is resampled through the affines: registering it
    gives the same world displacement as registering its resampled copy on the fixed grid."""
    _, path = fno3d
    reg = Registrator.load(path, threads=1)
    shape = (32, 32, 16)
    rng = np.random.default_rng(5)
    fixed = rng.random(shape).astype(np.float32)
    fixed_aff = np.diag([1.0, 1.0, 2.0, 1.0])
    moving_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    moving_aff[:3, 3] = [0.5, -1.0, 0.0]
    moving = rng.random((16, 16, 16)).astype(np.float32)
    res = reg.register(fixed=nib.Nifti1Image(fixed, fixed_aff), moving=nib.Nifti1Image(moving, moving_aff))
    assert res.moved.shape == shape and res.moving_shape == (16, 16, 16)
    # the moved image samples the ORIGINAL moving image at x + u(x) (world)
    idx = np.array([10, 12, 7])
    x = fixed_aff[:3, :3] @ idx + fixed_aff[:3, 3] + res.ddf_mm[:, 10, 12, 7]
    q = np.linalg.solve(moving_aff[:3, :3], x - moving_aff[:3, 3])
    from scipy.ndimage import map_coordinates

    want = map_coordinates(moving, q.reshape(3, 1), order=1)[0]
    assert res.moved[10, 12, 7] == pytest.approx(want, rel=1e-5, abs=1e-6)
    labels = (moving * 5).astype(np.int16)
    warped = warp_labels(nib.Nifti1Image(labels, moving_aff), res)
    assert warped.shape == shape and set(np.unique(warped)) <= set(np.unique(labels)) | {0}


def test_resample_to_grid_through_affines():
    rng = np.random.default_rng(8)
    moving = rng.random((16, 16, 16)).astype(np.float32)
    moving_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    moving_aff[:3, 3] = [0.5, -1.0, 0.0]
    grid_aff = np.diag([1.0, 1.0, 2.0, 1.0])
    out = resample_to_grid(moving, (32, 32, 16), grid_aff, moving_aff)
    assert out.shape == (32, 32, 16) and out.dtype == np.float32
    q = np.linalg.solve(moving_aff[:3, :3], grid_aff[:3, :3] @ np.array([10, 12, 7]) + grid_aff[:3, 3] - moving_aff[:3, 3])
    from scipy.ndimage import map_coordinates

    assert out[10, 12, 7] == pytest.approx(map_coordinates(moving, q.reshape(3, 1), order=1)[0], rel=1e-5)
    labels = (moving * 5).astype(np.int16)
    lab = resample_to_grid(nib.Nifti1Image(labels, moving_aff), (32, 32, 16), grid_aff, labels=True)
    assert lab.dtype == np.int16 and set(np.unique(lab)) <= set(np.unique(labels)) | {0}
    np.testing.assert_array_equal(resample_to_grid(moving, (16, 16, 16), moving_aff, moving_aff), moving)


def test_interrupt_aborts_the_call_in_flight(fno3d):
    """Registrator.interrupt() from another thread (onnxruntime RunOptions.terminate) aborts session.run."""
    import threading
    import time

    reg = Registrator.load(fno3d[1], backend="onnxruntime-cpu", threads=1)
    assert reg.interrupt() is False  # nothing running
    x = np.random.default_rng(9).random((96, 96, 96)).astype(np.float32)
    outcome = {}

    def run():
        t0 = time.perf_counter()
        try:
            reg.predict(moving=x, fixed=x)
            outcome["error"] = None
        except RunInterrupted as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=run)
    thread.start()
    while thread.is_alive() and not reg.interrupt():
        time.sleep(0.002)
    thread.join(60)
    assert isinstance(outcome["error"], RunInterrupted), outcome
    small = x[:32, :32, :32]
    assert reg.predict(moving=small, fixed=small).shape == (3, 32, 32, 32)  # the session still works


# ------------------------------------------------------------------------------------------------ warping


def _result(fixed_shape, ddf_mm, fixed_affine=None, moving_affine=None, moving_shape=None):
    ndim = len(fixed_shape)
    zeros = np.zeros((ndim, *fixed_shape), np.float32)
    return RegistrationResult(
        moved=np.zeros(fixed_shape, np.float32), ddf_norm=zeros, ddf_vox=zeros, ddf_mm=ddf_mm.astype(np.float32),
        jacobian=np.ones(fixed_shape, np.float32), folding={}, sdlogj=0.0, timings={},
        fixed_affine=np.eye(4) if fixed_affine is None else fixed_affine,
        moving_affine=np.eye(4) if moving_affine is None else moving_affine,
        moving_shape=tuple(moving_shape or fixed_shape), network_shape=tuple(fixed_shape), resampled=False,
        reoriented=False)


@pytest.mark.parametrize("dims", [2, 3])
def test_zero_field_is_identity_and_constant_shift_moves(dims):
    shape = (9, 10, 11)[:dims]
    rng = np.random.default_rng(6)
    image = rng.random(shape).astype(np.float32)
    labels = rng.integers(0, 7, shape).astype(np.int16)
    zero = _result(shape, np.zeros((dims, *shape)))
    np.testing.assert_array_equal(warp_image(image, zero), image)
    np.testing.assert_array_equal(warp_labels(labels, zero), labels)
    shift = np.zeros((dims, *shape))
    shift[0] = 2.0  # 2 mm = 2 voxels along axis 0: moved(p) = moving(p + 2)
    res = _result(shape, shift)
    moved = warp_image(image, res)
    np.testing.assert_allclose(moved[:-2], image[2:], atol=1e-6)
    assert np.all(moved[-1] == 0), "beyond half a voxel outside the image: 0 (ITK)"
    np.testing.assert_array_equal(warp_labels(labels, res)[:-2], labels[2:])
    half = np.zeros((dims, *shape))
    half[0] = 0.5
    res = _result(shape, half)
    np.testing.assert_allclose(warp_image(image, res)[:-1], 0.5 * (image[:-1] + image[1:]), atol=1e-6)
    np.testing.assert_array_equal(warp_labels(labels, res)[:-1], labels[1:])  # ITK rounds half up


def test_warp_labels_checks_shape():
    res = _result((8, 9), np.zeros((2, 8, 9)))
    with pytest.raises(ImageError, match="moving image's shape"):
        warp_labels(np.zeros((8, 8), np.int16), res)
    with pytest.raises(ImageError, match="not a label map"):
        warp_labels(np.full((8, 9), 0.5), res)
    with pytest.raises(ImageError, match="fixed image's shape"):
        resample_to_fixed(np.zeros((8, 8), np.int16), res, labels=True)


def test_registrator_warp_labels_nearest(reg2d):
    fixed, moving = pair((48, 64), seed=7)
    res = reg2d.register(fixed=fixed, moving=moving)
    labels = (np.arange(48 * 64).reshape(48, 64) % 13).astype(np.int32)
    warped = reg2d.warp_labels(labels, res)
    assert warped.dtype == np.int32 and warped.shape == (48, 64)
    assert set(np.unique(warped)) <= set(np.unique(labels))


# ------------------------------------------------------------------------------------------------ errors


def test_register_rejects_bad_inputs(reg2d):
    fixed, moving = pair((48, 64))
    bad = fixed.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        reg2d.register(fixed=bad, moving=moving)
    with pytest.raises(ImageError, match="expected a 2-D fixed image"):
        reg2d.register(fixed=np.zeros((8, 8, 8, 2), np.float32), moving=moving)
    with pytest.raises(ImageError, match="expected a 2-D moving image"):
        reg2d.register(fixed=fixed, moving=np.zeros((48, 64, 5), np.float32))
    with pytest.raises(ImageError, match="differ in shape"):
        reg2d.register(fixed=fixed, moving=moving[:40])
    with pytest.raises(ImageError, match="at least 2 voxels"):
        reg2d.register(fixed=np.zeros((1, 64), np.float32), moving=np.zeros((1, 64), np.float32))
    with pytest.raises(TypeError, match="numpy array or a nibabel image"):
        reg2d.register(fixed="fixed.nii.gz", moving=moving)
    with pytest.raises(ValueError, match="does not take size"):
        reg2d.predict(moving=np.zeros((40, 40), np.float32), fixed=np.zeros((40, 40), np.float32))


def test_load_rejects_non_fnoreg_models(tmp_path, fno2d):
    with pytest.raises(ModelCardError, match="does not exist"):
        Registrator.load(tmp_path / "missing.onnx")
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(fno2d[1].read_bytes())  # a valid ONNX graph without a card
    with pytest.raises(ModelCardError, match="not an FNOReg export"):
        Registrator.load(bare)
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    with pytest.raises(ModelCardError, match="not a loadable ONNX model"):
        Registrator.load(junk)
    junk_with_card = tmp_path / "junk2.onnx"
    junk_with_card.write_text("not a model")
    tiny_card(fno2d[0], "junk").save(tmp_path / "junk2.onnx.json")
    with pytest.raises(ModelCardError, match="cannot be loaded by onnxruntime"):
        Registrator.load(junk_with_card)
    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(fno2d[1].read_bytes())
    card = tiny_card(fno2d[0], "wrong")
    card.dims = 3
    card.save(tmp_path / "wrong.onnx.json")
    with pytest.raises(ModelCardError, match="rank 4, but the card says 3D"):
        Registrator.load(wrong)
    card.dims = 4
    card.save(tmp_path / "wrong.onnx.json")
    with pytest.raises(ModelCardError, match="dims=4"):
        Registrator.load(wrong)


def test_backend_selection(fno2d, tmp_path):
    path = fno2d[1]
    with pytest.raises(BackendError, match="unknown backend"):
        Registrator.load(path, backend="cuda")
    with pytest.raises(BackendError, match="runs TensorRT engines"):
        Registrator.load(path, backend="tensorrt")
    assert Registrator.load(path, backend="auto").backend in ("onnxruntime-cpu", "onnxruntime-cuda")
    if "onnxruntime-cuda" not in available_backends():
        with pytest.raises(BackendError, match="onnxruntime-gpu"):
            Registrator.load(path, backend="onnxruntime-cuda")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 16)
    tiny_card(fno2d[0], "engine").save(tmp_path / "model.engine.json")
    with pytest.raises(BackendError, match="TensorRT engine"):
        Registrator.load(engine, backend="onnxruntime-cpu")
    if "tensorrt" not in available_backends():
        with pytest.raises(BackendError, match="tensorrt"):
            Registrator.load(engine)  # auto -> tensorrt for .engine


@pytest.mark.gpu
def test_tensorrt_engine_matches_onnxruntime(fno2d, tmp_path):
    """Built by the project's own builder (TF32 off: the 1e-3 voxel bound is a float32 bound; TensorRT
    leaves TF32 on by default on Ampere and newer) and run through the runtime's TensorRT backend."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (needs an NVIDIA GPU machine)")
    from fnoreg_export.tensorrt_build import build_engine, tensorrt_status

    ok, reason = tensorrt_status()
    if not ok:
        pytest.skip(reason)
    if "tensorrt" not in available_backends():
        pytest.skip("TensorRT is installed but no CUDA device is visible")
    model, path = fno2d
    engine = tmp_path / "tiny.engine"
    facts = build_engine(path, engine, (1, 1, 48, 64), "fp32")
    assert facts["tf32"] is False and facts["io_dtypes"]["moving"] == "FLOAT"
    card = tiny_card(model, "tiny-engine")
    card.static_size = [48, 64]
    card.extra["engine"] = facts
    card.save(tmp_path / "tiny.engine.json")
    reg = Registrator.load(engine)
    assert reg.backend == "tensorrt"
    fixed, moving = pair((48, 64), seed=8)
    got = reg.register(fixed=fixed, moving=moving)
    ref = Registrator.load(path, backend="onnxruntime-cpu").register(fixed=fixed, moving=moving)
    assert np.abs(got.ddf_vox - ref.ddf_vox).max() <= 1e-3


# ------------------------------------------------------------------------------------------------ FNOReg


@pytest.mark.slow
def test_fnoreg_2d_runtime_matches_torch(tmp_path_factory):
    """The real architecture (Spectral Transforms, Fourier layers) through the runtime, both at an
    accepted size and through the resampling path."""
    model, path = export_tiny(tmp_path_factory, "fnoreg", 2)
    reg = Registrator.load(path, threads=1)
    for shape in [(48, 64), (45, 70)]:
        fixed, moving = pair(shape, seed=9)
        res = reg.register(fixed=fixed, moving=moving, pipeline=NETWORK_ONLY)
        run_shape = res.network_shape
        f_n, m_n = normalise(fixed)[0], normalise(moving)[0]
        if res.resampled:
            f_n, m_n = resize_image(f_n, run_shape), resize_image(m_n, run_shape)
        expected = torch_ddf(model, m_n, f_n)
        if res.resampled:
            expected = np.stack([resize_image(c, shape) for c in expected])
        assert np.abs(ddf_norm_to_vox(expected, shape)).max() > 0.5
        diff_vox = np.abs(ddf_norm_to_vox(res.ddf_norm - expected, shape))
        assert diff_vox.max() <= VOXEL_ATOL, f"{shape}: max |ddf diff| {diff_vox.max():.2e} voxel"
