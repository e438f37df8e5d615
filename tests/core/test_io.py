"""fnoreg_core.io: loading errors, NIfTI writers, and the ITK displacement-field convention.

The ITK check is analytic: a field written by ``save_warp_itk`` (from a RAS field via
``ddf_ras_to_lps``) must make SimpleITK's ``DisplacementFieldTransform`` map each fixed voxel centre
``x`` to ``x + d(x)`` in LPS world coordinates, on grids with permuted/flipped and oblique axes.
Tolerance 1e-4 mm: the header stores the geometry in float32 (about 1e-6 relative).
"""

import numpy as np
import nibabel as nib
import pytest

from fnoreg_core.fields import ddf_ras_to_lps, ddf_vox_to_mm
from fnoreg_core.io import (NIFTI_INTENT_VECTOR, ImageError, load_image, load_warp_itk, save_image,
                            save_warp_itk)

MM_ATOL = 1e-4


def _affine_permuted():
    """LAS-like grid with permuted axes: array axis 1 -> S, axis 2 -> A."""
    return np.array([[-1.2, 0, 0, 30.0], [0, 0, 1.5, -20.0], [0, 1.1, 0, 10.0], [0, 0, 0, 1.0]])


def _affine_oblique():
    theta = np.deg2rad(17.0)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.9, 1.1, 1.3])
    aff[:3, 3] = [-12.0, 7.5, 3.0]
    return aff


# ------------------------------------------------------------------------------------------------ loading


def test_load_image_errors(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.nii.gz")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)
    (tmp_path / "text.nii.gz").write_text("not an image")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(tmp_path / "text.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 2), np.float32), np.eye(4)), tmp_path / "four.nii.gz")
    with pytest.raises(ImageError, match="4-D"):
        load_image(tmp_path / "four.nii.gz")
    bad = np.zeros((4, 5, 6), np.float32)
    bad[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(bad, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(ImageError, match="NaN"):
        load_image(tmp_path / "nan.nii.gz")
    nib.save(nib.Nifti1Image(np.full((4, 5, 6), 0.5, np.float32), np.eye(4)), tmp_path / "frac.nii.gz")
    with pytest.raises(ImageError, match="not a label map"):
        load_image(tmp_path / "frac.nii.gz", labels=True)


def test_load_image_squeezes_trailing_singletons(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 1), np.float32), np.eye(4)), tmp_path / "a.nii.gz")
    assert load_image(tmp_path / "a.nii.gz").data.shape == (4, 5, 6)
    nib.save(nib.Nifti1Image(np.ones((4, 5, 1), np.float32), np.eye(4)), tmp_path / "b.nii.gz")
    assert load_image(tmp_path / "b.nii.gz", canonical=False).data.shape == (4, 5)


# ------------------------------------------------------------------------------------------------ writing


@pytest.mark.parametrize("shape", [(6, 7), (5, 6, 7)])
def test_save_image_roundtrip(tmp_path, shape):
    aff = _affine_permuted()
    rng = np.random.default_rng(0)
    data = rng.random(shape).astype(np.float32)
    path = save_image(data, aff, tmp_path / "img.nii.gz")
    img = nib.load(str(path))
    np.testing.assert_allclose(img.affine, aff, atol=1e-5)
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)
    labels = rng.integers(0, 40, shape)
    path = save_image(labels, aff, tmp_path / "lab.nii.gz")
    stored = nib.load(str(path))
    assert stored.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(stored.dataobj), labels)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name], "temporary files left behind"


def test_save_image_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="2-D or 3-D"):
        save_image(np.zeros((2, 3, 4, 5)), np.eye(4), tmp_path / "a.nii.gz")
    with pytest.raises(ValueError, match="4x4"):
        save_image(np.zeros((3, 4)), np.eye(3), tmp_path / "a.nii.gz")
    with pytest.raises(ValueError, match="invertible"):
        save_image(np.zeros((3, 4)), np.zeros((4, 4)), tmp_path / "a.nii.gz")
    with pytest.raises(ValueError, match="NaN"):
        save_image(np.full((3, 4), np.nan), np.eye(4), tmp_path / "a.nii.gz")
    with pytest.raises(ValueError, match=".nii"):
        save_image(np.zeros((3, 4)), np.eye(4), tmp_path / "a.png")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("dims", [2, 3])
