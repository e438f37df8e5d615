"""OASIS-1 reader (neurite-oasis layout): split/pair lists, loading, resizing and errors on fake trees."""

from collections import Counter

import nibabel as nib
import numpy as np
import pytest

from fnoreg_core.data import DataSpecError, check_sample, open_source
from fnoreg_core.data.oasis import OasisPairs, oasis_pairs, read_label_table, split_subjects

IDS = [f"OASIS_OAS1_{i:04d}_MR1" for i in range(1, 415)]
SHAPES = {2: (16, 20), 3: (16, 20, 24)}
FILES = {2: ("slice_norm.nii.gz", "slice_seg24.nii.gz", 24), 3: ("aligned_norm.nii.gz", "aligned_seg35.nii.gz", 35)}


def _write_subject(root, name, dims, seed, image_shape=None, label_shape=None):
    rng = np.random.default_rng(seed)
    image_file, label_file, n_labels = FILES[dims]
    shape = SHAPES[dims]
    image_shape, label_shape = image_shape or shape, label_shape or shape
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    image = rng.random(image_shape).astype(np.float32)
    labels = rng.integers(0, n_labels + 1, size=label_shape).astype(np.int16)
    if dims == 2:  # the release stores 2D slices as 160 x 192 x 1
        image, labels = image[..., None], labels[..., None]
    nib.save(nib.Nifti1Image(image, np.eye(4)), folder / image_file)
    nib.save(nib.Nifti1Image(labels, np.eye(4)), folder / label_file)


def _tree(tmp_path, dims, split, n_listed=414):
    """subjects.txt with ``n_listed`` names; files only for the subjects of ``split``."""
    root = tmp_path / "oasis"
    root.mkdir()
    (root / "subjects.txt").write_text("\n".join(IDS[:n_listed]) + "\n")
    for k, name in enumerate(split_subjects(IDS, dims, split)):
        _write_subject(root, name, dims, seed=k)
    return root


# ---- pair lists (pure) -------------------------------------------------------------------------

@pytest.mark.parametrize("dims, split, count", [(2, "train", 40_200), (2, "val", 22), (2, "test", 400),
                                                (3, "train", 766), (3, "val", 9), (3, "test", 19)])
def test_pair_counts_match_the_paper(dims, split, count):
    pairs = oasis_pairs(list(range(414)), dims, split)
    assert len(pairs) == count
    assert all(m != f for m, f in pairs)


def test_split_ranges_are_disjoint_and_as_in_the_reference():
    for dims, ranges in {2: {"train": (0, 201), "val": (201, 213), "test": (213, 414)},
                         3: {"train": (0, 384), "val": (384, 394), "test": (394, 414)}}.items():
        seen = set()
        for split, (a, b) in ranges.items():
            used = {s for pair in oasis_pairs(list(range(414)), dims, split) for s in pair}
            assert used == set(range(a, b)), (dims, split)
            assert not seen & used
            seen |= used


def test_2d_train_is_every_ordered_pair_moving_major():
    pairs = oasis_pairs(list(range(414)), 2, "train")
    assert len(set(pairs)) == 201 * 200
    assert pairs[:3] == [(0, 1), (0, 2), (0, 3)] and pairs[200] == (1, 0) and pairs[-1] == (200, 199)


def test_2d_train_reference_indexing_reproduces_the_reference_list():
    pairs = oasis_pairs(list(range(414)), 2, "train", reference_indexing=True)
    assert len(pairs) == 40_200
    # dataloaders.TrainOasis2d: subject 200 is never moving, (m, m+1) appears twice
    assert {m for m, _ in pairs} == set(range(200))
    counts = Counter(pairs)
    assert counts[(0, 1)] == 2 and counts[(5, 6)] == 2 and counts[(5, 7)] == 1
    assert pairs[0] == (0, 1) and pairs[201] == (1, 0)
    with pytest.raises(DataSpecError, match="2D train"):
        oasis_pairs(list(range(414)), 3, "train", reference_indexing=True)


