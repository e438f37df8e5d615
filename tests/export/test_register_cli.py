"""fnoreg-register: outputs, ITK interoperability, batches, and bad input (exit 2, nothing written).

Interoperability: SimpleITK reads ``warp.nii.gz`` as a ``DisplacementFieldTransform``; resampling
the moving image with it (linear, default value 0, the fixed image as reference) reproduces
``moved.nii.gz`` to 1e-4 x the intensity range (``ITK_REL_ATOL``). Measured max |difference|, on
intensities up to ~70: 0 (bit-identical) in 2-D on one grid and on different grids, 3.8e-6 in 3-D
with a LAS fixed grid and a rotated anisotropic moving grid (float32 rounding); the runtime samples
as ITK does (float64 coordinates, ITK's inside-the-buffer rule, 0 outside). Labels warped by
SimpleITK with nearest neighbour match ``moved_labels.nii.gz`` on >= 99.9 % of voxels (a tie at
exactly half a voxel may round differently; measured 100 %).
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter


pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from fnoreg_export.register_cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ITK_REL_ATOL = 1e-4
OUTPUTS = {"moved.nii.gz", "warp.nii.gz", "jacobian.nii.gz", "report.json", "affine.txt", "warp_deformable.nii.gz"}


def names(folder: Path) -> set[str]:
    """Entries of an output folder, without the output rule's manifest (fnoreg_core.staging)."""
    return {p.name for p in folder.iterdir() if p.name != ".fnoreg-manifest.json"}

@pytest.fixture(scope="session")
def model2d(fno2d):
    return fno2d[1]


@pytest.fixture(scope="session")
def model3d(fno3d):
    return fno3d[1]


# ------------------------------------------------------------------------------------------------ data


def smooth_image(shape, seed, scale=100.0):
    rng = np.random.default_rng(seed)
    return (gaussian_filter(rng.random(shape), 2.0) * scale).astype(np.float32)


def labels_of(image):
    return np.digitize(image, np.quantile(image, [0.2, 0.4, 0.6, 0.8])).astype(np.int16)


