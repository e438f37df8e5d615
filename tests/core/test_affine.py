"""Affine pre-alignment (fnoreg_core.affine): recovers a known affine, guard, ITK transform files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from fnoreg_core.affine import AffineError, affine_register, read_itk_affine, write_itk_affine

sitk = pytest.importorskip("SimpleITK")


def _phantom(shape=(48, 56, 40), seed=0) -> np.ndarray:
    """A smooth, asymmetric blob image in [0, 1]."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random(shape), 3.0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    mask = ((grid[0] / 0.7) ** 2 + (grid[1] / 0.8) ** 2 + (grid[2] / 0.6) ** 2) < 1
    img = (img - img.min()) / np.ptp(img) * mask + 0.4 * mask * (grid[0] > 0.2)
    return img.astype(np.float32)


def _pull(image, vox_to_ras, world_map):
    shape = image.shape
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")).reshape(3, -1).T
    world = idx @ vox_to_ras[:3, :3].T + vox_to_ras[:3, 3]
    world = world @ world_map[:3, :3].T + world_map[:3, 3]
    vox = (world - vox_to_ras[:3, 3]) @ np.linalg.inv(vox_to_ras[:3, :3]).T
    return ndimage.map_coordinates(image, vox.T, order=1).reshape(shape)


def _rotation(deg, axis=2):
    t = np.deg2rad(deg)
    r = np.eye(4)
    i, j = [a for a in range(3) if a != axis]
    r[i, i] = r[j, j] = np.cos(t)
    r[i, j], r[j, i] = -np.sin(t), np.sin(t)
    return r


def test_recovers_a_known_affine_on_an_anisotropic_grid():
    vox_to_ras = np.diag([2.0, 1.5, 2.5, 1.0])
    vox_to_ras[:3, 3] = (-40, -50, -30)
    fixed = _phantom()
    truth = _rotation(6) @ np.diag([1.05, 0.96, 1.0, 1.0])
    truth[:3, 3] = (3.0, -2.0, 1.5)
    moving = _pull(fixed, vox_to_ras, np.linalg.inv(truth))  # moving(T(p)) = fixed(p)
    res = affine_register(fixed, moving, vox_to_ras, threads=1, shrink=(2, 1))
    assert res.applied and res.mode == "affine"
    assert res.metric_after < res.metric_before
    centre = vox_to_ras[:3, :3] @ (np.array(fixed.shape) / 2) + vox_to_ras[:3, 3]
    pts = centre + np.array([[0, 0, 0], [20, 0, 0], [0, 20, 0], [0, 0, 20], [-15, 10, 5]])
    got = pts @ res.fixed_to_moving_ras[:3, :3].T + res.fixed_to_moving_ras[:3, 3]
    want = pts @ truth[:3, :3].T + truth[:3, 3]
    assert np.abs(got - want).max() < 1.5  # mm, on 1.5-2.5 mm voxels


def test_rigid_mode_and_none_and_guard_on_a_constant_image():
    vox = np.eye(4)
    fixed = _phantom((32, 32, 32))
    res = affine_register(fixed, _pull(fixed, vox, _rotation(4, 0)), vox, mode="rigid", threads=1)
    assert res.applied and res.mode == "rigid"
    m = res.fixed_to_moving_ras[:3, :3]
    assert np.allclose(m @ m.T, np.eye(3), atol=1e-6)  # a rotation
    off = affine_register(fixed, fixed, vox, mode="none")
    assert not off.applied and np.array_equal(off.fixed_to_moving_ras, np.eye(4))
    flat = affine_register(fixed, np.zeros_like(fixed), vox, threads=1)
    assert not flat.applied and "constant" in flat.note


def test_bad_input_raises_affine_error():
    with pytest.raises(AffineError, match="mode"):
        affine_register(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)), np.eye(4), mode="spline")
    with pytest.raises(AffineError, match="one grid"):
        affine_register(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)), np.eye(4))


def test_itk_text_round_trip_and_simpleitk_reads_it(tmp_path):
    m = _rotation(10, 1) @ np.diag([1.1, 0.9, 1.0, 1.0])
    m[:3, 3] = (1.0, -2.0, 3.0)
    path = write_itk_affine(m, tmp_path / "affine.txt")
    assert np.allclose(read_itk_affine(path), m, atol=1e-12)
    tx = sitk.ReadTransform(str(path))
    p_ras = np.array([10.0, -20.0, 5.0])
    lps = np.array([-1, -1, 1.0])
    got = np.array(tx.TransformPoint(tuple(p_ras * lps))) * lps  # ITK works in LPS
    assert np.allclose(got, m[:3, :3] @ p_ras + m[:3, 3], atol=1e-9)


@pytest.mark.parametrize("content,message", [
    (b"not a transform\n", "not an ITK/ANTs transform"),
    (b"#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
     b"Parameters: 0 0 0 0 0 0 0 0 0 0 0 0\nFixedParameters: 0 0 0\n", "singular"),
])
def test_unreadable_or_singular_affine_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(AffineError, match=message):
        read_itk_affine(path)
    with pytest.raises(AffineError, match="does not exist"):
        read_itk_affine(tmp_path / "missing.txt")
