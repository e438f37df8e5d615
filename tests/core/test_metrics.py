"""Tests for fnoreg_core.metrics (numpy only): Dice, Jacobian determinant, folding, SDlogJ."""

import math

import numpy as np
import pytest
from scipy import ndimage

from fnoreg_core.metrics import (
    SDLOGJ_EPS,
    dice_per_label,
    folding_fraction,
    jacobian_determinant,
    mean_dice,
    registration_report,
    sdlogj,
)


def _coords(spatial):
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in spatial], indexing="ij"))


def _affine_field(A, spatial):
    """u(x) = (A - I) x, so x + u(x) = A x and J = det(A) everywhere."""
    x = _coords(spatial)
    return np.einsum("ij,j...->i...", A - np.eye(len(spatial)), x)


def _smooth_field(rng, spatial, amplitude):
    u = ndimage.gaussian_filter(rng.normal(size=(len(spatial), *spatial)), sigma=(0,) + (2.5,) * len(spatial))
    return amplitude * u / np.abs(u).max()


# ----------------------------------------------------------------------------- Dice


def test_dice_identical_disjoint_and_partial():
    a = np.zeros((6, 6), np.int32)
    a[:3, :3] = 1
    a[3:, 3:] = 2
    assert dice_per_label(a, a) == {1: 1.0, 2: 1.0}
    b = np.zeros_like(a)
    b[:3, 3:] = 1  # label 1 disjoint from a's label 1; label 2 absent in b
    assert dice_per_label(a, b) == {1: 0.0}
    c = a.copy()
    c[0, :3] = 0  # label 1: |A|=9, |B|=6, |A&B|=6 -> 12/15
    assert dice_per_label(a, c) == {1: pytest.approx(0.8), 2: 1.0}
    assert mean_dice(a, c) == pytest.approx(0.9)


def test_dice_background_and_absent_labels_excluded():
    a = np.array([0, 0, 1, 1, 5, 7])
    b = np.array([0, 0, 1, 2, 5, 5])
    per = dice_per_label(a, b)
    assert set(per) == {1, 5}  # 0 excluded, 2 only in b, 7 only in a
    assert per[1] == pytest.approx(2 * 1 / 3) and per[5] == pytest.approx(2 * 1 / 3)
    assert dice_per_label(a, b, labels=[0, 1, 2]) == {0: 1.0, 1: pytest.approx(2 / 3)}
    assert math.isnan(mean_dice(a, np.zeros_like(a)))


def test_dice_agrees_with_naive_loop_and_handles_odd_dtypes():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, size=(10, 11, 12))
    b = np.where(rng.random(a.shape) < 0.7, a, rng.integers(0, 6, size=a.shape))

    def naive(x, y, labels):
        return {lab: 2 * np.sum((x == lab) & (y == lab)) / (np.sum(x == lab) + np.sum(y == lab)) for lab in labels}

    want = naive(a, b, range(1, 6))
    assert dice_per_label(a, b) == pytest.approx(want)
    # integer-valued floats (nibabel get_fdata) and uint8
    assert dice_per_label(a.astype(np.float32), b.astype(np.uint8)) == pytest.approx(want)
    # negative / huge label values take the np.unique path
    big = {k * 10**8: v for k, v in want.items()}
    assert dice_per_label(a * 10**8, b * 10**8) == pytest.approx(big)
    neg = dice_per_label(a - 3, b - 3)
    assert neg == pytest.approx(naive(a - 3, b - 3, [-3, -2, -1, 1, 2]))
    # bool masks: label 1
    assert dice_per_label(a > 2, b > 2) == pytest.approx(naive((a > 2).astype(int), (b > 2).astype(int), [1]))


