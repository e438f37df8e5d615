"""Tests for fnoreg_core.layers.fourier_unit against a torch.fft reference Fourier Unit.

The reference applies the SAME module's conv / bn / act to the natural-order spectrum of
``torch.fft.rfftn``; the module under test works on a permuted (digit-reversed) spectrum, which
point-wise layers and batch statistics do not see. Tolerance: relative error <= 1e-5 in float64.
"""

import copy

import pytest
import torch

from fnoreg_core.layers.fourier_unit import FourierUnit, SpectralTransform, SpectralTransformBlock

RTOL = 1e-5


# (spatial size, fft_axes, export_radix): odd / prime sizes, splits (48 = 16 x 3, 30 = 5 x 6)
CASES = {
    "2d-all": ((12, 17), None, 16),
    "2d-all-split": ((48, 30), None, 16),
    "2d-radix4": ((16, 12), None, 4),
    "2d-axis0": ((31, 12), (0,), 16),
    "2d-axis0-split": ((30, 7), (0,), 16),
    "3d-all": ((6, 9, 11), None, 16),
    "3d-radix4": ((8, 12, 7), None, 4),
    "3d-axes02": ((7, 5, 12), (0, 2), 16),
}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def ref_fourier_unit(fu: FourierUnit, x: torch.Tensor) -> torch.Tensor:
    """FNOReg reference Fourier Unit (torch.fft), using fu's own conv / bn / act."""
    b, c = x.shape[:2]
    axes = tuple(2 + a for a in fu.fft_axes)
    sizes = tuple(x.shape[a] for a in axes)
    spec = torch.fft.rfftn(x, dim=axes, norm="ortho")
    z = torch.stack((spec.real, spec.imag), dim=2).reshape(b, 2 * c, *spec.shape[2:])
    # point-wise conv / BN / ReLU over channels, statistics over batch and all positions:
    # apply fu's channel-last modules to the (B * positions, 2C) matrix in natural order
    z = z.movedim(1, -1)
    z = fu.act(fu.bn(fu.conv(z.reshape(-1, 2 * c)))).reshape(z.shape).movedim(-1, 1)
    z = z.reshape(b, c, 2, *z.shape[2:])
    return torch.fft.irfftn(torch.complex(z[:, :, 0], z[:, :, 1]), s=sizes, dim=axes, norm="ortho")


def _make(spatial, fft_axes, radix, channels=3):
    torch.manual_seed(0)
    fu = FourierUnit(channels, len(spatial), fft_axes=fft_axes, export_radix=radix).double()
    with torch.no_grad():  # non-trivial affine batch-norm parameters
        fu.bn.weight.uniform_(0.5, 1.5)
        fu.bn.bias.uniform_(-0.2, 0.2)
    return fu


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_train_mode_matches_reference(case, batch):
    spatial, fft_axes, radix = CASES[case]
    fu = _make(spatial, fft_axes, radix)
    ref = copy.deepcopy(fu)
    fu.train()
    ref.train()
    x = torch.randn(batch, 3, *spatial, dtype=torch.float64)
    y = fu(x)
    want = ref_fourier_unit(ref, x)
    assert y.shape == x.shape and y.dtype == torch.float64
    assert rel_err(y, want) <= RTOL
    # batch statistics are permutation invariant: the running statistics match too
    assert rel_err(fu.bn.running_mean, ref.bn.running_mean) <= RTOL
    assert rel_err(fu.bn.running_var, ref.bn.running_var) <= RTOL


@pytest.mark.parametrize("case", list(CASES))
def test_eval_mode_matches_reference(case):
    spatial, fft_axes, radix = CASES[case]
    fu = _make(spatial, fft_axes, radix)
    with torch.no_grad():
        fu.bn.running_mean.uniform_(-0.5, 0.5)
        fu.bn.running_var.uniform_(0.5, 2.0)
    fu.eval()
    x = torch.randn(2, 3, *spatial, dtype=torch.float64)
    assert rel_err(fu(x), ref_fourier_unit(fu, x)) <= RTOL


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", ["2d-all", "2d-radix4", "2d-axis0-split", "3d-all", "3d-axes02"])
def test_backward_matches_reference(case, mode):
    spatial, fft_axes, radix = CASES[case]
    fu = _make(spatial, fft_axes, radix)
    fu.train(mode == "train")
    ref = copy.deepcopy(fu)
    x = torch.randn(2, 3, *spatial, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, *spatial, dtype=torch.float64)
    names = ["x"] + [name for name, _ in fu.named_parameters()]
    got = torch.autograd.grad((g * fu(x)).sum(), [x, *fu.parameters()])
    want = torch.autograd.grad((g * ref_fourier_unit(ref, x)).sum(), [x, *ref.parameters()])
    assert names == ["x", "conv.weight", "conv.bias", "bn.weight", "bn.bias"]
    for name, a, b in zip(names, got, want):
        if mode == "train" and name == "conv.bias":
            # batch norm with batch statistics cancels the conv bias: its gradient is 0 (to rounding)
            assert a.abs().max() < 1e-10 and b.abs().max() < 1e-10
        else:
            assert rel_err(a, b) <= RTOL, name


def test_float32_eval_matches_reference():
    fu = FourierUnit(4, 3).eval()
    x = torch.randn(1, 4, 8, 12, 17)
    y = fu(x)
    assert y.dtype == torch.float32
    assert rel_err(y.double(), ref_fourier_unit(fu.double(), x.double())) <= RTOL


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("batch", [1, 2])
def test_spectral_transform_shapes(spatial_dims, batch):
    spatial = (9, 12, 7)[:spatial_dims]
    x = torch.randn(batch, 4, *spatial)
    st = SpectralTransform(4, 6, spatial_dims)
    assert st.fu.channels == 3
    assert st(x).shape == (batch, 6, *spatial)
    block = SpectralTransformBlock(4, spatial_dims, fft_axes=(0,))
    assert block.st1.fu.fft_axes == (0,)
    y = block(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert all(p.grad is not None for p in block.parameters())


@pytest.mark.parametrize(
    "spatial_dims,fft_axes",
    [(2, ()), (2, (2,)), (2, (-1,)), (2, (1, 0)), (2, (0, 0)), (3, (0, 3)), (3, (2, 1))],
)
def test_bad_fft_axes_raise(spatial_dims, fft_axes):
    with pytest.raises(ValueError, match=r"expected increasing spatial axes in \[0, \d\)"):
        FourierUnit(2, spatial_dims, fft_axes=fft_axes)
    with pytest.raises(ValueError, match="expected increasing spatial axes"):
        SpectralTransformBlock(2, spatial_dims, fft_axes=fft_axes)


def test_bad_dims_and_channels_raise():
    with pytest.raises(ValueError, match="expected spatial_dims 2 or 3"):
        FourierUnit(2, 1)
    with pytest.raises(ValueError, match="expected out_channels >= 2"):
        SpectralTransform(2, 1, 2)


def test_spectral_layers_stay_float32_under_bf16_autocast():
    """Under autocast the DFT-based layers run in float32 (fnoreg_core.layers.precision)."""
    from fnoreg_core.models import create_model

    torch.manual_seed(0)
    net = create_model("fnoreg", preset="3d-cpu").eval()
    a, b = torch.rand(1, 1, 24, 32, 32), torch.rand(1, 1, 24, 32, 32)
    with torch.no_grad():
        ref = net(a, b)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(a, b)
    # bf16 1x1 convolutions only: the error stays near bf16's resolution of the output
    assert (mixed.float() - ref).abs().max() <= 0.02 * ref.abs().max() + 1e-4
