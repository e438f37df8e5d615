"""Tests for fnoreg_core.layers.spatial_transformer (warp in normalised units)."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from fnoreg_core.fields import ddf_norm_to_vox, ddf_vox_to_norm
from fnoreg_core.layers.spatial_transformer import (
    SpatialTransformer,
    identity_grid_norm,
    warp,
    warp_labels,
)

SHAPES = {2: (17, 20), 3: (9, 10, 12)}


def _smooth_image(rng, batch, spatial, sigma=1.5):
    img = rng.random((batch, 1, *spatial))
    return ndimage.gaussian_filter(img, sigma=(0, 0) + (sigma,) * len(spatial)).astype(np.float32)


def _smooth_field_vox(rng, batch, spatial, amplitude=2.0):
    ndim = len(spatial)
    u = rng.normal(size=(batch, ndim, *spatial))
    u = ndimage.gaussian_filter(u, sigma=(0, 0) + (2.0,) * ndim)
    return (amplitude * u / np.abs(u).max()).astype(np.float32)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("batch", [1, 2])
def test_zero_ddf_is_identity(ndim, batch):
    img = torch.rand(batch, 2, *SHAPES[ndim])
    out = SpatialTransformer()(img, torch.zeros(batch, ndim, *SHAPES[ndim]))
    torch.testing.assert_close(out, img, atol=1e-6, rtol=0)
    out_nn = SpatialTransformer()(img, torch.zeros(batch, ndim, *SHAPES[ndim]), mode="nearest")
    torch.testing.assert_close(out_nn, img, atol=0, rtol=0)


def test_identity_grid_ends_are_exact():
    g = identity_grid_norm((5, 224))
    assert g.shape == (1, 2, 5, 224)
    assert g[0, 0, 0, 0] == -1 and g[0, 0, -1, 0] == 1 and g[0, 1, 0, -1] == 1
    torch.testing.assert_close(g[0, 1, 0], torch.linspace(-1, 1, 224), atol=1e-6, rtol=0)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("k", [2, -3])
def test_constant_shift_moves_by_k_voxels(ndim, batch, k):
    rng = np.random.default_rng(0)
    spatial = SHAPES[ndim]
    moving = rng.random((batch, 1, *spatial)).astype(np.float32)
    st = SpatialTransformer()
    for axis in range(ndim):
        u_vox = np.zeros((batch, ndim, *spatial), np.float32)
        u_vox[:, axis] = k
        ddf = torch.from_numpy(ddf_vox_to_norm(u_vox))
        moved = st(torch.from_numpy(moving), ddf).numpy()
        n = spatial[axis]
        ax = 2 + axis
        # moved(p) = moving(p + k) wherever p + k is inside the image
        if k > 0:
            got, want = np.take(moved, range(0, n - k), axis=ax), np.take(moving, range(k, n), axis=ax)
        else:
            got, want = np.take(moved, range(-k, n), axis=ax), np.take(moving, range(0, n + k), axis=ax)
        np.testing.assert_allclose(got, want, atol=1e-5)
        # outside: border padding repeats the edge voxel
        edge = n - 1 if k > 0 else 0
        out_idx = range(n - k, n) if k > 0 else range(0, -k)
        np.testing.assert_allclose(
            np.take(moved, out_idx, axis=ax),
            np.repeat(np.take(moving, [edge], axis=ax), abs(k), axis=ax),
            atol=1e-5,
        )


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("batch", [1, 2])
def test_matches_scipy_map_coordinates(ndim, batch):
    rng = np.random.default_rng(1)
    spatial = SHAPES[ndim]
    moving = _smooth_image(rng, batch, spatial)
    u_vox = _smooth_field_vox(rng, batch, spatial)
    moved = SpatialTransformer()(torch.from_numpy(moving), torch.from_numpy(ddf_vox_to_norm(u_vox))).numpy()
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij"))
    interior = (slice(2, -2),) * ndim
    for b in range(batch):
        ref = ndimage.map_coordinates(moving[b, 0].astype(np.float64), grid + u_vox[b], order=1, mode="nearest")
        np.testing.assert_allclose(moved[b, 0][interior], ref[interior], atol=1e-4)
        # border padding == scipy's "nearest" extension, so the whole image agrees too
        np.testing.assert_allclose(moved[b, 0], ref, atol=1e-4)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("batch", [1, 2])
def test_warp_labels_nearest_keeps_values_and_dtype(ndim, batch):
    rng = np.random.default_rng(2)
    spatial = SHAPES[ndim]
    values = np.array([0, 3, 7, 12, 2035])
    labels = torch.from_numpy(values[rng.integers(0, len(values), size=(batch, 1, *spatial))])
    ddf = torch.from_numpy(ddf_vox_to_norm(_smooth_field_vox(rng, batch, spatial, amplitude=3.0)))
    out = SpatialTransformer().warp_labels(labels, ddf)
    assert out.dtype == labels.dtype and out.shape == labels.shape
    assert set(np.unique(out.numpy())) <= set(values.tolist())
    # nearest neighbour: each output equals the input at the rounded sample position
    u_vox = ddf_norm_to_vox(ddf.numpy())
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij"))
    pos = grid + u_vox[0]
    frac = np.abs(pos - np.round(pos))
    safe = np.all(frac < 0.45, axis=0)  # skip near-ties where rounding may differ
    idx = tuple(np.clip(np.round(pos[i]).astype(int), 0, spatial[i] - 1) for i in range(ndim))
    ref = labels[0, 0].numpy()[idx]
    np.testing.assert_array_equal(out[0, 0].numpy()[safe], ref[safe])
    # uint8 and bool are preserved too; functional form agrees
    u8 = labels.clamp(max=255).to(torch.uint8)
    assert warp_labels(u8, ddf).dtype == torch.uint8
    assert warp_labels(labels > 5, ddf).dtype == torch.bool


def test_functional_warp_and_gradient():
    img = torch.rand(1, 1, 6, 7, 8)
    ddf = (0.05 * torch.randn(1, 3, 6, 7, 8)).requires_grad_()
    out = warp(img, ddf)
    out.sum().backward()
    assert ddf.grad is not None and torch.isfinite(ddf.grad).all()
    torch.testing.assert_close(out, SpatialTransformer()(img, ddf.detach()))


def test_grid_cache_is_keyed_by_shape_and_not_saved():
    st = SpatialTransformer()
    for shape in [(5, 6), (7, 8), (5, 6), (3, 4, 5)]:
        img = torch.rand(1, 1, *shape)
        torch.testing.assert_close(st(img, torch.zeros(1, len(shape), *shape)), img, atol=1e-6, rtol=0)
    assert len(st._grid_cache) == 3
    assert len(st.state_dict()) == 0
    for shape in [(4, 4), (4, 5), (4, 6)]:
        st(torch.rand(1, 1, *shape), torch.zeros(1, 2, *shape))
    assert len(st._grid_cache) == 4


def test_validation_errors():
    st = SpatialTransformer()
    img = torch.rand(2, 1, 6, 7)
    with pytest.raises(ValueError, match=r"expected image of shape \(B, C, H, W\)"):
        st(torch.rand(6, 7), torch.zeros(1, 2, 6, 7))
    with pytest.raises(ValueError, match=r"expected ddf_norm of shape \(B, 2, \*spatial\)"):
        st(img, torch.zeros(2, 3, 6, 7))
    with pytest.raises(ValueError, match=r"expected ddf_norm of shape \(B, 2, \*spatial\)"):
        st(img, torch.zeros(2, 2, 6, 7, 1))
    with pytest.raises(ValueError, match="expected ddf_norm batch size 2"):
        st(img, torch.zeros(1, 2, 6, 7))
    with pytest.raises(ValueError, match=r"expected ddf_norm spatial shape \(6, 7\)"):
        st(img, torch.zeros(2, 2, 6, 8))
    with pytest.raises(ValueError, match="expected mode in"):
        st(img, torch.zeros(2, 2, 6, 7), mode="bicubic")
    with pytest.raises(TypeError, match="use warp_labels"):
        st(img.long(), torch.zeros(2, 2, 6, 7))
    with pytest.raises(TypeError, match="expected ddf_norm dtype torch.float32"):
        st(img, torch.zeros(2, 2, 6, 7, dtype=torch.float64))
    with pytest.raises(TypeError, match="expected a floating-point ddf_norm"):
        st(img, torch.zeros(2, 2, 6, 7, dtype=torch.int64))
    with pytest.raises(TypeError, match="expected image to be a torch.Tensor"):
        st(img.numpy(), torch.zeros(2, 2, 6, 7))
    with pytest.raises(ValueError, match="expected ddf_norm batch size 2"):
        st.warp_labels(img.long(), torch.zeros(1, 2, 6, 7))


class _Wrap(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.st = SpatialTransformer()

    def forward(self, image, ddf_norm):
        return self.st(image, ddf_norm)


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
@pytest.mark.filterwarnings("ignore:.*axis name.*:UserWarning")
def test_onnx_export_dynamic_shapes(tmp_path):
    """One ONNX graph (opset 20, dynamic B/D/H/W) matches torch at two sizes (atol 1e-5)."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    dims = {k: torch.export.Dim(k, min=2, max=512) for k in ("B", "D", "H", "W")}
    spec = {0: dims["B"], 2: dims["D"], 3: dims["H"], 4: dims["W"]}
    img, ddf = torch.rand(2, 1, 8, 9, 10), 0.1 * torch.randn(2, 3, 8, 9, 10)
    path = tmp_path / "st.onnx"
    mod = _Wrap().eval()
    torch.onnx.export(
        mod, (img, ddf), str(path), dynamo=True, opset_version=20, dynamic_shapes=(spec, spec),
        input_names=["image", "ddf_norm"], output_names=["moved"], verbose=False,
    )
    # torch.onnx may silently fall back to a fixed-size graph: check the inputs are symbolic
    model = onnx.load(str(path))
    for inp in model.graph.input:
        dims_ = inp.type.tensor_type.shape.dim
        assert [d.HasField("dim_param") for d in dims_] == [True, False, True, True, True], inp
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 12, 7, 16), (3, 5, 6, 4)]:
        b, *sp = shape
        img = torch.rand(b, 1, *sp)
        ddf = 0.2 * torch.randn(b, 3, *sp)
        (got,) = sess.run(None, {"image": img.numpy(), "ddf_norm": ddf.numpy()})
        np.testing.assert_allclose(got, mod(img, ddf).numpy(), atol=1e-5, rtol=0)
