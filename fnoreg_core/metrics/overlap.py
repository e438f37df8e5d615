"""Label overlap (Dice) between two integer label maps (numpy only)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["dice_per_label", "mean_dice"]

_BINCOUNT_MAX = 1 << 24  # use bincount below this label value, np.unique above


def _as_labels(x: object, name: str) -> np.ndarray:
    if hasattr(x, "new_tensor"):
        raise TypeError(f"expected a numpy array for {name}, got a torch tensor (call .cpu().numpy())")
    arr = np.asarray(x)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"expected finite label values in {name}, got NaN or inf")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"expected integer-valued labels in {name}, got non-integer floats")
        return arr.astype(np.int64)
    raise TypeError(f"expected an integer label array for {name}, got dtype {arr.dtype}")


def dice_per_label(a: np.ndarray, b: np.ndarray, labels: Iterable[int] | None = None) -> dict[int, float]:
    """Dice coefficient per label, over labels present in BOTH maps.

    ``Dice_l = 2 |A_l & B_l| / (|A_l| + |B_l|)``, the FNOReg / Learn2Reg OASIS protocol.

    Parameters
    ----------
    a, b : (*spatial) integer numpy arrays, same shape
        Label maps, e.g. warped moving labels and fixed labels. Bool and
        integer-valued float arrays (as nibabel's ``get_fdata``) are accepted.
    labels : iterable of int, optional
        Candidate labels. Default: every nonzero label; 0 (background) is scored
        only if listed explicitly. Candidates absent from ``a`` or ``b`` are skipped.

    Returns
    -------
    dict[int, float]
        ``{label: dice}`` in ascending label order, each in [0, 1]; empty when no
        candidate label is present in both maps.

    Raises
    ------
    TypeError
        If an input is a torch tensor or not an integer-like array.
    ValueError
        If the shapes differ, or float inputs hold NaN/inf or non-integer values.

    Examples
    --------
    >>> a = np.array([[0, 1, 1], [2, 2, 0]])
    >>> dice_per_label(a, a)
    {1: 1.0, 2: 1.0}
    """
    a = _as_labels(a, "a")
    b = _as_labels(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"expected label maps of the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return {}
    lo = min(int(a.min()), int(b.min()))
    hi = max(int(a.max()), int(b.max()))
    if lo >= 0 and hi < _BINCOUNT_MAX:
        af, bf = a.ravel().astype(np.intp, copy=False), b.ravel().astype(np.intp, copy=False)
        n = hi + 1
        size_a = np.bincount(af, minlength=n)
        size_b = np.bincount(bf, minlength=n)
        inter = np.bincount(af[af == bf], minlength=n)
        values = np.arange(n)
    else:
        values, inv = np.unique(np.concatenate([a.ravel(), b.ravel()]), return_inverse=True)
        inv_a, inv_b = inv[: a.size], inv[a.size :]
        n = values.size
        size_a = np.bincount(inv_a, minlength=n)
        size_b = np.bincount(inv_b, minlength=n)
        inter = np.bincount(inv_a[inv_a == inv_b], minlength=n)
    present = (size_a > 0) & (size_b > 0)
    if labels is None:
        chosen = present & (values != 0)
    else:
        wanted = np.isin(values, np.asarray(list(labels), dtype=np.int64))
        chosen = present & wanted
    out: dict[int, float] = {}
    for idx in np.flatnonzero(chosen):
        out[int(values[idx])] = float(2.0 * inter[idx] / (size_a[idx] + size_b[idx]))
    return out


def mean_dice(a: np.ndarray, b: np.ndarray, labels: Iterable[int] | None = None) -> float:
    """Mean of :func:`dice_per_label` (labels present in both, background excluded).

    Parameters
    ----------
    a, b, labels
        As :func:`dice_per_label`.

    Returns
    -------
    float
        Mean Dice in [0, 1]; ``nan`` when no label is present in both maps.

    Raises
    ------
    TypeError, ValueError
        As :func:`dice_per_label`.
    """
    per = dice_per_label(a, b, labels)
    return float(np.mean(list(per.values()))) if per else float("nan")
