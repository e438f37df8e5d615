"""Jacobian determinant of a displacement field and folding statistics (numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["jacobian_determinant", "folding_fraction", "sdlogj", "SDLOGJ_EPS"]

#: Lower clip applied to J before the log in :func:`sdlogj`.
SDLOGJ_EPS = 1e-9


def _check_field(ddf: object, name: str) -> np.ndarray:
    if hasattr(ddf, "new_tensor"):
        raise TypeError(f"expected a numpy array for {name}, got a torch tensor (call .cpu().numpy())")
    arr = np.asarray(ddf)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"expected a numeric array for {name}, got dtype {arr.dtype}")
    if arr.ndim not in (3, 4) or arr.shape[0] != arr.ndim - 1:
        raise ValueError(
            f"expected {name} of shape (2, H, W) or (3, D, H, W) (channel i = displacement along "
            f"array axis i), got {arr.shape}"
        )
    if min(arr.shape[1:]) < 2:
        raise ValueError(f"expected every spatial size >= 2 for finite differences, got {arr.shape[1:]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"expected finite values in {name}, got NaN or inf")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def jacobian_determinant(ddf_vox: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
    """Jacobian determinant ``J = det(I + grad u)`` of ``x -> x + u(x)``.

    Derivatives are ``np.gradient``: second-order central differences inside,
    first-order one-sided differences on the outermost voxels.

    Parameters
    ----------
    ddf_vox : (2, H, W) or (3, D, H, W) float numpy array
        Displacement, channel ``i`` along array axis ``i`` (see
        :mod:`fnoreg_core.fields`), in voxels on EVERY axis. Fields in ``_norm``
        units must be converted first (:func:`fnoreg_core.fields.ddf_norm_to_vox`);
        a field left in normalised units on some axis gives wrong foldings.
    spacing : sequence of float, optional
        Voxel size per array axis. Give it when ``ddf_vox`` is in the same
        physical unit (e.g. mm along each array axis); default: voxel units.
        Because ``det(I + S G S^-1) = det(I + G)``, a voxel field and the same
        field in mm with its spacing give the same J.

    Returns
    -------
    (H, W) or (D, H, W) numpy array
        J per voxel (float dtype of the input; float64 for integers). J <= 0 means
        folding, J < 1 local compression, J > 1 expansion.

    Raises
    ------
    TypeError
        If ``ddf_vox`` is a torch tensor or not numeric.
    ValueError
        If the shape is not ``(ndim, *spatial)`` with ndim in {2, 3}, a spatial
        size is < 2, values are not finite, or ``spacing`` is not ndim positive numbers.
    """
    u = _check_field(ddf_vox, "ddf_vox")
    ndim = u.shape[0]
    if spacing is None:
        sp = (1.0,) * ndim
    else:
        try:
            sp = tuple(float(s) for s in spacing)
        except (TypeError, ValueError):
            raise ValueError(f"expected spacing as {ndim} positive numbers, got {spacing!r}") from None
        if len(sp) != ndim or not all(np.isfinite(s) and s > 0 for s in sp):
            raise ValueError(f"expected spacing as {ndim} positive numbers, got {spacing!r}")
    # grad[i][j] = d u_i / d x_j, plus identity.
    grad = [list(np.gradient(u[i], *sp)) for i in range(ndim)]
    for i in range(ndim):
        grad[i][i] += 1.0
    if ndim == 2:
        return grad[0][0] * grad[1][1] - grad[0][1] * grad[1][0]
    g = grad
    return (
        g[0][0] * (g[1][1] * g[2][2] - g[1][2] * g[2][1])
        - g[0][1] * (g[1][0] * g[2][2] - g[1][2] * g[2][0])
        + g[0][2] * (g[1][0] * g[2][1] - g[1][1] * g[2][0])
    )


def _check_jac(jac: object, mask: np.ndarray | None) -> np.ndarray:
    if hasattr(jac, "new_tensor"):
        raise TypeError("expected a numpy array for jac, got a torch tensor (call .cpu().numpy())")
    j = np.asarray(jac)
    if not np.issubdtype(j.dtype, np.floating):
        raise TypeError(f"expected a float array for jac, got dtype {j.dtype}")
    if j.size == 0:
        raise ValueError("expected a non-empty jac array, got size 0")
    if not np.all(np.isfinite(j)):
        raise ValueError("expected finite values in jac, got NaN or inf")
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != j.shape:
            raise ValueError(f"expected mask of shape {j.shape} (as jac), got {m.shape}")
        j = j[m.astype(bool)]
        if j.size == 0:
            raise ValueError("expected a mask with at least one True voxel, got none")
    return j.ravel()


def folding_fraction(jac: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Percentage of voxels whose Jacobian determinant shows folding.

    Parameters
    ----------
    jac : (*spatial) float numpy array
        From :func:`jacobian_determinant`.
    mask : (*spatial) bool numpy array, optional
        Voxels to count (default: all).

    Returns
    -------
    dict
        ``{"nonpositive_pct": % with J <= 0, "negative_pct": % with J < 0}``,
        each in [0, 100].

    Raises
    ------
    TypeError
        If ``jac`` is not a float numpy array.
    ValueError
        If ``jac`` is empty or non-finite, or ``mask`` has another shape or is empty.
    """
    j = _check_jac(jac, mask)
    return {
        "nonpositive_pct": float(100.0 * np.count_nonzero(j <= 0) / j.size),
        "negative_pct": float(100.0 * np.count_nonzero(j < 0) / j.size),
    }


def sdlogj(jac: np.ndarray, mask: np.ndarray | None = None, eps: float = SDLOGJ_EPS) -> float:
    """Standard deviation of the log Jacobian determinant (SDlogJ).

    ``std(log(clip(J, eps, None)))`` over all (or masked) voxels, population std
    (``ddof=0``). Folded voxels (J <= 0) have no logarithm; as in the Learn2Reg
    evaluation they are clipped to a tiny positive value (here ``eps = 1e-9``,
    Learn2Reg clips to [1e-9, 1e9]), so each contributes ``log(1e-9) ~ -20.7``:
    a few folded voxels inflate SDlogJ strongly. Report it next to the folding
    fraction. Learn2Reg also computes it inside a mask and may crop borders;
    pass ``mask`` to match a given protocol.

    Parameters
    ----------
    jac : (*spatial) float numpy array
        From :func:`jacobian_determinant`.
    mask : (*spatial) bool numpy array, optional
        Voxels to use (default: all).
    eps : float, default 1e-9
        Lower clip before the log.

    Returns
    -------
    float
        SDlogJ (dimensionless, >= 0; 0 for a constant J).

    Raises
    ------
    TypeError, ValueError
        As :func:`folding_fraction`; also ValueError if ``eps`` <= 0.
    """
    if not eps > 0:
        raise ValueError(f"expected eps > 0, got {eps!r}")
    j = _check_jac(jac, mask)
    return float(np.std(np.log(np.clip(j.astype(np.float64), eps, None))))
