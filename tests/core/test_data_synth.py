"""Tests for fnoreg_core.data.synth: SynthMorph-style synthetic pairs (numpy/scipy, any 2D/3D size)."""

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from fnoreg_core.data import check_sample, open_source, resize_image, resize_labels
from fnoreg_core.data import synth
from fnoreg_core.data.synth import (
    SynthPairs,
    integrate_velocity,
    random_contrast,
    random_deformation,
    random_label_map,
    synthesize_image,
    upsample_linear,
    warp,
)
from fnoreg_core.metrics import folding_fraction, jacobian_determinant, mean_dice

ROOT = Path(__file__).resolve().parents[2]
SHAPE_2D = (37, 45)  # odd sizes on purpose
SHAPE_3D = (21, 26, 19)


def _digest(sample: dict) -> str:
    h = hashlib.sha256()
    for key in ("moving", "fixed", "moving_labels", "fixed_labels"):
        h.update(np.ascontiguousarray(sample[key]).tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# the pair source


@pytest.mark.parametrize("shape", [SHAPE_2D, SHAPE_3D])
def test_sample_layout(shape):
    src = SynthPairs(shape, n_pairs=5, seed=3)
    assert len(src) == 5 and src.dims == len(shape) and src.shape == shape and src.has_labels
    for i in (0, 4, -1):
        s = src[i]
        check_sample(s, len(shape), True)
        for key in ("moving", "fixed"):
            assert s[key].shape == (1, *shape) and s[key].dtype == np.float32
            assert s[key].min() >= 0.0 and s[key].max() <= 1.0 and s[key].max() > 0.5
        for key in ("moving_labels", "fixed_labels"):
            assert s[key].shape == (1, *shape) and s[key].dtype == np.int16
        assert isinstance(s["name"], str) and s["name"]
    with pytest.raises(IndexError):
        src[5]


def test_label_count_and_background():
    src = SynthPairs((48, 40), n_pairs=3, n_labels=5, seed=1)
    s = src[0]
    values = set(np.unique(s["fixed_labels"]).tolist()) | set(np.unique(s["moving_labels"]).tolist())
    assert values <= set(range(6)) and 0 in values and len(values) >= 4
    assert set(src.label_names) == {1, 2, 3, 4, 5}
    # background is black, and the image is brighter inside the head
    assert s["fixed"][s["fixed_labels"] == 0].mean() < 0.05
    lab = random_label_map((40, 48), np.random.default_rng(0), n_labels=7, background=False)
    assert lab.dtype == np.int16 and lab.min() >= 1 and lab.max() <= 7 and len(np.unique(lab)) >= 5


def test_reproducible_and_order_independent():
    a = SynthPairs(SHAPE_3D, n_pairs=10, seed=7)
    b = SynthPairs(SHAPE_3D, n_pairs=10, seed=7)
    forward = [_digest(a[i]) for i in (0, 1, 2)]
    backward = [_digest(b[i]) for i in (2, 1, 0)][::-1]
    assert forward == backward
    assert len(set(forward)) == 3  # different indices give different pairs
    assert _digest(SynthPairs(SHAPE_3D, n_pairs=10, seed=8)[0]) != forward[0]
    # and in another process
    script = textwrap.dedent(f"""
        import sys, hashlib, numpy as np
        sys.modules["torch"] = None   # also checks that the module is torch-free
        sys.path.insert(0, {str(ROOT)!r})
        from fnoreg_core.data.synth import SynthPairs
        s = SynthPairs({SHAPE_3D!r}, n_pairs=10, seed=7).load(1)
        h = hashlib.sha256()
        for k in ("moving", "fixed", "moving_labels", "fixed_labels"):
            h.update(np.ascontiguousarray(s[k]).tobytes())
        print("DIGEST", h.hexdigest())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert f"DIGEST {forward[1]}" in proc.stdout


def test_load_accepts_indices_beyond_len():
    src = SynthPairs(SHAPE_2D, n_pairs=2, seed=0)
    check_sample(src.load(12345), 2, True)


@pytest.mark.parametrize("shape", [(64, 72), (40, 44, 36)])
def test_deformations_are_diffeomorphic(shape):
    """Default settings at their strongest: no folding anywhere (J > 0)."""
    rng = np.random.default_rng(0)
    size = float(np.mean(shape))
    for _ in range(4 if len(shape) == 2 else 2):
        ddf = random_deformation(shape, rng, std=0.025 * size, spacing=0.125 * size)
        assert ddf.shape == (len(shape), *shape) and ddf.dtype == np.float32
        assert np.abs(ddf).max() > 0.03 * size  # not trivially small
        jac = jacobian_determinant(ddf)
        assert jac.min() > 0.0, jac.min()
        assert folding_fraction(jac)["nonpositive_pct"] == 0.0


def test_sample_fields_positive_jacobian_and_true_ddf():
    src = SynthPairs((36, 40, 32), n_pairs=4, seed=2, n_labels=6)
    for i in range(2):
        s = src.load(i, return_ddf=True)
        for key in ("moving_deform_vox", "fixed_deform_vox", "ddf_vox"):
            assert s[key].shape == (3, 36, 40, 32) and s[key].dtype == np.float32
            assert folding_fraction(jacobian_determinant(s[key]))["nonpositive_pct"] == 0.0, key
        # the true fixed->moving field registers the labels (nearest resampling loses a little)
        before = mean_dice(s["moving_labels"][0], s["fixed_labels"][0])
        after = mean_dice(warp(s["moving_labels"][0], s["ddf_vox"], order=0), s["fixed_labels"][0])
        assert after > 0.8 and after > before, (before, after)
        assert _digest(s) == _digest(src.load(i))  # the extras do not change the pair


def test_label_map_priors():
    rng = np.random.default_rng(0)
    prior_a = np.zeros((30, 34, 28), np.int32)
    prior_a[5:25, 6:28, 4:24] = 41
    prior_a[10:20, 10:24, 8:20] = 1000
    prior_b = np.where(prior_a > 0, 2, 0).astype(np.uint8)
    src = SynthPairs(SHAPE_3D, n_pairs=6, seed=0, label_maps=[prior_a, prior_b.astype(float)])
    seen = set()
    for i in range(6):
        s = src[i]
        check_sample(s, 3, True)
        values = set(np.unique(s["moving_labels"]).tolist()) | set(np.unique(s["fixed_labels"]).tolist())
        assert values <= {0, 2, 41, 1000}
        seen |= values
        assert s["fixed"][s["fixed_labels"] == 0].mean() < 0.1
    assert seen == {0, 2, 41, 1000}  # both priors were picked
    with pytest.raises(ValueError, match="3-D map"):
        SynthPairs(SHAPE_3D, label_maps=[np.zeros((10, 10), int)])
    with pytest.raises(TypeError, match="integer labels"):
        SynthPairs(SHAPE_3D, label_maps=[rng.random((8, 8, 8))])
    with pytest.raises(ValueError, match="empty"):
        SynthPairs(SHAPE_3D, label_maps=[])


def test_relative_affine_true_ddf_and_real_images():
    prior = np.zeros((30, 34, 28), np.int16)
    prior[5:25, 6:28, 4:24] = 1
    prior[10:20, 10:24, 8:20] = 2
    prior[12:16, 20:26, 10:14] = 3
    image = np.where(prior > 0, 0.3 + 0.2 * prior, 0.0).astype(np.float32)
    plain = SynthPairs((30, 34, 28), n_pairs=2, seed=3, label_maps=[prior])
    moved = SynthPairs((30, 34, 28), n_pairs=2, seed=3, label_maps=[prior], max_rotation_deg=8.0,
                       max_scaling=0.1, max_shift=0.05)
    real = SynthPairs((30, 34, 28), n_pairs=2, seed=3, label_maps=[prior], images=[image], real_fraction=1.0,
                      max_noise=0.0, gamma_std=0.0)
    s0, s1 = plain.load(0), moved.load(0, return_ddf=True)
    assert not np.array_equal(s0["fixed_labels"], s1["fixed_labels"])
    assert np.array_equal(s0["moving_labels"], s1["moving_labels"])  # the affine is on the fixed side only
    # the true field still maps the moving labels onto the fixed labels, with the affine in it
    before = mean_dice(s1["moving_labels"][0], s1["fixed_labels"][0])
    after = mean_dice(warp(s1["moving_labels"][0], s1["ddf_vox"], order=0), s1["fixed_labels"][0])
    assert after > 0.8 and after > before, (before, after)
    # real images: the prior's image warped like its labels (no noise, no gamma here)
    s2 = real.load(0)
    inside = s2["moving_labels"][0] > 0
    expected = 0.3 + 0.2 * s2["moving_labels"][0][inside]
    assert np.mean(np.abs(s2["moving"][0][inside] - expected) < 0.05) > 0.8
    assert "affine" in moved.describe() and "real images" in real.describe()
    with pytest.raises(ValueError, match="needs images"):
        SynthPairs((30, 34, 28), label_maps=[prior], real_fraction=0.5)
    with pytest.raises(ValueError, match="same count"):
        SynthPairs((30, 34, 28), images=[image])
    with pytest.raises(ValueError, match="shape"):
        SynthPairs((30, 34, 28), label_maps=[prior], images=[image[:-1]])
    with pytest.raises(ValueError, match="max_scaling"):
        SynthPairs((30, 34, 28), max_scaling=-0.1)


def test_same_and_random_contrast():
    quiet = dict(max_noise=0.0, max_blur=0.0, max_bias=0.0)
    same = SynthPairs((64, 60), n_pairs=4, seed=4, n_labels=4, **quiet)
    for i in range(3):
        s = same[i]
        common = np.intersect1d(s["moving_labels"], s["fixed_labels"])
        for lab in common:  # one intensity per label, the same in both images
            m, f = s["moving"][s["moving_labels"] == lab], s["fixed"][s["fixed_labels"] == lab]
            assert np.ptp(m) < 1e-6 and np.ptp(f) < 1e-6
            if s["moving"].max() == s["fixed"].max() == 1.0:
                assert abs(m[0] - f[0]) < 1e-5
    rand = SynthPairs((64, 60), n_pairs=4, seed=4, n_labels=4, contrast="random", **quiet)
    differs = 0
    for i in range(3):
        s = rand[i]
        for lab in np.intersect1d(s["moving_labels"], s["fixed_labels"])[1:]:
            m, f = s["moving"][s["moving_labels"] == lab], s["fixed"][s["fixed_labels"] == lab]
            differs += abs(float(m.mean()) - float(f.mean())) > 0.02
    assert differs > 0


def test_invalid_arguments():
    with pytest.raises(ValueError, match="2D or 3D"):
        SynthPairs((16,))
    with pytest.raises(ValueError, match="2D or 3D"):
        SynthPairs((16, 1))
    with pytest.raises(ValueError, match="contrast"):
        SynthPairs(SHAPE_2D, contrast="other")
    with pytest.raises(ValueError, match="seed"):
        SynthPairs(SHAPE_2D, seed=-1)
    with pytest.raises(ValueError, match="n_labels"):
        SynthPairs(SHAPE_2D, n_labels=0)


def test_open_source_synth():
    src = open_source("synth", 2, split="val", shape=(40, 48), seed=0)
    assert isinstance(src, SynthPairs) and len(src) == 16 and src.shape == (40, 48)
    check_sample(src[0], 2, True)
    assert _digest(src[0]) != _digest(open_source("synth", 2, split="test", shape=(40, 48), seed=0)[0])


# ------------------------------------------------------------------------------------------------
# the steps


@pytest.mark.parametrize("src_shape, shape", [((5, 7), (37, 45)), ((9, 4, 6), (21, 26, 19)),
                                              ((30, 40, 50), (80, 96, 112)), ((12, 10), (5, 23))])
def test_upsample_linear_matches_resize_image(src_shape, shape):
    a = np.random.default_rng(0).standard_normal(src_shape).astype(np.float32)
    ours = upsample_linear(a, shape)
    assert ours.shape == tuple(shape) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, resize_image(a, shape), atol=2e-5)
    stacked = upsample_linear(np.stack([a, 2 * a]), shape)  # leading channel axes are kept
    np.testing.assert_allclose(stacked[1], 2 * ours, atol=4e-5)


def test_integrate_velocity_exact_cases():
    zero = np.zeros((3, 6, 7, 5), np.float32)
    np.testing.assert_array_equal(integrate_velocity(zero), zero)
    const = np.zeros((2, 9, 8), np.float32)
    const[0], const[1] = 1.5, -0.75  # a translation integrates to itself
    np.testing.assert_allclose(integrate_velocity(const), const, atol=1e-5)
    with pytest.raises(ValueError, match="velocity"):
        integrate_velocity(np.zeros((3, 4, 4)))


def test_integrate_velocity_inverse():
    rng = np.random.default_rng(1)
    v = synth.random_velocity((24, 28), rng, std=1.5, spacing=6.0)
    forward, backward = integrate_velocity(v), integrate_velocity(-v)
    identity = synth.compose_ddf_vox(backward, forward)
    assert np.abs(identity[:, 3:-3, 3:-3]).max() < 0.1 * np.abs(forward).max()


def test_warp_conventions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 9, (12, 14, 10)).astype(np.int16)
    # pull convention: u = +2 voxels along axis 1 reads the volume 2 voxels further on
    ddf = np.zeros((3, 12, 14, 10), np.float32)
    ddf[1] = 2.0
    out = warp(labels, ddf, order=0)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out[:, :-2], labels[:, 2:])
    np.testing.assert_array_equal(out[:, -2:], labels[:, -1:].repeat(2, axis=1))  # edges extended
    np.testing.assert_allclose(warp(labels.astype(np.float32), ddf, order=1)[:, :-2], labels[:, 2:])
    # nearest warp agrees with map_coordinates, also when resampling to another grid
    ddf = random_deformation((17, 19, 13), rng, std=2.0, spacing=6.0)
    for volume in (labels, rng.integers(0, 5, (17, 19, 13)).astype(np.int16)):
        pos = synth._identity_plus(ddf)
        for axis, (m, n) in enumerate(zip(volume.shape, ddf.shape[1:])):
            pos[axis] *= (m - 1) / (n - 1)
        ref = ndimage.map_coordinates(volume, pos, order=0, mode="nearest")
        assert (warp(volume, ddf, order=0) == ref).mean() > 0.999
    # identity on another grid = a nearest resize
    resized = warp(labels, np.zeros((3, 23, 27, 19), np.float32), order=0)
    assert (resized == resize_labels(labels, (23, 27, 19))).mean() > 0.999


def test_synthesize_image():
    rng = np.random.default_rng(0)
    labels = random_label_map((40, 36), rng, n_labels=6)
    image = synthesize_image(labels, rng)
    assert image.dtype == np.float32 and image.shape == labels.shape
    assert image.min() >= 0.0 and image.max() == pytest.approx(1.0) and np.all(image[labels == 0] < 0.2)
    contrast = random_contrast(7, rng, max_noise=0.0, max_blur=0.0, max_bias=0.0, gamma_std=0.0)
    flat = synthesize_image(labels, rng, contrast)
    for lab in np.unique(labels):
        assert np.ptp(flat[labels == lab]) < 1e-6
    with pytest.raises(ValueError, match="class indices"):
        synthesize_image(labels + 10, rng, contrast)


def test_slice_by_slice_paths_match_whole_array(monkeypatch):
    """Large grids are resized/labelled/warped one slice of the first axis at a time: same result."""
    shape = (14, 23, 17)
    rng = np.random.default_rng(0)
    coarse = rng.standard_normal((2, 5, 6, 4)).astype(np.float32)
    ddf = random_deformation(shape, np.random.default_rng(1), std=2.0, spacing=6.0)
    volume = rng.integers(0, 7, (11, 13, 9)).astype(np.int16)
    results = []
    for slab_min in (1, 10 ** 9):
        monkeypatch.setattr(synth, "_SLAB_MIN", slab_min)
        results.append((upsample_linear(coarse, shape),
                        random_label_map(shape, np.random.default_rng(2), n_labels=5),
                        random_label_map(shape, np.random.default_rng(2), n_labels=5, background=False),
                        warp(volume, ddf, order=0)))
    (up_a, lab_a, nobg_a, warp_a), (up_b, lab_b, nobg_b, warp_b) = results
    np.testing.assert_allclose(up_a, up_b, atol=1e-5)
    assert (lab_a == lab_b).mean() > 0.999 and (nobg_a == nobg_b).mean() > 0.999 and 0 in lab_a
    np.testing.assert_array_equal(warp_a, warp_b)


# ------------------------------------------------------------------------------------------------
# PyTorch


def test_dataloader_workers_match_direct_indexing():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from fnoreg_core.data.torch_dataset import TorchPairs

    src = SynthPairs(SHAPE_2D, n_pairs=6, seed=5)
    direct = [src[i] for i in range(6)]
    loader = DataLoader(TorchPairs(src), batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 3
    for b, batch in enumerate(batches):
        for j in range(2):
            ref = direct[2 * b + j]
            np.testing.assert_array_equal(batch["moving"][j].numpy(), ref["moving"])
            np.testing.assert_array_equal(batch["fixed_labels"][j].numpy(), ref["fixed_labels"])

    stream = synth.SynthStream(src, start=3, block=2)
    assert isinstance(stream, torch.utils.data.IterableDataset)
    batches = []
    for batch in DataLoader(stream, batch_size=2, num_workers=2):
        batches.append(batch)
        if len(batches) == 3:
            break
    assert [b["index"].tolist() for b in batches] == [[3, 4], [5, 6], [7, 8]]  # as without workers
    for b in batches:
        for j, index in enumerate(b["index"].tolist()):
            ref = src.load(index)
            np.testing.assert_array_equal(b["moving"][j].numpy(), ref["moving"])
            np.testing.assert_array_equal(b["moving_labels"][j].numpy(), ref["moving_labels"])
        assert b["moving_labels"].dtype == torch.int64 and b["fixed"].dtype == torch.float32
    finite = list(synth.SynthStream(src, start=0, stop=3))
    assert [s["index"] for s in finite] == [0, 1, 2]
    with pytest.raises(ValueError, match="block"):
        synth.SynthStream(src, block=0)


@pytest.mark.parametrize("shape", [(40, 36), (22, 26, 20)])
def test_true_ddf_matches_the_torch_warp_layer(shape):
    """ddf_vox follows fnoreg_core.fields: converted to _norm, the network's warp layer gives the same result."""
    torch = pytest.importorskip("torch")
    from fnoreg_core.fields import ddf_vox_to_norm
    from fnoreg_core.layers.spatial_transformer import warp as torch_warp
    from fnoreg_core.layers.spatial_transformer import warp_labels as torch_warp_labels

    src = SynthPairs(shape, n_pairs=4, seed=9, n_labels=6)
    s = max((src.load(i, return_ddf=True) for i in range(3)), key=lambda p: np.abs(p["ddf_vox"]).max())
    ddf_norm = torch.from_numpy(ddf_vox_to_norm(s["ddf_vox"]))[None]
    ours = warp(s["moving"][0], s["ddf_vox"], order=1)
    theirs = torch_warp(torch.from_numpy(s["moving"])[None], ddf_norm)[0, 0].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    ours_l = warp(s["moving_labels"][0], s["ddf_vox"], order=0)
    theirs_l = torch_warp_labels(torch.from_numpy(s["moving_labels"].astype(np.int64))[None], ddf_norm)[0, 0]
    assert (ours_l == theirs_l.numpy()).mean() > 0.999
    # and the registered moving image is closer to the fixed one
    assert np.mean((theirs - s["fixed"][0]) ** 2) < 0.6 * np.mean((s["moving"][0] - s["fixed"][0]) ** 2)
