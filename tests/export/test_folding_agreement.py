"""The four entry points score one field alike: % J <= 0 and SDlogJ (issue 21, point 3).

fnoreg-register, the headless demo (``python -m fnoreg_export.demo``) and the GUI state register the
bundled 3-D model on the 2 mm demo pair; fnoreg-eval scores the field fnoreg-register wrote
(``warp.nii.gz``, read back into voxels) on the same pair. fnoreg-eval used to pass the voxel
field together with the 2 mm spacing to the Jacobian and so undercounted folding (0.001 % instead
of 0.219 % on this pair).
"""

import json
import re

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def one_pipeline():
    """Every entry point runs the same stages (the runtime's default ``PipelineOptions()``), so that
    they produce one field; what each does with it (report.json, the demo's print-out, the GUI's
    report) is their own code. Their default options may differ (fnoreg-register refines)."""
    from fnoreg_export.runtime import PipelineOptions, Registrator

    register = Registrator.register

    def same_stages(self, **kwargs):
        kwargs["pipeline"] = PipelineOptions()
        return register(self, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Registrator, "register", same_stages)
        yield


@pytest.fixture(scope="module")
def demo_pair():
    from fnoreg_export.bundled import BundledModelError, default_model, demo_dir

    try:
        folder, model = demo_dir() / "3d_2mm", default_model(3)
    except BundledModelError as exc:
        pytest.skip(str(exc))
    return folder, model


@pytest.fixture(scope="module")
def registered(demo_pair, tmp_path_factory):
    """fnoreg-register on the demo pair: (report.json, the written field in voxels of the fixed grid)."""
    import nibabel as nib

    from fnoreg_export.register_cli import main as register_main

    folder, model = demo_pair
    out = tmp_path_factory.mktemp("register")
    code = register_main([str(folder / "fixed.nii.gz"), str(folder / "moving.nii.gz"), "--model", str(model),
                          "-o", str(out), "--moving-labels", str(folder / "moving_labels.nii.gz"),
                          "--fixed-labels", str(folder / "fixed_labels.nii.gz"), "--overwrite", "-q"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    warp = nib.load(str(out / "warp.nii.gz"))
    lps = np.asarray(warp.dataobj, np.float64)[:, :, :, 0, :]            # (X, Y, Z, 3), LPS mm
    ras = lps * np.array([-1.0, -1.0, 1.0])
    inv = np.linalg.inv(warp.affine[:3, :3])
    ddf_vox = np.einsum("ij,xyzj->ixyz", inv, ras)                       # voxels along each array axis
    return report, ddf_vox, nib.load(str(out / "jacobian.nii.gz"))


def _spacing_of(folder):
    import nibabel as nib

    return tuple(float(s) for s in nib.load(str(folder / "fixed.nii.gz")).header.get_zooms()[:3])


def test_register_report_is_the_metric_of_its_field(demo_pair, registered):
    """fnoreg-register's numbers are those of the field and Jacobian it writes; a mm field with its
    spacing gives the same J as the voxel field (the rule fnoreg-eval broke)."""
    from fnoreg_core.metrics import folding_fraction, jacobian_determinant, sdlogj

    report, ddf_vox, jac_img = registered
    spacing = _spacing_of(demo_pair[0])
    assert spacing == (2.0, 2.0, 2.0)
    jac = jacobian_determinant(ddf_vox)
    ddf_mm = ddf_vox * np.array(spacing).reshape(3, 1, 1, 1)
    np.testing.assert_allclose(jacobian_determinant(ddf_mm, spacing), jac, atol=1e-9)
    assert folding_fraction(jac)["nonpositive_pct"] == pytest.approx(report["jacobian"]["nonpositive_pct"], abs=1e-3)
    assert sdlogj(jac) == pytest.approx(report["jacobian"]["sdlogj"], rel=2e-3, abs=2e-3)
    written = np.asarray(jac_img.dataobj, np.float64)
    assert 100.0 * np.mean(written <= 0) == pytest.approx(report["jacobian"]["nonpositive_pct"], abs=1e-3)
    assert report["jacobian"]["nonpositive_pct"] > 0  # the check means something only with folding


def test_four_entry_points_agree(demo_pair, registered, tmp_path, capsys):
    from fnoreg_core.evaluate import main as eval_main
    from fnoreg_export.demo import main as demo_main
    from fnoreg_gui.pipeline import register_pair
    from fnoreg_gui.state import ViewerState

    folder, model = demo_pair
    report, ddf_vox, _ = registered
    ref = (report["jacobian"]["nonpositive_pct"], report["jacobian"]["sdlogj"])

    # fnoreg-eval on the same pair, its predictor returning fnoreg-register's field
    def loader(path, threads):
        return (lambda moving, fixed: ddf_vox.astype(np.float32)), {"dims": 3, "name": "fnoreg3d", "min_size": (16,) * 3}

    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"")
    code = eval_main([str(fake), "--data", f"pairs:{folder / 'pairs.csv'}", "--out", str(tmp_path / "eval")],
                     loaders={".onnx": loader})
    assert code == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())["methods"]["fnoreg3d"]
    evaluated = (summary["nonpositive_jac_pct"], summary["sdlogj"])

    # the headless demo (prints 3 decimals)
    capsys.readouterr()
    assert demo_main([]) == 0
    line = re.search(r"J <= 0\): ([0-9.]+) %\s+SDlogJ: ([0-9.]+)", capsys.readouterr().out)
    assert line, "the demo no longer prints its folding line"
    demo = (float(line.group(1)), float(line.group(2)))

    # the GUI: the state's report of a registration run by the GUI's pipeline
    st = ViewerState()
    st.load_pair(folder / "fixed.nii.gz", folder / "moving.nii.gz")
    res, moved_labels, _ = register_pair(st.fixed, st.moving, model, "onnxruntime-cpu")
    st.set_result(res, moved_labels)
    gui = (st.report()["result"]["nonpositive_jac_pct"], st.report()["result"]["sdlogj"])

    for name, (fold, sd) in {"fnoreg-eval": evaluated, "demo": demo, "gui": gui}.items():
        assert fold == pytest.approx(ref[0], abs=2e-3), f"{name}: % J <= 0 {fold} vs fnoreg-register {ref[0]}"
        assert sd == pytest.approx(ref[1], abs=2e-3), f"{name}: SDlogJ {sd} vs fnoreg-register {ref[1]}"
