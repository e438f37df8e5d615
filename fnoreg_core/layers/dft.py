"""Discrete Fourier transforms in real arithmetic that export to ONNX with dynamic sizes.

No complex tensors and no ``torch.fft``: every transform is a product with real cos/sin bases,
so the same code trains in PyTorch and exports (``torch.onnx.export(..., dynamo=True)``) to
graphs made of MatMul / Mul / Gather, which onnxruntime and TensorRT run everywhere.

Two families live here:

* **Truncated** transforms (:func:`truncated_rdft` / :func:`truncated_irdft`) for the FNO
  spectral convolution: only a few low modes are kept, so a dense ``(n, modes)`` basis per axis
  is the cheapest exact transform. ``norm="forward"`` (1/n on the way in), which makes the kept
  coefficients independent of the sampling resolution.
* **Full-spectrum** transforms (:func:`rfftn_real` / :func:`irfftn_real`) for the Fourier Unit
  of the Spectral Transform. A dense ``n x n`` basis per axis costs ``O(n)`` multiply-adds per
  voxel; here every axis of length ``n = n1 * n2`` is factorised once (the "four-step" /
  Cooley-Tukey split): a DFT of size ``n1``, a twiddle multiply, a DFT of size ``n2``, costing
  ``O(n1 + n2)`` per voxel (for 224 = 14 x 16: 30 instead of 224).

Spectral layout of the full-spectrum transform
----------------------------------------------
The four-step split leaves the frequencies of a complex axis in *digit-reversed* order
(array position ``k1 * n2 + k2`` holds frequency ``k1 + n1 * k2``). The Fourier Unit only
applies point-wise operations in the spectral domain (1x1 convolution, batch norm, ReLU), which
commute with any permutation of positions, so the unscrambling transpose is skipped:
:func:`irfftn_real` consumes the same layout. The one-sided (real) axis is always in natural
order ``0 .. n//2``. :func:`spectrum_order` gives the permutation for users who need natural
order (the tests use it to compare with ``torch.fft``).

Static vs dynamic sizes
-----------------------
When a size is a Python ``int`` (eager training, static-shape export), bases are computed once in
float64, cast, and cached per (size, modes, dtype, device), and the split ``n1`` is the divisor of
``n`` closest to ``sqrt(n)`` (primes fall back to one dense matmul). When a size is symbolic
(``torch.SymInt`` during a dynamic-shape export), bases are computed inside the graph from the
size and the split uses a fixed ``radix`` as ``n1``: the exported graph then serves every size that
is a multiple of ``radix``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = [
    "choose_split",
    "truncated_frequencies",
    "truncated_rdft",
    "truncated_irdft",
    "rfftn_real",
    "irfftn_real",
    "spectrum_order",
    "onesided_order",
    "DEFAULT_EXPORT_RADIX",
]

#: Split used for symbolic sizes in dynamic-shape exports; exported graphs accept multiples of it.
DEFAULT_EXPORT_RADIX = 16

Pair = tuple[torch.Tensor, torch.Tensor]


def _is_static(n) -> bool:
    return isinstance(n, int)


def choose_split(n: int) -> int:
    """First factor ``n1`` of the four-step split of a length-``n`` DFT.

    Returns the largest divisor of ``n`` that is ``<= sqrt(n)``, or 1 (one dense transform) when
    ``n`` is small (``<= 16``) or prime. ``n = n1 * n2`` with ``n1 <= n2``.

    >>> choose_split(224), choose_split(192), choose_split(97)
    (14, 12, 1)
    """
    if n <= 16:
        return 1
    best = 1
    for d in range(2, math.isqrt(n) + 1):
        if n % d == 0:
            best = d
    return best


# --------------------------------------------------------------------------------------------
# bases


def _angles(rows: torch.Tensor, cols: torch.Tensor, n, dtype: torch.dtype) -> torch.Tensor:
    """``2*pi*((rows[:, None] * cols[None, :]) mod n) / n`` as ``dtype``; ``rows``/``cols`` int64.

    The integer product is reduced modulo ``n`` before the conversion to float, so the angles stay
    exact to the last bit of ``dtype`` even in float32 graphs.
    """
    prod = torch.remainder(rows[:, None] * cols[None, :], n)
    return prod.to(dtype) * (2.0 * math.pi) / n


def _make_cos_sin(rows_fn, cols_fn, n, dtype, device) -> Pair:
    if _is_static(n):
        return _cached_cos_sin(rows_fn, cols_fn, n, dtype, device)
    ang = _angles(rows_fn(n, device), cols_fn(n, device), n, dtype)
    return torch.cos(ang), torch.sin(ang)


@lru_cache(maxsize=512)
def _cached_cos_sin(rows_fn, cols_fn, n: int, dtype: torch.dtype, device: torch.device) -> Pair:
    ang = _angles(rows_fn(n, "cpu"), cols_fn(n, "cpu"), n, torch.float64)
    return torch.cos(ang).to(dtype=dtype, device=device), torch.sin(ang).to(dtype=dtype, device=device)


def _arange(n, device) -> torch.Tensor:
    return torch.arange(n, device=device, dtype=torch.int64)


class _Freqs:
    """Hashable callable ``(n, device) -> int64 frequencies`` kept by a truncated transform."""

    def __init__(self, half: int, one_sided: bool):
        self.half, self.one_sided = half, one_sided

    def __call__(self, n, device) -> torch.Tensor:
        return truncated_frequencies(self.half, self.one_sided, device)

    def __hash__(self):
        return hash((self.half, self.one_sided))

    def __eq__(self, other):
        return isinstance(other, _Freqs) and (self.half, self.one_sided) == (other.half, other.one_sided)


def truncated_frequencies(half: int, one_sided: bool, device=None) -> torch.Tensor:
    """Signed frequencies kept per axis by the FNO truncation.

    Parameters
    ----------
    half : int
        Modes per side (the reference's total ``n_modes`` divided by 2).
    one_sided : bool
        True for the real (last transformed) axis: ``0 .. half-1``; otherwise both frequency
        ends: ``0 .. half-1, -half .. -1`` (the order of ``torch.cat([X[:half], X[-half:]])``).

    Returns
    -------
    (half,) or (2*half,) int64 tensor.
    """
    pos = torch.arange(half, device=device, dtype=torch.int64)
    if one_sided:
        return pos
    return torch.cat([pos, pos - half])


# --------------------------------------------------------------------------------------------
# applying a matrix along one axis without transposes


def _apply(x: torch.Tensor, mat: torch.Tensor, axis: int) -> torch.Tensor:
    """Contract axis ``axis`` of ``x`` (length n) with ``mat`` of shape (n, m): returns length m there.

    The last axis is a plain right product; any other axis is a broadcast left product on a
    zero-copy ``(prefix, n, rest)`` view, so no data is transposed.
    """
    axis = axis % x.dim()
    if axis == x.dim() - 1:
        return x @ mat
    shape = list(x.shape)
    n = shape[axis]
    rest = math.prod(shape[axis + 1:])
    y = mat.mT @ x.reshape(-1, n, rest)
    shape[axis] = mat.shape[1]
    return y.reshape(shape)


def _apply_complex(re, im, cos, sin, axis, sign: int, real_out: bool = False):
    """``(re + i im) * (cos + sign * i sin)`` contracted along ``axis``.

    ``sign=-1`` is a forward DFT kernel ``exp(-i theta)``, ``sign=+1`` the inverse. ``im=None``
    means a real input. With ``real_out`` only the real part is computed.
    """
    if im is None:
        out_re = _apply(re, cos, axis)
        return out_re if real_out else (out_re, _apply(re, sin, axis) * sign)
    out_re = _apply(re, cos, axis) - sign * _apply(im, sin, axis)
    if real_out:
        return out_re
    return out_re, _apply(im, cos, axis) + sign * _apply(re, sin, axis)


# --------------------------------------------------------------------------------------------
# truncated transforms (FNO spectral convolution)


def _spatial_axis(x: torch.Tensor, axis: int) -> int:
    return axis % x.dim()


def truncated_rdft(x: torch.Tensor, axes: tuple[int, ...], halves: tuple[int, ...]) -> Pair:
    """Low-mode real DFT (``norm="forward"``), the exportable ``rfftn(x)[kept modes] / n``.

    Parameters
    ----------
    x : (..., n_0, ..., n_{d-1}) float tensor
    axes : tuple of int
        Transformed axes; the LAST one is the one-sided (real) axis, as in ``torch.fft.rfftn``.
    halves : tuple of int
        Modes per side for each axis (see :func:`truncated_frequencies`).

    Returns
    -------
    (re, im) : each (..., m_0, ..., m_{d-1}) with ``m = 2*half`` on two-sided axes and ``half``
        on the one-sided axis, frequencies ordered as :func:`truncated_frequencies`.
    """
    axes = tuple(_spatial_axis(x, a) for a in axes)
    re, im = x, None
    order = [len(axes) - 1] + list(range(len(axes) - 1))  # one-sided axis first: real input
    for j in order:
        ax, n = axes[j], x.shape[axes[j]]
        cos, sin = _make_cos_sin(_arange, _Freqs(halves[j], j == len(axes) - 1), n, x.dtype, x.device)
        # bases are (n, m); scale 1/n for norm="forward"
        scale = _inv_size(n, 1.0, x)
        re, im = _apply_complex(re, im, cos * scale, sin * scale, ax, sign=-1)
    return re, im


def truncated_irdft(re: torch.Tensor, im: torch.Tensor, axes: tuple[int, ...], halves: tuple[int, ...],
                    sizes: tuple) -> torch.Tensor:
    """Inverse of :func:`truncated_rdft`: ``irfftn`` of the zero-padded kept modes, unscaled.

    Parameters
    ----------
    re, im : (..., m_0, ..., m_{d-1}) float tensors (layout of :func:`truncated_rdft`)
    axes, halves : as in :func:`truncated_rdft`
    sizes : output length per axis (int or SymInt)

    Returns
    -------
    (..., n_0, ..., n_{d-1}) real tensor. Imaginary parts of the zero frequency of the one-sided
    axis are ignored, exactly as ``torch.fft.irfftn`` does.
    """
    axes = tuple(_spatial_axis(re, a) for a in axes)
    last = len(axes) - 1
    for j in range(last):
        ax, n = axes[j], sizes[j]
        cos, sin = _make_cos_sin(_Freqs(halves[j], False), _arange, n, re.dtype, re.device)
        re, im = _apply_complex(re, im, cos, sin, ax, sign=+1)
    n = sizes[last]
    cos, sin = _make_cos_sin(_Freqs(halves[last], True), _arange, n, re.dtype, re.device)
    # Hermitian weights of a one-sided spectrum: 1 for k = 0, 2 for 0 < k < n/2 (Nyquist is never
    # kept because every axis is at least 2*half long).
    weight = torch.full((halves[last], 1), 2.0, dtype=re.dtype, device=re.device)
    weight[0] = 1.0
    return _apply_complex(re, im, cos * weight, sin * weight, axes[last], sign=+1, real_out=True)


# --------------------------------------------------------------------------------------------
# full-spectrum transforms (Fourier Unit), factorised


def _stage_numerators(n1: int, n, count, device) -> torch.Tensor:
    """Phase numerators ``a * (k1 + n1 * b)`` of a twiddle-folded second stage, shape (n1, n2, count).

    For an axis of length ``n = n1 * n2`` split as ``t = a_outer * n2 + a`` (time) and
    ``k = k1 + n1 * b`` (frequency), the second stage maps ``a -> b`` for each ``k1`` with the
    kernel ``exp(-/+ 2 pi i a (k1 + n1 b) / n)``, which is the twiddle ``exp(2 pi i a k1 / n)``
    times the size-n2 DFT kernel, so no separate twiddle multiply is needed.
    """
    n2 = n // n1
    k1 = torch.arange(n1, device=device, dtype=torch.int64)[:, None, None]
    a = torch.arange(n2, device=device, dtype=torch.int64)[None, :, None]
    b = torch.arange(count, device=device, dtype=torch.int64)[None, None, :]
    return a * (k1 + n1 * b)


def _trig_from_numerators(num: torch.Tensor, n, dtype) -> Pair:
    ang = torch.remainder(num, n).to(dtype) * (2.0 * math.pi) / n
    return torch.cos(ang), torch.sin(ang)


@lru_cache(maxsize=512)
def _cached_stage(n1: int, n: int, count: int, dtype: torch.dtype, device: torch.device) -> Pair:
    cos, sin = _trig_from_numerators(_stage_numerators(n1, n, count, "cpu"), n, torch.float64)
    return cos.to(dtype=dtype, device=device), sin.to(dtype=dtype, device=device)


def _stage_bases(n1: int, n, count, dtype, device) -> Pair:
    """cos/sin of the twiddle-folded second stage, (n1, n2, count); cached for static sizes."""
    if _is_static(n) and _is_static(count):
        return _cached_stage(n1, n, count, dtype, device)
    return _trig_from_numerators(_stage_numerators(n1, n, count, device), n, dtype)


def _dft_square(n, dtype, device) -> Pair:
    """cos/sin of ``2*pi*j*k/n`` for a square (n, n) DFT."""
    return _make_cos_sin(_arange, _arange, n, dtype, device)


def _apply_batched(x: torch.Tensor, mats: torch.Tensor, axis: int) -> torch.Tensor:
    """Contract ``axis`` (length n) with one (n, m) matrix per index of the axis before it.

    ``mats`` is (nb, n, m) with ``nb = x.shape[axis - 1]``.
    """
    axis = axis % x.dim()
    shape = list(x.shape)
    nb, n = shape[axis - 1], shape[axis]
    shape[axis] = mats.shape[-1]
    if axis == x.dim() - 1:
        y = torch.bmm(x.reshape(-1, nb, n).transpose(0, 1), mats).transpose(0, 1)
        return y.reshape(shape)
    rest = math.prod(shape[axis + 1:])
    return (mats.mT @ x.reshape(-1, nb, n, rest)).reshape(shape)


def _apply_complex_batched(re, im, cos, sin, axis, sign: int, real_out: bool = False):
    """:func:`_apply_complex` with per-index matrices (see :func:`_apply_batched`)."""
    if im is None:
        out_re = _apply_batched(re, cos, axis)
        return out_re if real_out else (out_re, _apply_batched(re, sin, axis) * sign)
    out_re = _apply_batched(re, cos, axis) - sign * _apply_batched(im, sin, axis)
    if real_out:
        return out_re
    return out_re, _apply_batched(im, cos, axis) + sign * _apply_batched(re, sin, axis)


def _split_for(n, radix: int | None) -> int:
    if _is_static(n):
        if radix is not None and n % radix == 0 and n > radix:
            return radix
        return choose_split(n)
    if radix is None:
        raise ValueError("a symbolic (dynamic) size needs a fixed radix for the four-step split")
    return radix


def _split_shape(shape: list, axis: int, n1: int, n2) -> list:
    return shape[:axis] + [n1, n2] + shape[axis + 1:]


def _forward_axis(re, im, axis: int, n, n1: int, scale, onesided: bool) -> Pair:
    """Four-step forward DFT along ``axis`` (real input when ``im is None``).

    Two-sided: output length n, digit-reversed (position ``k1 * n2 + k2`` holds ``k1 + n1 * k2``).
    One-sided: output length ``n//2 + 1``: the ``(k1, k2 < K2)`` block flattened, then
    ``(k1 <= r, K2)``, where ``n//2 = n1 * K2 + r``; see :func:`onesided_order`.
    """
    n2 = n // n1
    shape = list(re.shape)
    split = _split_shape(shape, axis, n1, n2)
    re = re.reshape(split)
    im = None if im is None else im.reshape(split)
    if n1 > 1:
        cos1, sin1 = _dft_square(n1, re.dtype, re.device)
        re, im = _apply_complex(re, im, cos1, sin1, axis, sign=-1)  # outer time index -> k1
    count = (n // 2) // n1 + 1 if onesided else n2
    cos2, sin2 = _stage_bases(n1, n, count, re.dtype, re.device)
    re, im = _apply_complex_batched(re, im, cos2 * scale, sin2 * scale, axis + 1, sign=-1)  # (twiddle) a -> k2
    if not onesided:
        return re.reshape(shape), im.reshape(shape)
    k2_full, r = (n // 2) // n1, (n // 2) % n1
    merged = list(shape)
    merged[axis] = n1 * k2_full

    def pick(t):
        head = t.narrow(axis + 1, 0, k2_full).reshape(merged)
        tail = t.select(axis + 1, k2_full).narrow(axis, 0, r + 1)
        return torch.cat([head, tail], axis)

    return pick(re), pick(im)


def _inverse_axis(re, im, axis: int, n, n1: int, scale) -> Pair:
    """Inverse of a two-sided :func:`_forward_axis`: digit-reversed in, natural order out."""
    n2 = n // n1
    shape = list(re.shape)
    split = _split_shape(shape, axis, n1, n2)
    re, im = re.reshape(split), im.reshape(split)
    cos2, sin2 = _stage_bases(n1, n, n2, re.dtype, re.device)
    re, im = _apply_complex_batched(re, im, cos2.mT * scale, sin2.mT * scale, axis + 1, sign=+1)  # k2 -> a
    if n1 > 1:
        cos1, sin1 = _dft_square(n1, re.dtype, re.device)
        re, im = _apply_complex(re, im, cos1, sin1, axis, sign=+1)  # k1 -> outer time index
    return re.reshape(shape), im.reshape(shape)


def _inverse_onesided_axis(re, im, axis: int, n, n1: int, scale) -> torch.Tensor:
    """Inverse of the one-sided :func:`_forward_axis` with ``irfft`` semantics (real output)."""
    n2 = n // n1
    k2_full, r = (n // 2) // n1, (n // 2) % n1
    shape = list(re.shape)
    head_shape = _split_shape(shape, axis, n1, k2_full)
    pad = [0, 0] * (re.dim() - axis - 1) + [0, n1 - r - 1]

    def unpick(t):
        head = t.narrow(axis, 0, n1 * k2_full).reshape(head_shape)
        tail = torch.nn.functional.pad(t.narrow(axis, n1 * k2_full, r + 1), pad).unsqueeze(axis + 1)
        return torch.cat([head, tail], axis + 1)  # (..., n1, K2 + 1, ...), zeros where k > n//2

    re, im = unpick(re), unpick(im)
    # Hermitian weights of natural frequency k = k1 + n1 * b: 1 for k = 0 and k = n/2, else 2.
    k1 = torch.arange(n1, device=re.device, dtype=torch.int64)[:, None]
    b = torch.arange(k2_full + 1, device=re.device, dtype=torch.int64)[None, :]
    k = k1 + n1 * b
    weight = torch.where((k == 0) | (2 * k == n), 1.0, 2.0).to(re.dtype)[:, :, None] * scale
    cos2, sin2 = _stage_bases(n1, n, k2_full + 1, re.dtype, re.device)
    cos2, sin2 = cos2.mT * weight, sin2.mT * weight  # (n1, K2 + 1, n2)
    if n1 == 1:
        out = _apply_complex_batched(re, im, cos2, sin2, axis + 1, sign=+1, real_out=True)
    else:
        re, im = _apply_complex_batched(re, im, cos2, sin2, axis + 1, sign=+1)
        cos1, sin1 = _dft_square(n1, re.dtype, re.device)
        out = _apply_complex(re, im, cos1, sin1, axis, sign=+1, real_out=True)
    shape[axis] = n
    return out.reshape(shape)


def _inv_size(n, power: float, like: torch.Tensor):
    """``n ** -power``: a float for static sizes, a 0-d tensor computed in-graph for symbolic ones."""
    if _is_static(n):
        return float(n) ** -power
    return (torch.ones((), dtype=like.dtype, device=like.device) * n) ** -power


def _norm_scale(n, norm: str, inverse: bool, like: torch.Tensor):
    if norm == "ortho":
        return _inv_size(n, 0.5, like)
    if norm == "backward":
        return _inv_size(n, 1.0, like) if inverse else 1.0
    if norm == "forward":
        return 1.0 if inverse else _inv_size(n, 1.0, like)
    raise ValueError(f"expected norm in ('ortho', 'backward', 'forward'), got {norm!r}")


def rfftn_real(x: torch.Tensor, axes: tuple[int, ...], norm: str = "ortho",
               radix: int | None = DEFAULT_EXPORT_RADIX) -> Pair:
    """Full-spectrum real DFT, the exportable twin of ``torch.fft.rfftn(x, dim=axes, norm=norm)``.

    Parameters
    ----------
    x : (..., n_0, ..., n_{d-1}) float tensor
    axes : tuple of int
        Transformed axes; the last one is one-sided (length ``n//2 + 1``, see :func:`onesided_order`).
    norm : "ortho" | "backward" | "forward"
    radix : int or None
        Split used for symbolic sizes (dynamic export); static sizes that are multiples of it use
        it too, others use :func:`choose_split`.

    Returns
    -------
    (re, im) : float tensors. Two-sided axes keep length ``n`` in digit-reversed order
        (:func:`spectrum_order`); values equal ``torch.fft.rfftn`` up to that permutation.
    """
    axes = tuple(_spatial_axis(x, a) for a in axes)
    last = axes[-1]
    n = x.shape[last]
    re, im = _forward_axis(x, None, last, n, _split_for(n, radix), _norm_scale(n, norm, False, x), onesided=True)
    for ax in axes[:-1]:
        n = x.shape[ax]
        re, im = _forward_axis(re, im, ax, n, _split_for(n, radix), _norm_scale(n, norm, False, x), onesided=False)
    return re, im


def irfftn_real(re: torch.Tensor, im: torch.Tensor, axes: tuple[int, ...], sizes: tuple,
                norm: str = "ortho", radix: int | None = DEFAULT_EXPORT_RADIX) -> torch.Tensor:
    """Inverse of :func:`rfftn_real`: ``torch.fft.irfftn(complex(re, im), s=sizes, dim=axes, norm=norm)``.

    Parameters
    ----------
    re, im : float tensors in the layout produced by :func:`rfftn_real`
    axes : tuple of int, as given to :func:`rfftn_real`
    sizes : output length per axis (int or SymInt)

    Returns
    -------
    real tensor with ``sizes`` on ``axes``. As ``irfftn`` does, the imaginary parts of the zero
    (and, for even n, Nyquist) frequency of the one-sided axis are ignored.
    """
    axes = tuple(_spatial_axis(re, a) for a in axes)
    for ax, n in zip(axes[:-1], sizes[:-1]):
        re, im = _inverse_axis(re, im, ax, n, _split_for(n, radix), _norm_scale(n, norm, True, re))
    n = sizes[-1]
    return _inverse_onesided_axis(re, im, axes[-1], n, _split_for(n, radix), _norm_scale(n, norm, True, re))


def spectrum_order(n: int, radix: int | None = DEFAULT_EXPORT_RADIX) -> torch.Tensor:
    """Natural frequency held at each position of a two-sided axis of :func:`rfftn_real`, (n,) int64."""
    n1 = _split_for(n, radix)
    p = torch.arange(n, dtype=torch.int64)
    n2 = n // n1
    return torch.div(p, n2, rounding_mode="floor") + n1 * torch.remainder(p, n2)


def onesided_order(n: int, radix: int | None = DEFAULT_EXPORT_RADIX) -> torch.Tensor:
    """Natural frequency held at each position of the one-sided axis of :func:`rfftn_real`, (n//2+1,)."""
    n1 = _split_for(n, radix)
    k2_full, r = (n // 2) // n1, (n // 2) % n1
    head = (torch.arange(n1)[:, None] + n1 * torch.arange(k2_full)[None, :]).reshape(-1)
    return torch.cat([head, torch.arange(r + 1) + n1 * k2_full])
