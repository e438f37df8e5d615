"""TransMorph baseline: Swin-transformer encoder + CNN decoder predicting a DDF.

Architecture as published (reference ``TransMorph.py``, config ``get_3DTransMorph_config``):

* Swin encoder (:class:`fnoreg_core.layers.swin.SwinEncoder`): 4x4(x4) patch embedding, four
  stages at 1/4, 1/8, 1/16, 1/32 with ``embed_dim * (1, 2, 4, 8)`` channels, shifted windows;
* two convolutional skips from the input: full resolution (``reg_head_channels``) and average
  pooled to 1/2 (``embed_dim // 2``);
* five decoder blocks (x2 upsampling, concatenated skip, two 3x3 conv + InstanceNorm + LeakyReLU)
  back to full resolution; a 3x3 registration head initialised with std 1e-5.

The field is a displacement in normalised grid_sample units (the convention of every model here;
the reference predicts voxels and normalises in its spatial transformer), not integrated.

Size constraint: the encoder divides every size by 32, so inputs are zero-padded to a multiple of
32 and the field is cropped back. Inputs below 32 voxels on an axis are refused (ValueError).

References
----------
.. [1] Chen, J. et al. "TransMorph: Transformer for unsupervised medical image registration",
   Medical Image Analysis 2022.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.swin import SwinEncoder
from .base import RegistrationNet, crop_to, pad_to_multiple
from .registry import register_model

__all__ = ["TransMorphConfig", "TransMorph", "TRANSMORPH_PRESETS"]


@dataclass(frozen=True)
class TransMorphConfig:
    """TransMorph hyper-parameters (saved in checkpoints and model cards).

    ``window_size``: one entry per axis (the reference's 3D (5, 6, 7) tiles 160x192x224 / 32 exactly).
    ``drop_path_rate``: stochastic depth of the Swin blocks (0.3 in the reference).
    """

    dims: int = 3
    in_channels: int = 2
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 4, 2)
    num_heads: tuple[int, ...] = (4, 4, 8, 8)
    window_size: tuple[int, ...] | None = None  # None: (5, 6) in 2D, (5, 6, 7) in 3D
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    drop_path_rate: float = 0.3
    reg_head_channels: int = 16

    def __post_init__(self):
        if self.window_size is None:
            object.__setattr__(self, "window_size", {2: (5, 6), 3: (5, 6, 7)}.get(self.dims, ()))


TRANSMORPH_PRESETS = {
    # the published TransMorph (embed 96, depths (2, 2, 4, 2), heads (4, 4, 8, 8), window 5x6x7)
    "2d": dict(dims=2),
    "3d": dict(dims=3),
    # CPU-sized: one block per stage, narrow channels, no stochastic depth (short budgets)
    "2d-cpu": dict(dims=2, embed_dim=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4), drop_path_rate=0.0,
                   reg_head_channels=8),
    "3d-cpu": dict(dims=3, embed_dim=12, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4), drop_path_rate=0.0,
                   reg_head_channels=8),
}


class _ConvNormAct(nn.Sequential):
    """3x3 conv (no bias) + InstanceNorm + LeakyReLU, the reference's ``Conv3dReLU(use_batchnorm=False)``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int):
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        norm = nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d
        super().__init__(conv(in_channels, out_channels, 3, padding=1, bias=False), norm(out_channels),
                         nn.LeakyReLU(0.01))


class _DecoderBlock(nn.Module):
    """x2 upsampling, concatenated skip, two :class:`_ConvNormAct`."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, skip_channels: int):
        super().__init__()
        self.mode = "bilinear" if dims == 2 else "trilinear"
        self.conv1 = _ConvNormAct(dims, in_channels + skip_channels, out_channels)
        self.conv2 = _ConvNormAct(dims, out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode=self.mode, align_corners=False)
        return self.conv2(self.conv1(torch.cat([x, skip], dim=1)))


@register_model("transmorph", TransMorphConfig, TRANSMORPH_PRESETS)
class TransMorph(RegistrationNet):
    """TransMorph: ``forward(moving, fixed)`` -> ddf_norm (B, dims, *spatial).

    Examples
    --------
    >>> from fnoreg_core.models import create_model
    >>> net = create_model("transmorph", preset="2d-cpu")
    >>> net(torch.rand(1, 1, 80, 96), torch.rand(1, 1, 80, 96)).shape  # padded to 96x96 inside
    torch.Size([1, 2, 80, 96])
    """

    def __init__(self, config: TransMorphConfig):
        super().__init__()
        if config.dims not in (2, 3):
            raise ValueError(f"expected dims 2 or 3, got {config.dims}")
        if len(config.window_size) != config.dims:
            raise ValueError(f"expected {config.dims} entries in window_size, got {config.window_size}")
        if len(config.depths) != 4 or len(config.num_heads) != 4:
            raise ValueError(f"expected 4 stages in depths and num_heads, got {config.depths} and {config.num_heads}")
        if config.embed_dim % 2 or config.embed_dim < 2:
            raise ValueError(f"expected an even embed_dim, got {config.embed_dim}")
        self.config = config
        d, c = config.dims, config.embed_dim
        self.encoder = SwinEncoder(d, config.in_channels, c, config.depths, config.num_heads, config.window_size,
                                   patch_size=4, mlp_ratio=config.mlp_ratio, qkv_bias=config.qkv_bias,
                                   drop_path_rate=config.drop_path_rate)
        self.multiple = 32  # 4x4 patches, then three 2x patch mergings
        head = config.reg_head_channels
        self.skip_half = _ConvNormAct(d, config.in_channels, c // 2)
        self.skip_full = _ConvNormAct(d, config.in_channels, head)
        self.up0 = _DecoderBlock(d, 8 * c, 4 * c, 4 * c)
        self.up1 = _DecoderBlock(d, 4 * c, 2 * c, 2 * c)
        self.up2 = _DecoderBlock(d, 2 * c, c, c)
        self.up3 = _DecoderBlock(d, c, c // 2, c // 2)
        self.up4 = _DecoderBlock(d, c // 2, head, head)
        conv = nn.Conv2d if d == 2 else nn.Conv3d
        self.reg_head = conv(head, d, 3, padding=1)
        nn.init.normal_(self.reg_head.weight, std=1e-5)  # start near the identity transform
        nn.init.zeros_(self.reg_head.bias)
        self.pool = (nn.AvgPool2d if d == 2 else nn.AvgPool3d)(3, stride=2, padding=1)

    def min_spatial_size(self) -> tuple[int, ...]:
        return (self.multiple,) * self.config.dims

    def size_multiple(self) -> int:
        # a dynamic-shape export traces the window padding of multiples of 32 only (the padding
        # to 32 itself does not trace symbolically); eager PyTorch takes any size >= 32
        return self.multiple

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """(B, 1, *spatial) x 2 -> ddf_norm (B, dims, *spatial).

        Inputs are zero-padded to a multiple of 32 inside and the field is cropped back.

        Raises
        ------
        ValueError
            Shapes that differ, wrong channel count or dimensionality, sizes below 32.
        """
        self.check_inputs(moving, fixed)
        x = torch.cat([moving, fixed], dim=1)
        spatial = x.shape[2:]
        x = pad_to_multiple(x, self.multiple)
        f_full = self.skip_full(x)
        f_half = self.skip_half(self.pool(x))
        f4, f8, f16, f32 = self.encoder(x)
        y = self.up0(f32, f16)
        y = self.up1(y, f8)
        y = self.up2(y, f4)
        y = self.up3(y, f_half)
        y = self.up4(y, f_full)
        ddf = self.reg_head(y)
        return crop_to(ddf, spatial)
