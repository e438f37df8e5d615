"""VoxelMorph baseline: MONAI's ``VoxelMorphUNet`` (the published vxm-2 U-Net) predicting a DDF.

References
----------
.. [1] Balakrishnan, G. et al. "VoxelMorph: A Learning Framework for Deformable Medical Image
   Registration", IEEE TMI 2019. MONAI ``monai.networks.nets.VoxelMorphUNet``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.nets import VoxelMorphUNet

from .base import RegistrationNet, crop_to, pad_to_multiple
from .registry import register_model

__all__ = ["VoxelMorphConfig", "VoxelMorph"]


@dataclass(frozen=True)
class VoxelMorphConfig:
    """U-Net widths of VoxelMorph-2 (encoder 16-32-32-32, decoder 32-32-32-32-32-16-16)."""

    dims: int = 3
    in_channels: int = 2
    channels: tuple[int, ...] = (16, 32, 32, 32, 32, 32)
    unet_out_channels: int = 32
    final_conv_channels: tuple[int, ...] = (16, 16)


VOXELMORPH_PRESETS = {
    "2d": dict(dims=2),
    "3d": dict(dims=3),
    "2d-cpu": dict(dims=2, channels=(8, 16, 16, 16, 16, 16), unet_out_channels=16, final_conv_channels=(8, 8)),
    "3d-cpu": dict(dims=3, channels=(8, 16, 16, 16, 16, 16), unet_out_channels=16, final_conv_channels=(8, 8)),
}


@register_model("voxelmorph", VoxelMorphConfig, VOXELMORPH_PRESETS)
class VoxelMorph(RegistrationNet):
    """VoxelMorph U-Net -> DDF in normalised units (no integration: non-diffeomorphic like FNOReg).

    Inputs of any size: they are zero-padded to a multiple of ``2 ** levels`` and the field is
    cropped back.
    """

    def __init__(self, config: VoxelMorphConfig):
        super().__init__()
        self.config = config
        self.net = VoxelMorphUNet(
            spatial_dims=config.dims, in_channels=config.in_channels, unet_out_channels=config.unet_out_channels,
            channels=config.channels, final_conv_channels=config.final_conv_channels,
        )
        self.multiple = 2 ** (len(config.channels) // 2)

    def min_spatial_size(self) -> tuple[int, ...]:
        return (self.multiple,) * self.config.dims

    def size_multiple(self) -> int:
        """Dynamic ONNX graphs take multiples of ``2 ** levels`` (the symbolic pad-to-multiple does not export;
        eager PyTorch pads any size)."""
        return self.multiple

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        self.check_inputs(moving, fixed)
        x = torch.cat([moving, fixed], dim=1)
        spatial = x.shape[2:]
        y = self.net(pad_to_multiple(x, self.multiple))
        return crop_to(y, spatial)
