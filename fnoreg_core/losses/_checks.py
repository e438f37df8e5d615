"""Input checks shared by the losses (private)."""

from __future__ import annotations

import torch

__all__: list[str] = []


def check_pair(pred: torch.Tensor, target: torch.Tensor, names: tuple[str, str] = ("pred", "target")) -> int:
    """Check two (B, C, *spatial) floating tensors of equal shape; return ndim (2 or 3)."""
    for name, t in zip(names, (pred, target)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"expected {name} to be a torch.Tensor, got {type(t).__name__}")
        if t.dim() not in (4, 5):
            raise ValueError(f"expected {name} of shape (B, C, H, W) or (B, C, D, H, W), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"expected a floating-point {name}, got dtype {t.dtype}")
    if pred.shape != target.shape:
        raise ValueError(
            f"expected {names[0]} and {names[1]} of the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    return pred.dim() - 2
