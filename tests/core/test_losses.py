"""Tests for fnoreg_core.losses: analytic values, conventions and errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fnoreg_core.fields import ddf_vox_to_norm
from fnoreg_core.losses import DiffusionLoss, LocalNCCLoss, MSELoss, SoftDiceLoss

SHAPES = {2: (14, 15), 3: (11, 12, 13)}


# ----------------------------------------------------------------------------- MSE


@pytest.mark.parametrize("ndim", [2, 3])
def test_mse_analytic(ndim):
    x = torch.rand(2, 1, *SHAPES[ndim])
    assert MSELoss()(x, x).item() == 0.0
    torch.testing.assert_close(MSELoss()(x, x + 0.5), torch.tensor(0.25))


def test_mse_errors():
    with pytest.raises(ValueError, match="expected moved and fixed of the same shape"):
        MSELoss()(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))
    with pytest.raises(ValueError, match=r"expected moved of shape \(B, C, H, W\)"):
        MSELoss()(torch.rand(4, 4), torch.rand(4, 4))
    with pytest.raises(TypeError, match="expected a floating-point fixed"):
        MSELoss()(torch.rand(1, 1, 4, 4), torch.ones(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="expected moved to be a torch.Tensor"):
        MSELoss()(np.zeros((1, 1, 4, 4)), torch.rand(1, 1, 4, 4))


# ----------------------------------------------------------------------------- LNCC


@pytest.mark.parametrize("ndim", [2, 3])
def test_lncc_minimum_is_minus_one(ndim):
    torch.manual_seed(0)
    x = torch.rand(2, 1, *SHAPES[ndim], dtype=torch.float64)
    loss = LocalNCCLoss(kernel_size=9)
    for y in (x, 2 * x + 3, -0.5 * x + 1):  # squared correlation: sign of the slope does not matter
        torch.testing.assert_close(loss(x, y), torch.tensor(-1.0, dtype=torch.float64), atol=1e-9, rtol=0)
    unrelated = loss(x, torch.rand_like(x)).item()
    assert -0.2 < unrelated <= 0.0


def test_lncc_matches_bruteforce_definition():
    """Per voxel: squared Pearson correlation over the replicate-padded window, then -mean."""
    torch.manual_seed(1)
    k, r = 5, 2
    x, y = torch.rand(1, 1, 9, 10, dtype=torch.float64), torch.rand(1, 1, 9, 10, dtype=torch.float64)
    xp = F.pad(x, (r,) * 4, mode="replicate")[0, 0].numpy()
    yp = F.pad(y, (r,) * 4, mode="replicate")[0, 0].numpy()
    ccs = []
    for i in range(9):
        for j in range(10):
            a, b = xp[i : i + k, j : j + k].ravel(), yp[i : i + k, j : j + k].ravel()
            a, b = a - a.mean(), b - b.mean()
            ccs.append((a @ b) ** 2 / ((a @ a) * (b @ b)))
    torch.testing.assert_close(
        LocalNCCLoss(kernel_size=k)(y, x), torch.tensor(-np.mean(ccs), dtype=torch.float64), atol=1e-8, rtol=0
    )


def test_lncc_flat_images_give_zero():
    x = torch.ones(1, 1, 12, 12)
    assert LocalNCCLoss()(x, x).item() == 0.0


def test_lncc_is_differentiable():
    x = torch.rand(1, 1, 10, 10, 10)
    y = torch.rand(1, 1, 10, 10, 10, requires_grad=True)
    LocalNCCLoss(kernel_size=3)(y, x).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_lncc_errors():
    with pytest.raises(ValueError, match="expected a positive odd int kernel_size, got 4"):
        LocalNCCLoss(kernel_size=4)
    with pytest.raises(ValueError, match="expected a positive odd int kernel_size"):
        LocalNCCLoss(kernel_size=3.0)
    with pytest.raises(ValueError, match="expected smooth_dr > 0"):
        LocalNCCLoss(smooth_dr=0)
    with pytest.raises(ValueError, match=r"expected every spatial size > 4 for kernel_size 9"):
        LocalNCCLoss(kernel_size=9)(torch.rand(1, 1, 4, 10), torch.rand(1, 1, 4, 10))
    with pytest.raises(ValueError, match="of the same shape"):
        LocalNCCLoss()(torch.rand(1, 1, 10, 10), torch.rand(1, 2, 10, 10))


# ----------------------------------------------------------------------------- Diffusion


def _coords(spatial):
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in spatial], indexing="ij"))


@pytest.mark.parametrize("ndim", [2, 3])
def test_diffusion_zero_and_constant_fields(ndim):
    z = torch.zeros(2, ndim, *SHAPES[ndim])
    assert DiffusionLoss()(z).item() == 0.0
    assert DiffusionLoss()(z + 0.3).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("channel", [0, 1])
def test_diffusion_linear_field_by_hand(ndim, channel):
    """u_vox[channel] = a * x_0: only axis 0 of that channel differs (by a).

    Axis-0 term: mean over ndim channels = a**2 / ndim; other axes 0; divided by ndim.
    """
    a = 0.7
    spatial = SHAPES[ndim]
    u_vox = np.zeros((1, ndim, *spatial))
    u_vox[0, channel] = a * _coords(spatial)[0]
    loss = DiffusionLoss()(torch.from_numpy(ddf_vox_to_norm(u_vox)))
    assert loss.item() == pytest.approx(a**2 / ndim**2, rel=1e-12)


def test_diffusion_two_gradients_by_hand():
    a, b = 0.5, -1.5
    spatial = (9, 13)
    x = _coords(spatial)
    u_vox = np.stack([a * x[0], b * x[1]])[None]
    loss = DiffusionLoss()(torch.from_numpy(ddf_vox_to_norm(u_vox)))
    assert loss.item() == pytest.approx((a**2 / 2 + b**2 / 2) / 2, rel=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_diffusion_is_resolution_consistent(ndim):
    """A physical deformation (in normalised units) sampled at N and 2N gives nearly the same loss."""
    base = (20, 24) if ndim == 2 else (12, 14, 16)

    def field(spatial):
        t = [torch.linspace(-1, 1, n, dtype=torch.float64) for n in spatial]
        g = torch.stack(torch.meshgrid(*t, indexing="ij"))
        u = torch.stack([0.05 * torch.sin(np.pi * g[0]) * torch.cos(0.5 * np.pi * g[-1]) for _ in range(ndim)])
        u[-1] = 0.03 * torch.cos(np.pi * g[1]) * g[0]
        return u[None]

    lo = field(base)
    hi = field(tuple(2 * n for n in base))
    l_lo, l_hi = DiffusionLoss()(lo).item(), DiffusionLoss()(hi).item()
    assert l_hi == pytest.approx(l_lo, rel=0.05)
    # the same penalty in normalised units would shrink ~4x: the unit conversion is what matters
    raw = [
        sum(torch.mean(torch.diff(u, dim=a) ** 2).item() for a in range(2, ndim + 2)) for u in (lo, hi)
    ]
    assert raw[0] / raw[1] > 3.0


def test_diffusion_errors():
    with pytest.raises(ValueError, match=r"expected ddf_norm of shape \(B, 2, H, W\) or \(B, 3, D, H, W\)"):
        DiffusionLoss()(torch.zeros(1, 3, 5, 5))
    with pytest.raises(ValueError, match="expected every spatial size >= 2"):
        DiffusionLoss()(torch.zeros(1, 2, 1, 5))
    with pytest.raises(TypeError, match="expected a floating-point ddf_norm"):
        DiffusionLoss()(torch.zeros(1, 2, 5, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="expected ddf_norm to be a torch.Tensor"):
        DiffusionLoss()(np.zeros((1, 2, 5, 5)))


# ----------------------------------------------------------------------------- Dice


def _one_hot(lab, k):
    return F.one_hot(lab, k).movedim(-1, 1).to(torch.float32)


@pytest.mark.parametrize("ndim", [2, 3])
def test_dice_identical_and_disjoint(ndim):
    lab = torch.randint(0, 4, (2, *SHAPES[ndim]))
    t = _one_hot(lab, 4)
    assert SoftDiceLoss()(t, t).item() == pytest.approx(0.0, abs=1e-6)
    # disjoint: every channel of pred is where target is not
    shifted = _one_hot((lab + 1) % 4, 4)
    assert SoftDiceLoss()(shifted, t).item() == pytest.approx(1.0, abs=1e-6)


def test_dice_matches_formula_on_probabilities():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(2, 5, 8, 9, 10), dim=1)
    t = _one_hot(torch.randint(0, 5, (2, 8, 9, 10)), 5)
    dims = (2, 3, 4)
    dice = 2 * (p * t).sum(dims) / ((p**2).sum(dims) + (t**2).sum(dims) + 1e-5)
    torch.testing.assert_close(SoftDiceLoss()(p, t), 1 - dice.mean(), atol=1e-6, rtol=0)
    dice_nb = dice[:, 1:]
    torch.testing.assert_close(SoftDiceLoss(include_background=False)(p, t), 1 - dice_nb.mean(), atol=1e-6, rtol=0)


def test_dice_background_exclusion():
    t = torch.zeros(1, 2, 4, 4)
    t[:, 0] = 1  # all background
    p = t.clone()
    p[:, 0, 0, 0] = 0.0  # differs only in background
    assert SoftDiceLoss()(p, t).item() > 0
    # the foreground channel is empty in both: Dice 0 with smooth_nr=0 (documented offset)
    assert SoftDiceLoss(include_background=False)(p, t).item() == pytest.approx(1.0)
    assert SoftDiceLoss(include_background=False, smooth_nr=1e-5)(p, t).item() == pytest.approx(0.0)


def test_dice_errors():
    with pytest.raises(ValueError, match="expected K >= 2 channels with include_background=False"):
        SoftDiceLoss(include_background=False)(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="expected pred and target of the same shape"):
        SoftDiceLoss()(torch.rand(1, 3, 4, 4), torch.rand(1, 4, 4, 4))
    with pytest.raises(ValueError, match="expected smooth_nr, smooth_dr >= 0"):
        SoftDiceLoss(smooth_dr=-1.0)
