"""Discrete Fourier transforms in real arithmetic that export to ONNX with dynamic sizes.

(Over 500 lines on purpose: truncated and factorised full-spectrum transforms share their bases,
size rules and export paths.)

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
  Cooley-Tukey split): a DFT of size ``n1``, then a DFT of size ``n2`` whose matrices carry the
  twiddle factors (one matrix per first-stage frequency, applied as a batched matmul), costing
  ``O(n1 + n2)`` per voxel (for 224 = 16 x 14: 30 instead of 224).

Spectral layout of the full-spectrum transform
----------------------------------------------
The four-step split leaves the frequencies of a complex axis in *digit-reversed* order
(array position ``k1 * n2 + k2`` holds frequency ``k1 + n1 * k2``). The Fourier Unit only
applies point-wise operations in the spectral domain (1x1 convolution, batch norm, ReLU), which
commute with any permutation of positions, so the unscrambling transpose is skipped:
:func:`irfftn_real` consumes the same layout. The one-sided (real) axis holds exactly the
``n//2 + 1`` bins of ``rfft`` (so batch-norm statistics over the spectrum equal the reference's),
in the order given by :func:`onesided_order` (natural when the axis is not split).
:func:`spectrum_order` / :func:`onesided_order` give the permutations for users who need natural
order (the tests use them to compare with ``torch.fft``).

Static vs dynamic sizes
-----------------------
When a size is a Python ``int`` (eager training, static-shape export), bases are computed once in
float64 (numpy), cast, and cached per (size, modes, dtype, device); the split ``n1`` is ``radix``
when ``n`` is a multiple of it, else the largest divisor of ``n`` below ``sqrt(n)`` (primes fall
back to one dense matmul). When a size is symbolic (``torch.SymInt`` during a dynamic-shape
export), bases are computed inside the graph from the size, in float64, then cast, and the split
uses ``radix`` as ``n1``: the exported graph serves every size that is a multiple of ``radix``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "choose_split",
    "truncated_frequencies",
    "truncated_rdft",
    "truncated_irdft",
    "rfftn_real",
    "irfftn_real",
    "rfftn_leading",
    "irfftn_leading",
    "spectrum_order",
    "onesided_order",
    "DEFAULT_EXPORT_RADIX",
    # the basis API other spectral layers build on (layers/band_limit.py)
    "apply_basis",
    "is_static_size",
    "size_tensor",
]

#: Split used for symbolic sizes in dynamic-shape exports; exported graphs accept multiples of it.
DEFAULT_EXPORT_RADIX = 16

Pair = tuple[torch.Tensor, torch.Tensor]


def is_static_size(n) -> bool:
    """True for a concrete size (a Python int); False for a symbolic one traced during ONNX export."""
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


def _index_vector(spec: tuple, n, xp, device=None):
    """int64 index vector: ``("arange",)`` -> ``0..n-1``; ``("freqs", half, one_sided)`` -> kept modes."""
    if spec[0] == "arange":
        return xp.arange(n, dtype=xp.int64) if xp is np else torch.arange(n, device=device, dtype=torch.int64)
    _, half, one_sided = spec
    if xp is np:
        pos = np.arange(half, dtype=np.int64)
        return pos if one_sided else np.concatenate([pos, pos - half])
    return truncated_frequencies(half, one_sided, device)


def _numerators(spec: tuple, n, xp, device=None):
    """Integer phase numerators ``m`` of a basis ``exp(+-2 pi i m / n)`` described by ``spec``.

    ``("outer", rows, cols)``: ``rows[:, None] * cols[None, :]`` of two index vectors.
    ``("stage", n1, count)``: ``a * (k1 + n1 * b)``, shape (n1, n // n1, count): the second stage
    of a four-step split with the twiddle folded in (see :func:`_forward_axis`).
    """
    if spec[0] == "outer":
        return _index_vector(spec[1], n, xp, device)[:, None] * _index_vector(spec[2], n, xp, device)[None, :]
    _, n1, count = spec
    if xp is np:
        k1, a, b = np.ogrid[:n1, : n // n1, :count]
        return a.astype(np.int64) * (k1 + n1 * b)
    k1 = torch.arange(n1, device=device, dtype=torch.int64)[:, None, None]
    a = torch.arange(n // n1, device=device, dtype=torch.int64)[None, :, None]
    b = torch.arange(count, device=device, dtype=torch.int64)[None, None, :]
    return a * (k1 + n1 * b)


@lru_cache(maxsize=1024)
def _numpy_bases(spec: tuple, n: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of ``2 pi (m mod n) / n`` in float64 (numpy, so caching never holds traced tensors)."""
    ang = np.remainder(_numerators(spec, n, np), n) * (2.0 * math.pi / n)
    return np.cos(ang), np.sin(ang)


@lru_cache(maxsize=1024)
def _cached_bases(spec: tuple, n: int, dtype: torch.dtype, device: torch.device) -> Pair:
    cos, sin = _numpy_bases(spec, n)
    return torch.from_numpy(cos).to(dtype=dtype, device=device), torch.from_numpy(sin).to(dtype=dtype, device=device)


def size_tensor(n, device) -> torch.Tensor:
    """A symbolic size as a 0-d int64 tensor (ONNX export cannot take a symbolic scalar as the
    second operand of ``remainder``/``div``)."""
    return torch.zeros((), dtype=torch.int64, device=device) + n


def _bases(spec: tuple, n, dtype: torch.dtype, device) -> Pair:
    """cos/sin of the basis ``spec`` for length ``n``, computed in float64 and cast to ``dtype``.

    Static sizes: numpy tables, cached (as torch tensors too in eager mode; as graph constants in a
    static-shape export). Symbolic sizes: computed in the graph from the size, in float64 (the
    integer reduction mod n first keeps the angles exact), then cast, so an exported dynamic graph
    matches eager to float32 rounding.
    """
    static = is_static_size(n) and all(is_static_size(v) for v in spec[1:] if not isinstance(v, tuple))
    if static:
        if torch.compiler.is_compiling():
            cos, sin = _numpy_bases(spec, n)
            return torch.tensor(cos, dtype=dtype, device=device), torch.tensor(sin, dtype=dtype, device=device)
        return _cached_bases(spec, n, dtype, torch.device(device) if device is not None else torch.device("cpu"))
    num = _numerators(spec, n, torch, device)
    n_t = size_tensor(n, device)
    ang = torch.remainder(num, n_t).to(torch.float64) * (2.0 * math.pi) / n_t.to(torch.float64)
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


_ARANGE = ("arange",)


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


def apply_basis(re, im, cos, sin, axis: int, sign: int, real_out: bool = False, batched: bool = False):
    """``(re + i im)`` contracted along ``axis`` with the kernel ``cos + sign * i sin``.

    ``cos``/``sin`` are (n, m), or with ``batched`` (nb, n, m): one matrix per index of the axis
    before ``axis`` (``nb = re.shape[axis - 1]``). ``im=None`` means a real input; ``real_out``
    computes only the real part. Inputs are reshaped once into zero-copy ``(prefix, n, rest)``
    views (the last axis is a plain right product), so no data is transposed except for a batched
    last axis.
    """
    axis = axis % re.dim()
    shape = list(re.shape)
    n = shape[axis]
    out_shape = shape[:axis] + [cos.shape[-1]] + shape[axis + 1:]
    last = axis == re.dim() - 1
    if batched and last:  # (nb, P, n) @ (nb, n, m)
        nb = shape[axis - 1]
        view = lambda t: t.reshape(-1, nb, n).transpose(0, 1)
        mm = torch.bmm
        unview = lambda t: t.transpose(0, 1).reshape(out_shape)
    elif last:
        view = lambda t: t
        mm = torch.matmul
        unview = lambda t: t
    else:
        rest = math.prod(shape[axis + 1:])
        view = (lambda t: t.reshape(-1, shape[axis - 1], n, rest)) if batched else (lambda t: t.reshape(-1, n, rest))
        mm = lambda t, mat: torch.matmul(mat.mT, t)
        unview = lambda t: t.reshape(out_shape)
    a = view(re)
    if im is None:
        out_re = mm(a, cos)
        if real_out:
            return unview(out_re)
        # negate the small matrix, not the large result
        return unview(out_re), unview(mm(a, sin if sign > 0 else -sin))
    b = view(im)
    out_re = mm(a, cos) - mm(b, sin) if sign > 0 else mm(a, cos) + mm(b, sin)
    if real_out:
        return unview(out_re)
    out_im = mm(b, cos) + mm(a, sin) if sign > 0 else mm(b, cos) - mm(a, sin)
    return unview(out_re), unview(out_im)


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
        cos, sin = _bases(("outer", _ARANGE, ("freqs", halves[j], j == len(axes) - 1)), n, x.dtype, x.device)
        # bases are (n, m); scale 1/n for norm="forward"
        scale = _inv_size(n, 1.0, x)
        re, im = apply_basis(re, im, cos * scale, sin * scale, ax, sign=-1)
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
        cos, sin = _bases(("outer", ("freqs", halves[j], False), _ARANGE), n, re.dtype, re.device)
        re, im = apply_basis(re, im, cos, sin, ax, sign=+1)
    n = sizes[last]
    cos, sin = _bases(("outer", ("freqs", halves[last], True), _ARANGE), n, re.dtype, re.device)
    # Hermitian weights of a one-sided spectrum: 1 for k = 0, 2 for 0 < k < n/2 (Nyquist is never
    # kept because every axis is at least 2*half long).
    weight = torch.full((halves[last], 1), 2.0, dtype=re.dtype, device=re.device)
    weight[0] = 1.0
    return apply_basis(re, im, cos * weight, sin * weight, axes[last], sign=+1, real_out=True)


# --------------------------------------------------------------------------------------------
# full-spectrum transforms (Fourier Unit), factorised


def _stage_bases(n1: int, n, count, dtype, device) -> Pair:
    """cos/sin of the twiddle-folded second stage of a four-step split, (n1, n // n1, count)."""
    return _bases(("stage", n1, count), n, dtype, device)


def _dft_square(n, dtype, device) -> Pair:
    """cos/sin of ``2*pi*j*k/n`` for a square (n, n) DFT."""
    return _bases(("outer", _ARANGE, _ARANGE), n, dtype, device)


def _split_for(n, radix: int | None) -> int:
    if is_static_size(n):
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
        re, im = apply_basis(re, im, cos1, sin1, axis, sign=-1)  # outer time index -> k1
    count = (n // 2) // n1 + 1 if onesided else n2
    cos2, sin2 = _stage_bases(n1, n, count, re.dtype, re.device)
    re, im = apply_basis(re, im, cos2 * scale, sin2 * scale, axis + 1, sign=-1, batched=True)  # (twiddle) a -> k2
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
    re, im = apply_basis(re, im, cos2.mT * scale, sin2.mT * scale, axis + 1, sign=+1, batched=True)  # k2 -> a
    if n1 > 1:
        cos1, sin1 = _dft_square(n1, re.dtype, re.device)
        re, im = apply_basis(re, im, cos1, sin1, axis, sign=+1)  # k1 -> outer time index
    return re.reshape(shape), im.reshape(shape)


def _inverse_onesided_axis(re, im, axis: int, n, n1: int, scale) -> torch.Tensor:
    """Inverse of the one-sided :func:`_forward_axis` with ``irfft`` semantics (real output)."""
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
        out = apply_basis(re, im, cos2, sin2, axis + 1, sign=+1, real_out=True, batched=True)
    else:
        re, im = apply_basis(re, im, cos2, sin2, axis + 1, sign=+1, batched=True)
        cos1, sin1 = _dft_square(n1, re.dtype, re.device)
        out = apply_basis(re, im, cos1, sin1, axis, sign=+1, real_out=True)
    shape[axis] = n
    return out.reshape(shape)


def _inv_size(n, power: float, like: torch.Tensor):
    """``n ** -power``: a float for static sizes, a 0-d tensor computed in-graph for symbolic ones."""
    if is_static_size(n):
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


def rfftn_leading(x: torch.Tensor, axes: tuple[int, ...], norm: str = "ortho",
                  radix: int | None = DEFAULT_EXPORT_RADIX) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """:func:`rfftn_real` in its fast layout: each axis is moved to the front before it is transformed.

    A transform along the memory-last axis would be a batch of tiny matrix products; along the
    leading axis it is one large product. So every axis is brought to the front (one copy) and
    left there: the one-sided axis first, then the others in order.

    Returns
    -------
    re, im : float tensors whose axes are permuted: ``labels[i]`` is the input axis at position i
        (transformed axes first, the last of ``axes`` innermost of them, untouched axes after, in
        input order). Two-sided axes are digit-reversed as in :func:`rfftn_real`.
    labels : list of int
    """
    axes = tuple(_spatial_axis(x, a) for a in axes)
    labels = list(range(x.dim()))
    re, im = x, None
    for j in [len(axes) - 1] + list(range(len(axes) - 1)):
        ax = axes[j]
        pos = labels.index(ax)
        re = re.movedim(pos, 0)
        im = None if im is None else im.movedim(pos, 0)
        labels.insert(0, labels.pop(pos))
        n = x.shape[ax]
        re, im = _forward_axis(re, im, 0, n, _split_for(n, radix), _norm_scale(n, norm, False, x),
                               onesided=j == len(axes) - 1)
    return re, im, labels


def irfftn_leading(re: torch.Tensor, im: torch.Tensor, labels: list[int], axes: tuple[int, ...], sizes: tuple,
                   norm: str = "ortho", radix: int | None = DEFAULT_EXPORT_RADIX) -> torch.Tensor:
    """Inverse of :func:`rfftn_leading`; returns the real tensor in the ORIGINAL axis order.

    ``axes`` are given as for :func:`rfftn_leading` (positions in the original tensor).
    """
    ndim = re.dim()
    axes = tuple(a % ndim for a in axes)
    labels = list(labels)
    size_of = dict(zip(axes, sizes))
    # the front axis is always the next to invert; inverted axes rotate to the back
    for j in list(range(len(axes) - 2, -1, -1)) + [len(axes) - 1]:
        ax = axes[j]
        if labels[0] != ax:
            raise ValueError(f"expected the spectral layout of rfftn_leading, got axis labels {labels}")
        n = size_of[ax]
        if j == len(axes) - 1:
            out = _inverse_onesided_axis(re, im, 0, n, _split_for(n, radix), _norm_scale(n, norm, True, re))
            labels.append(labels.pop(0))
            out = out.movedim(0, -1)
            return out.permute([labels.index(i) for i in range(ndim)])
        re, im = _inverse_axis(re, im, 0, n, _split_for(n, radix), _norm_scale(n, norm, True, re))
        re, im = re.movedim(0, -1), im.movedim(0, -1)
        labels.append(labels.pop(0))
    raise AssertionError("unreachable")


def _to_input_order(t: torch.Tensor, labels: list[int]) -> torch.Tensor:
    return t.permute([labels.index(i) for i in range(t.dim())])


def _to_labels_order(t: torch.Tensor, labels: list[int]) -> torch.Tensor:
    return t.permute(labels)


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
    (re, im) : float tensors in the input's axis order. Two-sided axes keep length ``n`` in
        digit-reversed order (:func:`spectrum_order`); values equal ``torch.fft.rfftn`` up to that
        permutation. (Layers that can work in a permuted layout use :func:`rfftn_leading`.)
    """
    re, im, labels = rfftn_leading(x, axes, norm, radix)
    return _to_input_order(re, labels).contiguous(), _to_input_order(im, labels).contiguous()


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
    labels = list(range(re.dim()))
    for ax in [axes[-1]] + list(axes[:-1]):
        labels.insert(0, labels.pop(labels.index(ax)))
    return irfftn_leading(_to_labels_order(re, labels), _to_labels_order(im, labels), labels, axes, sizes, norm, radix)


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
