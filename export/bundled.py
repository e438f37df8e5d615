"""The files that ship with FNOReg (``assets/``: pretrained models, demo pairs), found in any install.

Where assets are looked for (the one documented lookup; the first that exists wins)
-----------------------------------------------------------------------------------
1. ``$FNOREG_ASSETS`` (a folder holding ``models/`` and/or ``demo/``); for models also
   ``$FNOREG_MODELS`` (a folder of model folders, as before);
2. the source checkout's ``assets/`` (a clone, or an editable install);
3. ``<sys.prefix>/share/fnoreg/assets`` (where ``pip install .`` puts them: ``data-files`` in
   pyproject.toml).

When none has them, :func:`demo_dir` / :func:`default_model` raise :class:`BundledModelError`
(a ``FileNotFoundError``) saying where they were looked for and how to point at them.

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
import sys
from pathlib import Path

__all__ = ["DEFAULT_MODELS", "BundledModelError", "models_dir", "bundled_models", "default_model",
           "default_model_name", "assets_dirs", "demo_dir"]

#: Default bundled model per image dimensionality.
DEFAULT_MODELS = {2: "fnoreg2d", 3: "fnoreg3d"}


class BundledModelError(FileNotFoundError):
    """The bundled model folder or file is missing (e.g. a checkout without ``assets/models``)."""


def assets_dirs() -> list[Path]:
    """The candidate ``assets`` folders, in lookup order (see the module docstring)."""
    out = []
    env = os.environ.get("FNOREG_ASSETS")
    if env:
        out.append(Path(env).expanduser())
    out.append(Path(__file__).resolve().parent.parent / "assets")  # source checkout / editable install
    out.append(Path(sys.prefix) / "share" / "fnoreg" / "assets")   # pip install . (data-files)
    return out


def _find(kind: str) -> Path | None:
    for root in assets_dirs():
        if (root / kind).is_dir():
            return root / kind
    return None


def models_dir() -> Path:
    """``$FNOREG_MODELS`` if set, else the first ``models`` folder of :func:`assets_dirs`.

    When none exists, the checkout's path (which does not exist) is returned; :func:`default_model`
    then says what to do.
    """
    env = os.environ.get("FNOREG_MODELS")
    if env:
        return Path(env).expanduser()
    return _find("models") or assets_dirs()[-2] / "models"


def demo_dir(required: bool = True) -> Path:
    """The bundled demo pairs (``assets/demo``: ``2d/``, ``3d_2mm/``, ``3d_1mm/``).

    Raises
    ------
    BundledModelError
        With ``required``, when no candidate folder holds them (else the checkout's path is returned).
    """
    found = _find("demo")
    if found is None and required:
        raise BundledModelError(
            "the bundled demo pairs are missing (looked in " + ", ".join(str(p / "demo") for p in assets_dirs())
            + "); set FNOREG_ASSETS to a folder holding demo/, or restore assets/demo from the repository "
              "(or rebuild it with `fnoreg-data demo`)")
    return found or assets_dirs()[-2] / "demo"


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
