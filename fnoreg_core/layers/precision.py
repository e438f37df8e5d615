"""Spectral layers keep float32 under mixed precision (bf16/fp16 autocast on a GPU).

A DFT written as matmuls with cos/sin bases sums N products per output: in bf16 (8-bit mantissa)
that costs about 2^-8 * sqrt(N) relative error per axis, far above what the rest of the network
tolerates, and an fp32 export of a model trained that way would compute a different function. So
under autocast the decorated ``forward`` runs with autocast off on float32 inputs; outside autocast
(training in fp32, ONNX export, CPU) it is a plain call.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["float32_under_autocast"]


def float32_under_autocast(forward):
    """Decorator for ``forward(self, x)`` of a spectral layer (see the module docstring)."""

    @functools.wraps(forward)
    def wrapper(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return forward(self, x)
        with torch.autocast(x.device.type, enabled=False):
            return forward(self, x.float())

    return wrapper
