"""Tests for fnoreg_core.models: registry, presets, config round trip, forward shapes, errors."""

import dataclasses
import json
import re

import pytest
import torch
import torch.nn.functional as F

from fnoreg_core.layers.spatial_transformer import warp
from fnoreg_core.models import (
    FNOConfig,
    FNORegConfig,
    VoxelMorphConfig,
    available_models,
    available_presets,
    config_to_dict,
    create_model,
    model_from_config,
)
from fnoreg_core.models.fno import FNO_PRESETS
from fnoreg_core.models.fnoreg import FNOREG_PRESETS
from fnoreg_core.models.voxelmorph import VOXELMORPH_PRESETS

# tiny configurations per (model, dims); sizes are odd / non-power-of-two where the model allows
TINY = {
    ("fnoreg", 2): dict(hidden_channels=4, n_layers=1, n_modes=(8, 6), projection_channels=8, factorization=None),
    ("fnoreg", 3): dict(hidden_channels=4, n_layers=1, n_modes=(8, 8, 8), projection_channels=8, factorization=None),
    ("fno", 2): dict(hidden_channels=4, n_layers=2, n_modes=(8, 6), projection_channels=8, factorization="tucker"),
    ("fno", 3): dict(hidden_channels=4, n_layers=2, n_modes=(6, 8, 6), projection_channels=8, factorization=None),
    ("voxelmorph", 2): dict(channels=(4, 8, 8, 8, 8, 8), unet_out_channels=8, final_conv_channels=(4, 4)),
    ("voxelmorph", 3): dict(channels=(4, 8, 8, 8, 8, 8), unet_out_channels=8, final_conv_channels=(4, 4)),
}
SPATIAL = {2: (12, 17), 3: (8, 9, 10)}
MODEL_CASES = sorted(TINY)
MODEL_IDS = [f"{name}-{dims}d" for name, dims in MODEL_CASES]

PRESETS = {"fnoreg": (FNORegConfig, FNOREG_PRESETS), "fno": (FNOConfig, FNO_PRESETS),
           "voxelmorph": (VoxelMorphConfig, VOXELMORPH_PRESETS)}
# the paper's 3D FNOReg (~94M parameters) and FNO are only checked as configs, never built
BUILD_SKIP = {("fnoreg", "3d"), ("fno", "3d")}


def _tiny(name, dims):
    torch.manual_seed(0)
    return create_model(name, dims=dims, **TINY[(name, dims)])


def _pair(batch, dims, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, 1, *SPATIAL[dims])
    return torch.rand(shape, generator=gen), torch.rand(shape, generator=gen)


def test_available_models():
    assert available_models() == ["fno", "fnoreg", "fourier-net", "transmorph", "voxelmorph"]


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name,dims", MODEL_CASES, ids=MODEL_IDS)
def test_forward_shape(name, dims, batch):
    model = _tiny(name, dims)
    assert model.arch == name and model.dims == dims
    moving, fixed = _pair(batch, dims)
    ddf = model(moving, fixed)
    assert ddf.shape == (batch, dims, *SPATIAL[dims])
    assert ddf.dtype == torch.float32
    assert torch.isfinite(ddf).all()


