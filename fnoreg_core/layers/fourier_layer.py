"""The Fourier layer shared by FNOReg and the FNO baseline, and the paper's mode counts.

A layer in ``layers/``, composed by the models in ``models/`` (the neuraloperator layout:
``layers/fno_block.py``). Moved here from ``models/fnoreg.py``; its parameter names (``spectral``,
``linear``) are unchanged, so checkpoints keep their state_dict keys.
"""

from __future__ import annotations

import torch
from torch import nn

from .pointwise import PointwiseConv
from .spectral_conv import SpectralConv

__all__ = ["FourierLayer", "PAPER_MODES"]

#: The paper's total modes per axis (REFERENCES.md).
PAPER_MODES = {2: (40, 48), 3: (40, 48, 56)}


class FourierLayer(nn.Module):
    """``y = GELU(SpectralConv(x) + Conv1x1(x)) + x``: the FNO layer with FNOReg's extra skip.

    Parameters
    ----------
    channels : C, in and out
    n_modes : TOTAL Fourier modes kept per spatial axis (:class:`SpectralConv`)
    factorization, rank : of the spectral weights (None: dense; "tucker" with a fractional rank)
    extra_skip : add ``x`` to the output (FNOReg); False: the plain FNO layer
    activation : GELU after the sum (False: identity, e.g. for a last layer)

    Shapes
    ------
    x : (B, C, *spatial) -> (B, C, *spatial)
    """

    def __init__(self, channels: int, n_modes: tuple[int, ...], factorization: str | None = None,
                 rank: float = 0.42, extra_skip: bool = True, activation: bool = True):
        super().__init__()
        self.spectral = SpectralConv(channels, channels, n_modes, factorization, rank)
        self.linear = PointwiseConv(channels, channels)
        self.act = nn.GELU() if activation else nn.Identity()
        self.extra_skip = extra_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.spectral(x) + self.linear(x))
        return y + x if self.extra_skip else y
