"""The worker turns every failure of a registration into one dialog, chosen by the exception's class."""

import pytest

pytest.importorskip("pytestqt")

import fnoreg_gui.worker as worker_mod  # noqa: E402
from fnoreg_core.io import ImageError  # noqa: E402
from fnoreg_export.model_card import ModelCardError  # noqa: E402
from fnoreg_export.runtime import BackendError  # noqa: E402
from fnoreg_gui.worker import RegisterWorker  # noqa: E402


class TooSmallError(ImageError):
    """A subclass of one of ours: same dialog as its base."""


class ForeignBackendError(RuntimeError):
    """Another library's error that happens to share a name with ours: not ours."""


ForeignBackendError.__name__ = "BackendError"


def _failure(qtbot, monkeypatch, exc):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(worker_mod, "register_pair", boom)
    w = RegisterWorker(None, None, "model.onnx", "onnxruntime-cpu")
    got = []
    w.failed.connect(lambda title, message: got.append((title, message)))
    w.run()                                       # in this thread: the signal is delivered at once
    assert len(got) == 1
    return got[0]


@pytest.mark.parametrize("exc, title", [
    (ModelCardError("no model card"), "Cannot use this model"),
    (BackendError("TensorRT is not installed"), "Backend not available"),
    (ImageError("the images are 2-D"), "Cannot register these images"),
    (TooSmallError("below the minimum"), "Cannot register these images"),
    (ValueError("bad value"), "Registration failed"),
])
def test_our_errors_are_plain_messages(qtbot, monkeypatch, exc, title):
    assert _failure(qtbot, monkeypatch, exc) == (title, str(exc))


def test_other_errors_show_their_class_and_traceback(qtbot, monkeypatch):
    title, message = _failure(qtbot, monkeypatch, KeyError("k"))
    assert title == "Registration failed" and message.startswith("KeyError: 'k'") and "Traceback" in message
    title, message = _failure(qtbot, monkeypatch, ForeignBackendError("some other library"))
    assert title == "Registration failed"      # a class name alone does not make it ours
    assert message.startswith("BackendError: some other library") and "Traceback" in message
