"""Issue 13: the runtime's rooms (backends, registrator, outputs) and the bugs fixed with the split.

* the runtime refuses images below the model's minimum size (it used to upsample them silently);
* ``read_card`` reads the embedded card without an inference session (it used to open one, so a
  Registrator loaded every ONNX model twice);
* one writer: fnoreg-register and the GUI (which works on the RAS+ reorientation) write the same
  files with the same report keys on the fixed file's own grid.
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from fnoreg_core.io import ImageError, load_image

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from fnoreg_export.model_card import ModelCard, embed_card, read_card  # noqa: E402
from fnoreg_export.runtime import Registrator, check_size  # noqa: E402
from fnoreg_export.runtime.outputs import OUTPUT_FILES, REPORT_KEYS, write_outputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_register_refuses_images_below_the_minimum_size(fno2d):
    reg = Registrator.load(fno2d[1], backend="onnxruntime-cpu", threads=1)  # card: min 16 x 16
    rng = np.random.default_rng(0)
    small = rng.random((12, 40)).astype(np.float32)
    with pytest.raises(ImageError, match="below the minimum"):  # before: silently upsampled to 16 x 48
        reg.register(fixed=small, moving=small)
    with pytest.raises(ImageError, match="12x40 voxels"):
        check_size(reg.card, (12, 40))
    check_size(reg.card, (16, 40))  # at the minimum: fine


def test_pair_arguments_are_keyword_only(fno2d):
    reg = Registrator.load(fno2d[1], backend="onnxruntime-cpu", threads=1)
    x = np.zeros((32, 48), np.float32)
    with pytest.raises(TypeError):
        reg.register(x, x)  # two arrays of one shape would swap silently
    with pytest.raises(TypeError):
        reg.predict(x, x)


def test_read_card_opens_no_session(fno2d, tmp_path, monkeypatch):
    model, path = fno2d
    onnx_path = tmp_path / "embedded.onnx"  # no sidecar: the card is read from the ONNX metadata
    onnx_path.write_bytes(path.read_bytes())
    embed_card(onnx_path, ModelCard.load(path.with_name(path.name + ".json")))
    sessions = []
    real = ort.InferenceSession

    def counting(*args, **kwargs):
        sessions.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    card = read_card(onnx_path)
    assert card.name == "tiny-fno-2d" and sessions == []  # before: one session just for the metadata
    Registrator.load(onnx_path, backend="onnxruntime-cpu", threads=1)
    assert len(sessions) == 1  # before: 2 (read_card + the runtime's own)


def _las_pair(shape=(32, 16, 32)):
    rng = np.random.default_rng(3)
    aff = np.diag([-1.2, 1.0, 1.5, 1.0])
    aff[:3, 3] = [40.0, -30.0, -20.0]
    fixed, moving = (rng.random(shape) * 100).astype(np.float32), (rng.random(shape) * 100).astype(np.float32)
    return fixed, moving, aff


def test_cli_and_gui_write_the_same_files_on_the_native_grid(fno3d, tmp_path):
    """fnoreg-register registers the file as stored; the GUI its RAS+ reorientation. One writer puts
    both on the fixed file's own grid: same names, same report keys, the same voxels."""
    _, path = fno3d
    fixed, moving, aff = _las_pair()
    for name, arr in (("f", fixed), ("m", moving)):
        nib.save(nib.Nifti1Image(arr, aff), tmp_path / f"{name}.nii.gz")
    reg = Registrator.load(path, backend="onnxruntime-cpu", threads=1)
    native = reg.register(fixed=load_image(tmp_path / "f.nii.gz", canonical=False),
                          moving=load_image(tmp_path / "m.nii.gz", canonical=False))
    ras_f, ras_m = load_image(tmp_path / "f.nii.gz"), load_image(tmp_path / "m.nii.gz")  # the GUI's view
    ras = reg.register(fixed=ras_f, moving=ras_m)
    assert not np.allclose(ras_f.affine, aff)  # the GUI's grid really differs
    (tmp_path / "cli").mkdir()
    (tmp_path / "gui").mkdir()
    rep_cli = write_outputs(tmp_path / "cli", native)
    rep_gui = write_outputs(tmp_path / "gui", ras, native_grid=(fixed.shape, aff))
    assert tuple(rep_cli) == tuple(rep_gui) == REPORT_KEYS
    for key in ("moved", "warp", "jacobian"):
        a, b = (nib.load(tmp_path / side / OUTPUT_FILES[key]) for side in ("cli", "gui"))
        assert a.shape == b.shape and np.allclose(a.affine, aff) and np.allclose(b.affine, aff)
        np.testing.assert_allclose(b.get_fdata(), a.get_fdata(), rtol=1e-4, atol=1e-4)
    assert json.loads((tmp_path / "gui" / "report.json").read_text())["outputs"]["warp"] == "warp.nii.gz"
    with pytest.raises(ValueError, match="RAS"):
        write_outputs(tmp_path / "gui", ras, native_grid=((8, 8, 8), np.eye(4)))


def test_fnoreg_core_never_imports_fnoreg_export():
    import re

    pattern = re.compile(r"^\s*(from|import)\s+fnoreg_export\b", re.M)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "fnoreg_core").rglob("*.py")
                 if pattern.search(p.read_text())]
    assert offenders == []
