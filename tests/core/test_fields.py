"""Tests for fnoreg_core.fields: the displacement convention and unit conversions."""

import numpy as np
import pytest
import torch

from fnoreg_core import fields
from fnoreg_core.fields import (
    ddf_norm_to_vox,
    ddf_ras_to_lps,
    ddf_vox_to_mm,
    ddf_vox_to_norm,
    norm_to_vox_scale,
)


def test_scale_values():
    assert norm_to_vox_scale((160, 192, 224)) == (79.5, 95.5, 111.5)
    assert norm_to_vox_scale([2, 3]) == (0.5, 1.0)
    assert norm_to_vox_scale(np.array([5, 9])) == (2.0, 4.0)


@pytest.mark.parametrize("shape", [(1, 5), (5, 5, 1), (0, 3)])
def test_scale_rejects_size_below_two(shape):
    with pytest.raises(ValueError, match="expected every spatial size >= 2"):
        norm_to_vox_scale(shape)


def test_scale_rejects_bad_types():
    with pytest.raises(TypeError, match="expected a sequence of ints"):
        norm_to_vox_scale((4.0, 5))
    with pytest.raises(ValueError, match="non-empty"):
        norm_to_vox_scale(())


@pytest.mark.parametrize("spatial", [(6, 7), (4, 5, 6)])
@pytest.mark.parametrize("batched", [False, True])
def test_numpy_roundtrip_and_values(spatial, batched):
    rng = np.random.default_rng(0)
    ndim = len(spatial)
    shape = ((2,) if batched else ()) + (ndim, *spatial)
    u_norm = rng.normal(size=shape).astype(np.float32)
    u_vox = ddf_norm_to_vox(u_norm)
    assert u_vox.dtype == np.float32 and u_vox.shape == u_norm.shape
    ch = 1 if batched else 0
    for i, n in enumerate(spatial):
        np.testing.assert_allclose(np.take(u_vox, i, axis=ch), np.take(u_norm, i, axis=ch) * (n - 1) / 2, rtol=1e-6)
    np.testing.assert_allclose(ddf_vox_to_norm(u_vox), u_norm, rtol=1e-6)


def test_norm_unit_is_half_the_extent():
    # Moving from the first voxel centre (-1) to the last (+1) is 2 units = N - 1 voxels.
    u = np.full((2, 5, 9), 2.0)
    np.testing.assert_allclose(ddf_norm_to_vox(u)[0], 4.0)
    np.testing.assert_allclose(ddf_norm_to_vox(u)[1], 8.0)


def test_spatial_shape_counts_in_other_grid():
    u = np.ones((3, 4, 5, 6))  # low-res field, normalised units
    full = (8, 10, 12)
    out = ddf_norm_to_vox(u, spatial_shape=full)
    np.testing.assert_allclose(out[:, 0, 0, 0], [3.5, 4.5, 5.5])


def test_int_input_becomes_float64():
    assert ddf_norm_to_vox(np.ones((2, 3, 3), dtype=np.int32)).dtype == np.float64


def test_ambiguous_layout_needs_spatial_shape():
    u = np.ones((3, 2, 5, 5))  # (3, D=2, H, W) or (B=3, 2, H, W)?
    with pytest.raises(ValueError, match="pass spatial_shape"):
        ddf_norm_to_vox(u)
    batched = ddf_norm_to_vox(u, spatial_shape=(5, 5))
    np.testing.assert_allclose(batched[:, 0], 2.0)
    unbatched = ddf_norm_to_vox(u, spatial_shape=(2, 5, 5))
    np.testing.assert_allclose(unbatched[0], 0.5)


@pytest.mark.parametrize("shape", [(4, 5, 6), (2, 2, 5, 6, 7), (1, 3, 5), (3, 4)])
def test_bad_layout(shape):
    with pytest.raises(ValueError, match="expected ddf_norm of shape"):
        ddf_norm_to_vox(np.zeros(shape))


def test_spatial_shape_mismatch():
    with pytest.raises(ValueError, match="for a 3D spatial_shape"):
        ddf_norm_to_vox(np.zeros((2, 5, 6)), spatial_shape=(5, 6, 7))
    with pytest.raises(ValueError, match="spatial_shape of length 2 or 3"):
        ddf_norm_to_vox(np.zeros((2, 5, 6)), spatial_shape=(5,))


def test_rejects_non_numeric():
    with pytest.raises(TypeError, match="expected a numeric array"):
        ddf_norm_to_vox(np.array([["a"]]))


