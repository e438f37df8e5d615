"""Interleave several pair sources of one size: ``MixedPairs([a, b])[i]`` is ``a[i // 2]`` or ``b[i // 2]``."""

from __future__ import annotations

from typing import Any, Sequence

from fnoreg_core.data.base import PairSource

__all__ = ["MixedPairs"]


class MixedPairs(PairSource):
    """Pairs taken in turn from ``sources`` (same dims and shape): index ``i`` -> ``sources[i % k][i // k]``.

    Labels of all sources are kept as they are (their values may differ); ``label_names`` is the
    union. ``load(i, return_ddf=True)`` is passed on to sources that support it.

    >>> from fnoreg_core.data.synth import SynthPairs
    >>> mix = MixedPairs([SynthPairs((32, 32), 4, seed=0), SynthPairs((32, 32), 4, seed=1)])
    >>> len(mix), mix[1]["name"]
    (8, 'synth-s1-000000')
    """

    def __init__(self, sources: Sequence[PairSource]) -> None:
        if not sources:
            raise ValueError("MixedPairs needs at least one source")
        first = sources[0]
        for s in sources[1:]:
            if s.dims != first.dims or tuple(s.shape) != tuple(first.shape):
                raise ValueError(f"sources differ in size: {tuple(first.shape)} vs {tuple(s.shape)}")
        self.sources = list(sources)
        self.dims, self.shape = first.dims, tuple(first.shape)
        self.has_labels = all(s.has_labels for s in self.sources)
        self.voxel_size_mm = first.voxel_size_mm
        self.label_names = {}
        for s in self.sources:
            self.label_names.update(s.label_names or {})

    def __len__(self) -> int:
        return len(self.sources) * min(len(s) for s in self.sources)

    def load(self, index: int, return_ddf: bool = False) -> dict[str, Any]:
        k = len(self.sources)
        source, inner = self.sources[index % k], index // k
        return source.load(inner, return_ddf=True) if return_ddf else source.load(inner)

    def describe(self) -> str:
        return "MixedPairs of [" + "; ".join(s.describe() for s in self.sources) + "]"
