"""FNO spectral convolution in real arithmetic (exports to ONNX with dynamic spatial size).

References
----------
.. [1] Li, Z. et al. "Fourier Neural Operator for Parametric Partial Differential Equations", ICLR 2021.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .precision import float32_under_autocast
from .dft import truncated_irdft, truncated_rdft

__all__ = ["SpectralConv", "tucker_ranks"]


def tucker_ranks(shape: tuple[int, ...], rank: float) -> tuple[int, ...]:
    """Tucker ranks per mode so that core + factors hold about ``rank`` x the dense parameters.

    Ranks are ``round(s * dim)`` (at least 1, at most dim) for the scale ``s`` found by bisection,
    the convention of tensorly / tltorch for a fractional rank.
    """
    if not 0 < rank <= 1:
        raise ValueError(f"expected a fractional rank in (0, 1], got {rank}")
    dense = math.prod(shape)

    def n_params(s: float) -> tuple[int, tuple[int, ...]]:
        ranks = tuple(min(d, max(1, round(s * d))) for d in shape)
        return math.prod(ranks) + sum(r * d for r, d in zip(ranks, shape)), ranks

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if n_params(mid)[0] <= rank * dense:
            lo = mid
        else:
            hi = mid
    return n_params(lo)[1]


class SpectralConv(nn.Module):
    """FNO spectral convolution: keep the lowest modes, mix channels per mode, transform back.

    ``out = irfftn(W * rfftn(x)[kept modes])``, with both frequency ends kept on every
    transformed axis but the last, and the last one-sided, as in the FNO paper [1]_ and the
    FNOReg reference code. Implemented with real cos/sin bases (``fnoreg_core.layers.dft``): no
    complex tensors, no ``torch.fft``, so it exports to ONNX with dynamic spatial size.

    Parameters
    ----------
    in_channels, out_channels : int
    n_modes : tuple of int
        TOTAL modes per spatial axis, the reference's convention: ``n_modes=40`` on an axis keeps
        frequencies ``|k| < 20`` plus ``k = -20`` (20 per side) on two-sided axes, and ``0 .. 19``
        on the last (one-sided) axis. Must be even. The layer needs every spatial size
        ``>= n_modes`` on its axis (the minimum size is ``n_modes``).
    factorization : None or "tucker"
        Dense weights, or a Tucker factorisation (core + one factor per mode) of the
        ``(in, out, *modes)`` complex weight, as in the reference (tltorch, rank 0.42).
        :meth:`fold_factorization` turns it into a dense weight before export.
    rank : float
        Fraction of the dense parameter count kept by the Tucker factorisation. Unlike tltorch's
        complex Tucker, the factors here are real and only the core is complex (a trailing
        [re, im] axis), so the real parameter count is a little below ``rank`` (0.40 x dense at
        the paper's 3D size for rank 0.42).

    Shapes
    ------
    x : (B, in_channels, *spatial) float -> (B, out_channels, *spatial)

    Examples
    --------
    >>> conv = SpectralConv(12, 12, n_modes=(16, 20, 24))
    >>> conv(torch.randn(1, 12, 32, 40, 48)).shape
    torch.Size([1, 12, 32, 40, 48])
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: tuple[int, ...],
                 factorization: str | None = None, rank: float = 0.42):
        super().__init__()
        n_modes = tuple(int(m) for m in n_modes)
        if len(n_modes) not in (1, 2, 3):
            raise ValueError(f"expected 1 to 3 spatial axes in n_modes, got {n_modes}")
        if any(m < 2 or m % 2 for m in n_modes):
            raise ValueError(f"expected even total mode counts >= 2 per axis, got n_modes={n_modes}")
        if factorization not in (None, "tucker"):
            raise ValueError(f"expected factorization None or 'tucker', got {factorization!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.n_modes = n_modes
        self.halves = tuple(m // 2 for m in n_modes)
        # kept modes per axis: two-sided on all but the last axis
        self.kept = tuple(2 * h for h in self.halves[:-1]) + (self.halves[-1],)
        self.factorization = factorization
        self.rank = rank
        shape = (in_channels, out_channels, *self.kept)
        std = (2.0 / (in_channels + out_channels)) ** 0.5 / math.sqrt(2.0)
        if factorization is None:
            self.weight = nn.Parameter(torch.randn(*shape, 2) * std)
        else:
            ranks = tucker_ranks(shape, rank)
            # core (r_0, ..., r_d, 2) complex-valued via the trailing axis; real orthonormal factors
            self.core = nn.Parameter(torch.randn(*ranks, 2) * std)
            self.factors = nn.ParameterList(
                [nn.Parameter(torch.linalg.qr(torch.randn(d, r))[0]) for d, r in zip(shape, ranks)]
            )

    @property
    def spatial_dims(self) -> int:
        return len(self.n_modes)

    def dense_weight(self) -> torch.Tensor:
        """The complex weight as a real tensor (in, out, *kept_modes, 2)."""
        if self.factorization is None:
            return self.weight
        letters = "abcdefgh"[: len(self.factors)]
        upper = "ABCDEFGH"[: len(self.factors)]
        expr = f"{letters}z," + ",".join(f"{u}{l}" for u, l in zip(upper, letters)) + f"->{upper}z"
        return torch.einsum(expr, self.core, *self.factors)

    @torch.no_grad()
    def fold_factorization(self) -> None:
        """Replace Tucker factors by the equivalent dense weight (same outputs; for export)."""
        if self.factorization is None:
            return
        weight = self.dense_weight().detach().clone()
        del self.core
        del self.factors
        self.weight = nn.Parameter(weight)
        self.factorization = None

    def check_size(self, spatial: tuple) -> None:
        """Raise ValueError when a spatial size is below the modes this layer keeps."""
        for axis, (n, m) in enumerate(zip(spatial, self.n_modes)):
            if isinstance(n, int) and n < m:
                raise ValueError(
                    f"spatial size {tuple(spatial)} is too small for n_modes={self.n_modes}: axis {axis} "
                    f"has {n} samples, expected at least {m}; the minimum size is "
                    f"{tuple(int(m) for m in self.n_modes)}"
                )

    @float32_under_autocast
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, *spatial) -> (B, out_channels, *spatial).

        Raises
        ------
        ValueError
            Wrong number of dimensions or channels, or a spatial size below ``n_modes``.
        """
        d = self.spatial_dims
        if x.dim() != d + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (B, {self.in_channels}, {d} spatial axes), got shape {tuple(x.shape)}"
            )
        spatial = tuple(x.shape[2:])
        self.check_size(spatial)
        axes = tuple(range(2, 2 + d))
        re, im = truncated_rdft(x, axes, self.halves)  # (B, Ci, *kept)
        w = self.dense_weight()
        wr, wi = w[..., 0], w[..., 1]  # (Ci, Co, *kept)
        re, im = re.unsqueeze(2), im.unsqueeze(2)  # (B, Ci, 1, *kept)
        out_re = (re * wr - im * wi).sum(1)
        out_im = (re * wi + im * wr).sum(1)
        return truncated_irdft(out_re, out_im, axes, self.halves, spatial)
