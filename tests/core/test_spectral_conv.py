"""Tests for fnoreg_core.layers.spectral_conv against a torch.fft reference spectral convolution.

Tolerances: relative Frobenius error <= 1e-5 in float64 (observed ~1e-15); the resolution test
uses atol 1e-10 (observed ~1e-15).
"""

import math

import pytest
import torch

from fnoreg_core.layers.spectral_conv import SpectralConv, tucker_ranks

RTOL = 1e-5


# (n_modes, spatial size): sizes cover odd, prime and exactly-n_modes lengths
CONFIGS = {
    "1d": ((6,), (11,)),
    "2d": ((8, 6), (12, 11)),
    "2d-min": ((6, 10), (6, 10)),
    "3d": ((4, 6, 4), (8, 7, 9)),
    "3d-odd": ((6, 4, 6), (13, 8, 6)),
}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def ref_spectral_conv(conv: SpectralConv, x: torch.Tensor) -> torch.Tensor:
    """The FNO reference: rfftn (norm "forward"), keep modes, complex einsum, zero-pad, irfftn."""
    d = conv.spatial_dims
    axes = tuple(range(2, 2 + d))
    spatial = x.shape[2:]
    spec = torch.fft.rfftn(x, dim=axes, norm="forward")
    halves = [m // 2 for m in conv.n_modes]
    for a, h in zip(axes[:-1], halves[:-1]):  # keep [0..h-1] and [-h..-1]
        spec = torch.cat([spec.narrow(a, 0, h), spec.narrow(a, spec.shape[a] - h, h)], dim=a)
    spec = spec.narrow(axes[-1], 0, halves[-1])
    w = torch.view_as_complex(conv.dense_weight().contiguous())
    letters = "xyz"[:d]  # the reference's "bixyz,ioxyz->boxyz" for d = 3
    out = torch.einsum(f"bi{letters},io{letters}->bo{letters}", spec, w)
    for a, h, n in zip(axes[:-1], halves[:-1], spatial[:-1]):  # zero-pad to the full spectrum
        pad = list(out.shape)
        pad[a] = n - 2 * h
        out = torch.cat([out.narrow(a, 0, h), out.new_zeros(pad), out.narrow(a, h, h)], dim=a)
    pad = list(out.shape)
    pad[axes[-1]] = spatial[-1] // 2 + 1 - halves[-1]
    out = torch.cat([out, out.new_zeros(pad)], dim=axes[-1])
    return torch.fft.irfftn(out, s=spatial, dim=axes, norm="forward")


def _make(n_modes, factorization, in_c=3, out_c=4):
    torch.manual_seed(0)
    return SpectralConv(in_c, out_c, n_modes, factorization=factorization).double()


@pytest.mark.parametrize("factorization", [None, "tucker"])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_matches_torch_fft_reference(config, batch, factorization):
    n_modes, size = CONFIGS[config]
    conv = _make(n_modes, factorization)
    x = torch.randn(batch, 3, *size, dtype=torch.float64)
    y = conv(x)
    assert y.shape == (batch, 4, *size) and y.dtype == torch.float64
    assert rel_err(y, ref_spectral_conv(conv, x)) <= RTOL


@pytest.mark.parametrize("factorization", [None, "tucker"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_backward_matches_reference(config, factorization):
    n_modes, size = CONFIGS[config]
    conv = _make(n_modes, factorization)
    params = list(conv.parameters())
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 4, *size, dtype=torch.float64)
    got = torch.autograd.grad((g * conv(x)).sum(), [x, *params])
    want = torch.autograd.grad((g * ref_spectral_conv(conv, x)).sum(), [x, *params])
    assert len(got) == len(want) == 1 + len(params)
    for a, b in zip(got, want):
        assert rel_err(a, b) <= RTOL


def test_float32_matches_reference():
    conv = SpectralConv(3, 4, (6, 8, 6))
    x = torch.randn(2, 3, 10, 12, 9)
    y = conv(x)
    assert y.dtype == torch.float32
    assert rel_err(y.double(), ref_spectral_conv(conv.double(), x.double())) <= RTOL


def test_dense_weight_shape_and_kept_modes():
    conv = SpectralConv(3, 5, (8, 6, 4))
    assert conv.halves == (4, 3, 2)
    assert conv.kept == (8, 6, 2)  # two-sided axes keep 2*half, the last (one-sided) half
    assert conv.dense_weight().shape == (3, 5, 8, 6, 2, 2)
    tucker = SpectralConv(3, 5, (8, 6, 4), factorization="tucker")
    assert tucker.dense_weight().shape == (3, 5, 8, 6, 2, 2)


@pytest.mark.parametrize("shape", [(8, 8, 8, 8, 4), (12, 12, 40, 48, 28), (16, 16, 24, 14)])
def test_tucker_ranks_budget(shape):
    rank = 0.42
    ranks = tucker_ranks(shape, rank)
    assert len(ranks) == len(shape)
    assert all(1 <= r <= d for r, d in zip(ranks, shape))
    n = math.prod(ranks) + sum(r * d for r, d in zip(ranks, shape))
    assert n <= rank * math.prod(shape)


def test_tucker_parameter_count_about_rank_times_dense():
    rank = 0.42
    # paper-sized 3D layer: the complex core dominates, so the ratio is close to rank
    conv = SpectralConv(12, 12, (40, 48, 56), factorization="tucker", rank=rank)
    dense = 12 * 12 * 40 * 48 * 28 * 2
    ratio = sum(p.numel() for p in conv.parameters()) / dense
    assert 0.9 * rank <= ratio <= rank
    # small layers: coarse integer ranks; the count stays below rank x dense and above a fifth of it
    small = SpectralConv(4, 4, (8, 8, 8), factorization="tucker", rank=rank)
    ratio = sum(p.numel() for p in small.parameters()) / (4 * 4 * 8 * 8 * 4 * 2)
    assert rank / 5 <= ratio <= rank


@pytest.mark.parametrize("config", ["2d", "3d"])
def test_fold_factorization_keeps_outputs(config):
    n_modes, size = CONFIGS[config]
    conv = _make(n_modes, "tucker")
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    before = conv(x)
    weight = conv.dense_weight().detach().clone()
    conv.fold_factorization()
    assert conv.factorization is None
    names = {name for name, _ in conv.named_parameters()}
    assert names == {"weight"}
    torch.testing.assert_close(conv.weight.detach(), weight, rtol=0, atol=0)
    torch.testing.assert_close(conv(x), before, rtol=1e-12, atol=1e-12)
    conv.fold_factorization()  # no-op on a dense layer
    torch.testing.assert_close(conv(x), before, rtol=1e-12, atol=1e-12)


def _band_limited(spatial, freqs, phases):
    """Sum of sinusoids periodic on a grid of ``spatial`` samples (one per (channel, term))."""
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) / n for n in spatial], indexing="ij")
    channels = []
    for terms in zip(freqs, phases):
        ch = torch.zeros(spatial, dtype=torch.float64)
        for k, phi in zip(*terms):
            ch = ch + torch.cos(2 * math.pi * sum(ki * g for ki, g in zip(k, grids)) + phi)
        channels.append(ch)
    return torch.stack(channels)[None]


