"""The pretrained models that ship with FNOReg (``assets/models/``), found without torch.

Layout of one bundled model ``assets/models/<name>/``::

    model.onnx          dynamic-shape ONNX export (the runtime's default input)
    model.onnx.json     its model card (also embedded in the ONNX metadata)
    checkpoint.pt       the weights (``torch.load(weights_only=True)``), no optimiser state
    MODEL_CARD.md       intended use, training data, resolution range, measured metrics, limits, licence

``FNOREG_MODELS`` (a folder of the same layout) overrides the checkout's ``assets/models``.

>>> default_model_name(3)
'fnoreg3d'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_MODELS", "BundledModelError", "models_dir", "bundled_models", "default_model",
           "default_model_name"]

#: Default bundled model per image dimensionality.
DEFAULT_MODELS = {2: "fnoreg2d", 3: "fnoreg3d"}


class BundledModelError(FileNotFoundError):
    """The bundled model folder or file is missing (e.g. a checkout without ``assets/models``)."""


def models_dir() -> Path:
    """``$FNOREG_MODELS`` if set, else ``assets/models`` of the source checkout."""
    env = os.environ.get("FNOREG_MODELS")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "assets" / "models"


def bundled_models() -> dict[str, Path]:
    """``{name: path of model.onnx}`` for every bundled model present, sorted by name."""
    root = models_dir()
    if not root.is_dir():
        return {}
    return {p.parent.name: p for p in sorted(root.glob("*/model.onnx"))}


def default_model_name(dims: int) -> str:
    if dims not in DEFAULT_MODELS:
        raise ValueError(f"expected 2-D or 3-D images, got {dims}-D")
    return DEFAULT_MODELS[dims]


def default_model(dims: int) -> Path:
    """The bundled ONNX model for ``dims``-D images.

    Raises
    ------
    BundledModelError
        When it is not there; the message says how to pass a model instead.
    """
    name = default_model_name(dims)
    path = models_dir() / name / "model.onnx"
    if not path.is_file():
        raise BundledModelError(
            f"the bundled {dims}-D model {path} is missing; pass a model with --model (an FNOReg .onnx export "
            f"or TensorRT engine), or set FNOREG_MODELS to a folder holding {name}/model.onnx")
    return path
