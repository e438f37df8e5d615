"""fnoreg-eval on the 2D demo pair: a trained checkpoint, the identity and dipy baselines, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fnoreg_core.evaluate import _coordinate_map, main
from fnoreg_core.train import main as train_main

REPO = Path(__file__).resolve().parents[2]
DEMO_2D = f"pairs:{REPO / 'assets/demo/2d/pairs.csv'}"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "r"
    assert train_main(["--preset", "2d-cpu", "--model-option", "hidden_channels=4", "--model-option", "n_layers=1",
                       "--model-option", "n_modes=[8,8]", "--model-option", "projection_channels=8",
                       "--train-res", "32x32", "--steps", "2", "--val-pairs", "1", "--out", str(out),
                       "--no-progress"]) == 0
    return out / "last.pt"


def test_model_and_identity_on_the_demo_pair(tiny_checkpoint, tmp_path):
    out = tmp_path / "ev"
    assert main([str(tiny_checkpoint), "--data", DEMO_2D, "--res", "64x80", "--baselines", "none",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())["methods"]
    assert set(summary) == {"fnoreg-2d-cpu", "none"}
    # the demo pair's unregistered Dice at this size, from the label files themselves
    rows = list(csv.DictReader(open(out / "pairs.csv")))
    assert len(rows) == 2 and 0.3 < summary["none"]["mean_dice"] < 0.7
    assert summary["none"]["nonpositive_jac_pct"] == 0.0
    assert "| none | 1 |" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_dipy_affine_baseline_improves_dice_without_folding(tmp_path):
    pytest.importorskip("dipy", reason="the affine/syn baselines need dipy (pip install dipy)")
    out = tmp_path / "ev"
    assert main(["--dims", "2", "--data", DEMO_2D, "--res", "80x96", "--baselines", "none,affine",
                 "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())["methods"]
    assert s["affine"]["mean_dice"] > s["none"]["mean_dice"]
    assert s["affine"]["nonpositive_jac_pct"] == 0.0


def test_coordinate_map_of_a_shift_is_the_shift():
    from scipy.ndimage import shift

    ddf = _coordinate_map(lambda img: shift(img, (0, -2), order=1, cval=0.0), (10, 12))
    inside = np.isfinite(ddf[0])
    assert np.allclose(ddf[1][inside], 2.0) and np.allclose(ddf[0][inside], 0.0)
    assert not inside[:, -2:].any()


@pytest.mark.parametrize("argv,message", [
    (["/no/model.pt", "--data", "synth"], "does not exist"),
    (["--data", "synth", "--res", "32x32", "--dims", "2", "--baselines", "elastix"], "unknown baseline"),
    (["--data", "synth", "--res", "32x32"], "give a model or --dims"),
])
def test_bad_input_exits_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_a_file_that_is_not_a_checkpoint_exits_2(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main([str(bad), "--data", "synth", "--res", "32x32", "--out", str(tmp_path / "o")]) == 2
    assert "not a readable FNOReg checkpoint" in capsys.readouterr().err


def test_warp_nearest_writes_zero_outside_like_the_runtime():
    """Issue 13 bug: fnoreg-eval clamped labels at the border (edge label outside the image) while the
    runtime writes 0 there, so the two could report different Dice for one field."""
    from fnoreg_core.evaluate import _warp_nearest
    from fnoreg_core.geometry import pull

    labels = np.arange(1, 13, dtype=np.int16).reshape(3, 4)
    ddf = np.zeros((2, 3, 4), np.float32)
    ddf[1] = 2.0  # two voxels along axis 1: the last two columns read beyond the image
    out = _warp_nearest(labels, ddf)
    assert out.dtype == labels.dtype
    np.testing.assert_array_equal(out[:, :2], labels[:, 2:])
    np.testing.assert_array_equal(out[:, 2:], 0)  # before the fix: the edge column repeated
    eye = np.eye(3)
    np.testing.assert_array_equal(out, pull(labels, eye, eye, labels.shape, ddf, order=0))  # the runtime's sampler
    ddf[1] = 0.4  # less than half a voxel outside: still the edge voxel (ITK's rule)
    assert _warp_nearest(labels, ddf)[0, 3] == labels[0, 3]
