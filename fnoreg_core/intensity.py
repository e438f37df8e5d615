"""Intensity normalisation (numpy only, torch-free): one definition for training, runtime and GUI.

FNOReg models take images scaled to [0, 1]. Real scans are mapped there by a robust min-max on
percentiles of the nonzero (foreground) voxels; the parameters are returned so the mapping can be
recorded next to results and inverted (:func:`denormalise`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["IntensityNorm", "normalise", "denormalise", "DEFAULT_NORM"]


@dataclass(frozen=True)
class IntensityNorm:
    """How images are mapped to [0, 1].

    method : "percentile" (robust: the image minimum maps to 0 and the ``high_pct`` percentile of
        the voxels above the minimum, i.e. the foreground of a skull-stripped scan, maps to 1;
        brighter voxels are clipped), "minmax" (exact min and max), or "none" (already in [0, 1]).
    """

    method: str = "percentile"
    high_pct: float = 99.5

    def __post_init__(self) -> None:
        if self.method not in ("percentile", "minmax", "none"):
            raise ValueError(f"unknown intensity normalisation {self.method!r}, expected percentile, minmax or none")
        if not 0.0 < self.high_pct <= 100.0:
            raise ValueError(f"expected 0 < high_pct <= 100, got {self.high_pct}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "IntensityNorm":
        return cls(**{k: values[k] for k in ("method", "high_pct") if k in values})

    def describe(self) -> str:
        if self.method == "percentile":
            return (f"linear map of the image minimum to 0 and the {self.high_pct} percentile of the voxels "
                    "above the minimum to 1, clipped to [0, 1]")
        if self.method == "minmax":
            return "linear map of the image min/max to 0/1"
        return "none: images must already be in [0, 1]"


DEFAULT_NORM = IntensityNorm()


def normalise(image: np.ndarray, norm: IntensityNorm = DEFAULT_NORM) -> tuple[np.ndarray, dict[str, float]]:
    """Scale ``image`` (any shape) to float32 in [0, 1].

    Returns
    -------
    normalised : float32 array, same shape
    params : ``{"low": a, "high": b}`` with ``normalised = clip((image - a) / (b - a), 0, 1)``

    Raises
    ------
    ValueError
        Non-finite values (NaN/inf): the caller should mask or fix them first.
    """
    image = np.asarray(image)
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values; replace them (e.g. with 0) before registering")
    data = image.astype(np.float32, copy=False)
    if norm.method == "none":
        return np.clip(data, 0.0, 1.0), {"low": 0.0, "high": 1.0}
    lo, hi = float(data.min()), float(data.max())
    if norm.method == "percentile":
        fg = data[data > lo]
        if fg.size:
            hi = float(np.percentile(fg, norm.high_pct))
    if hi <= lo:  # constant image
        return np.zeros_like(data), {"low": lo, "high": lo + 1.0}
    out = np.clip((data - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    return out, {"low": lo, "high": hi}


def denormalise(normalised: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """Map a [0, 1] image back to the original intensity scale (inverse of :func:`normalise`)."""
    return (np.asarray(normalised, dtype=np.float32) * (params["high"] - params["low"]) + params["low"]).astype(np.float32)
