"""Plain FNO baseline for registration (no Spectral Transform, no extra skip).

References
----------
.. [1] Li, Z. et al. "Fourier Neural Operator for Parametric PDEs", ICLR 2021 (neuraloperator ``FNO``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers.fourier_layer import PAPER_MODES, FourierLayer
from ..layers.pointwise import PointwiseConv
from .base import RegistrationNet
from .registry import register_model

__all__ = ["FNOConfig", "FNO"]



@dataclass(frozen=True)
class FNOConfig:
    """Plain FNO: lifting 1x1, ``n_layers`` of ``GELU(SpectralConv(x) + Conv1x1(x))``, projection MLP."""

    dims: int = 3
    in_channels: int = 2
    hidden_channels: int = 16
    n_layers: int = 6
    n_modes: tuple[int, ...] | None = None  # None: the paper's (40, 48) in 2D, (40, 48, 56) in 3D
    projection_channels: int = 32
    factorization: str | None = "tucker"
    rank: float = 0.42

    def __post_init__(self):
        if self.n_modes is None:
            object.__setattr__(self, "n_modes", PAPER_MODES.get(self.dims, ()))


FNO_PRESETS = {
    "2d": dict(dims=2, hidden_channels=32, n_layers=4, n_modes=(40, 48), projection_channels=64, factorization=None),
    "3d": dict(dims=3, hidden_channels=16, n_layers=6, n_modes=(40, 48, 56), projection_channels=32,
               factorization="tucker", rank=0.42),  # reference params_3d.json
    "2d-cpu": dict(dims=2, hidden_channels=16, n_layers=4, n_modes=(24, 28), projection_channels=32, factorization=None),
    "3d-cpu": dict(dims=3, hidden_channels=8, n_layers=4, n_modes=(12, 16, 16), projection_channels=16,
                   factorization=None),
}


@register_model("fno", FNOConfig, FNO_PRESETS)
class FNO(RegistrationNet):
    """Plain FNO registration network; ``forward(moving, fixed)`` -> ddf_norm (B, dims, *spatial)."""

    def __init__(self, config: FNOConfig):
        super().__init__()
        if len(config.n_modes) != config.dims:
            raise ValueError(f"expected {config.dims} entries in n_modes, got {config.n_modes}")
        self.config = config
        conv = PointwiseConv
        c = config.hidden_channels
        self.lifting = conv(config.in_channels, c)
        self.fourier_layers = nn.Sequential(*[
            FourierLayer(c, config.n_modes, config.factorization, config.rank, extra_skip=False,
                         activation=i < config.n_layers - 1)
            for i in range(config.n_layers)
        ])
        self.projection = nn.Sequential(
            conv(c, config.projection_channels), nn.GELU(),
            conv(config.projection_channels, config.dims),
        )
        nn.init.normal_(self.projection[-1].weight, std=1e-5)  # start near the identity transform
        nn.init.zeros_(self.projection[-1].bias)

    def min_spatial_size(self) -> tuple[int, ...]:
        return tuple(int(m) for m in self.config.n_modes)  # a SpectralConv needs >= n_modes samples per axis

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        self.check_inputs(moving, fixed)
        x = self.lifting(torch.cat([moving, fixed], dim=1))
        return self.projection(self.fourier_layers(x))
