"""Checkpoints: the model config, its weights and training state in one ``torch.save`` file.

Files from users are untrusted: they are read with ``torch.load(weights_only=True)`` only, so a
checkpoint holds plain containers, tensors, numbers and strings, never pickled objects.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "load_model", "CheckpointError"]

#: Written into every checkpoint; bump when the layout changes incompatibly.
CHECKPOINT_FORMAT = "fnoreg-checkpoint/1"


class CheckpointError(ValueError):
    """The file is missing, not a checkpoint, or not an FNOReg checkpoint."""


def save_checkpoint(path: str | Path, model, **extra: Any) -> Path:
    """Write ``{"format", "config", "state_dict", **extra}`` atomically (temp file + rename).

    ``config`` is :func:`fnoreg_core.models.config_to_dict` of ``model``; ``extra`` holds e.g.
    ``step``, ``optimizer``, ``metrics``, ``train_resolution``, ``intensity_norm`` (plain values only).
    """
    import torch

    from fnoreg_core.models import config_to_dict

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "config": config_to_dict(model), "state_dict": model.state_dict(), **extra}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) and check it is an FNOReg one.

    Raises
    ------
    CheckpointError
        Missing file, unreadable file, or a file without the FNOReg layout.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many types on junk (UnpicklingError, IndexError, ...)
        raise CheckpointError(
            f"{path} is not a readable FNOReg checkpoint ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}); "
            "expected a .pt file written by fnoreg-train"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not an FNOReg checkpoint (expected a dict with format {CHECKPOINT_FORMAT!r}); "
            "use a checkpoint written by fnoreg-train"
        )
    for key in ("config", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{path} has no {key!r} entry; it is damaged or from another tool")
    return payload


def load_model(path: str | Path, map_location: str = "cpu"):
    """Rebuild the model of a checkpoint with its weights, in eval mode.

    Returns
    -------
    (model, checkpoint dict)
    """
    from fnoreg_core.models import model_from_config

    ckpt = load_checkpoint(path, map_location)
    try:
        model = model_from_config(ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: the weights do not fit the stored config ({str(exc).splitlines()[0][:300]})") from None
    return model.eval(), ckpt
