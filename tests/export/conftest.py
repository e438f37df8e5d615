"""Session fixtures: tiny FNO models exported once to dynamic ONNX with their cards."""

import pytest

from tiny_models import export_tiny


@pytest.fixture(scope="session")
def fno2d(tmp_path_factory):
    pytest.importorskip("onnx")
    return export_tiny(tmp_path_factory, "fno", 2)


@pytest.fixture(scope="session")
def fno3d(tmp_path_factory):
    pytest.importorskip("onnx")
    return export_tiny(tmp_path_factory, "fno", 3)
