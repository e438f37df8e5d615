"""The keystone: FNOReg exports to ONNX with dynamic size and onnxruntime matches PyTorch.

Tolerance: max |displacement difference| <= 1e-4 voxel (the issue's bound). Both sides run float32;
the spectral bases are computed in float64 and cast in both, so what remains is float32 summation
order (measured about 4e-5 voxel on untrained, large-output networks).
"""

import numpy as np
import pytest
import torch

from fnoreg_core.fields import ddf_norm_to_vox
from fnoreg_core.models import create_model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from fnoreg_export.onnx_export import export_onnx  # noqa: E402

VOXEL_ATOL = 1e-4

TINY = {
    2: dict(dims=2, hidden_channels=4, n_layers=1, n_modes=(8, 8), projection_channels=8, factorization=None),
    3: dict(dims=3, hidden_channels=4, n_layers=1, n_modes=(8, 8, 8), projection_channels=8, factorization=None),
}
EXAMPLE = {2: (32, 48), 3: (32, 48, 32)}
RUN_SIZES = {2: [(1, 64, 32), (2, 48, 80)], 3: [(1, 32, 32, 48), (2, 48, 32, 32)]}


@pytest.mark.slow
@pytest.mark.parametrize("dims", [2, 3])
def test_fnoreg_dynamic_onnx_matches_torch(tmp_path, dims):
    torch.manual_seed(0)
    model = create_model("fnoreg", **TINY[dims]).eval()
    # the last layer starts near zero (identity transform): give it weights for displacements of
    # a few voxels, the range of real registrations
    torch.nn.init.normal_(model.projection[-1].weight, std=0.02)
    path = export_onnx(model, tmp_path / "fnoreg.onnx", EXAMPLE[dims], dynamic=True)
    graph = onnx.load(str(path))
    ops = {node.op_type for node in graph.graph.node}
    assert not ops & {"DFT", "STFT"}, f"spectral ops must be real matmuls, found {ops & {'DFT', 'STFT'}}"
    in_shape = graph.graph.input[0].type.tensor_type.shape.dim
    assert all(d.dim_param for i, d in enumerate(in_shape) if i != 1), "batch and spatial axes must be dynamic"

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch, *spatial in RUN_SIZES[dims]:
        assert tuple(spatial) != EXAMPLE[dims]
        moving = rng.random((batch, 1, *spatial), dtype=np.float32)
        fixed = rng.random((batch, 1, *spatial), dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(moving), torch.from_numpy(fixed)).numpy()
        (got,) = session.run(None, {"moving": moving, "fixed": fixed})
        assert got.shape == expected.shape == (batch, dims, *spatial)
        diff_vox = np.abs(ddf_norm_to_vox(got - expected, tuple(spatial)))
        assert np.abs(ddf_norm_to_vox(expected, tuple(spatial))).max() > 0.5, "outputs too small to test parity"
        assert diff_vox.max() <= VOXEL_ATOL, f"max |ddf diff| {diff_vox.max():.2e} voxel at {spatial}"


def test_export_rejects_bad_arguments(tmp_path):
    model = create_model("fnoreg", **TINY[2])
    with pytest.raises(ValueError, match="opset >= 20"):
        export_onnx(model, tmp_path / "a.onnx", (32, 32), opset=17)
    with pytest.raises(ValueError, match="multiples of 16"):
        export_onnx(model, tmp_path / "a.onnx", (30, 32))
    with pytest.raises(ValueError, match="expected 2 spatial sizes"):
        export_onnx(model, tmp_path / "a.onnx", (32, 32, 32))
    assert not (tmp_path / "a.onnx").exists()


@pytest.mark.slow
def test_voxelmorph_dynamic_onnx_serves_multiples_of_its_levels(tmp_path):
    torch.manual_seed(0)
    model = create_model("voxelmorph", preset="3d-cpu").eval()
    assert model.size_multiple() == model.min_spatial_size()[0] == 8
    path = export_onnx(model, tmp_path / "vxm.onnx", (32, 48, 32), dynamic=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    for spatial in [(24, 40, 16), (40, 32, 56)]:
        moving, fixed = (rng.random((1, 1, *spatial), dtype=np.float32) for _ in range(2))
        with torch.no_grad():
            expected = model(torch.from_numpy(moving), torch.from_numpy(fixed)).numpy()
        (got,) = session.run(None, {"moving": moving, "fixed": fixed})
        assert got.shape == expected.shape == (1, 3, *spatial)
        assert np.abs(ddf_norm_to_vox(got - expected, spatial)).max() <= VOXEL_ATOL
