"""User NIfTI pairs from a CSV: parsing, RAS reorientation, working grid, world resampling, mapping back."""

import nibabel as nib
import numpy as np
import pytest

from fnoreg_core.data import DataSpecError, check_sample, open_source, resize_image
from fnoreg_core.data.pairs import CsvPairs, image_geometry, read_pair_csv, to_native, to_working
from fnoreg_core.intensity import IntensityNorm, denormalise, normalise
from fnoreg_core.io import load_image

NONE = IntensityNorm("none")
# voxel -> RAS with axes permuted and flipped (array axis 0 -> S, 1 -> -R, 2 -> -A)
ODD_AFFINE = np.array([[0.0, -1.5, 0.0, 10.0], [0.0, 0.0, -2.0, 20.0], [1.2, 0.0, 0.0, -5.0], [0, 0, 0, 1]])


def _save(path, data, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), path)
    return path


def _csv(path, rows, header="moving,fixed"):
    path.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


def _ramp_world(affine, shape):
    """A linear function of world position, sampled on the grid of ``affine``/``shape``, in [0, 1]."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    return (0.5 + 0.01 * world[..., 0] + 0.005 * world[..., 1] - 0.008 * world[..., 2]).astype(np.float32)


def _world_labels(affine, shape):
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    return np.where(world[..., 0] > 3.0, 1, 2).astype(np.int16)


@pytest.fixture
def pair3d(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        _save(tmp_path / f"{name}.nii.gz", (rng.random((10, 12, 14)) * 300).astype(np.float32))
        _save(tmp_path / f"{name}_seg.nii.gz", rng.integers(0, 5, (10, 12, 14)).astype(np.int16))
    return _csv(tmp_path / "pairs.csv", [("a.nii.gz", "b.nii.gz", "a_seg.nii.gz", "b_seg.nii.gz"),
                                         ("b.nii.gz", "a.nii.gz", "b_seg.nii.gz", "a_seg.nii.gz")],
                header="moving,fixed,moving_labels,fixed_labels")


def test_basic_csv_samples(pair3d, tmp_path):
    source = CsvPairs(pair3d)
    assert len(source) == 2 and source.dims == 3 and source.shape == (10, 12, 14) and source.has_labels
    assert source.voxel_size_mm == (1.0, 1.0, 1.0) and source.label_names == {}
    sample = source[0]
    check_sample(sample, 3, True)
    assert sample["name"] == "a->b" and sample["moving"].dtype == np.float32
    assert sample["moving_labels"].dtype == np.int16
    raw = load_image(tmp_path / "a.nii.gz").data
    expected, params = normalise(raw)
    np.testing.assert_allclose(sample["moving"][0], expected, atol=1e-6)
    meta = sample["meta"]
    assert meta["index"] == 0 and meta["moving_low"] == params["low"] and meta["moving_high"] == params["high"]
    np.testing.assert_array_equal(sample["fixed_labels"][0], load_image(tmp_path / "b_seg.nii.gz").data)
    # the normalisation recorded in meta inverts (below the clipping percentile)
    back = denormalise(sample["moving"][0], {"low": meta["moving_low"], "high": meta["moving_high"]})
    inside = raw < params["high"]
    np.testing.assert_allclose(back[inside], raw[inside], rtol=1e-4, atol=1e-3)


def test_samples_collate_with_default_collate(pair3d):
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate

    source = CsvPairs(pair3d)
    batch = default_collate([source[0], source[1]])
    assert batch["moving"].shape == (2, 1, 10, 12, 14)
    assert batch["meta"]["fixed_high"].shape == (2,) and batch["meta"]["index"].tolist() == [0, 1]
    assert batch["name"] == ["a->b", "b->a"]
    assert isinstance(batch["moving_labels"], torch.Tensor)


def test_reorients_to_ras(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.random((5, 6, 7)).astype(np.float32)
    _save(tmp_path / "m.nii.gz", data, ODD_AFFINE)
    _save(tmp_path / "f.nii.gz", data, ODD_AFFINE)
    source = CsvPairs(_csv(tmp_path / "p.csv", [("m.nii.gz", "f.nii.gz")]), norm=NONE)
    canonical = nib.as_closest_canonical(nib.load(tmp_path / "m.nii.gz"))
    assert source.shape == canonical.shape == (6, 7, 5)
    sample = source[0]
    np.testing.assert_allclose(sample["moving"][0], np.asarray(canonical.dataobj), atol=1e-6)
    np.testing.assert_allclose(sample["fixed"][0], sample["moving"][0])
    assert not source.has_labels and "moving_labels" not in sample
    na, ns, affine, shape = image_geometry(tmp_path / "m.nii.gz")
    assert shape == (6, 7, 5) and np.allclose(affine, canonical.affine) and ns == (5, 6, 7)
    assert source.voxel_size_mm == pytest.approx((1.5, 2.0, 1.2))


def test_world_space_resampling_of_a_different_moving_grid(tmp_path):
    fixed_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    fixed_aff[:3, 3] = (-10, -12, -8)
    fshape = (11, 12, 9)
    # the moving image: other voxel size, axes permuted/flipped, field of view shifted (partial overlap)
    mov_aff = ODD_AFFINE.copy()
    mshape = (12, 12, 10)
    _save(tmp_path / "f.nii.gz", _ramp_world(fixed_aff, fshape), fixed_aff)
    _save(tmp_path / "m.nii.gz", _ramp_world(mov_aff, mshape), mov_aff)
    _save(tmp_path / "fl.nii.gz", _world_labels(fixed_aff, fshape), fixed_aff)
    _save(tmp_path / "ml.nii.gz", _world_labels(mov_aff, mshape), mov_aff)
    csv_path = _csv(tmp_path / "p.csv", [("m.nii.gz", "f.nii.gz", "ml.nii.gz", "fl.nii.gz")],
                    header="moving,fixed,moving_labels,fixed_labels")
    source = CsvPairs(csv_path, norm=NONE)
    assert source.shape == fshape
    sample = source[0]
    fixed, moving = sample["fixed"][0], sample["moving"][0]
    np.testing.assert_allclose(fixed, _ramp_world(fixed_aff, fshape), atol=1e-6)

    # which fixed-grid voxels lie inside the moving field of view (with half a voxel of margin)
    geo = source.native_geometry(0)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in fshape], indexing="ij"), -1).reshape(-1, 3)
    world = idx @ geo.fixed.working_affine[:3, :3].T + geo.fixed.working_affine[:3, 3]
    in_mov = (world - geo.moving.affine[:3, 3]) @ np.linalg.inv(geo.moving.affine[:3, :3]).T
    inside = np.all((in_mov >= 0) & (in_mov <= np.array(geo.moving.shape) - 1), axis=1).reshape(fshape)
    outside = np.any((in_mov <= -1) | (in_mov >= np.array(geo.moving.shape)), axis=1).reshape(fshape)
    assert inside.sum() > 50 and (~inside).sum() > 50  # partial overlap
    np.testing.assert_allclose(moving[inside], fixed[inside], atol=1e-5)  # a ramp is interpolated exactly
    assert outside.sum() > 20 and np.abs(moving[outside]).max() < 1e-6  # outside the moving field of view: 0
    # labels: nearest neighbour lands on the same side of the plane except next to it
    world_x = world[:, 0].reshape(fshape)
    far = inside & (np.abs(world_x - 3.0) > 2.0)
    np.testing.assert_array_equal(sample["moving_labels"][0][far], sample["fixed_labels"][0][far])
    assert sample["moving_labels"].dtype == np.int16


def test_index_space_resizes_moving_onto_the_working_shape(tmp_path):
    rng = np.random.default_rng(2)
    _save(tmp_path / "m.nii.gz", rng.random((8, 9, 10)).astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    _save(tmp_path / "f.nii.gz", rng.random((10, 12, 14)).astype(np.float32))
    csv_path = _csv(tmp_path / "p.csv", [("m.nii.gz", "f.nii.gz")])
    source = CsvPairs(csv_path, norm=NONE, space="index", shape=(5, 6, 7))
    sample = source[0]
    np.testing.assert_allclose(sample["moving"][0], resize_image(load_image(tmp_path / "m.nii.gz").data, (5, 6, 7)),
                               atol=1e-6)
    assert source.voxel_size_mm == pytest.approx((9 / 4, 11 / 5, 13 / 6))
    geo = source.native_geometry(0)
    assert not np.allclose(geo.moving.working_affine, geo.fixed.working_affine)
    world = CsvPairs(csv_path, norm=NONE, shape=(5, 6, 7)).native_geometry(0)
    np.testing.assert_array_equal(world.moving.working_affine, world.fixed.working_affine)


@pytest.mark.parametrize("space", ["world", "index"])
def test_round_trip_to_native_exact_on_nested_grids(tmp_path, space):
    rng = np.random.default_rng(3)
    data = (rng.random((5, 6, 7)) * 100).astype(np.float32)
    labels = rng.integers(0, 9, (5, 6, 7)).astype(np.int16)
    _save(tmp_path / "f.nii.gz", data, ODD_AFFINE)
    _save(tmp_path / "fl.nii.gz", labels, ODD_AFFINE)
    _save(tmp_path / "m.nii.gz", data, ODD_AFFINE)
    _save(tmp_path / "ml.nii.gz", labels, ODD_AFFINE)
    csv_path = _csv(tmp_path / "p.csv", [("m.nii.gz", "f.nii.gz", "ml.nii.gz", "fl.nii.gz")],
                    header="moving,fixed,moving_labels,fixed_labels")
    # canonical shape (6, 7, 5): working 2N-1 per axis puts every native voxel on a working voxel
    source = CsvPairs(csv_path, norm=IntensityNorm("minmax"), shape=(11, 13, 9), space=space)
    sample = source[0]
    geo = source.native_geometry(0)
    assert geo.fixed.native_shape == (5, 6, 7) and geo.fixed.working_shape == (11, 13, 9)
    back = to_native(sample["fixed"][0], geo.fixed)
    expected = (data - data.min()) / (data.max() - data.min())
    np.testing.assert_allclose(back, expected, atol=1e-5)
    np.testing.assert_array_equal(to_native(sample["moving_labels"][0], geo.moving, order=0), labels)
    # leading (channel) axes and the method form
    two = geo.fixed.to_native(np.stack([sample["fixed"][0], 1 - sample["fixed"][0]]))
    assert two.shape == (2, 5, 6, 7)
    np.testing.assert_allclose(two[1], 1 - expected, atol=1e-5)
    # to_working is the forward map used for the sample
    np.testing.assert_allclose(to_working(load_image(tmp_path / "f.nii.gz").data, geo.fixed) /
                               (data.max() - data.min()) - data.min() / (data.max() - data.min()),
                               sample["fixed"][0], atol=1e-5)


def test_round_trip_smooth_image_on_any_working_grid(tmp_path):
    aff = np.diag([1.2, 0.9, 1.5, 1.0])
    aff[:3, 3] = (3, -4, 5)
    data = _ramp_world(aff, (20, 24, 18))
    _save(tmp_path / "f.nii.gz", data, aff)
    source = CsvPairs(_csv(tmp_path / "p.csv", [("f.nii.gz", "f.nii.gz")]), norm=NONE, shape=(9, 13, 10))
    geo = source.native_geometry(0)
    np.testing.assert_allclose(to_native(source[0]["fixed"][0], geo.fixed), data, atol=1e-5)  # linear: exact
    with pytest.raises(ValueError, match="working shape"):
        to_native(np.zeros((3, 3, 3)), geo.fixed)


def test_2d_images_any_singleton_axis(tmp_path):
    rng = np.random.default_rng(4)
    img = rng.random((12, 10)).astype(np.float32)
    _save(tmp_path / "a.nii.gz", img)  # stored 2-D
    # coronal-style storage X x 1 x Y: array axis 2 is world y, the singleton axis 1 is world z
    swap = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    _save(tmp_path / "b.nii.gz", img[:, None, :], swap)
    _save(tmp_path / "c.nii.gz", img[:, :, None], np.diag([0.5, 0.5, 3.0, 1.0]))  # X x Y x 1, 0.5 mm
    source = CsvPairs(_csv(tmp_path / "p.csv", [("a.nii.gz", "b.nii.gz"), ("c.nii.gz", "b.nii.gz")]), norm=NONE)
    assert source.dims == 2 and source.shape == (12, 10)
    s0, s1 = source[0], source[1]
    check_sample(s0, 2, False)
    np.testing.assert_allclose(s0["moving"][0], img, atol=1e-6)
    np.testing.assert_allclose(s0["fixed"][0], img, atol=1e-6)
    # world space: c has 0.5 mm pixels, so it covers the top-left quarter-ish of b's field of view
    assert s1["moving"][0][0, 0] == pytest.approx(img[0, 0]) and s1["moving"][0][-1, -1] == 0.0
    geo = source.native_geometry(0)
    assert geo.fixed.native_shape == (12, 1, 10)
    back = to_native(s0["fixed"][0], geo.fixed)
    assert back.shape == (12, 1, 10)
    np.testing.assert_allclose(back[:, 0, :], img, atol=1e-6)
    # 2-D images in perpendicular planes cannot be matched in world space
    _save(tmp_path / "d.nii.gz", img[:, None, :])  # identity affine: the x-z plane
    with pytest.raises(DataSpecError, match="line 2: .* different planes.*space='index'"):
        CsvPairs(_csv(tmp_path / "q.csv", [("d.nii.gz", "a.nii.gz")]))
    assert CsvPairs(tmp_path / "q.csv", space="index")[0]["moving"].shape == (1, 12, 10)


def test_open_source_pairs_spec(pair3d):
    source = open_source(f"pairs:{pair3d}", dims=3, shape=(5, 6, 7))
    assert source.shape == (5, 6, 7) and isinstance(source, CsvPairs)
    check_sample(source[1], 3, True)
    with pytest.raises(DataSpecError, match="holds 3D pairs, but a 2D model"):
        open_source(f"pairs:{pair3d}", dims=2)


def test_relative_paths_and_root(tmp_path):
    sub = tmp_path / "imgs"
    sub.mkdir()
    _save(sub / "x.nii.gz", np.ones((4, 5, 6), np.float32))
    csv_path = _csv(tmp_path / "p.csv", [("imgs/x.nii.gz", str(sub / "x.nii.gz"))])
    assert read_pair_csv(csv_path)[0].moving == sub / "x.nii.gz"
    other = _csv(tmp_path / "q.csv", [("x.nii.gz", "x.nii.gz")])
    assert CsvPairs(other, root=sub).rows[0].fixed == sub / "x.nii.gz"
    # header names are case-insensitive and extra columns are ignored
    _csv(tmp_path / "r.csv", [("1", "x.nii.gz", "x.nii.gz")], header="Id, Moving ,FIXED")
    assert len(CsvPairs(tmp_path / "r.csv", root=sub)) == 1


# ---- errors ------------------------------------------------------------------------------------

def test_error_csv_missing_folder_empty(tmp_path):
    with pytest.raises(DataSpecError, match="does not exist.*moving,fixed"):
        CsvPairs(tmp_path / "none.csv")
    with pytest.raises(DataSpecError, match="is a folder"):
        CsvPairs(tmp_path)
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataSpecError, match="is empty"):
        CsvPairs(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("moving,fixed\n\n")
    with pytest.raises(DataSpecError, match="lists no pairs"):
        CsvPairs(tmp_path / "h.csv")


def test_error_columns(tmp_path):
    _save(tmp_path / "x.nii.gz", np.ones((4, 5, 6), np.float32))
    with pytest.raises(DataSpecError, match=r"lacks column\(s\) \['fixed'\]"):
        CsvPairs(_csv(tmp_path / "a.csv", [("x.nii.gz", "x.nii.gz")], header="moving,target"))
    with pytest.raises(DataSpecError, match="'moving_labels' without 'fixed_labels'"):
        CsvPairs(_csv(tmp_path / "b.csv", [("x.nii.gz", "x.nii.gz", "x.nii.gz")], header="moving,fixed,moving_labels"))
    with pytest.raises(DataSpecError, match="line 3: the 'fixed' cell is empty"):
        CsvPairs(_csv(tmp_path / "c.csv", [("x.nii.gz", "x.nii.gz"), ("x.nii.gz", "")]))


def test_error_labels_on_some_rows_only_names_the_row(tmp_path):
    _save(tmp_path / "x.nii.gz", np.ones((4, 5, 6), np.float32))
    _save(tmp_path / "s.nii.gz", np.ones((4, 5, 6), np.int16))
    header = "moving,fixed,moving_labels,fixed_labels"
    rows = [("x.nii.gz", "x.nii.gz", "s.nii.gz", "s.nii.gz"), ("x.nii.gz", "x.nii.gz", "", ""),
            ("x.nii.gz", "x.nii.gz", "s.nii.gz", "s.nii.gz")]
    with pytest.raises(DataSpecError, match="line 3: labels are given on line 2 but not on line 3"):
        CsvPairs(_csv(tmp_path / "a.csv", rows, header=header))
    with pytest.raises(DataSpecError, match="line 2: only one of moving_labels/fixed_labels"):
        CsvPairs(_csv(tmp_path / "b.csv", [("x.nii.gz", "x.nii.gz", "s.nii.gz", "")], header=header))
    # label columns present but empty everywhere: no labels
    source = CsvPairs(_csv(tmp_path / "c.csv", [("x.nii.gz", "x.nii.gz", "", "")], header=header))
    assert not source.has_labels


def test_error_missing_file_names_line_and_file(tmp_path):
    _save(tmp_path / "x.nii.gz", np.ones((4, 5, 6), np.float32))
    with pytest.raises(DataSpecError, match=r"line 3: fixed image .*nope.nii.gz does not exist"):
        CsvPairs(_csv(tmp_path / "a.csv", [("x.nii.gz", "x.nii.gz"), ("x.nii.gz", "nope.nii.gz")]))
    (tmp_path / "bad.nii.gz").write_text("not an image")
    with pytest.raises(DataSpecError, match="line 2: .*bad.nii.gz is not a readable image"):
        CsvPairs(_csv(tmp_path / "b.csv", [("bad.nii.gz", "x.nii.gz")]))


def test_error_mixed_dims_and_label_grid(tmp_path):
    _save(tmp_path / "v.nii.gz", np.ones((4, 5, 6), np.float32))
    _save(tmp_path / "s2.nii.gz", np.ones((4, 5), np.float32))
    with pytest.raises(DataSpecError, match="line 3: .*s2.nii.gz is 2-D .* same number of dimensions"):
        CsvPairs(_csv(tmp_path / "a.csv", [("v.nii.gz", "v.nii.gz"), ("s2.nii.gz", "v.nii.gz")]))
    _save(tmp_path / "lab.nii.gz", np.ones((4, 5, 7), np.int16))
    with pytest.raises(DataSpecError, match="line 2: label map .*lab.nii.gz .* not on the grid of its image"):
        CsvPairs(_csv(tmp_path / "b.csv", [("v.nii.gz", "v.nii.gz", "lab.nii.gz", "lab.nii.gz")],
                      header="moving,fixed,moving_labels,fixed_labels"))
    _save(tmp_path / "v4.nii.gz", np.ones((4, 5, 6, 2), np.float32))
    with pytest.raises(DataSpecError, match="4-D"):
        CsvPairs(_csv(tmp_path / "c.csv", [("v4.nii.gz", "v.nii.gz")]))


def test_error_bad_shape_or_space(pair3d):
    with pytest.raises(DataSpecError, match="does not fit 3-D images"):
        CsvPairs(pair3d, shape=(8, 8))
    with pytest.raises(DataSpecError, match="at least 2"):
        CsvPairs(pair3d, shape=(8, 8, 1))
    with pytest.raises(DataSpecError, match="resampling space"):
        CsvPairs(pair3d, space="physical")
