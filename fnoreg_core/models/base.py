"""Shared input checks of registration networks (moving, fixed) -> ddf_norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RegistrationNet", "pad_to_multiple", "crop_to"]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the spatial axes of ``x`` (B, C, *spatial) at their far ends to multiples of ``multiple``."""
    pads: list = []
    for n in reversed(x.shape[2:]):
        pads += [0, (-n) % multiple]
    return F.pad(x, pads)


def crop_to(y: torch.Tensor, spatial) -> torch.Tensor:
    """``y`` (B, C, *padded) cropped back to its first ``spatial`` voxels per axis (inverse of :func:`pad_to_multiple`)."""
    return y[(slice(None), slice(None)) + tuple(slice(0, n) for n in spatial)]


class RegistrationNet(nn.Module):
    """Base: ``forward(moving, fixed)`` -> displacement ``(B, dims, *spatial)`` in normalised units.

    The displacement follows :mod:`fnoreg_core.fields`: channel i moves along array axis i, in
    grid_sample units (align_corners=True), from the fixed grid into the moving image.
    """

    config: object
    arch: str

    @property
    def dims(self) -> int:
        return self.config.dims

    def min_spatial_size(self) -> tuple[int, ...]:
        """Smallest accepted spatial size per axis."""
        return (1,) * self.dims

    def size_multiple(self) -> int:
        """Spatial sizes must be multiples of this in a dynamic-shape ONNX export (1: any size)."""
        return 1

    def check_inputs(self, moving: torch.Tensor, fixed: torch.Tensor) -> None:
        """Raise ValueError unless moving and fixed are (B, 1, *spatial) of one shape and big enough."""
        d = self.dims
        for name, t in (("moving", moving), ("fixed", fixed)):
            if t.dim() != d + 2 or t.shape[1] != 1:
                raise ValueError(f"expected {name} of shape (B, 1, {d} spatial axes), got {tuple(t.shape)}")
        if moving.shape != fixed.shape:
            raise ValueError(f"expected moving and fixed of one shape, got {tuple(moving.shape)} and {tuple(fixed.shape)}")
        spatial = tuple(fixed.shape[2:])
        small = self.min_spatial_size()
        if all(isinstance(n, int) for n in spatial) and any(n < m for n, m in zip(spatial, small)):
            raise ValueError(
                f"spatial size {spatial} is below this model's minimum {small}; "
                f"resample the images to at least {small}"
            )