def test_size_one_axis_rejected():
    with pytest.raises(ValueError, match="expected every spatial size >= 2"):
        ddf_norm_to_vox(np.zeros((2, 1, 5)))


@pytest.mark.parametrize("spatial", [(6, 7), (4, 5, 6)])
def test_torch_duck_typing(spatial):
    u = torch.randn(2, len(spatial), *spatial, dtype=torch.float64, requires_grad=True)
    v = ddf_norm_to_vox(u)
    assert isinstance(v, torch.Tensor) and v.dtype == torch.float64
    np.testing.assert_allclose(v.detach().numpy(), ddf_norm_to_vox(u.detach().numpy()))
    v.sum().backward()  # differentiable
    assert u.grad is not None
    back = ddf_vox_to_norm(v)
    torch.testing.assert_close(back, u)


def test_torch_must_be_batched():
    with pytest.raises(ValueError, match=r"expected ddf_norm of shape \(B, ndim"):
        ddf_norm_to_vox(torch.zeros(2, 5, 6))
    with pytest.raises(TypeError, match="floating-point"):
        ddf_norm_to_vox(torch.zeros(1, 2, 5, 6, dtype=torch.int64))


def test_vox_to_mm_diagonal_and_oblique():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(3, 4, 5, 6))
    aff = np.diag([2.0, 1.5, -3.0, 1.0])
    aff[:3, 3] = [10, 20, 30]  # translation must not matter
    mm = ddf_vox_to_mm(u, aff)
    np.testing.assert_allclose(mm, u * np.array([2.0, 1.5, -3.0])[:, None, None, None])
    rot = np.eye(4)
    c, s = np.cos(0.3), np.sin(0.3)
    rot[:2, :2] = [[c, -s], [s, c]]
    mm = ddf_vox_to_mm(u[None].astype(np.float32), rot)
    assert mm.shape == (1, 3, 4, 5, 6) and mm.dtype == np.float32
    np.testing.assert_allclose(mm[0, 0], c * u[0] - s * u[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mm[0, 2], u[2], rtol=1e-6)


def test_vox_to_mm_2d_and_errors():
    u = np.ones((2, 3, 4))
    np.testing.assert_allclose(ddf_vox_to_mm(u, np.diag([0.5, 2.0, 1.0]))[1], 2.0)
    with pytest.raises(ValueError, match=r"expected ddf_vox of shape \(3, \*spatial\).*3D affine"):
        ddf_vox_to_mm(u, np.eye(4))
    with pytest.raises(ValueError, match=r"expected vox_to_ras of shape \(3, 3\) or \(4, 4\)"):
        ddf_vox_to_mm(u, np.eye(3)[:2])
    amb = np.ones((3, 2, 4, 4))  # ambiguous without the affine: (3, D=2, H, W)
    assert ddf_vox_to_mm(amb, np.diag([2.0, 1, 1, 1])).shape == (3, 2, 4, 4)
    with pytest.raises(ValueError, match="invertible"):
        ddf_vox_to_mm(u, np.diag([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        ddf_vox_to_mm(u, np.full((3, 3), np.nan))
    with pytest.raises(TypeError, match="got a torch tensor"):
        ddf_vox_to_mm(torch.ones(1, 2, 3, 4), np.eye(3))


def test_ras_to_lps():
    u = np.arange(3 * 4 * 5 * 6, dtype=np.float64).reshape(3, 4, 5, 6) + 1
    lps = ddf_ras_to_lps(u)
    np.testing.assert_array_equal(lps[0], -u[0])
    np.testing.assert_array_equal(lps[1], -u[1])
    np.testing.assert_array_equal(lps[2], u[2])
    np.testing.assert_array_equal(ddf_ras_to_lps(lps), u)  # involution
    amb = np.ones((3, 2, 4, 4))
    with pytest.raises(ValueError, match="pass spatial_shape"):
        ddf_ras_to_lps(amb)
    assert ddf_ras_to_lps(amb, spatial_shape=(2, 4, 4))[0].max() == -1.0
    t = torch.ones(1, 3, 2, 3, 4)
    assert torch.equal(ddf_ras_to_lps(t)[0, :, 0, 0, 0], torch.tensor([-1.0, -1.0, 1.0]))


def test_convention_string_mentions_the_essentials():
    for word in ("fixed->moving", "align_corners=True", "array axis i"):
        assert word in fields.DDF_CONVENTION