@pytest.mark.parametrize("name,dims", MODEL_CASES, ids=MODEL_IDS)
def test_eval_output_is_per_sample(name, dims):
    # in eval mode a batch of 2 gives the outputs of the two samples run alone
    model = _tiny(name, dims).eval()
    moving, fixed = _pair(2, dims)
    with torch.no_grad():
        both = model(moving, fixed)
        first = model(moving[:1], fixed[:1])
        second = model(moving[1:], fixed[1:])
    torch.testing.assert_close(both, torch.cat([first, second]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,dims", MODEL_CASES, ids=MODEL_IDS)
def test_config_round_trip(name, dims):
    model = _tiny(name, dims).eval()
    cfg = config_to_dict(model)
    assert cfg["arch"] == name and cfg["dims"] == dims
    cfg = json.loads(json.dumps(cfg))  # JSON-safe: tuples are stored as lists
    torch.manual_seed(123)  # different initial weights, replaced below
    rebuilt = model_from_config(cfg).eval()
    assert type(rebuilt) is type(model)
    assert rebuilt.config == model.config
    assert config_to_dict(rebuilt) == config_to_dict(model)
    rebuilt.load_state_dict(model.state_dict())
    moving, fixed = _pair(1, dims, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(moving, fixed), model(moving, fixed), rtol=0, atol=0)


@pytest.mark.parametrize("name,dims", MODEL_CASES, ids=MODEL_IDS)
def test_min_spatial_size_is_accepted(name, dims):
    model = _tiny(name, dims)
    small = model.min_spatial_size()
    assert len(small) == dims
    if name == "voxelmorph":
        assert small == (8,) * dims  # 2 ** (len(channels) // 2)
    else:
        assert small == TINY[(name, dims)]["n_modes"]
    x = torch.rand(1, 1, *small)
    assert model(x, x).shape == (1, dims, *small)


@pytest.mark.parametrize("name,dims", MODEL_CASES, ids=MODEL_IDS)
def test_size_below_minimum_raises(name, dims):
    model = _tiny(name, dims)
    small = model.min_spatial_size()
    size = (small[0] - 1,) + small[1:]
    x = torch.rand(1, 1, *size)
    with pytest.raises(ValueError, match="below this model's minimum " + re.escape(str(small))):
        model(x, x)


@pytest.mark.parametrize("name,dims", MODEL_CASES, ids=MODEL_IDS)
def test_bad_inputs_raise(name, dims):
    model = _tiny(name, dims)
    moving, fixed = _pair(1, dims)
    with pytest.raises(ValueError, match="expected moving and fixed of one shape"):
        model(moving, fixed[..., :-1])
    with pytest.raises(ValueError, match="expected moving and fixed of one shape"):
        model(moving.expand(2, *moving.shape[1:]), fixed)
    with pytest.raises(ValueError, match=rf"expected moving of shape \(B, 1, {dims} spatial axes\)"):
        model(torch.cat([moving, moving], dim=1), fixed)
    with pytest.raises(ValueError, match=rf"expected fixed of shape \(B, 1, {dims} spatial axes\)"):
        model(moving, fixed[:, 0])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_config(name):
    config_cls, presets = PRESETS[name]
    assert available_presets(name) == sorted(presets)
    for preset, values in presets.items():
        config = config_cls(**values)
        assert config.dims == int(preset[0]), preset  # "2d-..." / "3d-..." names match dims
        if hasattr(config, "n_modes"):
            assert len(config.n_modes) == config.dims
            assert all(m % 2 == 0 for m in config.n_modes)


@pytest.mark.parametrize(
    "name,preset",
    [(n, p) for n in sorted(PRESETS) for p in sorted(PRESETS[n][1]) if (n, p) not in BUILD_SKIP],
)
def test_preset_builds(name, preset):
    config_cls, presets = PRESETS[name]
    model = create_model(name, preset=preset)
    assert model.arch == name
    assert model.config == config_cls(**presets[preset])
    assert config_to_dict(model)["arch"] == name


def test_preset_values():
    cpu = create_model("fnoreg", preset="2d-cpu")
    assert cpu.config.hidden_channels == 16 and cpu.config.n_modes == (24, 28)
    assert cpu.min_spatial_size() == (24, 28)
    small = create_model("fnoreg", preset="2d-small")
    assert small.config.st_fft_axes == (0,)
    assert small.encoder.st1.fu.fft_axes == (0,)
    assert FNORegConfig(**FNOREG_PRESETS["3d"]).factorization == "tucker"


def test_matching_dims_with_preset_is_accepted():
    model = create_model("voxelmorph", dims=2, preset="2d-cpu")
    assert model.config == VoxelMorphConfig(**VOXELMORPH_PRESETS["2d-cpu"])


def test_overrides_apply_on_top_of_preset():
    model = create_model("fnoreg", dims=2, preset="2d-cpu", n_layers=1, n_modes=[8, 8])
    assert model.config.n_layers == 1
    assert model.config.n_modes == (8, 8)  # lists are coerced to tuples
    assert len(model.fourier_layers) == 1
    assert model.config.hidden_channels == 16  # from the preset


def test_registry_errors():
    with pytest.raises(ValueError, match=r"unknown model 'unet', expected one of \['fno', 'fnoreg', 'fourier-net', 'transmorph', 'voxelmorph'\]"):
        create_model("unet")
    with pytest.raises(ValueError, match="unknown model 'unet'"):
        available_presets("unet")
    with pytest.raises(ValueError, match="unknown preset 'huge' for 'fnoreg'"):
        create_model("fnoreg", preset="huge")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['width'\] for FNORegConfig"):
        create_model("fnoreg", dims=2, width=3)
    with pytest.raises(ValueError, match="preset '2d-cpu' is 2D, got dims=3"):
        create_model("fnoreg", dims=3, preset="2d-cpu")
    with pytest.raises(ValueError, match="preset '3d-cpu' is 3D, got dims=2"):
        create_model("voxelmorph", dims=2, preset="3d-cpu")
    with pytest.raises(ValueError, match="expected 2 entries in n_modes"):
        create_model("fnoreg", dims=2, n_modes=(8, 8, 8))
    with pytest.raises(ValueError, match="expected 3 entries in n_modes"):
        create_model("fno", dims=3, n_modes=(8, 8))
    with pytest.raises(ValueError, match="expected a model config with an 'arch' key"):
        model_from_config({"dims": 2})
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        model_from_config({"arch": "nope"})
    cfg = dict(config_to_dict(_tiny("fnoreg", 2)), extra=1)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['extra'\]"):
        model_from_config(cfg)


def test_config_fields_are_serialisable():
    for name, dims in MODEL_CASES:
        cfg = config_to_dict(_tiny(name, dims))
        assert set(cfg) == {"arch"} | {f.name for f in dataclasses.fields(_tiny(name, dims).config)}
        assert all(not isinstance(v, tuple) for v in cfg.values())


def _smooth_pair(spatial, shift):
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 1, *spatial, generator=gen)
    kernel = torch.ones(1, 1, 5, 5) / 25
    fixed = noise
    for _ in range(3):  # box blur x3 with periodic padding: a smooth periodic image
        fixed = F.conv2d(F.pad(fixed, (2, 2, 2, 2), mode="circular"), kernel)
    fixed = (fixed - fixed.min()) / (fixed.max() - fixed.min())
    moving = torch.roll(fixed, shifts=shift, dims=(2, 3))
    return moving, fixed


def test_training_steps_decrease_loss():
    torch.manual_seed(0)
    model = create_model("fnoreg", dims=2, **TINY[("fnoreg", 2)])
    model.train()
    moving, fixed = _smooth_pair((16, 16), shift=(2, -1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = F.mse_loss(warp(moving, model(moving, fixed)), fixed)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
