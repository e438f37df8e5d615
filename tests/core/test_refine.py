"""Instance refinement (fnoreg_core.refine): descends LNCC + diffusion, recovers a known field, stops on request."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from fnoreg_core.refine import RefineCancelled, RefineError, RefineSettings, lncc, refine_field


def _pair(shape=(40, 48, 36), seed=1):
    """fixed, moving and the true pull field (voxels) with moving(p + u(p)) = fixed(p)."""
    rng = np.random.default_rng(seed)
    fixed = ndimage.gaussian_filter(rng.random(shape), 2.0).astype(np.float32)
    fixed = (fixed - fixed.min()) / np.ptp(fixed)
    u = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), 6.0) for _ in shape])
    u *= 2.0 / np.abs(u).max()  # up to 2 voxels
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"))
    # moving = fixed o (id + u)^-1 (approximately: fixed pulled at p - u(p))
    moving = ndimage.map_coordinates(fixed, grid - u, order=1, mode="nearest").astype(np.float32)
    return fixed, moving, u.astype(np.float32)


def test_refinement_raises_lncc_and_lowers_the_end_point_error():
    fixed, moving, u = _pair()
    res = refine_field(fixed, moving, None, RefineSettings(iterations=(30, 10), reg_weight=0.2))
    assert res.lncc_after > res.lncc_before + 0.05
    epe_before = np.sqrt((u ** 2).sum(0)).mean()
    epe_after = np.sqrt(((res.ddf_vox - u) ** 2).sum(0)).mean()
    assert epe_after < 0.6 * epe_before
    assert res.ddf_vox.shape == (3, *fixed.shape) and res.ddf_vox.dtype == np.float32
    assert 10 <= res.iterations <= 40 and len(res.energy) >= 10


def test_starting_from_the_true_field_keeps_it_close():
    fixed, moving, u = _pair()
    res = refine_field(fixed, moving, u, RefineSettings(iterations=(0, 5)))
    assert np.sqrt(((res.ddf_vox - u) ** 2).sum(0)).mean() < 0.5


def test_two_dimensional_images():
    fixed, moving, _ = _pair(shape=(64, 48))
    res = refine_field(fixed, moving, None, RefineSettings(iterations=(20, 5)))
    assert res.ddf_vox.shape == (2, 64, 48) and res.lncc_after > res.lncc_before


def test_progress_cancel_and_time_limit():
    fixed, moving, _ = _pair(shape=(24, 24, 24))
    seen = []
    refine_field(fixed, moving, None, RefineSettings(iterations=(3, 2)), progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[0] == (1, 5) and all(t == 5 for _, t in seen)
    calls = []
    with pytest.raises(RefineCancelled):
        refine_field(fixed, moving, None, RefineSettings(iterations=(10,)), cancel=lambda: len(calls.append(1) or calls) > 3)
    res = refine_field(fixed, moving, None, RefineSettings(iterations=(100000,), time_limit_s=1e-6))
    assert "time limit" in res.stopped and res.iterations == 0 and not res.ddf_vox.any()


@pytest.mark.parametrize("kwargs,message", [
    (dict(moving=np.zeros((8, 8, 9), np.float32)), "one shape"),
    (dict(ddf_vox=np.zeros((3, 8, 8, 7), np.float32)), "does not fit"),
    (dict(fixed=np.full((8, 8, 8), np.nan, np.float32)), "NaN"),
    (dict(settings=RefineSettings(iterations=(-1,))), ">= 0"),
    (dict(settings=RefineSettings(step=0)), "step > 0"),
])
def test_bad_input_raises_refine_error(kwargs, message):
    args = dict(fixed=np.zeros((8, 8, 8), np.float32), moving=np.zeros((8, 8, 8), np.float32), ddf_vox=None,
                settings=None)
    args.update(kwargs)
    with pytest.raises(RefineError, match=message):
        refine_field(**args)


def test_lncc_is_one_for_identical_images():
    img = _pair(shape=(16, 16, 16))[0]
    assert lncc(img, img) == pytest.approx(1.0, abs=1e-3)
