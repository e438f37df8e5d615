"""Tests for fnoreg_core.layers.dft (real-arithmetic DFTs) against a torch.fft reference.

The full-spectrum transform keeps two-sided axes in digit-reversed order; the reference below
permutes torch.fft's natural-order spectrum into that layout with ``spectrum_order`` (two-sided
axes) and ``onesided_order`` (the last transformed axis), i.e. ``layout = natural[order]``.
Tolerance: relative Frobenius error <= 1e-5 everywhere (float64 gives ~1e-15).
"""

import math

import pytest
import torch

from fnoreg_core.layers.dft import (
    choose_split,
    irfftn_real,
    onesided_order,
    rfftn_real,
    spectrum_order,
    truncated_irdft,
    truncated_rdft,
)

RTOL = 1e-5


# (input shape, transformed axes): 2D all axes, the 2D reference quirk (axis -2 only), 3D all axes.
# Sizes mix even / odd / prime lengths and lengths that split (30 = 5 x 6, 48 = 6 x 8 or 16 x 3).
CASES = [
    ((2, 3, 12, 17), (2, 3)),
    ((1, 2, 31, 30), (-2, -1)),
    ((1, 2, 48, 16), (2, 3)),
    ((2, 2, 97, 12), (2, 3)),
    ((2, 3, 30, 17), (-2,)),
    ((1, 2, 48, 31), (-2,)),
    ((1, 2, 12, 16, 30), (2, 3, 4)),
    ((1, 1, 17, 48, 16), (2, 3, 4)),
]
CASE_IDS = ["2d-12x17", "2d-31x30", "2d-48x16", "2d-97x12", "2d-ax0-30", "2d-ax0-48", "3d-12x16x30", "3d-17x48x16"]
NORMS = ["ortho", "backward", "forward"]
RADICES = [None, 4, 16]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def _axes(x_dim: int, axes) -> list[int]:
    return [a % x_dim for a in axes]


def layout_from_natural(spec: torch.Tensor, axes, sizes, radix) -> torch.Tensor:
    """Natural-order rfftn spectrum -> the layout of rfftn_real (``layout = natural[order]``)."""
    axes = _axes(spec.dim(), axes)
    for a, n in zip(axes[:-1], sizes[:-1]):
        spec = spec.index_select(a, spectrum_order(n, radix))
    return spec.index_select(axes[-1], onesided_order(sizes[-1], radix))


def natural_from_layout(spec: torch.Tensor, axes, sizes, radix) -> torch.Tensor:
    """Inverse permutation (``out[order] = layout``), differentiable."""
    axes = _axes(spec.dim(), axes)
    for a, n in zip(axes[:-1], sizes[:-1]):
        spec = spec.index_select(a, torch.argsort(spectrum_order(n, radix)))
    return spec.index_select(axes[-1], torch.argsort(onesided_order(sizes[-1], radix)))


def ref_rfftn(x, axes, norm, radix):
    """torch.fft reference of rfftn_real: (re, im) in the digit-reversed layout."""
    sizes = [x.shape[a] for a in _axes(x.dim(), axes)]
    spec = layout_from_natural(torch.fft.rfftn(x, dim=axes, norm=norm), axes, sizes, radix)
    return spec.real, spec.imag


def ref_irfftn(re, im, axes, sizes, norm, radix):
    """torch.fft reference of irfftn_real: permute back to natural order, then irfftn."""
    spec = natural_from_layout(torch.complex(re, im), axes, sizes, radix)
    return torch.fft.irfftn(spec, s=sizes, dim=axes, norm=norm)


def _sizes(shape, axes):
    return [shape[a] for a in _axes(len(shape), axes)]


# --------------------------------------------------------------------------------------------
# splits and layouts


def test_choose_split_examples():
    assert choose_split(224) == 14
    assert choose_split(192) == 12
    assert choose_split(97) == 1
    assert choose_split(16) == 1  # small sizes: one dense transform
    assert choose_split(30) == 5


@pytest.mark.parametrize("n", [17, 18, 30, 31, 48, 64, 97, 100, 224, 225, 256])
def test_choose_split_divides_below_sqrt(n):
    n1 = choose_split(n)
    assert n % n1 == 0 and n1 <= math.isqrt(n)
    # largest such divisor
    assert all(n % d for d in range(n1 + 1, math.isqrt(n) + 1))