def test_both_directions_order_follows_the_reference():
    # ValidationOasis2d / TrainOasis3d: forward (i, i+1), then ((n-1)*2 - i, (n-1)*2 - i - 1)
    val = oasis_pairs(list(range(414)), 2, "val")
    assert val[:2] == [(201, 202), (202, 203)] and val[10] == (211, 212)
    assert val[11] == (212, 211) and val[-1] == (202, 201)
    train3 = oasis_pairs(list(range(414)), 3, "train")
    assert train3[0] == (0, 1) and train3[382] == (382, 383) and train3[383] == (383, 382) and train3[-1] == (1, 0)


def test_forward_only_3d_val_and_test():
    assert oasis_pairs(list(range(414)), 3, "val") == [(i, i + 1) for i in range(384, 393)]
    assert oasis_pairs(list(range(414)), 3, "test") == [(i, i + 1) for i in range(394, 413)]


def test_too_few_subjects_says_found_and_needed():
    with pytest.raises(DataSpecError, match=r"at least 414 subjects, but 300 were found"):
        oasis_pairs(list(range(300)), 2, "test")
    assert len(oasis_pairs(list(range(300)), 2, "val")) == 22  # val only needs [201, 213)


def test_bad_dims_or_split():
    with pytest.raises(DataSpecError):
        oasis_pairs(IDS, 4, "val")
    with pytest.raises(DataSpecError, match="split"):
        oasis_pairs(IDS, 2, "validation")


# ---- files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dims", [2, 3])
def test_loads_samples_in_the_common_layout(tmp_path, dims):
    root = _tree(tmp_path, dims, "val")
    source = OasisPairs(root, dims=dims, split="val")
    assert len(source) == {2: 22, 3: 9}[dims]
    assert source.dims == dims and source.shape == SHAPES[dims] and source.has_labels
    assert source.voxel_size_mm == (1.0,) * dims
    assert sorted(source.label_names) == list(range(1, FILES[dims][2] + 1))
    assert source.label_names[3] == "label 3"
    sample = source[0]
    check_sample(sample, dims, True)
    first, second = split_subjects(IDS, dims, "val")[:2]
    assert sample["name"] == f"{first[6:-4]}->{second[6:-4]}"  # OAS1_0202->OAS1_0203 (2D)
    assert sample["moving"].dtype == np.float32 and sample["moving"].shape == (1,) + SHAPES[dims]
    assert sample["moving_labels"].dtype == np.int16
    assert 0.0 <= sample["moving"].min() and sample["moving"].max() <= 1.0
    # moving is the first subject of the pair, read as stored (no reorientation)
    stored = np.asarray(nib.load(root / first / FILES[dims][0]).dataobj).reshape(SHAPES[dims])
    np.testing.assert_array_equal(sample["moving"][0], stored)


def test_half_resolution_via_resized(tmp_path):
    source = OasisPairs(_tree(tmp_path, 3, "val"), dims=3, split="val")
    half = source.resized((8, 10, 12))
    assert half.shape == (8, 10, 12) and len(half) == 9 and half.label_names == source.label_names
    sample = half[3]
    check_sample(sample, 3, True)
    full = source[3]
    assert set(np.unique(sample["fixed_labels"])) <= set(np.unique(full["fixed_labels"]))  # nearest: no new labels
    assert sample["fixed_labels"].dtype == np.int16 and sample["fixed"].dtype == np.float32
    # corner-aligned: the corner voxels are kept
    assert sample["fixed"][0, 0, 0, 0] == pytest.approx(full["fixed"][0, 0, 0, 0])
    assert sample["fixed"][0, -1, -1, -1] == pytest.approx(full["fixed"][0, -1, -1, -1])
    assert half.voxel_size_mm == pytest.approx((15 / 7, 19 / 9, 23 / 11))


def test_open_source_spec(tmp_path):
    root = _tree(tmp_path, 2, "val")
    source = open_source(f"oasis:{root}", dims=2, split="val", shape=(8, 10))
    assert len(source) == 22 and source.shape == (8, 10)
    check_sample(source[21], 2, True)
    with pytest.raises(DataSpecError, match="missing"):  # this tree holds no 3D files
        open_source(f"oasis:{root}", dims=3, split="val")
    with pytest.raises(DataSpecError, match="needs its folder"):
        open_source("oasis:", dims=2, split="val")


