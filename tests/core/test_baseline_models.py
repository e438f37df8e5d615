"""The paper's other baselines: Fourier-Net (band-limited CNN) and TransMorph (Swin + CNN decoder).

Shapes at odd sizes, the size rules (Fourier-Net pads to 16, TransMorph to 32 and refuses < 32),
Fourier-Net's faithful low-pass (its k-space zero padding equals the torch.fft reference and the
field has no energy above the kept band), the Swin window helpers, one Adam step that lowers the
loss on a fixed shifted pair, ONNX export parity (<= 1e-4 voxel) with TensorRT's operator list,
and fnoreg-train + fnoreg-eval end to end. Configurations are tiny to keep the file ~1 min on 1 core.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fnoreg_core.fields import ddf_norm_to_vox
from fnoreg_core.layers.band_limit import band_limited_upsample, kept_frequencies
from fnoreg_core.layers.spatial_transformer import warp
from fnoreg_core.layers.swin import shifted_window_mask, window_partition, window_reverse
from fnoreg_core.models import (
    FourierNetConfig,
    TransMorphConfig,
    available_presets,
    config_to_dict,
    create_model,
    model_from_config,
)
from fnoreg_core.models.fourier_net import FOURIER_NET_PRESETS
from fnoreg_core.models.transmorph import TRANSMORPH_PRESETS

TINY = {
    ("fourier-net", 2): dict(start_channels=2, output_scale=64.0),
    ("fourier-net", 3): dict(start_channels=2, output_scale=256.0),
    ("transmorph", 2): dict(embed_dim=8, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 2), window_size=(2, 3),
                            reg_head_channels=4, drop_path_rate=0.0),
    ("transmorph", 3): dict(embed_dim=4, depths=(1, 2, 1, 1), num_heads=(1, 1, 2, 2), window_size=(2, 3, 2),
                            reg_head_channels=4, drop_path_rate=0.0),
}
# odd sizes, none a multiple of 16 (Fourier-Net) or 32 (TransMorph) on every axis
SPATIAL = {("fourier-net", 2): (37, 50), ("fourier-net", 3): (17, 21, 19),
           ("transmorph", 2): (37, 45), ("transmorph", 3): (33, 35, 40)}
CASES = sorted(TINY)
IDS = [f"{name}-{dims}d" for name, dims in CASES]
PRESETS = {"fourier-net": (FourierNetConfig, FOURIER_NET_PRESETS), "transmorph": (TransMorphConfig, TRANSMORPH_PRESETS)}
VOXEL_ATOL = 1e-4


def _tiny(name, dims):
    torch.manual_seed(0)
    return create_model(name, dims=dims, **TINY[(name, dims)])


def _head(model):
    return model.head if model.arch == "fourier-net" else model.reg_head


def _pair(batch, spatial, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, *spatial, generator=gen), torch.rand(batch, 1, *spatial, generator=gen)


# -- registry, presets, shapes, sizes --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets(name):
    config_cls, presets = PRESETS[name]
    assert available_presets(name) == ["2d", "2d-cpu", "3d", "3d-cpu"]
    for preset, values in presets.items():
        assert config_cls(**values).dims == int(preset[0])


def test_published_sizes():
    # TransMorph (3D, the paper's config) has 46.77 M parameters; Fourier-Net 3D 4.2 M
    tm = TransMorphConfig(**TRANSMORPH_PRESETS["3d"])
    assert (tm.embed_dim, tm.depths, tm.num_heads, tm.window_size) == (96, (2, 2, 4, 2), (4, 4, 8, 8), (5, 6, 7))
    counts = {name: sum(p.numel() for p in create_model(name, preset="3d").parameters())
              for name in ("transmorph", "fourier-net")}
    assert round(counts["transmorph"] / 1e6, 2) == 46.77
    assert round(counts["fourier-net"] / 1e6, 1) == 4.2


@pytest.mark.parametrize("name,dims", CASES, ids=IDS)
def test_forward_shape_at_odd_sizes(name, dims):
    model = _tiny(name, dims)
    spatial = SPATIAL[(name, dims)]
    moving, fixed = _pair(2, spatial)
    ddf = model(moving, fixed)
    assert ddf.shape == (2, dims, *spatial) and ddf.dtype == torch.float32
    assert torch.isfinite(ddf).all()
    model.eval()
    with torch.no_grad():  # per-sample in eval mode (padding and cropping do not mix samples)
        torch.testing.assert_close(model(moving, fixed)[1:], model(moving[1:], fixed[1:]), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,dims", CASES, ids=IDS)
def test_config_round_trip(name, dims):
    model = _tiny(name, dims).eval()
    cfg = json.loads(json.dumps(config_to_dict(model)))
    assert cfg["arch"] == name
    rebuilt = model_from_config(cfg).eval()
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())
    moving, fixed = _pair(1, SPATIAL[(name, dims)], seed=3)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(moving, fixed), model(moving, fixed), rtol=0, atol=0)


@pytest.mark.parametrize("name,dims", CASES, ids=IDS)
def test_below_minimum_size_is_refused(name, dims):
    model = _tiny(name, dims)
    small = model.min_spatial_size()
    assert small == ((16,) if name == "fourier-net" else (32,)) * dims
    x = torch.rand(1, 1, *small)
    assert model(x, x).shape == (1, dims, *small)
    x = torch.rand(1, 1, *((small[0] - 1,) + small[1:]))
    with pytest.raises(ValueError, match="below this model's minimum " + re.escape(str(small))):
        model(x, x)


def test_size_multiples():
    # sizes a dynamic ONNX graph takes (eager PyTorch pads any size >= the minimum)
    assert _tiny("fourier-net", 2).size_multiple() == 16
    assert _tiny("transmorph", 2).size_multiple() == 32


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="expected 2 entries in window_size"):
        create_model("transmorph", dims=2, window_size=(5, 6, 7))
    with pytest.raises(ValueError, match="expected 4 stages"):
        create_model("transmorph", dims=2, depths=(2, 2), num_heads=(2, 2))
    with pytest.raises(ValueError, match="divisible by the number of heads"):
        create_model("transmorph", dims=2, embed_dim=6, num_heads=(4, 4, 8, 8))
    with pytest.raises(ValueError, match="start_channels >= 1"):
        create_model("fourier-net", dims=2, start_channels=0)


# -- Fourier-Net: the band limit -------------------------------------------------------------------

def _reference_zero_pad(small: torch.Tensor, sizes) -> torch.Tensor:
    """The reference's transform: fftshift(fftn) -> centred zero padding -> ifftn(ifftshift) -> real."""
    d = len(sizes)
    axes = tuple(range(-d, 0))
    spec = torch.fft.fftshift(torch.fft.fftn(small, dim=axes), dim=axes)
    pads = []
    for n, big in zip(reversed(small.shape[-d:]), reversed(sizes)):
        before = big // 2 - n // 2
        pads += [before, big - n - before]
    return torch.fft.ifftn(torch.fft.ifftshift(F.pad(spec, pads), dim=axes), dim=axes).real


