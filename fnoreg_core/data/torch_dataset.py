"""PyTorch view of a :class:`~fnoreg_core.data.base.PairSource` (works with DataLoader workers)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from fnoreg_core.data.base import PairSource

__all__ = ["TorchPairs"]


class TorchPairs(Dataset):
    """``Dataset`` of tensors: ``moving``/``fixed`` float32 ``(1, *spatial)``, labels int64
    ``(1, *spatial)`` when the source has them, ``name`` str. Batches via the default collate."""

    def __init__(self, source: PairSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.source[index]
        out: dict[str, Any] = {"name": sample.get("name", str(index))}
        for key in ("moving", "fixed"):
            out[key] = torch.from_numpy(sample[key].astype("float32", copy=False))
        for key in ("moving_labels", "fixed_labels"):
            if key in sample:
                out[key] = torch.from_numpy(sample[key].astype("int64"))
        return out
