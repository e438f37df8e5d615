"""fnoreg_core.geometry (the one place for image geometry) and fnoreg_core.staging (the one output rule)."""

import nibabel as nib
import numpy as np
import pytest

from fnoreg_core import geometry as G
from fnoreg_core.io import ImageError
from fnoreg_core.staging import StagedOutputs, staged_folder


def test_image_error_is_one_class():
    import fnoreg_core.io

    assert fnoreg_core.io.ImageError is G.ImageError and issubclass(G.ImageError, ValueError)


def test_affines_shapes_spacing():
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    assert G.spacing(aff, 3) == (2.0, 3.0, 4.0) and G.spacing(aff, 2) == (2.0, 3.0)
    np.testing.assert_array_equal(G.affine_nd(aff, 2), np.diag([2.0, 3.0, 1.0]))
    np.testing.assert_array_equal(G.check_affine(np.diag([2.0, 3.0, 1.0])), np.diag([2.0, 3.0, 1.0, 1.0]))
    with pytest.raises(ImageError, match="4x4"):
        G.check_affine(np.eye(2))
    with pytest.raises(ImageError, match="NaN"):
        G.check_affine(np.full((4, 4), np.nan))
    with pytest.raises(ImageError, match="invertible"):
        G.check_affine(np.diag([1.0, 1.0, 0.0, 1.0]), dims=3)
    G.check_affine(np.diag([1.0, 1.0, 0.0, 1.0]), dims=2)  # 2-D: only the in-plane block counts
    assert G.squeeze_shape((4, 5, 6, 1, 1), 3) == (4, 5, 6) and G.squeeze_shape((4, 5, 1), 2) == (4, 5)
    assert G.squeeze_shape((4, 1, 5), 2) == (4, 1, 5)  # only trailing axes


def test_reorientation_matches_nibabel():
    rng = np.random.default_rng(0)
    data = rng.random((4, 5, 6)).astype(np.float32)
    aff = np.array([[0.0, 0.0, -2.0, 10.0], [1.5, 0.0, 0.0, -3.0], [0.0, -1.0, 0.0, 7.0], [0, 0, 0, 1.0]])
    ref = nib.as_closest_canonical(nib.Nifti1Image(data, aff))
    got, got_aff = G.reorient_to_ras(data, aff)
    np.testing.assert_array_equal(got, np.asarray(ref.dataobj))
    np.testing.assert_allclose(got_aff, ref.affine)
    frame = G.RASFrame(data.shape, aff)
    assert frame.reoriented and frame.ras_shape == got.shape
    np.testing.assert_array_equal(frame.from_ras(frame.to_ras(data)), data)
    assert not G.RASFrame((4, 5), np.eye(4)).reoriented  # 2-D grids are never reoriented


def test_outside_rule_images_and_labels():
    """ITK: inside is -0.5 <= c < n - 0.5; inside, linear clamps to the edge; outside: 0."""
    vol = np.arange(1, 5, dtype=np.float32).reshape(4, 1) * np.ones((1, 3), np.float32)
    coords = np.array([[-0.6, -0.5, 0.0, 3.0, 3.4, 3.5], [1.0] * 6])
    np.testing.assert_allclose(G.sample(vol, coords, 1), [0, 1, 1, 4, 4, 0])
    np.testing.assert_array_equal(G.sample(vol.astype(np.int16), coords, 0), [0, 1, 1, 4, 4, 0])
    shifted = G.warp_vox(vol.astype(np.int16), np.stack([np.full(vol.shape, 2.0), np.zeros(vol.shape)]))
    np.testing.assert_array_equal(shifted[:, 0], [3, 4, 0, 0])


def test_resample_and_resize():
    rng = np.random.default_rng(1)
    img = rng.random((6, 8)).astype(np.float32)
    aff = np.diag([2.0, 2.0, 1.0, 1.0])
    assert G.resample(img, aff, img.shape, aff) is img  # same grid: the image itself
    fine = np.diag([1.0, 1.0, 1.0, 1.0])
    out = G.resample(img, aff, (11, 15), fine)  # voxel centres of the coarse grid are every 2nd fine one
    np.testing.assert_allclose(out[::2, ::2], img, atol=1e-6)
    up = G.resize(img, (11, 15))
    np.testing.assert_allclose(up[::2, ::2], img, atol=1e-6)  # corners aligned
    labels = (img * 4).astype(np.int16)
    assert G.resize(labels, (11, 15), order=0).dtype == np.int16
    np.testing.assert_array_equal(G.resample_index(img, G.corner_matrix((11, 15), img.shape), (11, 15), 1), up)


def test_staged_outputs(tmp_path):
    """The output rule in brief (tests/test_fuzz_outputs.py has the rest): user files are never touched."""
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("theirs")
    (dest / "pair").mkdir()
    (dest / "pair" / "notes.txt").write_text("mine")
    with StagedOutputs(how="entries") as st:
        tmp = st.folder(dest)
        (tmp / "pair").mkdir()
        (tmp / "pair" / "new.nii.gz").write_text("new")
        assert not (dest / "pair" / "new.nii.gz").exists()  # nothing visible before commit
    assert (dest / "keep.txt").read_text() == "theirs"
    assert sorted(p.name for p in (dest / "pair").iterdir()) == ["new.nii.gz", "notes.txt"]
    with StagedOutputs(how="files") as st:
        (st.folder(dest) / "keep2.txt").write_text("x")
    assert (dest / "keep.txt").exists() and (dest / "keep2.txt").exists()
    with pytest.raises(RuntimeError):
        with StagedOutputs() as st:
            (st.folder(dest) / "half.txt").write_text("x")
            raise RuntimeError("failed")
    assert not (dest / "half.txt").exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".") and p.name != ".fnoreg-manifest.json"]
    with staged_folder(tmp_path / "whole") as tmp:
        (tmp / "a").write_text("1")
    with staged_folder(tmp_path / "whole", overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    # the tool's own earlier file goes (how="folder" + overwrite); nothing else was there
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == [".fnoreg-manifest.json", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "whole"]