def write(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def affine2d(spacing=(1.2, 0.9), origin=(5.0, -3.0)):
    aff = np.diag([spacing[0], spacing[1], 1.0, 1.0])
    aff[:2, 3] = origin
    return aff


def case2d(tmp_path, moving_affine=None, shape=(48, 64), moving_shape=None):
    fixed = smooth_image(shape, 0)
    moving = smooth_image(moving_shape or shape, 1)
    f = write(tmp_path / "fixed.nii.gz", fixed, affine2d())
    m = write(tmp_path / "moving.nii.gz", moving, affine2d() if moving_affine is None else moving_affine)
    fl = write(tmp_path / "fixed_seg.nii.gz", labels_of(fixed), affine2d())
    ml = write(tmp_path / "moving_seg.nii.gz", labels_of(moving), affine2d() if moving_affine is None else moving_affine)
    return f, m, fl, ml


def run_cli(*args):
    return main([str(a) for a in args])


def leftovers(folder: Path):
    return [p.name for p in folder.iterdir() if "fnoreg-tmp" in p.name]


# ------------------------------------------------------------------------------------------------ outputs


def test_help_has_examples(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples:" in out and "--pairs" in out and "Default:" in out


def test_single_pair_outputs_and_report(tmp_path, model2d, capsys):
    f, m, fl, ml = case2d(tmp_path)
    out = tmp_path / "out"
    assert run_cli("--model", model2d, f, m, "-o", out, "--moving-labels", ml, "--fixed-labels", fl,
                   "--threads", "1") == 0
    assert names(out) == OUTPUTS | {"moved_labels.nii.gz"}
    assert not leftovers(tmp_path)
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["name"] == "tiny-fno-2d" and report["model"]["backend"] == "onnxruntime-cpu"
    assert report["model"]["threads"] == 1
    dice = report["dice"]
    assert dice["n_labels"] == 4 and set(dice["per_label"]) == {"1", "2", "3", "4"}
    assert 0 < dice["mean"] <= 1 and 0 < dice["mean_before"] <= 1
    jac = report["jacobian"]
    assert {"nonpositive_pct", "negative_pct", "sdlogj", "min", "max", "mean"} <= set(jac)
    assert {"load", "inference", "warp", "write", "total"} <= set(report["timings_s"])
    fixed_img = nib.load(str(f))
    for name in ("moved.nii.gz", "jacobian.nii.gz", "moved_labels.nii.gz"):
        img = nib.load(str(out / name))
        assert img.shape == (48, 64)
        np.testing.assert_allclose(img.affine, fixed_img.affine, atol=1e-6)
    warp = nib.load(str(out / "warp.nii.gz"))
    assert warp.shape == (48, 64, 1, 1, 2) and int(warp.header["intent_code"]) == 1007
    moved_labels = np.asarray(nib.load(str(out / "moved_labels.nii.gz")).dataobj)
    assert set(np.unique(moved_labels)) <= {0, 1, 2, 3, 4}
    assert capsys.readouterr().out.strip().endswith("out")


def _itk_resample(moving_path, fixed_path, warp_path, nearest=False):
    sitk = pytest.importorskip("SimpleITK")
    moving = sitk.ReadImage(str(moving_path))
    fixed = sitk.ReadImage(str(fixed_path))
    field = sitk.ReadImage(str(warp_path))
    transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(moving, fixed, transform, interp, 0.0, moving.GetPixelID())
    return sitk.GetArrayFromImage(out).T  # SimpleITK arrays are (z, y, x)


def _check_itk(tmp_path, f, m, ml, out):
    moved = np.asarray(nib.load(str(out / "moved.nii.gz")).dataobj)
    itk_moved = _itk_resample(m, f, out / "warp.nii.gz")
    scale = float(np.abs(nib.load(str(m)).get_fdata()).max())
    err = np.abs(itk_moved - moved).max()
    assert err <= ITK_REL_ATOL * scale, f"SimpleITK vs moved.nii.gz: max |diff| {err:.3g} (range {scale:.3g})"
    itk_labels = _itk_resample(ml, f, out / "warp.nii.gz", nearest=True)
    ours = np.asarray(nib.load(str(out / "moved_labels.nii.gz")).dataobj)
    agree = float((itk_labels == ours).mean())
    assert agree >= 0.999, f"labels: SimpleITK nearest agrees on {100 * agree:.3f} % of voxels"
    report = json.loads((out / "report.json").read_text())
    assert report["displacement_mm"]["max"] > 0.5, "displacements too small for a meaningful interop test"
    return err, agree


def test_simpleitk_reproduces_moved_same_grid_2d(tmp_path, model2d):
    f, m, _, ml = case2d(tmp_path)
    out = tmp_path / "out"
    assert run_cli("--model", model2d, f, m, "-o", out, "--moving-labels", ml, "--threads", "1") == 0
    _check_itk(tmp_path, f, m, ml, out)


def test_simpleitk_reproduces_moved_different_grids_2d(tmp_path, model2d):
    moving_affine = affine2d(spacing=(1.5, 1.1), origin=(2.0, -1.0))
    f, m, _, ml = case2d(tmp_path, moving_affine=moving_affine, moving_shape=(40, 52))
    out = tmp_path / "out"
    assert run_cli("--model", model2d, f, m, "-o", out, "--moving-labels", ml, "--threads", "1") == 0
    _check_itk(tmp_path, f, m, ml, out)


def test_simpleitk_reproduces_moved_3d_las_fixed_oblique_moving(tmp_path, model3d):
    """3-D: a LAS fixed grid (reoriented for the network) and a rotated, anisotropic moving grid."""
    shape = (32, 16, 32)
    fixed_aff = np.diag([-1.2, 1.0, 1.5, 1.0])
    fixed_aff[:3, 3] = [20.0, -8.0, -24.0]
    theta = np.deg2rad(8.0)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    moving_aff = np.eye(4)
    moving_aff[:3, :3] = rot @ np.diag([1.1, 0.9, 1.4])
    moving_aff[:3, 3] = [-17.0, -6.0, -22.0]
    fixed, moving = smooth_image(shape, 2), smooth_image((30, 20, 34), 3)
    f = write(tmp_path / "fixed.nii.gz", fixed, fixed_aff)
    m = write(tmp_path / "moving.nii.gz", moving, moving_aff)
    ml = write(tmp_path / "moving_seg.nii.gz", labels_of(moving), moving_aff)
    out = tmp_path / "out"
    assert run_cli("--model", model3d, f, m, "-o", out, "--moving-labels", ml, "--threads", "1") == 0
    assert nib.load(str(out / "warp.nii.gz")).shape == (*shape, 1, 3)
    report = json.loads((out / "report.json").read_text())
    assert report["grid"]["reoriented"] is True
    _check_itk(tmp_path, f, m, ml, out)


def test_pairs_csv_batch(tmp_path, model2d):
    f, m, fl, ml = case2d(tmp_path)
    f2 = write(tmp_path / "fixed2.nii.gz", smooth_image((50, 70), 5), affine2d())
    m2 = write(tmp_path / "moving2.nii.gz", smooth_image((50, 70), 6), affine2d())
    table = tmp_path / "pairs.csv"
    with open(table, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["moving", "fixed", "moving_labels", "fixed_labels", "name"])
        w.writerow([m.name, f.name, ml.name, fl.name, "first pair"])
        w.writerow([str(m2), str(f2), "", "", ""])
    out = tmp_path / "batch"
    assert run_cli("--model", model2d, "--pairs", table, "-o", out, "--threads", "1") == 0
    assert names(out) == {"first_pair", "pair_001", "summary.csv"}
    assert names(out / "first_pair") == OUTPUTS | {"moved_labels.nii.gz"}
    assert names(out / "pair_001") == OUTPUTS
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["name"] for r in rows] == ["first_pair", "pair_001"]
    assert rows[0]["mean_dice"] and not rows[1]["mean_dice"]
    report = json.loads((out / "pair_001" / "report.json").read_text())
    assert report["grid"]["resampled"] is True and report["grid"]["network_shape"] == [48, 64]
    assert nib.load(str(out / "pair_001" / "moved.nii.gz")).shape == (50, 70)


def test_batch_without_tqdm_prints_lines(tmp_path, model2d, monkeypatch, capsys):
    f, m, _, _ = case2d(tmp_path)
    table = tmp_path / "pairs.csv"
    table.write_text(f"fixed,moving\n{f.name},{m.name}\n")
    monkeypatch.setitem(sys.modules, "tqdm", None)  # a torch-free install may lack tqdm
    assert run_cli("--model", model2d, "--pairs", table, "-o", tmp_path / "b", "--threads", "1") == 0
    assert "[1/1] pair_000" in capsys.readouterr().err
    assert (tmp_path / "b" / "pair_000" / "warp.nii.gz").exists()


def test_existing_output_needs_overwrite(tmp_path, model2d, capsys):
    f, m, _, _ = case2d(tmp_path)
    out = tmp_path / "out"
    assert run_cli("--model", model2d, f, m, "-o", out) == 0
    before = (out / "moved.nii.gz").stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli("--model", model2d, f, m, "-o", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "moved.nii.gz").stat().st_mtime_ns == before
    (out / "notes.txt").write_text("mine")
    assert run_cli("--model", model2d, f, m, "-o", out, "--overwrite", "-q") == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert not leftovers(tmp_path) and not leftovers(out)
    nan = smooth_image((48, 64), 9)
    nan[0, 0] = np.nan  # found while loading, after the staging folder inside OUT exists
    bad = write(tmp_path / "nan.nii.gz", nan, affine2d())
    assert run_cli("--model", model2d, f, bad, "-o", out, "--overwrite") == 2
    assert not leftovers(out) and (out / "moved.nii.gz").stat().st_mtime_ns > before


# ------------------------------------------------------------------------------------------------ bad input


def _bad_inputs(tmp_path, model2d, model3d):
    f, m, _, _ = case2d(tmp_path)
    text = tmp_path / "notes.nii.gz"
    text.write_text("hello")
    four = write(tmp_path / "four.nii.gz", np.zeros((8, 8, 8, 3), np.float32), np.eye(4))
    three = write(tmp_path / "three.nii.gz", smooth_image((32, 32, 16), 7), np.eye(4))
    nan = smooth_image((48, 64), 8)
    nan[4, 5] = np.nan
    nanf = write(tmp_path / "nan.nii.gz", nan, affine2d())
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(Path(model2d).read_bytes())  # an ONNX file without an FNOReg card
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    pairs_bad = tmp_path / "pairs_bad.csv"
    pairs_bad.write_text(f"moving,fixed\n{m},{f}\n{nanf},{f}\n")
    return {
        "missing file": (["--model", model2d, tmp_path / "nope.nii.gz", m], "does not exist"),
        "not an image": (["--model", model2d, text, m], "not a readable image"),
        "4-D image": (["--model", model2d, f, four], "4-D"),
        "different dims": (["--model", model2d, f, three], "is 2-D (48, 64) but moving image"),
        "model dims": (["--model", model3d, f, m], "the model tiny-fno-3d is 3D"),
        "NaNs": (["--model", model2d, f, nanf], "NaN"),
        "not an FNOReg export": (["--model", bare, f, m], "not an FNOReg export"),
        "not a model": (["--model", junk, f, m], "not a loadable ONNX model"),
        "missing model": (["--model", tmp_path / "nope.onnx", f, m], "does not exist"),
        "fixed labels alone": (["--model", model2d, f, m, "--fixed-labels", f], "--fixed-labels needs"),
        "bad pair in batch": (["--model", model2d, "--pairs", pairs_bad], "pair 'pair_001'"),
        "bad threads": (["--model", model2d, f, m, "--threads", "0"], "--threads"),
    }


CASES = ["missing file", "not an image", "4-D image", "different dims", "model dims", "NaNs",
         "not an FNOReg export", "not a model", "missing model", "fixed labels alone", "bad pair in batch",
         "bad threads"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exit_2_and_no_output(tmp_path, model2d, model3d, capsys, case):
    args, message = _bad_inputs(tmp_path, model2d, model3d)[case]
    out = tmp_path / "results" / "out"
    assert run_cli(*args, "-o", out) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("fnoreg-register: error:"), err
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "results").exists(), "output folders left behind"
    assert not leftovers(tmp_path)


def test_usage_errors_exit_2(capsys):
    assert main(["fixed.nii.gz", "moving.nii.gz"]) == 2  # --model and -o missing
    assert "required" in capsys.readouterr().err


def test_console_script_runs(tmp_path, model2d):
    """The installed entry point, as a user runs it (a fresh process)."""
    f, m, _, _ = case2d(tmp_path)
    script = Path(sys.executable).with_name("fnoreg-register")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "fnoreg_export.register_cli"]
    proc = subprocess.run(cmd + ["--model", str(model2d), str(f), str(m), "-o", str(tmp_path / "o"), "--threads", "1"],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(cmd + ["--model", str(model2d), str(f), str(tmp_path / "missing.nii.gz"), "-o",
                                 str(tmp_path / "o2")], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 2 and "fnoreg-register: error:" in proc.stderr
    assert not (tmp_path / "o2").exists()
