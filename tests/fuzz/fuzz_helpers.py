"""Fuzz suite helpers (issue 18): tiny models, a zoo of malformed files, and the checks every case makes.

Every case asserts the same four things (:func:`check_refused`): the documented exit code / exception,
no traceback on the terminal, no partial output, and no user file changed. Sizes stay tiny (16-48
voxels per axis, the tiny exported models of tests/export/tiny_models.py) so that the suite runs in a
few minutes on 2 cores; ``FNOREG_FUZZ_EXAMPLES`` raises the number of hypothesis examples.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "export"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: hypothesis examples per property (CI default; raise for a longer hunt)
EXAMPLES = int(os.environ.get("FNOREG_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="session")
def tiny2d(tmp_path_factory):
    """(model, path) of the tiny dynamic 2-D ONNX model with its card."""
    pytest.importorskip("onnx")
    from tiny_models import export_tiny

    return export_tiny(tmp_path_factory, "fno", 2)


@pytest.fixture(autouse=True)
def _logs_in_tmp(tmp_path_factory, monkeypatch):
    """Internal-error logs go to a temp folder, not the user's ~/.cache."""
    monkeypatch.setenv("FNOREG_LOG_DIR", str(tmp_path_factory.getbasetemp() / "fnoreg-logs"))


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> content hash (files) / link target (links) / "dir" of everything under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def call(main, argv) -> tuple[int, str, str]:
    """Run a CLI ``main(argv)`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return int(code or 0), out.getvalue(), err.getvalue()


def check_refused(code: int, err: str, before: dict, root: Path, expected: int = 2, allow_new=()) -> None:
    """Exit ``expected``, one readable error and no traceback, nothing written, nothing changed."""
    assert code == expected, f"exit {code} (expected {expected}); stderr:\n{err[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    assert err.strip(), "a refusal must say why"
    after = snapshot(root)
    changed = {k for k in before if before[k] != after.get(k)}
    added = {k for k in after if k not in before and not any(k.startswith(a) for a in allow_new)}
    assert not changed, f"user files changed or removed: {sorted(changed)}"
    assert not added, f"partial output left behind: {sorted(added)}"


def write_nifti(path: Path, data, affine=None, header_dtype=None) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else np.asarray(affine), dtype=header_dtype)
    nib.save(img, str(path))
    return path


def smooth(shape, seed=0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return (gaussian_filter(np.random.default_rng(seed).random(shape), 2.0) * 100).astype(np.float32)


@pytest.fixture
def pair2d(tmp_path):
    """A valid tiny 2-D pair with labels in ``tmp_path/in``: dict of paths."""
    d = tmp_path / "in"
    d.mkdir()
    f, m = smooth((32, 48), 0), smooth((32, 48), 1)
    files = {"fixed": write_nifti(d / "fixed.nii.gz", f), "moving": write_nifti(d / "moving.nii.gz", m)}
    for role, img in (("fixed", f), ("moving", m)):
        files[f"{role}_labels"] = write_nifti(d / f"{role}_labels.nii.gz",
                                              np.digitize(img, np.quantile(img, [0.3, 0.6])).astype(np.int16))
    return files
