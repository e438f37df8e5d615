"""One-call registration quality report (numpy only)."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from .jacobian import folding_fraction, jacobian_determinant, sdlogj
from .overlap import dice_per_label

__all__ = ["registration_report"]


def registration_report(
    ddf_vox: np.ndarray | None = None,
    warped_labels: np.ndarray | None = None,
    fixed_labels: np.ndarray | None = None,
    *,
    spacing: Sequence[float] | None = None,
    labels: Iterable[int] | None = None,
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """Dice and deformation regularity of one registration, as a plain dict.

    Parameters
    ----------
    ddf_vox : (2, H, W) or (3, D, H, W) float numpy array, optional
        Displacement in voxels (or physical units with ``spacing``), fixed->moving.
    warped_labels, fixed_labels : (*spatial) integer numpy arrays, optional
        Moving labels warped to the fixed grid, and fixed labels. Give both or neither.
    spacing : sequence of float, optional
        See :func:`~fnoreg_core.metrics.jacobian_determinant`.
    labels : iterable of int, optional
        See :func:`~fnoreg_core.metrics.dice_per_label`.
    mask : (*spatial) bool numpy array, optional
        Voxels for the Jacobian statistics (default: all).

    Returns
    -------
    dict
        With labels: ``dice_per_label`` (dict[int, float]), ``mean_dice`` (float,
        nan if no common label), ``n_labels``. With a field: ``nonpositive_jac_pct``,
        ``negative_jac_pct``, ``sdlogj``, ``jac_min``, ``jac_max``, ``jac_mean``.

    Raises
    ------
    TypeError, ValueError
        From the underlying metrics; ValueError if only one label map is given,
        if nothing is given, or if the field and label shapes disagree.
    """
    if (warped_labels is None) != (fixed_labels is None):
        raise ValueError("expected both warped_labels and fixed_labels, or neither; got only one")
    if ddf_vox is None and warped_labels is None:
        raise ValueError("expected ddf_vox and/or label maps, got nothing to report")
    out: dict[str, Any] = {}
    if warped_labels is not None:
        per = dice_per_label(warped_labels, fixed_labels, labels)
        out["dice_per_label"] = per
        out["mean_dice"] = float(np.mean(list(per.values()))) if per else float("nan")
        out["n_labels"] = len(per)
    if ddf_vox is not None:
        if warped_labels is not None and np.shape(ddf_vox)[1:] != np.shape(warped_labels):
            raise ValueError(
                f"expected ddf_vox spatial shape {np.shape(warped_labels)} (as the labels), "
                f"got {np.shape(ddf_vox)[1:]}"
            )
        jac = jacobian_determinant(ddf_vox, spacing)
        fold = folding_fraction(jac, mask)
        out["nonpositive_jac_pct"] = fold["nonpositive_pct"]
        out["negative_jac_pct"] = fold["negative_pct"]
        out["sdlogj"] = sdlogj(jac, mask)
        sel = jac if mask is None else jac[np.asarray(mask, dtype=bool)]
        out["jac_min"] = float(sel.min())
        out["jac_max"] = float(sel.max())
        out["jac_mean"] = float(sel.mean())
    return out
