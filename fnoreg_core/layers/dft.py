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
  ``O(n1 + n2)`` per voxel (for 224 = 16 x 14: 30 instead of 224). Real and imaginary parts are
  stacked rows of one real tensor and every stage is one GEMM (:func:`stacked_matrix`,
  :func:`rfftn_stacked`); between axes only single-axis transposes (``docs/ARCHITECTURE.md``,
  decision 17).

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
    "rfftn_stacked",
    "irfftn_stacked",
    "stacked_matrix",
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


def apply_basis(re, im, cos, sin, axis: int, sign: int, real_out: bool = False):
    """``(re + i im)`` contracted along ``axis`` with the kernel ``cos + sign * i sin``.

    ``cos``/``sin`` are (n, m); ``im=None`` means a real input; ``real_out`` computes only the real
    part. One GEMM with the stacked real kernel (:func:`stacked_matrix`): the real and imaginary
    inputs are concatenated along ``axis`` (a copy of the smaller side in the truncated transforms)
    and the result is split there. The last axis is a plain right product; any other axis a left
    product on a zero-copy ``(prefix, rows, rest)`` view, so no data is transposed.
    """
    axis = axis % re.dim()
    parts_in, parts_out = (1 if im is None else 2), (1 if real_out else 2)
    x = re if im is None else torch.cat([re, im], axis)
    last = axis == x.dim() - 1
    w = stacked_matrix(cos, sin, sign, parts_in, parts_out, right=last)
    if last:  # w: (parts_in * n, parts_out * m)
        y = torch.matmul(x, w)
    else:
        shape = list(x.shape)
        y = torch.matmul(w, x.reshape(shape[:axis] + [shape[axis], -1]))
        y = y.reshape(shape[:axis] + [w.shape[0]] + shape[axis + 1:])  # w: (parts_out * m, parts_in * n)
    if real_out:
        return y
    m = cos.shape[-1]
    return y.narrow(axis, 0, m), y.narrow(axis, m, m)


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


def stacked_matrix(cos: torch.Tensor, sin: torch.Tensor, sign: int, parts_in: int, parts_out: int,
                   in_part_inner: bool = False, out_part_inner: bool = False, right: bool = False) -> torch.Tensor:
    """The complex kernel ``cos + sign * i sin`` as one real matrix acting on stacked [Re; Im] rows.

    A complex product ``(a + i b) (c + i s)`` is the real product of ``[[c, -s], [s, c]]`` with
    ``[a; b]``: one GEMM instead of four products and an add and a subtract.

    Parameters
    ----------
    cos, sin : (..., n_in, n_out) float tensors (the basis convention of :func:`apply_basis`)
    sign : +1 or -1
    parts_in, parts_out : 1 (real: Re only) or 2 (complex)
    in_part_inner, out_part_inner : order of the stacked index: ``(index, part)`` when True,
        ``(part, index)`` when False
    right : return the matrix for a right product ``X @ W`` (built in that orientation, so the
        exported graph holds no transpose in front of the MatMul)

    Returns
    -------
    ``W`` for ``W @ X``: (..., parts_out * n_out, parts_in * n_in); with ``right``, for ``X @ W``:
    (..., parts_in * n_in, parts_out * n_out).
    """
    s = sin * sign  # (..., n_in, n_out)
    blocks = [[cos, -s], [s, cos]]
    w = torch.stack([torch.stack(blocks[po][:parts_in], dim=-3) for po in range(parts_out)], dim=-4)
    nd = w.dim()  # w: (..., part_out, part_in, n_in, n_out)
    po, pi, ni, no = nd - 4, nd - 3, nd - 2, nd - 1
    rows = [no, po] if out_part_inner else [po, no]
    cols = [ni, pi] if in_part_inner else [pi, ni]
    first, second = (cols, rows) if right else (rows, cols)
    w = w.permute(list(range(nd - 4)) + first + second)
    return w.reshape(list(w.shape[:-4]) + [w.shape[-4] * w.shape[-3], w.shape[-2] * w.shape[-1]])


