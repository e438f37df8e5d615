"""Fourier-Net baseline: a CNN encoder predicts a band-limited displacement, zero-padded in k-space.

The encoder (a U-Net whose decoder stops at 1/4 resolution, the reference's ``SYMNet``) sees the
full-resolution pair and outputs a small field, ``dims`` channels at 1/4 of the (padded) input
size per axis. That small field is the spatial-domain image of the low-frequency band: its DFT is
zero-padded to the full size and inverse transformed (:func:`band_limited_upsample`), so the
displacement has no energy above the small grid's Nyquist frequency. The explicit low-pass +
zero-padding is kept exactly as published (it is the source of the aliasing the FNOReg analysis
describes); it runs as real matmuls, so the model exports to ONNX without complex ops.

Faithful details of the reference (xi-jia/Fourier-Net, ``Models.py`` + ``train.py``):

* 3x3 convolutions + PReLU; four stride-2 convolutions (1/16), two 2x2 transposed convolutions
  back to 1/4 with skip concatenations; a bias-free 3x3 output convolution;
* the output is multiplied by ``output_scale`` (64 in the 2D reference, 1 in 3D), then passed
  through ``fftn`` -> centred zero padding -> ``ifftn`` -> real part with torch's default
  ("backward") normalisation, which scales the field by ``prod(n / N) = 4 ** -dims``;
* the field is a displacement in grid_sample units (align_corners=True), not integrated (the
  diffeomorphic variant "Fourier-Net-Diff" is not implemented).

Differences: inputs of any size are zero-padded to a multiple of 16 and the field is cropped back
(the reference needs multiples of 16; an exported dynamic graph takes multiples of 16); the output convolution starts near zero (std 1e-5, as the
other models here and TransMorph's registration head) so training starts at the identity.

References
----------
.. [1] Jia, X. et al. "Fourier-Net: Fast Image Registration with Band-limited Deformation",
   AAAI 2023.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers.band_limit import band_limited_upsample
from .base import RegistrationNet, crop_to, pad_to_multiple
from .registry import register_model

__all__ = ["FourierNetConfig", "FourierNet", "FOURIER_NET_PRESETS"]

#: Downsampling of the encoder (four stride-2 convolutions): padded sizes are multiples of this.
_MULTIPLE = 16
#: The small field is at 1/4 of the padded input per axis.
_BAND_FACTOR = 4


@dataclass(frozen=True)
class FourierNetConfig:
    """Fourier-Net hyper-parameters (saved in checkpoints and model cards).

    ``start_channels``: width of the first encoder level (the reference's ``start_channel``);
    levels have 1, 2, 4, 8, 16 times it. ``output_scale``: the reference's constant factor on the
    encoder output (64 in 2D, 1 in 3D) before the k-space padding.
    """

    dims: int = 3
    in_channels: int = 2
    start_channels: int = 8
    output_scale: float = 1.0


FOURIER_NET_PRESETS = {
    # published sizes (reference code: 2D start_channel 8 with the output multiplied by 64; 3D 16)
    "2d": dict(dims=2, start_channels=8, output_scale=64.0),
    "3d": dict(dims=3, start_channels=16, output_scale=1.0),  # 4.2 M parameters, as in the paper
    # CPU presets: 2D is already CPU-sized; 3D halves the widths. The 3D gain is raised to the 2D
    # reference's net gain (output_scale / 4**dims = 4) so a short CPU budget trains at a similar pace.
    "2d-cpu": dict(dims=2, start_channels=8, output_scale=64.0),
    "3d-cpu": dict(dims=3, start_channels=4, output_scale=256.0),
}


class _ConvAct(nn.Sequential):
    """3x3 convolution (optionally strided) + PReLU."""

    def __init__(self, conv: type, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(conv(in_channels, out_channels, 3, stride=stride, padding=1), nn.PReLU())


class _UpAct(nn.Sequential):
    """2x2 stride-2 transposed convolution + PReLU (doubles every spatial size)."""

    def __init__(self, conv_t: type, channels: int):
        super().__init__(conv_t(channels, channels, 2, stride=2), nn.PReLU())


@register_model("fourier-net", FourierNetConfig, FOURIER_NET_PRESETS)
class FourierNet(RegistrationNet):
    """Fourier-Net: ``forward(moving, fixed)`` -> band-limited ddf_norm (B, dims, *spatial).

    Examples
    --------
    >>> from fnoreg_core.models import create_model
    >>> net = create_model("fourier-net", preset="2d-cpu")
    >>> net(torch.rand(1, 1, 80, 96), torch.rand(1, 1, 80, 96)).shape
    torch.Size([1, 2, 80, 96])
    """

    def __init__(self, config: FourierNetConfig):
        super().__init__()
        if config.dims not in (2, 3):
            raise ValueError(f"expected dims 2 or 3, got {config.dims}")
        if config.start_channels < 1:
            raise ValueError(f"expected start_channels >= 1, got {config.start_channels}")
        self.config = config
        conv = nn.Conv2d if config.dims == 2 else nn.Conv3d
        conv_t = nn.ConvTranspose2d if config.dims == 2 else nn.ConvTranspose3d
        c = config.start_channels
        # encoder: full, 1/2, 1/4, 1/8, 1/16
        self.enc0 = nn.Sequential(_ConvAct(conv, config.in_channels, c), _ConvAct(conv, c, c))
        self.enc1 = nn.Sequential(_ConvAct(conv, c, 2 * c, stride=2), _ConvAct(conv, 2 * c, 2 * c))
        self.enc2 = nn.Sequential(_ConvAct(conv, 2 * c, 4 * c, stride=2), _ConvAct(conv, 4 * c, 4 * c))
        self.enc3 = nn.Sequential(_ConvAct(conv, 4 * c, 8 * c, stride=2), _ConvAct(conv, 8 * c, 8 * c))
        self.enc4 = nn.Sequential(_ConvAct(conv, 8 * c, 16 * c, stride=2), _ConvAct(conv, 16 * c, 8 * c))
        # decoder: back to 1/8, then 1/4, where the band-limited field is read out
        self.up1 = _UpAct(conv_t, 8 * c)
        self.dec1 = nn.Sequential(_ConvAct(conv, 16 * c, 8 * c), _ConvAct(conv, 8 * c, 4 * c))
        self.up2 = _UpAct(conv_t, 4 * c)
        self.dec2 = nn.Sequential(_ConvAct(conv, 8 * c, 4 * c), _ConvAct(conv, 4 * c, 2 * c))
        self.head = conv(2 * c, config.dims, 3, padding=1, bias=False)
        nn.init.normal_(self.head.weight, std=1e-5)  # start near the identity transform
        # fftn/ifftn with "backward" normalisation scale the band-limited field by prod(n / N)
        self.gain = config.output_scale / _BAND_FACTOR ** config.dims

    def min_spatial_size(self) -> tuple[int, ...]:
        return (_MULTIPLE,) * self.config.dims

    def size_multiple(self) -> int:
        # a dynamic-shape export traces the encoder at multiples of 16 (the padding to 16 does not
        # trace symbolically from small sizes); eager PyTorch takes any size >= 16
        return _MULTIPLE

    def band_field(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder: (B, 2, *P) with every P a multiple of 16 -> small field (B, dims, *P/4), unscaled."""
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d1 = self.dec1(torch.cat([self.up1(e4), e3], dim=1))
        d2 = self.dec2(torch.cat([self.up2(d1), e2], dim=1))
        return self.head(d2)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """(B, 1, *spatial) x 2 -> ddf_norm (B, dims, *spatial), band-limited to 1/4 of the grid.

        Raises
        ------
        ValueError
            Shapes that differ, wrong channel count or dimensionality, sizes below 16.
        """
        self.check_inputs(moving, fixed)
        x = torch.cat([moving, fixed], dim=1)
        spatial = x.shape[2:]
        x = pad_to_multiple(x, _MULTIPLE)
        small = self.band_field(x) * self.gain
        ddf = band_limited_upsample(small, tuple(x.shape[2:]))
        return crop_to(ddf, spatial)
