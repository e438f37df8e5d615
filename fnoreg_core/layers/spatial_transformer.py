"""Warp images and label maps with a displacement field in normalised units.

The displacement convention (shape, axis order, direction, units) is defined in
:mod:`fnoreg_core.fields`: ``ddf_norm`` is ``(B, ndim, *spatial)``, channel ``i``
along array axis ``i``, pull fixed->moving, ``grid_sample`` normalised units with
``align_corners=True``. This layer is the only place that flips the channel order
to ``grid_sample``'s ``(x=W, y=H, z=D)``.

The identity grid is built in the graph from the input's shape, so one exported
ONNX graph (``torch.onnx.export(..., dynamo=True)``, opset >= 20 for 5-D
GridSample) serves every resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SpatialTransformer", "identity_grid_norm", "warp", "warp_labels"]

_MODES = ("bilinear", "nearest")
_CACHE_SIZE = 4


def identity_grid_norm(
    spatial_shape: tuple, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Identity sampling grid in normalised units (align_corners=True).

    Parameters
    ----------
    spatial_shape : tuple of int (or symbolic ints under export)
        ``(D, H, W)`` or ``(H, W)``, array order.
    dtype, device
        Of the returned tensor.

    Returns
    -------
    (1, ndim, *spatial_shape) tensor
        Channel ``i`` holds the normalised coordinate along array axis ``i``:
        -1 at the first voxel centre, +1 at the last.

    Notes
    -----
    Built as ``(2 * arange(n) - (n - 1)) / (n - 1)`` rather than ``torch.linspace``:
    ``linspace`` specialises symbolic sizes under ``torch.export`` (and
    ``torch.onnx.export(dynamo=True)`` then silently emits a fixed-size graph),
    ``arange`` stays dynamic. The two agree to ~1 ulp, and the ends are exact.
    """
    axes = [(torch.arange(n, dtype=dtype, device=device) * 2.0 - (n - 1)) / (n - 1) for n in spatial_shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0).unsqueeze(0)


def _check_inputs(image: torch.Tensor, ddf_norm: torch.Tensor, image_name: str) -> int:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"expected {image_name} to be a torch.Tensor, got {type(image).__name__}")
    if not isinstance(ddf_norm, torch.Tensor):
        raise TypeError(f"expected ddf_norm to be a torch.Tensor, got {type(ddf_norm).__name__}")
    if image.dim() not in (4, 5):
        raise ValueError(
            f"expected {image_name} of shape (B, C, H, W) or (B, C, D, H, W), got {tuple(image.shape)}"
        )
    ndim = image.dim() - 2
    want = (image.shape[0], ndim, *image.shape[2:])
    if ddf_norm.dim() != image.dim() or ddf_norm.shape[1] != ndim:
        raise ValueError(
            f"expected ddf_norm of shape (B, {ndim}, *spatial) = {tuple(want)} for a {ndim}D "
            f"{image_name} of shape {tuple(image.shape)}, got {tuple(ddf_norm.shape)}"
        )
    if ddf_norm.shape[0] != image.shape[0]:
        raise ValueError(
            f"expected ddf_norm batch size {image.shape[0]} (as {image_name}), got {ddf_norm.shape[0]}"
        )
    if tuple(ddf_norm.shape[2:]) != tuple(image.shape[2:]):
        raise ValueError(
            f"expected ddf_norm spatial shape {tuple(image.shape[2:])} (as {image_name}), "
            f"got {tuple(ddf_norm.shape[2:])}"
        )
    if not ddf_norm.is_floating_point():
        raise TypeError(f"expected a floating-point ddf_norm, got dtype {ddf_norm.dtype}")
    return ndim


def _is_tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


