"""Bundled models: lookup, FNOREG_MODELS override, fnoreg-register's default model."""

from __future__ import annotations

import shutil

import pytest

from fnoreg_export.bundled import BundledModelError, bundled_models, default_model, default_model_name, models_dir
from fnoreg_export.register_cli import main


def _bundle(root, name, onnx_path):
    folder = root / name
    folder.mkdir(parents=True)
    shutil.copy(onnx_path, folder / "model.onnx")
    shutil.copy(onnx_path.with_name(onnx_path.name + ".json"), folder / "model.onnx.json")
    return folder / "model.onnx"


def test_lookup_and_override(tmp_path, monkeypatch, fno2d):
    monkeypatch.setenv("FNOREG_MODELS", str(tmp_path))
    assert models_dir() == tmp_path and bundled_models() == {}
    with pytest.raises(BundledModelError, match="--model"):
        default_model(2)
    path = _bundle(tmp_path, "fnoreg2d", fno2d[1])
    assert default_model(2) == path and bundled_models() == {"fnoreg2d": path}
    assert default_model_name(3) == "fnoreg3d"
    with pytest.raises(ValueError, match="4-D"):
        default_model_name(4)


def test_register_uses_the_bundled_model(tmp_path, monkeypatch, fno2d, capsys):
    from test_register_cli import case2d

    monkeypatch.setenv("FNOREG_MODELS", str(tmp_path / "models"))
    f, m, _, _ = case2d(tmp_path)
    assert main([str(f), str(m), "-o", str(tmp_path / "none"), "-q"]) == 2
    assert "bundled 2-D model" in capsys.readouterr().err and not (tmp_path / "none").exists()
    _bundle(tmp_path / "models", "fnoreg2d", fno2d[1])
    assert main([str(f), str(m), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert (tmp_path / "out" / "moved.nii.gz").is_file()


def test_shipped_models_have_cards_and_checkpoints():
    from fnoreg_export.bundled import DEFAULT_MODELS
    from fnoreg_export.model_card import read_card

    root = models_dir()
    if not (root / DEFAULT_MODELS[3] / "model.onnx").is_file():
        pytest.skip(f"no bundled models in {root}")
    for dims, name in DEFAULT_MODELS.items():
        folder = root / name
        card = read_card(folder / "model.onnx")
        assert card.dims == dims and card.name == name
        assert (folder / "checkpoint.pt").is_file() and (folder / "MODEL_CARD.md").is_file()
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total <= 40 * 2**20, f"assets/models holds {total / 2**20:.1f} MB > 40 MB"


def test_headless_demo_prints_the_report(tmp_path, monkeypatch, fno2d, capsys):
    from fnoreg_export import demo

    monkeypatch.setenv("FNOREG_MODELS", str(tmp_path / "models"))
    assert demo.main(["--pair", "2d"]) == 2
    assert "--model" in capsys.readouterr().err
    _bundle(tmp_path / "models", "fnoreg2d", fno2d[1])
    assert demo.main(["--pair", "2d", "--threads", "1", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "Dice before" in out and "Left-Thalamus" in out and "folded voxels" in out and "s per pair" in out
    assert (tmp_path / "out" / "warp.nii.gz").is_file() and (tmp_path / "out" / "report.json").is_file()


@pytest.mark.slow
def test_non_editable_install_finds_models_and_demo(tmp_path):
    """`pip install .` (a wheel, not editable) ships assets/ as data files that the lookup finds."""
    import site
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if not (root / "assets" / "models" / "fnoreg2d" / "model.onnx").is_file():
        pytest.skip("no bundled models in this checkout")
    src = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    for name in ("fnoreg_core", "export", "gui", "assets"):
        shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, timeout=600)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    venv_site = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                               capture_output=True, text=True).stdout.strip()
    Path(venv_site, "zz_deps.pth").write_text(site.getsitepackages()[0] + "\n")  # numpy, onnxruntime, ...
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", *map(str, wheels.glob("*.whl"))], check=True,
                   timeout=300)
    code = ("import fnoreg_export, sys; from fnoreg_export.bundled import default_model, demo_dir\n"
            "assert fnoreg_export.__file__.startswith(sys.prefix), fnoreg_export.__file__\n"
            "print(default_model(2), demo_dir())")
    out = subprocess.run([str(py), "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert str(venv / "share" / "fnoreg" / "assets") in out.stdout
    demo = subprocess.run([str(py), "-m", "fnoreg_export.demo", "--pair", "2d", "--threads", "1"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0 and "Dice after" in demo.stdout, demo.stderr
