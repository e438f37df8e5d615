"""The one dataset interface: a :class:`PairSource` is a sequence of registration pairs (numpy).

Every source (synthetic, the offline template set, OASIS, a user's CSV of NIfTI pairs) returns
samples of the same form, so training, evaluation, the CLIs and the tests do not care where pairs
come from. Sources are numpy-only; :class:`fnoreg_core.data.torch_dataset.TorchPairs` wraps one as a
PyTorch ``Dataset``.

A sample is a dict:

``"moving"``, ``"fixed"``
    float32 ``(1, *spatial)`` in [0, 1]
``"moving_labels"``, ``"fixed_labels"``
    int16 ``(1, *spatial)``, 0 = background; present iff ``source.has_labels``
``"name"``
    str, e.g. ``"OAS1_0001->OAS1_0002"``
"""

from __future__ import annotations

import abc
from typing import Any, Iterator, Sequence

import numpy as np

from fnoreg_core.geometry import resize

__all__ = ["PairSource", "ResizedPairs", "resize_image", "resize_labels", "check_sample"]


def resize_image(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Linear resize of a spatial array (no channel axis) to ``shape``, corners aligned. float32.

    :func:`fnoreg_core.geometry.resize` (kept here as the data sources' name for it).
    """
    return resize(image, shape, order=1)


def resize_labels(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to ``shape``, corners aligned. Same dtype.

    :func:`fnoreg_core.geometry.resize` with ``order=0``.
    """
    return resize(labels, shape, order=0)


def check_sample(sample: dict[str, Any], dims: int, has_labels: bool) -> None:
    """Raise ValueError unless ``sample`` follows the sample layout above."""
    for key in ("moving", "fixed") + (("moving_labels", "fixed_labels") if has_labels else ()):
        if key not in sample:
            raise ValueError(f"sample {sample.get('name', '?')!r} has no {key!r}")
        arr = sample[key]
        if not isinstance(arr, np.ndarray) or arr.ndim != dims + 1 or arr.shape[0] != 1:
            raise ValueError(f"sample {key!r} must be a (1, *spatial) {dims}-D array, got "
                             f"{getattr(arr, 'shape', type(arr))}")
        if arr.shape[1:] != sample["fixed"].shape[1:]:
            raise ValueError(f"sample {sample.get('name', '?')!r}: {key} has shape {arr.shape}, fixed has "
                             f"{sample['fixed'].shape}; images and labels must share one grid")


class PairSource(abc.ABC, Sequence):
    """A finite, indexable sequence of registration pairs on one grid.

    Subclasses set ``dims`` (2 or 3), ``shape`` (spatial size of every sample), ``has_labels``,
    ``label_names`` (``{label: name}``, may be empty) and ``voxel_size_mm`` (per array axis, or None
    when unknown), and implement ``__len__`` and :meth:`load`.
    """

    dims: int
    shape: tuple[int, ...]
    has_labels: bool = False
    label_names: dict[int, str] = {}
    voxel_size_mm: tuple[float, ...] | None = None

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def load(self, index: int) -> dict[str, Any]:
        """Sample ``index`` (0 <= index < len), in the layout described in the module docstring."""

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"expected an integer index, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"pair index {index} out of range for {n} pairs")
        return self.load(int(index) % n)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    def resized(self, shape: Sequence[int]) -> "PairSource":
        """This source resampled to spatial ``shape`` (images linear, labels nearest)."""
        shape = tuple(int(n) for n in shape)
        if shape == tuple(self.shape):
            return self
        return ResizedPairs(self, shape)

    def describe(self) -> str:
        size = "x".join(str(n) for n in self.shape)
        labels = (f", {len(self.label_names)} labels" if self.label_names else ", with labels") if self.has_labels else ", no labels"
        return f"{type(self).__name__}: {len(self)} pairs, {self.dims}D {size}{labels}"


class ResizedPairs(PairSource):
    """A :class:`PairSource` resampled to another spatial shape (half-resolution training)."""

    def __init__(self, base: PairSource, shape: Sequence[int]) -> None:
        shape = tuple(int(n) for n in shape)
        if len(shape) != base.dims:
            raise ValueError(f"expected a {base.dims}-D size, got {shape}")
        self.base, self.shape, self.dims = base, shape, base.dims
        self.has_labels, self.label_names = base.has_labels, base.label_names
        if base.voxel_size_mm is not None:
            self.voxel_size_mm = tuple(v * (m - 1) / max(n - 1, 1)
                                       for v, m, n in zip(base.voxel_size_mm, base.shape, shape))

    def __len__(self) -> int:
        return len(self.base)

    def load(self, index: int) -> dict[str, Any]:
        sample = dict(self.base.load(index))
        for key in ("moving", "fixed"):
            sample[key] = resize_image(sample[key][0], self.shape)[None]
        for key in ("moving_labels", "fixed_labels"):
            if key in sample:
                sample[key] = resize_labels(sample[key][0], self.shape)[None]
        return sample