@pytest.mark.parametrize("factorization", [None, "tucker"])
@pytest.mark.parametrize("n_modes,size", [((8, 6), (12, 10)), ((8, 8), (8, 8)), ((6, 4, 6), (8, 6, 7))],
                         ids=["2d", "2d-min", "3d"])
def test_resolution_invariance_on_band_limited_input(n_modes, size, factorization):
    # frequencies strictly inside the kept band (|k| < n_modes/2 per axis), below Nyquist at size N
    gen = torch.Generator().manual_seed(1)
    d = len(n_modes)
    limits = [min(m // 2, (n + 1) // 2) - 1 for m, n in zip(n_modes, size)]
    freqs, phases = [], []
    for _ in range(3):  # channels
        ks = [tuple(int(torch.randint(-lim, lim + 1, (), generator=gen)) for lim in limits) for _ in range(4)]
        freqs.append(ks)
        phases.append(torch.rand(4, generator=gen, dtype=torch.float64) * 2 * math.pi)
    coarse = _band_limited(size, freqs, phases)
    fine = _band_limited(tuple(2 * n for n in size), freqs, phases)
    conv = _make(n_modes, factorization)
    y_coarse = conv(coarse)
    y_fine = conv(fine)
    sub = y_fine[(slice(None), slice(None)) + (slice(None, None, 2),) * d]
    torch.testing.assert_close(sub, y_coarse, rtol=0, atol=1e-10)
    assert y_coarse.abs().max() > 1e-3  # not trivially zero


@pytest.mark.parametrize("n_modes,size,axis", [((8, 6), (7, 12), 0), ((4, 6, 8), (8, 8, 7), 2)])
def test_too_small_raises(n_modes, size, axis):
    conv = SpectralConv(2, 2, n_modes)
    with pytest.raises(ValueError, match=rf"too small.*axis {axis}.*minimum size is \({n_modes[0]}, "):
        conv(torch.randn(1, 2, *size))


@pytest.mark.parametrize("n_modes", [(7, 8), (8, 0), (3,), (8, 8, 1)])
def test_odd_or_tiny_modes_raise(n_modes):
    with pytest.raises(ValueError, match="expected even total mode counts"):
        SpectralConv(2, 2, n_modes)


def test_bad_constructor_arguments_raise():
    with pytest.raises(ValueError, match="expected 1 to 3 spatial axes"):
        SpectralConv(2, 2, (4, 4, 4, 4))
    with pytest.raises(ValueError, match="expected factorization None or 'tucker'"):
        SpectralConv(2, 2, (4, 4), factorization="cp")
    with pytest.raises(ValueError, match="fractional rank"):
        SpectralConv(2, 2, (4, 4), factorization="tucker", rank=1.5)


def test_wrong_channels_or_dims_raise():
    conv = SpectralConv(3, 4, (4, 4))
    with pytest.raises(ValueError, match=r"expected input \(B, 3, 2 spatial axes\)"):
        conv(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"expected input \(B, 3, 2 spatial axes\)"):
        conv(torch.randn(1, 3, 8, 8, 8))
    with pytest.raises(ValueError, match=r"expected input \(B, 3, 2 spatial axes\)"):
        conv(torch.randn(3, 8, 8))


def test_fourier_layer_move_keeps_checkpoint_keys():
    """FourierLayer / PAPER_MODES moved to layers/fourier_layer.py (issue 13): a pure move, so the
    shipped checkpoints still load strictly and the models' layer is the layers' one."""
    from pathlib import Path

    from fnoreg_core.checkpoint import load_model
    from fnoreg_core.layers.fourier_layer import PAPER_MODES, FourierLayer
    from fnoreg_core.models import fnoreg as fnoreg_module

    assert fnoreg_module.FourierLayer is FourierLayer and fnoreg_module.PAPER_MODES is PAPER_MODES
    ckpt = Path(__file__).resolve().parents[2] / "assets" / "models" / "fnoreg2d" / "checkpoint.pt"
    if not ckpt.is_file():
        pytest.skip("no bundled checkpoint")
    model, _ = load_model(ckpt)  # strict load_state_dict
    keys = [k for k in model.state_dict() if k.startswith("fourier_layers.0.")]
    assert keys and all(k.split(".")[2] in ("spectral", "linear") for k in keys)
