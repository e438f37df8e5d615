"""PyTorch view of a :class:`~fnoreg_core.data.base.PairSource` (works with DataLoader workers)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from fnoreg_core.data.base import PairSource

__all__ = ["TorchPairs"]


class TorchPairs(Dataset):
    """``Dataset`` of tensors: ``moving``/``fixed`` float32 ``(1, *spatial)``, labels int64
    ``(1, *spatial)`` when the source has them, ``name`` str. Batches via the default collate.

    With ``true_field=True`` (sources with known deformations, e.g. synthetic pairs) each sample
    also holds ``ddf_vox`` ``(ndim, *spatial)`` float32, the true fixed->moving displacement in voxels.
    """

    def __init__(self, source: PairSource, true_field: bool = False) -> None:
        self.source, self.true_field = source, bool(true_field)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.source.load(int(index), return_ddf=True) if self.true_field else self.source[index]
        out: dict[str, Any] = {"name": sample.get("name", str(index))}
        for key in ("moving", "fixed"):
            out[key] = torch.from_numpy(sample[key].astype("float32", copy=False))
        for key in ("moving_labels", "fixed_labels"):
            if key in sample:
                out[key] = torch.from_numpy(sample[key].astype("int64"))
        if self.true_field:
            out["ddf_vox"] = torch.from_numpy(sample["ddf_vox"].astype("float32", copy=False))
        return out