class SpatialTransformer(nn.Module):
    """Warp an image with a dense displacement field in normalised units.

    ``moved(p) = image(p + u(p))`` (pull, fixed->moving), sampled with
    ``F.grid_sample(align_corners=True, padding_mode="border")``: positions
    outside the image take the value of the nearest border voxel.

    In eager mode with plain-int shapes, identity grids are cached per
    (shape, dtype, device) (last 4 kept, not saved in ``state_dict``); while
    tracing / exporting they are rebuilt in the graph from the symbolic shape.

    Examples
    --------
    >>> st = SpatialTransformer()
    >>> moving = torch.rand(1, 1, 16, 16, 16)
    >>> moved = st(moving, torch.zeros(1, 3, 16, 16, 16))  # identity
    >>> bool(torch.allclose(moved, moving, atol=1e-6))
    True
    """

    def __init__(self) -> None:
        super().__init__()
        self._grid_cache: dict[tuple, torch.Tensor] = {}

    def _identity(self, image: torch.Tensor) -> torch.Tensor:
        shape = tuple(image.shape[2:])
        if _is_tracing() or not all(type(n) is int for n in shape):
            return identity_grid_norm(shape, image.dtype, image.device)
        key = (shape, image.dtype, image.device)
        grid = self._grid_cache.get(key)
        if grid is None:
            grid = identity_grid_norm(shape, image.dtype, image.device)
            if len(self._grid_cache) >= _CACHE_SIZE:
                self._grid_cache.pop(next(iter(self._grid_cache)))
            self._grid_cache[key] = grid
        return grid

    def forward(self, image: torch.Tensor, ddf_norm: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Warp ``image`` by ``ddf_norm``.

        Parameters
        ----------
        image : (B, C, H, W) or (B, C, D, H, W) floating tensor
            Moving image (any intensity unit).
        ddf_norm : (B, ndim, *spatial) tensor, same dtype as ``image``
            Displacement on the fixed grid, normalised units (align_corners=True),
            channel ``i`` along array axis ``i``, pull fixed->moving.
        mode : {"bilinear", "nearest"}
            Interpolation. ``"bilinear"`` is trilinear on 3D inputs.

        Returns
        -------
        (B, C, *spatial) tensor
            Moved image on the fixed grid, dtype of ``image``.

        Raises
        ------
        TypeError
            If inputs are not tensors, ``image`` is not floating point (use
            :meth:`warp_labels` for integer labels), or the dtypes differ.
        ValueError
            If ``image`` is not 4-D/5-D, ``ddf_norm`` does not have shape
            ``(B, ndim, *spatial)`` matching ``image``, or ``mode`` is unknown.
        """
        ndim = _check_inputs(image, ddf_norm, "image")
        if mode not in _MODES:
            raise ValueError(f"expected mode in {_MODES}, got {mode!r}")
        if not image.is_floating_point():
            raise TypeError(
                f"expected a floating-point image, got dtype {image.dtype} (use warp_labels for label maps)"
            )
        if ddf_norm.dtype != image.dtype:
            raise TypeError(f"expected ddf_norm dtype {image.dtype} (as image), got {ddf_norm.dtype}")
        grid = self._identity(image) + ddf_norm  # (B, ndim, *spatial), array-axis order
        grid = grid.permute(0, *range(2, ndim + 2), 1).flip(-1)  # (B, *spatial, ndim), (x, y[, z])
        return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)

    def warp_labels(self, labels: torch.Tensor, ddf_norm: torch.Tensor) -> torch.Tensor:
        """Warp a label map with nearest-neighbour sampling, keeping its dtype.

        Parameters
        ----------
        labels : (B, C, *spatial) tensor, any dtype (typically int64 / uint8)
            Label map of the moving image. Values are carried through the
            sampling dtype of ``ddf_norm`` (float32: exact for |label| <= 2**24).
        ddf_norm : (B, ndim, *spatial) floating tensor
            As :meth:`forward`.

        Returns
        -------
        (B, C, *spatial) tensor, dtype of ``labels``
            Warped labels; every value is one of the input values.

        Raises
        ------
        TypeError, ValueError
            As :meth:`forward` (shape and type checks).
        """
        _check_inputs(labels, ddf_norm, "labels")
        as_float = labels.to(ddf_norm.dtype)
        moved = self.forward(as_float, ddf_norm, mode="nearest")
        if labels.is_floating_point():
            return moved.to(labels.dtype)
        return torch.round(moved).to(labels.dtype)


_DEFAULT = SpatialTransformer()


def warp(image: torch.Tensor, ddf_norm: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Functional form of :meth:`SpatialTransformer.forward` (shared grid cache)."""
    return _DEFAULT(image, ddf_norm, mode=mode)


def warp_labels(labels: torch.Tensor, ddf_norm: torch.Tensor) -> torch.Tensor:
    """Functional form of :meth:`SpatialTransformer.warp_labels`."""
    return _DEFAULT.warp_labels(labels, ddf_norm)
