"""Band-limited (zero-padded spectrum) upsampling in real arithmetic, exportable to ONNX.

Fourier-Net [1]_ turns a small field into a full-resolution one by taking its DFT, zero-padding the
centred spectrum to the full size and inverse transforming it (keeping the real part)::

    full = Re(ifftn(ifftshift(pad(fftshift(fftn(small))))))

This module computes exactly that without complex tensors or ``torch.fft``: the operation is
separable, so each axis is one small complex matrix ``A = E @ F`` of shape ``(N, n)`` (``F``: the
length-``n`` DFT, ``E``: the inverse length-``N`` DFT of the kept frequencies), applied as real
cos/sin products with :func:`fnoreg_core.layers.dft.apply_basis`.

Kept frequencies on an axis of small length ``n``: ``-(n//2) .. (n-1)//2`` (the ``fftshift``
range). For even ``n`` the Nyquist bin ``-n/2`` is kept on one side only, as the reference's
padding does; taking the real part then splits it evenly between ``+-n/2``. The output spectrum is
therefore zero for every ``|k| > n//2`` on every axis: a faithful low-pass (with the aliasing this
implies, which is what the FNOReg analysis discusses).

Gain: this module's transform has unit gain (a constant stays the same constant). The reference's
``fftn``/``ifftn`` pair with default ("backward") normalisation scales by ``prod(n / N)``; models
multiply by that themselves (see ``fnoreg_core.models.fourier_net``).

Sizes may be symbolic (dynamic-shape export): the bases are then computed in the graph from the
sizes, in float64, and cast, as :mod:`fnoreg_core.layers.dft` does.

References
----------
.. [1] Jia, X. et al. "Fourier-Net: Fast Image Registration with Band-limited Deformation",
   AAAI 2023 (reference code xi-jia/Fourier-Net).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from .dft import apply_basis, is_static_size, size_tensor

__all__ = ["band_limited_upsample", "kept_frequencies"]


def kept_frequencies(n: int) -> np.ndarray:
    """Signed frequencies a length-``n`` axis keeps: ``-(n//2) .. (n-1)//2``, (n,) int64.

    >>> kept_frequencies(4).tolist(), kept_frequencies(5).tolist()
    ([-2, -1, 0, 1], [-2, -1, 0, 1, 2])
    """
    return np.arange(n, dtype=np.int64) - n // 2


@lru_cache(maxsize=256)
def _numpy_basis(n: int, big: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary part of ``A^T``, (n, big) float64, for a static size pair."""
    # real arithmetic only: a traced (dynamo) copy of this function must not create complex tensors
    k = kept_frequencies(n)
    m = np.arange(big, dtype=np.int64)
    j = np.arange(n, dtype=np.int64)
    ang_e = np.remainder(m[:, None] * k[None, :], big) * (2.0 * math.pi / big)  # (big, n_k)
    ang_f = np.remainder(k[:, None] * j[None, :], n) * (2.0 * math.pi / n)  # (n_k, n)
    ec, es = np.cos(ang_e), np.sin(ang_e)
    fc, fs = np.cos(ang_f) / n, np.sin(ang_f) / n
    re = ec @ fc + es @ fs  # A = (ec + i es) (fc - i fs), (big, n)
    im = es @ fc - ec @ fs
    return np.ascontiguousarray(re.T), np.ascontiguousarray(im.T)


@lru_cache(maxsize=256)
def _cached_basis(n: int, big: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    re, im = _numpy_basis(n, big)
    return torch.from_numpy(re).to(dtype=dtype, device=device), torch.from_numpy(im).to(dtype=dtype, device=device)


def _graph_basis(n, big, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_numpy_basis` computed with torch ops (symbolic sizes), float64, then cast."""
    n_t, big_t = size_tensor(n, device), size_tensor(big, device)
    j = torch.arange(n, device=device, dtype=torch.int64)
    k = j - torch.div(n_t, 2, rounding_mode="floor")
    m = torch.arange(big, device=device, dtype=torch.int64)
    two_pi = 2.0 * math.pi
    ang_e = torch.remainder(m[:, None] * k[None, :], big_t).to(torch.float64) * two_pi / big_t.to(torch.float64)
    ang_f = torch.remainder(k[:, None] * j[None, :], n_t).to(torch.float64) * two_pi / n_t.to(torch.float64)
    ec, es = torch.cos(ang_e), torch.sin(ang_e)
    fc, fs = torch.cos(ang_f) / n_t.to(torch.float64), torch.sin(ang_f) / n_t.to(torch.float64)
    # A = (ec + i es) (fc - i fs)
    re = ec @ fc + es @ fs
    im = es @ fc - ec @ fs
    return re.mT.to(dtype), im.mT.to(dtype)


def _basis(n, big, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    if is_static_size(n) and is_static_size(big):
        if torch.compiler.is_compiling():
            re, im = _numpy_basis(n, big)
            return torch.tensor(re, dtype=dtype, device=device), torch.tensor(im, dtype=dtype, device=device)
        return _cached_basis(n, big, dtype, torch.device(device) if device is not None else torch.device("cpu"))
    return _graph_basis(n, big, dtype, device)


def band_limited_upsample(x: torch.Tensor, sizes: tuple, axes: tuple[int, ...] | None = None) -> torch.Tensor:
    """Zero-pad the centred spectrum of ``x`` to ``sizes`` and transform back (real part, unit gain).

    Parameters
    ----------
    x : (..., n_0, ..., n_{d-1}) float tensor, the small (band-limited) field
    sizes : output length per transformed axis (int or SymInt), each ``>= n_i``
    axes : transformed axes (default: the last ``len(sizes)``)

    Returns
    -------
    (..., N_0, ..., N_{d-1}) float tensor equal to
    ``Re(ifftn(ifftshift(pad(fftshift(fftn(x))))))`` times ``prod(N_i / n_i)``, i.e. the
    trigonometric interpolant of ``x`` sampled on the finer grid (same gain, same grid origin).

    Raises
    ------
    ValueError
        Wrong number of sizes, or an output size smaller than the input (static sizes only).
    """
    sizes = tuple(sizes)
    if axes is None:
        axes = tuple(range(x.dim() - len(sizes), x.dim()))
    if len(axes) != len(sizes):
        raise ValueError(f"expected one output size per axis {axes}, got {sizes}")
    axes = tuple(a % x.dim() for a in axes)
    for a, big in zip(axes, sizes):
        n = x.shape[a]
        if is_static_size(n) and is_static_size(big) and big < n:
            raise ValueError(f"expected output sizes >= the input's, got {big} < {n} on axis {a}")
    re, im = x, None
    for i, (a, big) in enumerate(zip(axes, sizes)):
        cos, sin = _basis(x.shape[a], big, x.dtype, x.device)
        if i == len(axes) - 1:
            return apply_basis(re, im, cos, sin, a, sign=+1, real_out=True)
        re, im = apply_basis(re, im, cos, sin, a, sign=+1)
    return x