@pytest.mark.parametrize("radix", RADICES)
@pytest.mark.parametrize("n", [2, 3, 12, 16, 17, 30, 31, 48, 64, 97, 224])
def test_orders_are_permutations(n, radix):
    two = spectrum_order(n, radix)
    one = onesided_order(n, radix)
    assert two.dtype == torch.int64 and one.dtype == torch.int64
    assert torch.equal(two.sort().values, torch.arange(n))
    assert torch.equal(one.sort().values, torch.arange(n // 2 + 1))


def test_spectrum_order_is_digit_reversed():
    # 48 with radix 16: n1 = 16, n2 = 3; position k1 * 3 + k2 holds k1 + 16 * k2
    order = spectrum_order(48, 16)
    for k1 in range(16):
        for k2 in range(3):
            assert order[k1 * 3 + k2] == k1 + 16 * k2
    assert torch.equal(spectrum_order(17, None), torch.arange(17))  # prime: dense, natural order


# --------------------------------------------------------------------------------------------
# full-spectrum forward


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("radix", RADICES)
@pytest.mark.parametrize("shape,axes", CASES, ids=CASE_IDS)
def test_rfftn_real_matches_torch_fft(shape, axes, radix, norm):
    x = torch.randn(shape, dtype=torch.float64)
    re, im = rfftn_real(x, axes, norm=norm, radix=radix)
    ref_re, ref_im = ref_rfftn(x, axes, norm, radix)
    assert re.shape == ref_re.shape and im.shape == ref_im.shape
    assert re.dtype == torch.float64
    assert rel_err(re, ref_re) <= RTOL
    assert rel_err(im, ref_im) <= RTOL


@pytest.mark.parametrize("radix", [None, 16])
def test_rfftn_real_float32(radix):
    x = torch.randn(2, 3, 48, 30, 17)
    axes = (2, 3, 4)
    re, im = rfftn_real(x, axes, norm="ortho", radix=radix)
    assert re.dtype == torch.float32
    ref_re, ref_im = ref_rfftn(x.double(), axes, "ortho", radix)
    assert rel_err(re.double(), ref_re) <= RTOL
    assert rel_err(im.double(), ref_im) <= RTOL
    y = irfftn_real(re, im, axes, (48, 30, 17), norm="ortho", radix=radix)
    assert y.dtype == torch.float32
    assert rel_err(y.double(), x.double()) <= RTOL


def test_bad_norm_raises():
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(ValueError, match="expected norm in"):
        rfftn_real(x, (2, 3), norm="unitary")
    re, im = rfftn_real(x, (2, 3))
    with pytest.raises(ValueError, match="expected norm in"):
        irfftn_real(re, im, (2, 3), (8, 8), norm="unitary")


# --------------------------------------------------------------------------------------------
# full-spectrum inverse


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("radix", RADICES)
@pytest.mark.parametrize("shape,axes", CASES, ids=CASE_IDS)
def test_irfftn_real_matches_torch_fft_on_arbitrary_spectrum(shape, axes, radix, norm):
    # a random, NON-Hermitian spectrum: irfftn ignores Im of DC / Nyquist of the one-sided axis
    # (and of the implied symmetric pairs); irfftn_real must do exactly the same
    x = torch.randn(shape, dtype=torch.float64)
    re0, _ = rfftn_real(x, axes, norm=norm, radix=radix)
    re, im = torch.randn_like(re0), torch.randn_like(re0)
    sizes = _sizes(shape, axes)
    y = irfftn_real(re, im, axes, sizes, norm=norm, radix=radix)
    ref = ref_irfftn(re, im, axes, sizes, norm, radix)
    assert y.shape == ref.shape == x.shape
    assert rel_err(y, ref) <= RTOL


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("radix", RADICES)
@pytest.mark.parametrize("shape,axes", CASES, ids=CASE_IDS)
def test_round_trip(shape, axes, radix, norm):
    x = torch.randn(shape, dtype=torch.float64)
    re, im = rfftn_real(x, axes, norm=norm, radix=radix)
    y = irfftn_real(re, im, axes, _sizes(shape, axes), norm=norm, radix=radix)
    assert rel_err(y, x) <= RTOL


# --------------------------------------------------------------------------------------------
# gradients


@pytest.mark.parametrize("radix", [None, 4])
@pytest.mark.parametrize("shape,axes", CASES, ids=CASE_IDS)
def test_rfftn_real_backward(shape, axes, radix):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    re, im = rfftn_real(x, axes, norm="ortho", radix=radix)
    g_re, g_im = torch.randn_like(re), torch.randn_like(im)  # random linear functional
    (grad,) = torch.autograd.grad((g_re * re).sum() + (g_im * im).sum(), x)
    ref_re, ref_im = ref_rfftn(x, axes, "ortho", radix)
    (ref_grad,) = torch.autograd.grad((g_re * ref_re).sum() + (g_im * ref_im).sum(), x)
    assert rel_err(grad, ref_grad) <= RTOL


@pytest.mark.parametrize("norm", ["ortho", "backward"])
@pytest.mark.parametrize("radix", [None, 4])
@pytest.mark.parametrize("shape,axes", CASES, ids=CASE_IDS)
def test_irfftn_real_backward(shape, axes, radix, norm):
    x = torch.randn(shape, dtype=torch.float64)
    re0, _ = rfftn_real(x, axes, norm=norm, radix=radix)
    re = torch.randn_like(re0).requires_grad_()
    im = torch.randn_like(re0).requires_grad_()
    sizes = _sizes(shape, axes)
    g = torch.randn(shape, dtype=torch.float64)
    grads = torch.autograd.grad((g * irfftn_real(re, im, axes, sizes, norm=norm, radix=radix)).sum(), (re, im))
    ref_grads = torch.autograd.grad((g * ref_irfftn(re, im, axes, sizes, norm, radix)).sum(), (re, im))
    for got, want in zip(grads, ref_grads):
        assert rel_err(got, want) <= RTOL


# --------------------------------------------------------------------------------------------
# truncated transforms (FNO spectral convolution)

# (shape, axes, halves): 2*half <= n on two-sided axes, half <= n // 2 on the one-sided axis
TRUNC_CASES = [
    ((2, 3, 16, 12), (2, 3), (4, 3)),
    ((1, 2, 17, 31), (2, 3), (8, 15)),  # 2*half == n - 1, odd sizes
    ((1, 2, 12, 30), (2, 3), (6, 5)),  # 2*half == n: every frequency of the two-sided axis kept
    ((2, 2, 12, 16, 17), (2, 3, 4), (3, 4, 2)),
    ((1, 1, 16, 17, 30), (-3, -2, -1), (8, 4, 7)),
]
TRUNC_IDS = ["2d-16x12", "2d-17x31", "2d-12x30-full", "3d-12x16x17", "3d-16x17x30"]


def ref_truncated_rdft(x, axes, halves):
    spec = torch.fft.rfftn(x, dim=axes, norm="forward")
    axes = _axes(x.dim(), axes)
    for a, h in zip(axes[:-1], halves[:-1]):
        spec = torch.cat([spec.narrow(a, 0, h), spec.narrow(a, spec.shape[a] - h, h)], dim=a)
    spec = spec.narrow(axes[-1], 0, halves[-1])
    return spec.real, spec.imag


def ref_truncated_irdft(re, im, axes, halves, sizes):
    axes = _axes(re.dim(), axes)
    kept = torch.complex(re, im)
    full = kept
    for a, h, n in zip(axes[:-1], halves[:-1], sizes[:-1]):
        pad_shape = list(full.shape)
        pad_shape[a] = n - 2 * h
        full = torch.cat([full.narrow(a, 0, h), torch.zeros(pad_shape, dtype=full.dtype), full.narrow(a, h, h)], a)
    pad_shape = list(full.shape)
    pad_shape[axes[-1]] = sizes[-1] // 2 + 1 - halves[-1]
    full = torch.cat([full, torch.zeros(pad_shape, dtype=full.dtype)], axes[-1])
    return torch.fft.irfftn(full, s=sizes, dim=axes, norm="forward")


@pytest.mark.parametrize("shape,axes,halves", TRUNC_CASES, ids=TRUNC_IDS)
def test_truncated_rdft_matches_torch_fft(shape, axes, halves):
    x = torch.randn(shape, dtype=torch.float64)
    re, im = truncated_rdft(x, axes, halves)
    ref_re, ref_im = ref_truncated_rdft(x, axes, halves)
    assert re.shape == ref_re.shape
    assert rel_err(re, ref_re) <= RTOL
    assert rel_err(im, ref_im) <= RTOL


@pytest.mark.parametrize("shape,axes,halves", TRUNC_CASES, ids=TRUNC_IDS)
def test_truncated_irdft_matches_torch_fft(shape, axes, halves):
    x = torch.randn(shape, dtype=torch.float64)
    re0, _ = truncated_rdft(x, axes, halves)
    re, im = torch.randn_like(re0), torch.randn_like(re0)  # arbitrary (non-Hermitian) kept modes
    sizes = _sizes(shape, axes)
    y = truncated_irdft(re, im, axes, halves, sizes)
    ref = ref_truncated_irdft(re, im, axes, halves, sizes)
    assert y.shape == ref.shape == x.shape
    assert rel_err(y, ref) <= RTOL


def test_truncated_float32():
    shape, axes, halves = (2, 3, 16, 17, 30), (2, 3, 4), (8, 4, 7)
    x = torch.randn(shape)
    re, im = truncated_rdft(x, axes, halves)
    ref_re, ref_im = ref_truncated_rdft(x.double(), axes, halves)
    assert re.dtype == torch.float32
    assert rel_err(re.double(), ref_re) <= RTOL and rel_err(im.double(), ref_im) <= RTOL
    y = truncated_irdft(re, im, axes, halves, (16, 17, 30))
    ref = ref_truncated_irdft(ref_re, ref_im, axes, halves, (16, 17, 30))
    assert rel_err(y.double(), ref) <= RTOL


@pytest.mark.parametrize("shape,axes,halves", TRUNC_CASES, ids=TRUNC_IDS)
def test_truncated_backward(shape, axes, halves):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    re, im = truncated_rdft(x, axes, halves)
    g_re, g_im = torch.randn_like(re), torch.randn_like(im)
    (grad,) = torch.autograd.grad((g_re * re).sum() + (g_im * im).sum(), x)
    ref_re, ref_im = ref_truncated_rdft(x, axes, halves)
    (ref_grad,) = torch.autograd.grad((g_re * ref_re).sum() + (g_im * ref_im).sum(), x)
    assert rel_err(grad, ref_grad) <= RTOL

    sizes = _sizes(shape, axes)
    s_re = torch.randn_like(re).requires_grad_()
    s_im = torch.randn_like(re).requires_grad_()
    g = torch.randn(shape, dtype=torch.float64)
    grads = torch.autograd.grad((g * truncated_irdft(s_re, s_im, axes, halves, sizes)).sum(), (s_re, s_im))
    ref_grads = torch.autograd.grad((g * ref_truncated_irdft(s_re, s_im, axes, halves, sizes)).sum(), (s_re, s_im))
    for got, want in zip(grads, ref_grads):
        assert rel_err(got, want) <= RTOL


@pytest.mark.parametrize("sign", [-1, 1])
@pytest.mark.parametrize("in_part_inner,out_part_inner", [(False, False), (True, False), (False, True), (True, True)])
def test_stacked_matrix_is_the_complex_product(sign, in_part_inner, out_part_inner):
    """W @ stacked [Re; Im] equals the complex product with cos + sign*i*sin, in every row/column order,
    and the right-product form is its transpose."""
    from fnoreg_core.layers.dft import stacked_matrix

    g = torch.Generator().manual_seed(3)
    n_in, n_out = 5, 3
    cos, sin = torch.randn(n_in, n_out, generator=g, dtype=torch.float64), torch.randn(n_in, n_out, generator=g, dtype=torch.float64)
    z = torch.complex(torch.randn(n_in, 4, generator=g, dtype=torch.float64), torch.randn(n_in, 4, generator=g, dtype=torch.float64))
    expected = torch.complex(cos, sign * sin).mT @ z  # (n_out, 4)

    def stack(re, im, part_inner):
        return torch.stack([re, im], 1 if part_inner else 0).reshape(-1, re.shape[-1])

    w = stacked_matrix(cos, sin, sign, 2, 2, in_part_inner, out_part_inner)
    out = w @ stack(z.real, z.imag, in_part_inner)
    out = out.reshape(n_out, 2, 4) if out_part_inner else out.reshape(2, n_out, 4).transpose(0, 1)
    assert torch.allclose(torch.complex(out[:, 0], out[:, 1]), expected)
    right = stacked_matrix(cos, sin, sign, 2, 2, in_part_inner, out_part_inner, right=True)
    assert torch.equal(right, w.mT)
    real_in = stacked_matrix(cos, sin, sign, 1, 2, out_part_inner=out_part_inner)  # real input: Re only
    out = (real_in @ z.real)
    out = out.reshape(n_out, 2, 4) if out_part_inner else out.reshape(2, n_out, 4).transpose(0, 1)
    assert torch.allclose(torch.complex(out[:, 0], out[:, 1]), torch.complex(cos, sign * sin).mT @ z.real.to(z.dtype))
