"""FNOReg: Fourier Neural Operator with extra skips and Spectral Transform encoder/decoder.

References
----------
.. [1] FNOReg, ICPR 2024; reference code anac0der/fnoreg (``deep_fourier_reg/fno.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers.dft import DEFAULT_EXPORT_RADIX
from ..layers.fourier_layer import PAPER_MODES, FourierLayer
from ..layers.fourier_unit import SpectralTransformBlock
from ..layers.pointwise import PointwiseConv
from .base import RegistrationNet
from .registry import register_model

__all__ = ["FNORegConfig", "FNOReg", "FourierLayer", "FNOREG_PRESETS"]



@dataclass(frozen=True)
class FNORegConfig:
    """FNOReg hyper-parameters (saved in checkpoints and model cards).

    ``n_modes`` counts TOTAL modes per axis (reference convention, see ``SpectralConv``).
    ``st_fft_axes``: spatial axes the Fourier Units transform (None: all; the 2D reference: (0,)).
    """

    dims: int = 3
    in_channels: int = 2
    hidden_channels: int = 12
    n_layers: int = 15
    n_modes: tuple[int, ...] | None = None  # None: the paper's (40, 48) in 2D, (40, 48, 56) in 3D
    projection_channels: int = 24
    factorization: str | None = "tucker"
    rank: float = 0.42
    st_fft_axes: tuple[int, ...] | None = None
    export_radix: int = DEFAULT_EXPORT_RADIX

    def __post_init__(self):
        if self.n_modes is None:
            object.__setattr__(self, "n_modes", PAPER_MODES.get(self.dims, ()))


FNOREG_PRESETS = {
    # the paper's configurations (REFERENCES.md); the 2D reference Fourier Unit transforms axis 0 only
    "2d-small": dict(dims=2, hidden_channels=16, n_layers=6, n_modes=(40, 48), projection_channels=32,
                     factorization=None, st_fft_axes=(0,)),
    "2d-medium": dict(dims=2, hidden_channels=32, n_layers=12, n_modes=(40, 48), projection_channels=64,
                      factorization=None, st_fft_axes=(0,)),
    "2d-large": dict(dims=2, hidden_channels=32, n_layers=12, n_modes=(60, 72), projection_channels=64,
                     factorization=None, st_fft_axes=(0,)),
    "3d": dict(dims=3, hidden_channels=12, n_layers=15, n_modes=(40, 48, 56), projection_channels=24,
               factorization="tucker", rank=0.42),
    # CPU-sized presets (trainable on 2 cores; see benchmarks/train_step.py for measured step times)
    "2d-cpu": dict(dims=2, hidden_channels=16, n_layers=4, n_modes=(24, 28), projection_channels=32,
                   factorization=None),
    "3d-cpu": dict(dims=3, hidden_channels=8, n_layers=4, n_modes=(12, 16, 16), projection_channels=16,
                   factorization=None),
}


@register_model("fnoreg", FNORegConfig, FNOREG_PRESETS)
class FNOReg(RegistrationNet):
    """FNOReg registration network: lifting, ST residual encoder, Fourier layers, ST decoder, projection.

    ``forward(moving, fixed)`` with both (B, 1, *spatial) returns the displacement
    (B, dims, *spatial) in normalised units (``fnoreg_core.fields``), to be applied with
    ``SpatialTransformer``. Not diffeomorphic (as in the paper).

    Examples
    --------
    >>> from fnoreg_core.models import create_model
    >>> net = create_model("fnoreg", preset="3d-cpu")
    >>> net(torch.rand(1, 1, 32, 32, 32), torch.rand(1, 1, 32, 32, 32)).shape
    torch.Size([1, 3, 32, 32, 32])
    """

    def __init__(self, config: FNORegConfig):
        super().__init__()
        if config.dims not in (2, 3):
            raise ValueError(f"expected dims 2 or 3, got {config.dims}")
        if len(config.n_modes) != config.dims:
            raise ValueError(f"expected {config.dims} entries in n_modes, got {config.n_modes}")
        self.config = config
        conv = PointwiseConv
        c = config.hidden_channels
        self.lifting = conv(config.in_channels, c)
        st = dict(spatial_dims=config.dims, fft_axes=config.st_fft_axes, export_radix=config.export_radix)
        self.encoder = SpectralTransformBlock(c, **st)
        self.fourier_layers = nn.Sequential(*[
            FourierLayer(c, config.n_modes, config.factorization, config.rank) for _ in range(config.n_layers)
        ])
        self.decoder = SpectralTransformBlock(c, **st)
        self.projection = nn.Sequential(
            conv(c, config.projection_channels), nn.ReLU(),
            conv(config.projection_channels, config.dims),
        )
        # Start from (almost) the identity transform, as VoxelMorph initialises its flow layer:
        # an untrained network otherwise predicts displacements of several voxels.
        nn.init.normal_(self.projection[-1].weight, std=1e-5)
        nn.init.zeros_(self.projection[-1].bias)

    def min_spatial_size(self) -> tuple[int, ...]:
        return tuple(int(m) for m in self.config.n_modes)  # a SpectralConv needs >= n_modes samples per axis

    def size_multiple(self) -> int:
        return self.config.export_radix

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """(B, 1, *spatial) x 2 -> ddf_norm (B, dims, *spatial).

        Raises
        ------
        ValueError
            Shapes that differ, wrong channel count or dimensionality, sizes below ``n_modes``.
        """
        self.check_inputs(moving, fixed)
        x = self.lifting(torch.cat([moving, fixed], dim=1))
        x = self.encoder(x)
        x = self.fourier_layers(x)
        x = self.decoder(x)
        return self.projection(x)