def test_dice_errors():
    with pytest.raises(ValueError, match=r"expected label maps of the same shape, got \(4, 4\) and \(4, 5\)"):
        dice_per_label(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match="expected finite label values"):
        dice_per_label(np.array([1.0, np.nan]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="expected integer-valued labels"):
        dice_per_label(np.array([1.5, 1.0]), np.array([1.0, 1.0]))
    with pytest.raises(TypeError, match="expected an integer label array"):
        dice_per_label(np.array(["a"]), np.array(["a"]))


# ----------------------------------------------------------------------------- Jacobian


def test_identity_field():
    jac = jacobian_determinant(np.zeros((3, 6, 7, 8)))
    np.testing.assert_array_equal(jac, 1.0)
    assert folding_fraction(jac) == {"nonpositive_pct": 0.0, "negative_pct": 0.0}
    assert sdlogj(jac) == 0.0


@pytest.mark.parametrize(
    "A",
    [
        np.array([[1.2, 0.3], [-0.1, 0.9]]),
        np.array([[0.5, 0.0], [0.0, 2.0]]),
        np.array([[-1.0, 0.0], [0.0, 1.0]]),  # reflection, det -1
    ],
)
def test_affine_field_2d(A):
    jac = jacobian_determinant(_affine_field(A, (7, 9)))
    np.testing.assert_allclose(jac, np.linalg.det(A), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_affine_field_3d(seed):
    rng = np.random.default_rng(seed)
    A = np.eye(3) + 0.2 * rng.normal(size=(3, 3))
    jac = jacobian_determinant(_affine_field(A, (5, 6, 7)))
    np.testing.assert_allclose(jac, np.linalg.det(A), atol=1e-12)
    assert sdlogj(jac) == pytest.approx(0.0, abs=1e-12)


def test_reflection_is_fully_folded():
    A = np.diag([1.0, -1.0, 1.0])
    jac = jacobian_determinant(_affine_field(A, (4, 5, 6)))
    np.testing.assert_allclose(jac, -1.0)
    assert folding_fraction(jac) == {"nonpositive_pct": 100.0, "negative_pct": 100.0}
    # every J clipped to eps -> constant log -> SDlogJ 0
    assert sdlogj(jac) == pytest.approx(0.0, abs=1e-12)


def test_folding_counts_zero_separately():
    jac = np.array([[-1.0, 0.0], [0.5, 2.0]])
    assert folding_fraction(jac) == {"nonpositive_pct": 50.0, "negative_pct": 25.0}
    assert folding_fraction(jac, mask=np.array([[False, True], [True, True]])) == {
        "nonpositive_pct": pytest.approx(100 / 3),
        "negative_pct": 0.0,
    }


def test_sdlogj_values():
    jac = np.array([1.0, math.e, math.e**-1, -3.0])
    logs = np.array([0.0, 1.0, -1.0, math.log(SDLOGJ_EPS)])
    assert sdlogj(jac) == pytest.approx(np.std(logs))
    assert sdlogj(jac[:3]) == pytest.approx(np.std([0.0, 1.0, -1.0]))
    assert sdlogj(jac, eps=1e-3) == pytest.approx(np.std([0.0, 1.0, -1.0, math.log(1e-3)]))


def test_spacing_mm_field_gives_same_jacobian():
    rng = np.random.default_rng(3)
    u_vox = _smooth_field(rng, (8, 9, 10), amplitude=1.5)
    spacing = (1.0, 1.5, 2.5)
    u_mm = u_vox * np.array(spacing)[:, None, None, None]
    np.testing.assert_allclose(jacobian_determinant(u_mm, spacing), jacobian_determinant(u_vox), atol=1e-12)
    # forgetting the spacing for a mm field gives a different (wrong) answer
    assert not np.allclose(jacobian_determinant(u_mm), jacobian_determinant(u_vox), atol=1e-3)


def test_matches_simpleitk_interior():
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(4)
    spatial = (12, 14, 16)  # array order (D, H, W) = sitk (z, y, x)
    spacing = (2.0, 1.25, 0.8)  # per array axis, mm
    u_vox = _smooth_field(rng, spatial, amplitude=2.5)
    u_mm = u_vox * np.array(spacing)[:, None, None, None]
    # sitk vector components are (x, y, z) = array channels reversed; spacing also reversed
    vec = np.moveaxis(u_mm[::-1], 0, -1).astype(np.float64)
    img = sitk.GetImageFromArray(vec, isVector=True)
    img.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    ref = sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(img))
    got = jacobian_determinant(u_vox)
    interior = (slice(1, -1),) * 3
    np.testing.assert_allclose(got[interior], ref[interior], atol=1e-5)
    assert got.min() < 0.9 and got.max() > 1.1  # the field is not trivial


def test_jacobian_errors():
    with pytest.raises(ValueError, match=r"expected ddf_vox of shape \(2, H, W\) or \(3, D, H, W\).*got \(2, 4, 5, 6\)"):
        jacobian_determinant(np.zeros((2, 4, 5, 6)))
    with pytest.raises(ValueError, match=r"got \(1, 3, 4, 5, 6\)"):
        jacobian_determinant(np.zeros((1, 3, 4, 5, 6)))
    bad = np.zeros((2, 4, 5))
    bad[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="expected finite values in ddf_vox"):
        jacobian_determinant(bad)
    with pytest.raises(ValueError, match="expected every spatial size >= 2"):
        jacobian_determinant(np.zeros((2, 1, 5)))
    with pytest.raises(ValueError, match="expected spacing as 2 positive numbers"):
        jacobian_determinant(np.zeros((2, 4, 5)), spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="expected spacing as 2 positive numbers"):
        jacobian_determinant(np.zeros((2, 4, 5)), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="expected finite values in jac"):
        folding_fraction(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"expected mask of shape \(2,\)"):
        sdlogj(np.array([1.0, 2.0]), mask=np.ones(3, bool))
    with pytest.raises(ValueError, match="expected eps > 0"):
        sdlogj(np.array([1.0]), eps=0.0)
    with pytest.raises(TypeError, match="expected a float array for jac"):
        folding_fraction(np.array([1, 2]))


# ----------------------------------------------------------------------------- report


def test_registration_report():
    rng = np.random.default_rng(5)
    lab = rng.integers(0, 4, size=(6, 7, 8))
    rep = registration_report(np.zeros((3, 6, 7, 8)), lab, lab, spacing=(1, 1, 1))
    assert rep["mean_dice"] == 1.0 and rep["n_labels"] == 3
    assert rep["nonpositive_jac_pct"] == 0.0 and rep["negative_jac_pct"] == 0.0
    assert rep["sdlogj"] == 0.0 and rep["jac_min"] == rep["jac_max"] == rep["jac_mean"] == 1.0
    only_field = registration_report(_affine_field(np.diag([1.0, -1.0]), (5, 5)))
    assert only_field["negative_jac_pct"] == 100.0 and "mean_dice" not in only_field
    with pytest.raises(ValueError, match="expected both warped_labels and fixed_labels"):
        registration_report(warped_labels=lab)
    with pytest.raises(ValueError, match="got nothing to report"):
        registration_report()
    with pytest.raises(ValueError, match=r"expected ddf_vox spatial shape \(6, 7, 8\)"):
        registration_report(np.zeros((3, 6, 7, 9)), lab, lab)
