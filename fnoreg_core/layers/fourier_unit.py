"""Fourier Unit and Spectral Transform (Fast Fourier Convolution, LaMa / FNOReg), exportable.

References
----------
.. [1] Chi, L. et al. "Fast Fourier Convolution", NeurIPS 2020.
.. [2] FNOReg reference code (anac0der/fnoreg, ``deep_fourier_reg/fourier_blocks.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from .pointwise import PointwiseConv, channel_matmul
from .precision import float32_under_autocast
from .dft import DEFAULT_EXPORT_RADIX, irfftn_stacked, rfftn_stacked

__all__ = ["FourierUnit", "SpectralTransform", "SpectralTransformBlock"]

_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class FourierUnit(nn.Module):
    """Global (full-spectrum) convolution: ``irfftn(ReLU(BN(conv1x1([Re, Im] of rfftn(x)))))``.

    The transform is ``norm="ortho"`` over ``fft_axes`` (all spatial axes by default) and is the
    factorised real-arithmetic DFT of :mod:`fnoreg_core.layers.dft`, equal to ``torch.fft`` to
    float rounding. In the spectral domain the unit works in the transform's fast layout
    (:func:`~fnoreg_core.layers.dft.rfftn_stacked`: (B, channels, [re, im], positions), positions
    digit-reversed), so its 1x1 convolution is one matrix product over the ``2 * channels``
    interleaved ``(c, [re, im])`` features (the reference's channel order) and its batch norm is
    ``nn.BatchNorm1d`` over all spectral positions and the batch: point-wise operations whose
    results, and batch statistics, do not depend on the order of positions.

    Parameters
    ----------
    channels : int
    spatial_dims : 2 or 3
    fft_axes : tuple of int or None
        Spatial axes (0-based, in array order) to transform; the last is one-sided. ``None``: all.
        The 2D FNOReg reference transforms only axis 0 (``use_only_freq=True``): ``(0,)``.
    export_radix : int
        Four-step split used when sizes are symbolic (dynamic-shape export).

    Shapes
    ------
    x : (B, channels, *spatial) -> (B, channels, *spatial)

    Examples
    --------
    >>> fu = FourierUnit(6, spatial_dims=3)
    >>> fu(torch.randn(2, 6, 16, 20, 24)).shape
    torch.Size([2, 6, 16, 20, 24])
    """

    def __init__(self, channels: int, spatial_dims: int, fft_axes: tuple[int, ...] | None = None,
                 export_radix: int = DEFAULT_EXPORT_RADIX):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"expected spatial_dims 2 or 3, got {spatial_dims}")
        fft_axes = tuple(range(spatial_dims)) if fft_axes is None else tuple(int(a) for a in fft_axes)
        if not fft_axes or any(not 0 <= a < spatial_dims for a in fft_axes) or sorted(set(fft_axes)) != list(fft_axes):
            raise ValueError(f"expected increasing spatial axes in [0, {spatial_dims}), got fft_axes={fft_axes}")
        self.channels, self.spatial_dims, self.fft_axes = channels, spatial_dims, fft_axes
        self.export_radix = export_radix
        self.conv = nn.Linear(2 * channels, 2 * channels, bias=True)
        self.bn = nn.BatchNorm1d(2 * channels)
        self.act = nn.ReLU()

    def spectral_mix(self, z: torch.Tensor) -> torch.Tensor:
        """``ReLU(BN(conv(z)))`` on (B, 2 * channels, positions) features, statistics over B and positions."""
        z = channel_matmul(self.conv.weight, z, self.conv.bias)
        return self.act(self.bn(z))

    @float32_under_autocast
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1]
        if x.dim() != self.spatial_dims + 2 or c != self.channels:
            raise ValueError(f"expected input (B, {self.channels}, {self.spatial_dims} spatial axes), got {tuple(x.shape)}")
        axes = tuple(2 + a for a in self.fft_axes)
        sizes = tuple(x.shape[a] for a in axes)
        z, labels = rfftn_stacked(x, axes, lead=2, norm="ortho", radix=self.export_radix)  # (B, C, 2, *pos)
        positions = list(z.shape[3:])
        z = self.spectral_mix(z.reshape(b, 2 * c, -1)).reshape([b, c, 2] + positions)
        return irfftn_stacked(z, labels, axes, sizes, norm="ortho", radix=self.export_radix)


class SpectralTransform(nn.Module):
    """``ReLU(BN(conv1x1(FU(r) + r)))`` with ``r = ReLU(BN(conv1x1(x)))`` on ``out_channels // 2``.

    The FNOReg reference's 3D ``SpectralTransform3d``; its 2D FFC wrapper (alpha = 1, all channels
    global) adds the same BN + ReLU after the output conv, so one module serves both.

    Shapes
    ------
    x : (B, in_channels, *spatial) -> (B, out_channels, *spatial)
    """

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int,
                 fft_axes: tuple[int, ...] | None = None, export_radix: int = DEFAULT_EXPORT_RADIX):
        super().__init__()
        if out_channels < 2:
            raise ValueError(f"expected out_channels >= 2 (the unit works on out_channels // 2), got {out_channels}")
        half = out_channels // 2
        conv, bn = PointwiseConv, _BN[spatial_dims]
        self.conv1 = nn.Sequential(conv(in_channels, half, bias=False), bn(half), nn.ReLU())
        self.fu = FourierUnit(half, spatial_dims, fft_axes, export_radix)
        self.conv2 = nn.Sequential(conv(half, out_channels, bias=False), bn(out_channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv1(x)
        return self.conv2(self.fu(r) + r)


class SpectralTransformBlock(nn.Module):
    """Residual pair of Spectral Transforms: ``x + ST2(ST1(x))`` (FNOReg encoder and decoder).

    Shapes
    ------
    x : (B, channels, *spatial) -> (B, channels, *spatial)
    """

    def __init__(self, channels: int, spatial_dims: int, fft_axes: tuple[int, ...] | None = None,
                 export_radix: int = DEFAULT_EXPORT_RADIX):
        super().__init__()
        self.st1 = SpectralTransform(channels, channels, spatial_dims, fft_axes, export_radix)
        self.st2 = SpectralTransform(channels, channels, spatial_dims, fft_axes, export_radix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.st2(self.st1(x))