def test_save_warp_itk_layout_and_roundtrip(tmp_path, dims):
    shape = (5, 6, 7)[:dims]
    rng = np.random.default_rng(1)
    ddf = rng.normal(size=(dims, *shape)).astype(np.float32)
    aff = np.diag([1.2, 0.9, 2.0, 1.0])
    path = save_warp_itk(ddf, aff, tmp_path / "warp.nii.gz")
    img = nib.load(str(path))
    want = (*shape, 1, 3) if dims == 3 else (*shape, 1, 1, 2)
    assert img.shape == want
    assert img.get_data_dtype() == np.float32
    assert int(img.header["intent_code"]) == NIFTI_INTENT_VECTOR
    assert img.header.get_xyzt_units()[0] == "mm"
    back, back_aff = load_warp_itk(path)
    np.testing.assert_array_equal(back, ddf)
    np.testing.assert_allclose(back_aff, aff, atol=1e-6)


def test_save_warp_itk_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"\(2, X, Y\) or \(3, X, Y, Z\)"):
        save_warp_itk(np.zeros((3, 4, 5)), np.eye(4), tmp_path / "w.nii.gz")
    with pytest.raises(ValueError, match="finite"):
        save_warp_itk(np.full((2, 4, 5), np.inf), np.eye(4), tmp_path / "w.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), tmp_path / "plain.nii.gz")
    with pytest.raises(ImageError, match="displacement field"):
        load_warp_itk(tmp_path / "plain.nii.gz")
    with pytest.raises(ImageError, match="does not exist"):
        load_warp_itk(tmp_path / "missing.nii.gz")


# ------------------------------------------------------------------------------------------------ ITK


def _world_ras(aff, shape):
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    return np.einsum("ij,j...->i...", aff[:3, :3], idx) + aff[:3, 3].reshape(3, 1, 1, 1)


@pytest.mark.parametrize("affine", [_affine_permuted, _affine_oblique], ids=["permuted", "oblique"])
def test_simpleitk_reads_warp_as_displacement_transform(tmp_path, affine):
    sitk = pytest.importorskip("SimpleITK")
    aff = affine()
    shape = (6, 7, 8)
    rng = np.random.default_rng(2)
    ddf_vox = rng.normal(scale=1.5, size=(3, *shape)).astype(np.float32)
    ddf_ras = ddf_vox_to_mm(ddf_vox, aff)
    path = save_warp_itk(ddf_ras_to_lps(ddf_ras, shape), aff, tmp_path / "warp.nii.gz")
    field = sitk.ReadImage(str(path))
    assert field.GetDimension() == 3 and field.GetNumberOfComponentsPerPixel() == 3
    transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    world = _world_ras(aff, shape)
    lps = np.array([-1.0, -1.0, 1.0]).reshape(3, 1, 1, 1)
    for index in [(0, 0, 0), (5, 6, 7), (2, 3, 4), (4, 1, 6)]:
        x_lps = world[(slice(None), *index)] * lps[:, 0, 0, 0]
        got = np.array(transform.TransformPoint(tuple(float(v) for v in x_lps)))
        want = (world[(slice(None), *index)] + ddf_ras[(slice(None), *index)]) * lps[:, 0, 0, 0]
        np.testing.assert_allclose(got, want, atol=MM_ATOL)
        # ITK's own geometry of the field agrees with nibabel's affine
        itk_point = np.array(field.TransformIndexToPhysicalPoint(tuple(int(i) for i in index)))
        np.testing.assert_allclose(itk_point, x_lps, atol=MM_ATOL)


def test_simpleitk_reads_2d_warp(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    aff = np.diag([1.2, 0.9, 1.0, 1.0])
    aff[:3, 3] = [5.0, -3.0, 0.0]
    ddf = np.zeros((2, 6, 7), np.float32)
    ddf[0], ddf[1] = 1.5, -2.0  # LPS mm
    path = save_warp_itk(ddf, aff, tmp_path / "warp2d.nii.gz")
    field = sitk.ReadImage(str(path))
    assert field.GetDimension() == 2 and field.GetNumberOfComponentsPerPixel() == 2
    transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    x = field.TransformIndexToPhysicalPoint((3, 4))
    np.testing.assert_allclose(np.array(transform.TransformPoint(x)) - np.array(x), [1.5, -2.0], atol=MM_ATOL)