@pytest.mark.parametrize("small_shape,sizes", [((10, 12), (40, 48)), ((5, 7), (20, 29)), ((4, 6, 5), (16, 24, 20))])
def test_band_limited_upsample_equals_the_fft_reference(small_shape, sizes):
    small = torch.randn(2, 3, *small_shape, dtype=torch.float64)
    gain = math.prod(big / n for n, big in zip(small_shape, sizes))  # ours has unit gain
    torch.testing.assert_close(band_limited_upsample(small, sizes), gain * _reference_zero_pad(small, sizes),
                               rtol=0, atol=1e-12)
    # a constant stays the same constant
    ones = torch.ones(1, 1, *small_shape, dtype=torch.float64)
    torch.testing.assert_close(band_limited_upsample(ones, sizes), torch.ones(1, 1, *sizes, dtype=torch.float64))


def test_kept_frequencies():
    assert kept_frequencies(4).tolist() == [-2, -1, 0, 1]
    assert kept_frequencies(5).tolist() == [-2, -1, 0, 1, 2]
    with pytest.raises(ValueError, match="output sizes >= the input's"):
        band_limited_upsample(torch.rand(1, 1, 8, 8), (4, 8))


@pytest.mark.parametrize("dims,spatial", [(2, (64, 80)), (3, (32, 16, 48))])
def test_fourier_net_field_is_band_limited(dims, spatial):
    # no padding at multiples of 16: the field's spectrum is zero above 1/4 of every axis's band
    model = _tiny("fourier-net", dims).eval().double()  # float64: leakage would show above 1e-12
    torch.nn.init.normal_(model.head.weight, std=0.05)
    moving, fixed = (t.double() for t in _pair(1, spatial))
    with torch.no_grad():
        ddf = model(moving, fixed)
        small = model.band_field(torch.cat([moving, fixed], 1)) * model.gain
    assert tuple(small.shape[2:]) == tuple(n // 4 for n in spatial)
    spec = torch.fft.fftn(ddf, dim=tuple(range(2, 2 + dims))).abs()
    inside = torch.ones(spatial, dtype=torch.bool)
    for axis, n in enumerate(spatial):
        k = torch.fft.fftfreq(n, 1.0 / n).abs()
        view = [1] * dims
        view[axis] = n
        inside = inside & (k <= n // 8).reshape(view)  # kept: |k| <= (n/4) // 2
    assert spec[..., inside].max() > 1e-2
    assert spec[..., ~inside].max() < 1e-12 * spec.max()
    # and it is exactly the reference's fftn / zero-pad / ifftn of the encoder output ("backward" norm)
    raw = small / model.gain * model.config.output_scale
    torch.testing.assert_close(ddf, _reference_zero_pad(raw, spatial), rtol=0, atol=1e-12)


# -- TransMorph: Swin helpers ----------------------------------------------------------------------

def test_window_partition_round_trip_and_mask():
    x = torch.arange(2 * 4 * 6 * 3, dtype=torch.float32).reshape(2, 4, 6, 3)
    windows = window_partition(x, (2, 3))
    assert windows.shape == (2 * 4, 6, 3)
    torch.testing.assert_close(windows[0, :, 0], x[0, :2, :3, 0].reshape(-1))
    torch.testing.assert_close(window_reverse(windows, (2, 3), (4, 6)), x)
    mask = shifted_window_mask((4, 6), (2, 3), (1, 1))
    assert mask.shape == (4, 6, 6)
    assert (mask[0] == 0).all()  # the first window holds one region only
    last = mask[-1]  # the corner window mixes 4 regions: each token sees its own region only
    assert set(last.unique().tolist()) == {0.0, -100.0}
    assert int((last == 0).sum()) == 2 * 2 + 1 * 1 + 2 * 2 + 1 * 1  # regions of 2, 1, 2 and 1 tokens


# -- training: one step lowers the loss ------------------------------------------------------------

def _shifted_pair(spatial, shift):
    """A smooth periodic image and its copy rolled by ``shift`` voxels."""
    gen = torch.Generator().manual_seed(0)
    fixed = torch.rand(1, 1, *spatial, generator=gen)
    kernel = torch.ones(1, 1, 5, 5) / 25
    for _ in range(3):
        fixed = F.conv2d(F.pad(fixed, (2, 2, 2, 2), mode="circular"), kernel)
    fixed = (fixed - fixed.min()) / (fixed.max() - fixed.min())
    return torch.roll(fixed, shifts=shift, dims=(2, 3)), fixed


@pytest.mark.parametrize("name", ["fourier-net", "transmorph"])
def test_one_adam_step_decreases_the_loss(name):
    model = _tiny(name, 2).train()
    moving, fixed = _shifted_pair((32, 48), shift=(2, -1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_now():
        return F.mse_loss(warp(moving, model(moving, fixed)), fixed)

    losses = []
    for _ in range(2):
        opt.zero_grad()
        loss = loss_now()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(loss_now().item())
    assert losses[1] < losses[0] and losses[2] < losses[1], losses


# -- export ----------------------------------------------------------------------------------------

def _export_and_compare(tmp_path, name, dims, example, run_sizes, dynamic):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from fnoreg_export.onnx_export import export_onnx
    from fnoreg_export.trt_support import analyse_graph

    model = _tiny(name, dims).eval()
    torch.nn.init.normal_(_head(model).weight, std=0.05 if name == "fourier-net" else 0.004)
    path = export_onnx(model, tmp_path / f"{name}.onnx", example, dynamic=dynamic)
    report = analyse_graph(path, static=not dynamic)
    assert report.ok, report.problems
    assert not {"DFT", "STFT"} & set(report.op_types)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    worst = 0.0
    for batch, *spatial in run_sizes:
        moving = rng.random((batch, 1, *spatial), dtype=np.float32)
        fixed = rng.random((batch, 1, *spatial), dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(moving), torch.from_numpy(fixed)).numpy()
        (got,) = session.run(None, {"moving": moving, "fixed": fixed})
        assert got.shape == expected.shape == (batch, dims, *spatial)
        assert np.abs(ddf_norm_to_vox(expected, tuple(spatial))).max() > 0.5, "outputs too small to test parity"
        worst = max(worst, float(np.abs(ddf_norm_to_vox(got - expected, tuple(spatial))).max()))
    assert worst <= VOXEL_ATOL, f"max |ddf diff| {worst:.2e} voxel"
    return worst


@pytest.mark.parametrize("name,example", [("fourier-net", (37, 50)), ("transmorph", (64, 96))])
def test_static_export_parity_and_tensorrt_ops(tmp_path, name, example):
    _export_and_compare(tmp_path, name, 2, example, [(1, *example)], dynamic=False)


@pytest.mark.slow
@pytest.mark.parametrize("name,example,run_sizes", [
    ("fourier-net", (32, 48), [(1, 16, 64), (2, 80, 48)]),  # multiples of 16
    ("transmorph", (64, 96), [(1, 64, 32), (2, 96, 64)]),   # multiples of 32
])
def test_dynamic_export_parity(tmp_path, name, example, run_sizes):
    _export_and_compare(tmp_path, name, 2, example, run_sizes, dynamic=True)


# -- the CLIs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,options", [
    ("fourier-net", ["start_channels=2"]),
    ("transmorph", ["embed_dim=8", "depths=[1,1,1,1]", "num_heads=[1,1,2,2]", "window_size=[2,3]",
                    "reg_head_channels=4"]),
])
def test_train_then_eval_cli(tmp_path, name, options):
    from fnoreg_core.checkpoint import load_model
    from fnoreg_core.evaluate import main as eval_main
    from fnoreg_core.train import main as train_main

    run = tmp_path / "run"
    argv = ["--model", name, "--preset", "2d-cpu", "--train-res", "32x40", "--val-res", "40x48", "--steps", "2",
            "--val-every", "2", "--val-pairs", "1", "--lr", "1e-3", "--out", str(run), "--no-progress"]
    for option in options:
        argv += ["--model-option", option]
    assert train_main(argv) == 0
    model, ckpt = load_model(run / "last.pt")
    assert model.arch == name and ckpt["step"] == 2
    out = tmp_path / "ev"
    assert eval_main([str(run / "last.pt"), "--data", "synth", "--dims", "2", "--res", "40x48", "--max-pairs", "1",
                      "--baselines", "none", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())["methods"]
    assert len(summary) == 2 and "none" in summary