def _move_axis(t: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    """``t.movedim(src, dst)``: one transpose that moves a single axis, a pattern onnxruntime and
    TensorRT copy at memory speed (a permutation that splits the innermost axis is many times slower)."""
    return t if src == dst else t.movedim(src, dst)


def _forward_stage(t: torch.Tensor, n, n1: int, scale, onesided: bool) -> torch.Tensor:
    """Four-step DFT of the axis after the part axis: (G, P, n, *rest) -> (G, m, 2, *rest).

    ``P`` is 1 (real input) or 2 ([Re; Im]). Time index ``t1 * n2 + a`` (``t1`` outer); spectral
    position ``k1 * count + k2`` holds frequency ``k1 + n1 * k2`` (digit-reversed). Stage 1 is a
    dense size-``n1`` DFT over the rows ``(part, t1)`` (one GEMM); stage 2 carries the twiddles, one
    matrix per ``k1`` (one batched GEMM). The one-sided axis keeps the ``m = n//2 + 1`` bins of
    ``rfft``: the ``(k1, k2 < K2)`` block, then ``(k1 <= r, K2)`` (:func:`onesided_order`).
    """
    g, parts, rest = t.shape[0], t.shape[1], list(t.shape[3:])
    n2 = n // n1
    x = t.reshape(g, parts * n1, -1)
    if n1 > 1:
        cos1, sin1 = _dft_square(n1, t.dtype, t.device)
        x = torch.matmul(stacked_matrix(cos1, sin1, -1, parts, 2, out_part_inner=True), x)  # rows (k1, part)
        parts = 2
    count = (n // 2) // n1 + 1 if onesided else n2
    cos2, sin2 = _stage_bases(n1, n, count, t.dtype, t.device)  # (n1, n2, count)
    w2 = stacked_matrix(cos2 * scale, sin2 * scale, -1, parts, 2, out_part_inner=True)  # rows (k2, part)
    x = x.reshape(g, n1, parts * n2, -1)
    if not onesided or n1 == 1:
        return torch.matmul(w2, x).reshape([g, n1 * count, 2] + rest)
    # one-sided: the (k1, k2 < K2) block and the (k1 <= r, K2) tail as two products (no slice of a
    # large result)
    k2_full, r = (n // 2) // n1, (n // 2) % n1
    head = torch.matmul(w2.narrow(1, 0, 2 * k2_full), x).reshape([g, n1 * k2_full, 2] + rest)
    tail = torch.matmul(w2.narrow(0, 0, r + 1).narrow(1, 2 * k2_full, 2), x.narrow(1, 0, r + 1))
    return torch.cat([head, tail.reshape([g, r + 1, 2] + rest)], 1)


def _inverse_stage(t: torch.Tensor, n, n1: int, scale, onesided: bool) -> torch.Tensor:
    """Inverse of :func:`_forward_stage`: (G, m, 2, *rest) -> (G, P, n, *rest), natural order.

    ``P`` is 1 for the one-sided axis (``irfft`` semantics: real output, Hermitian weights, the
    imaginary parts of the zero and Nyquist bins ignored), else 2.
    """
    g, rest = t.shape[0], list(t.shape[3:])
    n2 = n // n1
    parts_out = 1 if onesided else 2
    if onesided and n1 > 1:  # zero-pad to the (n1, K2 + 1) block: bins above n//2
        k2_full, r = (n // 2) // n1, (n // 2) % n1
        head = t.narrow(1, 0, n1 * k2_full).reshape([g, n1, k2_full, 2] + rest)
        tail = t.narrow(1, n1 * k2_full, r + 1)
        pad = [0, 0] * (t.dim() - 2) + [0, n1 - r - 1]
        tail = torch.nn.functional.pad(tail, pad).unsqueeze(2)
        t = torch.cat([head, tail], 2)
        count = k2_full + 1
    else:
        count = (n // 2) // n1 + 1 if onesided else n2
    cos2, sin2 = _stage_bases(n1, n, count, t.dtype, t.device)  # (n1, n2, count)
    cos2, sin2 = cos2.mT, sin2.mT  # (n1, count, n2): k2 -> a
    if onesided:
        # Hermitian weights of natural frequency k = k1 + n1 * b: 1 for k = 0 and k = n/2, else 2.
        k1 = torch.arange(n1, device=t.device, dtype=torch.int64)[:, None]
        b = torch.arange(count, device=t.device, dtype=torch.int64)[None, :]
        k = k1 + n1 * b
        weight = torch.where((k == 0) | (2 * k == n), 1.0, 2.0).to(t.dtype)[:, :, None]
        cos2, sin2 = cos2 * weight, sin2 * weight
    stage2_parts = parts_out if n1 == 1 else 2
    w2 = stacked_matrix(cos2 * scale, sin2 * scale, +1, 2, stage2_parts, in_part_inner=True)  # cols (k2, part)
    x = torch.matmul(w2, t.reshape(g, n1, count * 2, -1))  # rows (part, a)
    if n1 > 1:
        cos1, sin1 = _dft_square(n1, t.dtype, t.device)
        w1 = stacked_matrix(cos1, sin1, +1, 2, parts_out, in_part_inner=True)  # cols (k1, part), rows (part, t1)
        x = torch.matmul(w1, x.reshape(g, n1 * 2, -1))
    return x.reshape([g, parts_out, n] + rest)


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


def rfftn_stacked(x: torch.Tensor, axes: tuple[int, ...], lead: int = 0, norm: str = "ortho",
                  radix: int | None = DEFAULT_EXPORT_RADIX) -> tuple[torch.Tensor, list[int]]:
    """:func:`rfftn_real` in its fast layout: one real tensor, [Re; Im] stacked on a part axis.

    The axis being transformed sits right after the part axis; each stage is one GEMM on the
    contiguous rows ``(part, index)`` (:func:`stacked_matrix`), and a transformed axis then moves
    to the end, so the next one comes up: one single-axis transpose per axis. Point-wise work in the
    spectral domain (the Fourier Unit's 1x1 convolution, batch norm, ReLU) does not depend on the
    order of positions, so the layout is never unscrambled.

    Parameters
    ----------
    x : (*L, ...) float tensor; its first ``lead`` axes are carried along untouched, at the front
    axes : transformed axes (all ``>= lead``); the last one is one-sided
    lead : number of leading axes kept in front (the Fourier Unit: 2, batch and channels)
    norm, radix : as in :func:`rfftn_real`

    Returns
    -------
    z : (*L, 2, *positions) float tensor, ``z[..., 0, ...]`` the real part; positions are x's
        other axes, untransformed ones first, transformed ones digit-reversed
        (:func:`spectrum_order`, :func:`onesided_order`), in the order they were transformed
    labels : list of int, the axis of ``x`` at each position
    """
    ndim = x.dim()
    axes = tuple(_spatial_axis(x, a) for a in axes)
    if any(a < lead for a in axes):
        raise ValueError(f"expected transformed axes >= lead={lead}, got {axes}")
    lead_shape = list(x.shape[:lead])
    labels = list(range(lead, ndim))
    t = x.reshape([-1, 1] + list(x.shape[lead:]))  # (G, part, ...)
    for j, ax in enumerate([axes[-1]] + list(axes[:-1])):  # one-sided axis first: real input
        t = _move_axis(t, 2 + labels.index(ax), 2)
        labels.insert(0, labels.pop(labels.index(ax)))
        n = x.shape[ax]
        t = _forward_stage(t, n, _split_for(n, radix), _norm_scale(n, norm, False, x), onesided=j == 0)
        t = _move_axis(t, 1, -1)  # (G, 2, *rest, m)
        labels.append(labels.pop(0))
    return t.reshape(lead_shape + list(t.shape[1:])), labels


def irfftn_stacked(z: torch.Tensor, labels: list[int], axes: tuple[int, ...], sizes: tuple,
                   norm: str = "ortho", radix: int | None = DEFAULT_EXPORT_RADIX) -> torch.Tensor:
    """Inverse of :func:`rfftn_stacked`; returns the real tensor in the ORIGINAL axis order.

    ``axes`` as given to :func:`rfftn_stacked` (axes of the real tensor), ``sizes`` their output
    lengths (int or SymInt), ``labels`` as it returned.
    """
    lead = z.dim() - 1 - len(labels)
    ndim = lead + len(labels)
    axes = tuple(a % ndim for a in axes)
    order = [axes[-1]] + list(axes[:-1])
    labels = list(labels)
    if lead < 0 or z.shape[lead] != 2 or labels[-len(order):] != order or sorted(labels) != list(range(lead, ndim)):
        raise ValueError(f"expected the stacked layout of rfftn_stacked, got shape {tuple(z.shape)}, labels {labels}")
    size_of = dict(zip(axes, sizes))
    lead_shape = list(z.shape[:lead])
    t = z.reshape([-1, 2] + list(z.shape[lead + 1:]))
    for ax in reversed(order):  # always the innermost axis
        t = _move_axis(t, -1, 1)  # (G, m, 2, *rest)
        labels.insert(0, labels.pop())
        n = size_of[ax]
        t = _inverse_stage(t, n, _split_for(n, radix), _norm_scale(n, norm, True, z), onesided=ax == order[0])
    t = t.reshape([t.shape[0]] + list(t.shape[2:]))  # the part axis is 1 now
    perm = [0] + [1 + labels.index(a) for a in range(lead, ndim)]  # back to input order (the Fourier
    if perm != list(range(len(perm))):                               # Unit: one single-axis move)
        t = t.permute(perm)
    return t.reshape(lead_shape + list(t.shape[1:]))


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
        permutation. (Layers that can work in a permuted layout use :func:`rfftn_stacked`.)
    """
    z, labels = rfftn_stacked(x, axes, 0, norm, radix)
    order = [labels.index(a) for a in range(x.dim())]
    return z[0].permute(order).contiguous(), z[1].permute(order).contiguous()


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
    order = [axes[-1]] + list(axes[:-1])
    labels = [a for a in range(re.dim()) if a not in axes] + order  # rfftn_stacked's layout
    z = torch.stack([re.permute(labels), im.permute(labels)])
    return irfftn_stacked(z, labels, axes, sizes, norm, radix)


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
