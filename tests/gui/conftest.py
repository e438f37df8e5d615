"""GUI tests: offscreen Qt, tiny exported models, ``fnoreg_gui`` importable from this checkout's gui/."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]


def _ensure_fnoreg_gui():
    # An install that predates gui/ has no fnoreg_gui: map this checkout's gui/ folder to the name.
    try:
        import fnoreg_gui  # noqa: F401
        if Path(fnoreg_gui.__file__).resolve().parent == ROOT / "gui":
            return
    except ImportError:
        pass
    for name in [m for m in sys.modules if m == "fnoreg_gui" or m.startswith("fnoreg_gui.")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location("fnoreg_gui", ROOT / "gui" / "__init__.py",
                                                  submodule_search_locations=[str(ROOT / "gui")])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fnoreg_gui"] = mod
    spec.loader.exec_module(mod)


_ensure_fnoreg_gui()
sys.path.insert(0, str(ROOT / "tests" / "export"))

DEMO = ROOT / "assets" / "demo"


@pytest.fixture(scope="session")
def demo_dir():
    return DEMO


@pytest.fixture(scope="session")
def model2d(tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    from tiny_models import export_tiny

    return export_tiny(tmp_path_factory, "fno", 2)[1]


@pytest.fixture(scope="session")
def model3d(tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    from tiny_models import export_tiny

    return export_tiny(tmp_path_factory, "fno", 3)[1]


@pytest.fixture(scope="session")
def bundled_dir(tmp_path_factory, model2d, model3d):
    """A FNOREG_MODELS folder laid out like assets/models, holding the tiny models as fnoreg2d / fnoreg3d."""
    import shutil

    root = tmp_path_factory.mktemp("bundled_models")
    for name, path in (("fnoreg2d", model2d), ("fnoreg3d", model3d)):
        (root / name).mkdir()
        shutil.copy(path, root / name / "model.onnx")
        shutil.copy(path.with_name(path.name + ".json"), root / name / "model.onnx.json")
    return root


@pytest.fixture(autouse=True)
def no_bundled_models(monkeypatch, tmp_path):
    """Tests see no bundled models unless they point FNOREG_MODELS at ``bundled_dir`` themselves."""
    monkeypatch.setenv("FNOREG_MODELS", str(tmp_path / "no_models"))