def test_label_names_from_the_release_table(tmp_path):
    root = _tree(tmp_path, 3, "test")
    (root / "seg35_labels.txt").write_text("#No. Label Name: R G B A\n0 Unknown 0 0 0 0\n"
                                           "1 Left-Cerebral-White-Matter 245 245 245 0\n\n"
                                           "35 Right-Choroid-Plexus 0 200 221 0\n99 Extra 1 1 1 0\n")
    source = OasisPairs(root, dims=3, split="test")
    assert len(source) == 19
    assert source.label_names[1] == "Left-Cerebral-White-Matter" and source.label_names[35] == "Right-Choroid-Plexus"
    assert source.label_names[2] == "label 2" and 99 not in source.label_names and 0 not in source.label_names
    assert read_label_table(root / "nope.txt", 4) == {k: f"label {k}" for k in range(1, 5)}


def test_subjects_override(tmp_path):
    root = _tree(tmp_path, 3, "val", n_listed=5)  # subjects.txt too short, files for [384, 394)
    with pytest.raises(DataSpecError, match="at least 394 subjects, but 5 were found"):
        OasisPairs(root, dims=3, split="val")
    source = OasisPairs(root, dims=3, split="val", subjects=IDS)
    assert len(source) == 9


# ---- errors ------------------------------------------------------------------------------------

def test_error_root_missing_or_a_file(tmp_path):
    with pytest.raises(DataSpecError, match="does not exist.*subjects.txt"):
        OasisPairs(tmp_path / "nowhere", dims=2, split="val")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataSpecError, match="is a file"):
        OasisPairs(tmp_path / "file", dims=2, split="val")


def test_error_no_subjects_txt_explains_layout(tmp_path):
    with pytest.raises(DataSpecError, match=r"no subjects.txt.*OASIS_OAS1_0001_MR1.*slice_norm"):
        OasisPairs(tmp_path, dims=2, split="val")
    (tmp_path / "subjects.txt").write_text("\n\n")
    with pytest.raises(DataSpecError, match="lists no subjects"):
        OasisPairs(tmp_path, dims=2, split="val")


def test_error_missing_subject_folder_or_file_is_named(tmp_path):
    root = _tree(tmp_path, 3, "val")
    victim = split_subjects(IDS, 3, "val")[4]
    (root / victim / "aligned_seg35.nii.gz").unlink()
    with pytest.raises(DataSpecError, match=f"1 file\\(s\\) are missing:\n  .*{victim}/aligned_seg35.nii.gz"):
        OasisPairs(root, dims=3, split="val")
    for f in (root / victim).iterdir():
        f.unlink()
    (root / victim).rmdir()
    with pytest.raises(DataSpecError, match=f"{victim}/ \\(subject folder\\)"):
        OasisPairs(root, dims=3, split="val")
    with pytest.raises(DataSpecError, match="20 file"):  # the 3D test subjects have no files at all
        OasisPairs(root, dims=3, split="test")


def test_error_image_label_shape_mismatch_at_load(tmp_path):
    root = _tree(tmp_path, 2, "val")
    subjects = split_subjects(IDS, 2, "val")
    _write_subject(root, subjects[1], 2, seed=99, label_shape=(16, 18))
    source = OasisPairs(root, dims=2, split="val")  # construction only checks that files exist
    source[2]  # (subjects[2], subjects[3]) is fine
    with pytest.raises(DataSpecError, match=r"shape \(16, 20\) but its labels .* have shape \(16, 18\)"):
        source[0]
    _write_subject(root, subjects[3], 2, seed=98, image_shape=(12, 20), label_shape=(12, 20))
    with pytest.raises(DataSpecError, match=r"has shape \(12, 20\), but this 2D OASIS source is \(16, 20\)"):
        source[2]


def test_error_wrong_dimensionality_file(tmp_path):
    root = _tree(tmp_path, 2, "val")
    first = split_subjects(IDS, 2, "val")[0]
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), root / first / "slice_norm.nii.gz")
    with pytest.raises(DataSpecError, match="expected a 2-D image"):
        OasisPairs(root, dims=2, split="val")
