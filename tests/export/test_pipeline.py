"""The registration pipeline (issue 14): affine -> network -> refinement, one composed warp that ITK reads.

Runs the bundled 3-D model on the 2 mm demo pair (Colin27 -> fsaverage) where the stages are
scored, and a tiny exported model elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from fnoreg_export.register_cli import main
from fnoreg_export.runtime import NETWORK_ONLY, PipelineOptions, Registrator, RunInterrupted, parse_refine

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "assets" / "demo" / "3d_2mm"
MODEL3D = ROOT / "assets" / "models" / "fnoreg3d" / "model.onnx"
sitk = pytest.importorskip("SimpleITK")

pytestmark = pytest.mark.skipif(not MODEL3D.is_file(), reason="bundled fnoreg3d model missing")


def _demo_args(out: Path, *extra: str) -> list[str]:
    return [str(DEMO / "fixed.nii.gz"), str(DEMO / "moving.nii.gz"), "-o", str(out), "--threads", "2", "-q",
            "--moving-labels", str(DEMO / "moving_labels.nii.gz"), "--fixed-labels", str(DEMO / "fixed_labels.nii.gz"),
            *extra]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "out"
    assert main(_demo_args(out, "--refine", "20x2")) == 0
    return out, json.loads((out / "report.json").read_text())


def test_every_stage_is_reported_and_the_affine_and_refinement_improve_dice(demo_run):
    out, report = demo_run
    stages = {r["stage"]: r for r in report["stages"]}
    assert list(stages) == ["working_grid", "affine", "network", "refine"]
    per = report["dice"]["per_stage"]
    assert per["none"] == pytest.approx(0.4338, abs=1e-3)  # the demo pair's unregistered Dice
    assert stages["affine"]["applied"] and per["affine"] > per["none"] + 0.1
    assert per["refine"] > per["network"] and per["refine"] > per["affine"]
    assert report["dice"]["mean"] == pytest.approx(per["refine"])
    assert report["jacobian"]["nonpositive_pct"] < 0.1
    for name in ("moved.nii.gz", "warp.nii.gz", "warp_deformable.nii.gz", "affine.txt", "jacobian.nii.gz",
                 "moved_labels.nii.gz", "report.json"):
        assert (out / name).is_file(), name


def _sitk_moved(out: Path, transform) -> np.ndarray:
    fixed = sitk.ReadImage(str(DEMO / "fixed.nii.gz"), sitk.sitkFloat32)
    moving = sitk.ReadImage(str(DEMO / "moving.nii.gz"), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0))


def test_the_composed_warp_alone_and_affine_then_deformable_agree_with_moved(demo_run):
    """SimpleITK resampling with warp.nii.gz (affine included) reproduces moved.nii.gz; so does the
    composite [affine.txt, warp_deformable.nii.gz] (ANTs order: the deformable part first)."""
    out, _ = demo_run
    ours = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "moved.nii.gz"), sitk.sitkFloat32))
    rng = float(ours.max() - ours.min())
    field = sitk.ReadImage(str(out / "warp.nii.gz"), sitk.sitkVectorFloat64)
    composed = _sitk_moved(out, sitk.DisplacementFieldTransform(field))
    assert np.abs(composed - ours).max() <= 1e-4 * rng
    deformable = sitk.ReadImage(str(out / "warp_deformable.nii.gz"), sitk.sitkVectorFloat64)
    chain = sitk.CompositeTransform([sitk.ReadTransform(str(out / "affine.txt")),
                                     sitk.DisplacementFieldTransform(deformable)])
    chained = _sitk_moved(out, chain)
    inside = ours > 0
    assert np.abs(chained - ours)[inside].max() <= 1e-3 * rng


def test_moved_labels_follow_the_composed_warp(demo_run):
    out, _ = demo_run
    field = sitk.ReadImage(str(out / "warp.nii.gz"), sitk.sitkVectorFloat64)
    fixed = sitk.ReadImage(str(DEMO / "fixed_labels.nii.gz"))
    moving = sitk.ReadImage(str(DEMO / "moving_labels.nii.gz"))
    theirs = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, sitk.DisplacementFieldTransform(field),
                                                  sitk.sitkNearestNeighbor, 0))
    ours = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "moved_labels.nii.gz")))
    assert (theirs == ours).mean() > 0.999


def test_a_given_affine_file_is_used_and_written_back(tmp_path, demo_run):
    out, report = demo_run
    given = tmp_path / "given.txt"
    given.write_text((out / "affine.txt").read_text())
    out2 = tmp_path / "out2"
    assert main(_demo_args(out2, "--affine", str(given), "--refine", "off")) == 0
    rep2 = json.loads((out2 / "report.json").read_text())
    stage = next(r for r in rep2["stages"] if r["stage"] == "affine")
    assert stage["mode"] == "file" and stage["applied"]
    np.testing.assert_allclose(rep2["affine_ras"], report["affine_ras"], atol=1e-9)
    assert rep2["dice"]["per_stage"]["affine"] == pytest.approx(report["dice"]["per_stage"]["affine"], abs=1e-9)


@pytest.mark.parametrize("content,message", [
    ("garbage\n", "not an ITK/ANTs transform"),
    ("#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
     "Parameters: 0 0 0 0 0 0 0 0 0 0 0 0\nFixedParameters: 0 0 0\n", "singular"),
    ("#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
     "Parameters: 1 0 0 0 1 0 0 0 1 5000 0 0\nFixedParameters: 0 0 0\n", "does not overlap"),
])
def test_bad_affine_files_exit_2_and_write_nothing(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    out = tmp_path / "out"
    assert main(_demo_args(out, "--affine", str(bad), "--refine", "off")) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert bad.read_text() == content  # the user's file untouched


@pytest.mark.parametrize("args,message", [
    (["--refine", "lots"], "--refine expects"),
    (["--work-res", "3mm"], "--work-res expects"),
    (["--refine-time", "0"], "--refine-time"),
    (["--affine", "/no/such/affine.txt"], "does not exist"),
])
def test_bad_stage_options_exit_2(tmp_path, capsys, args, message):
    assert main(_demo_args(tmp_path / "out", *args)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_network_only_matches_the_earlier_runtime_and_stages_can_be_switched_off():
    reg = Registrator.load(MODEL3D, threads=2)
    fixed, moving = nib.load(DEMO / "fixed.nii.gz"), nib.load(DEMO / "moving.nii.gz")
    only = reg.register(fixed=fixed, moving=moving, pipeline=NETWORK_ONLY)
    assert [r["stage"] for r in only.stages] == ["working_grid", "affine", "network"]
    assert not only.stages[1]["applied"] and np.array_equal(only.affine_ras, np.eye(4))
    np.testing.assert_allclose(only.ddf_mm, only.ddf_mm_deformable, atol=1e-5)
    aff_only = reg.register(fixed=fixed, moving=moving,
                            pipeline=PipelineOptions(network=False, refine=None, threads=2))
    assert [r["stage"] for r in aff_only.stages] == ["working_grid", "affine"]
    assert not np.any(aff_only.ddf_mm_deformable)


def test_work_res_maps_the_field_to_the_native_grid(tmp_path):
    """A 1 mm pair registered on the 2 mm working grid: outputs on the 1 mm grid, Dice kept."""
    one = ROOT / "assets" / "demo" / "3d_1mm"
    reg = Registrator.load(MODEL3D, threads=2)
    opts = PipelineOptions(refine=None, threads=2)
    res = reg.register(fixed=nib.load(one / "fixed.nii.gz"), moving=nib.load(one / "moving.nii.gz"), pipeline=opts)
    grid = next(r for r in res.stages if r["stage"] == "working_grid")
    assert grid["shape"] == [80, 96, 112] and res.fixed_shape == (160, 192, 224)
    from fnoreg_core.metrics import mean_dice

    fixed_labels = np.asarray(nib.load(one / "fixed_labels.nii.gz").dataobj)
    moved = reg.warp_labels(nib.load(one / "moving_labels.nii.gz"), res)
    assert mean_dice(moved, fixed_labels) > 0.55


def test_interrupt_during_refinement_raises_and_the_registrator_still_works():
    import threading
    import time

    reg = Registrator.load(MODEL3D, threads=2)
    fixed, moving = nib.load(DEMO / "fixed.nii.gz"), nib.load(DEMO / "moving.nii.gz")
    seen, outcome = [], {}

    def progress(stage, fraction):
        seen.append(stage)
        if stage == "refine" and fraction > 0.55:
            reg.interrupt()

    def run():
        try:
            reg.register(fixed=fixed, moving=moving, progress=progress,
                         pipeline=PipelineOptions(refine=parse_refine("200x0"), threads=2))
            outcome["error"] = None
        except RunInterrupted as exc:
            outcome["error"] = exc

    t0 = time.perf_counter()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    assert isinstance(outcome.get("error"), RunInterrupted), outcome
    assert "refine" in seen and time.perf_counter() - t0 < 60
    res = reg.register(fixed=fixed, moving=moving, pipeline=NETWORK_ONLY)  # still usable
    assert res.moved.shape == (80, 96, 112)


def test_an_image_registered_to_itself_stays_the_identity():
    """Issue 21 (8): identical inputs give (near) zero displacement through every stage."""
    reg = Registrator.load(MODEL3D, threads=2)
    fixed = nib.load(DEMO / "fixed.nii.gz")
    res = reg.register(fixed=fixed, moving=fixed, pipeline=PipelineOptions(refine=parse_refine("default"), threads=2))
    mag = np.sqrt((res.ddf_vox ** 2).sum(0))
    assert mag.mean() < 0.1 and res.folding["nonpositive_pct"] == 0
    stages = {r["stage"]: r for r in res.stages}
    assert not stages["affine"]["applied"] and not stages["network"]["applied"]
    assert "not applied" in stages["network"]["note"]
