"""Image similarity losses (to MINIMISE): MSE and local normalised cross-correlation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import LocalNormalizedCrossCorrelationLoss
from torch import nn

from ._checks import check_pair

__all__ = ["MSELoss", "LocalNCCLoss"]


class MSELoss(nn.Module):
    """Mean squared intensity difference, averaged over batch, channels and voxels.

    The FNOReg paper's similarity term (intensities in [0, 1]).

    Examples
    --------
    >>> loss = MSELoss()
    >>> float(loss(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)))
    1.0
    """

    def forward(self, moved: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        moved, fixed : (B, C, H, W) or (B, C, D, H, W) floating tensors, same shape
            Warped moving image and fixed image (same intensity unit).

        Returns
        -------
        () tensor
            ``mean((moved - fixed) ** 2)`` in squared intensity units; 0 when equal.

        Raises
        ------
        TypeError
            If an input is not a floating-point tensor.
        ValueError
            If an input is not 4-D/5-D or the shapes differ.
        """
        check_pair(moved, fixed, ("moved", "fixed"))
        return torch.mean((moved - fixed) ** 2)


class LocalNCCLoss(nn.Module):
    """Negative local squared normalised cross-correlation (VoxelMorph-style LNCC).

    Wraps MONAI's ``LocalNormalizedCrossCorrelationLoss`` (rectangular window),
    which per voxel computes ``cc = cov(I, J)**2 / (var(I) * var(J))`` over a
    ``kernel_size**ndim`` window and returns ``-mean(cc)``.

    Conventions (checked against MONAI 1.6):

    * Range ``[-1, 0]``; the minimum ``-1`` is reached when, in every window, one
      image is an affine function of the other (``J = a * I + b`` with ``a != 0``;
      the correlation is SQUARED, so ``a < 0`` also scores -1).
    * Borders: MONAI zero-pads, which breaks that invariance near the edges. This
      wrapper replicate-pads both images by ``kernel_size // 2`` first and crops
      MONAI's per-voxel map back, so every window is built from image values.
    * Flat windows: the variances are clamped from below at ``smooth_dr`` (a sum
      over the window, default 1e-5), so a window with (almost) no variance in
      either image contributes ~0, not -1. On images with constant background
      the attainable minimum is therefore above -1.

    Parameters
    ----------
    kernel_size : int, default 9
        Odd window size in voxels along every axis.
    smooth_dr : float, default 1e-5
        Lower clamp of the windowed variances (see above).

    Raises
    ------
    ValueError
        If ``kernel_size`` is not a positive odd int or ``smooth_dr`` is not positive.

    Examples
    --------
    >>> loss = LocalNCCLoss(kernel_size=5)
    >>> x = torch.rand(1, 1, 16, 16)
    >>> round(float(loss(x, 2 * x + 3)), 4)
    -1.0
    """

    def __init__(self, kernel_size: int = 9, smooth_dr: float = 1e-5) -> None:
        super().__init__()
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"expected a positive odd int kernel_size, got {kernel_size!r}")
        if not smooth_dr > 0:
            raise ValueError(f"expected smooth_dr > 0, got {smooth_dr!r}")
        self.kernel_size = kernel_size
        self.smooth_dr = float(smooth_dr)
        # MONAI's loss depends on ndim; build lazily per ndim.
        self._monai = nn.ModuleDict()

    def _get(self, ndim: int) -> nn.Module:
        key = f"{ndim}d"
        if key not in self._monai:
            self._monai[key] = LocalNormalizedCrossCorrelationLoss(
                spatial_dims=ndim,
                kernel_size=self.kernel_size,
                kernel_type="rectangular",
                reduction="none",
                smooth_nr=0.0,
                smooth_dr=self.smooth_dr,
            )
        return self._monai[key]

    def forward(self, moved: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        moved, fixed : (B, C, H, W) or (B, C, D, H, W) floating tensors, same shape
            Warped moving image and fixed image. Each spatial size must be
            > ``kernel_size // 2`` (replicate padding).

        Returns
        -------
        () tensor
            ``-mean(local cc)`` in [-1, 0]; lower is better.

        Raises
        ------
        TypeError
            If an input is not a floating-point tensor.
        ValueError
            If an input is not 4-D/5-D, the shapes differ, or a spatial size is
            too small for the window.
        """
        ndim = check_pair(moved, fixed, ("moved", "fixed"))
        r = self.kernel_size // 2
        if r == 0:
            return self._get(ndim)(moved, fixed).mean()
        if min(moved.shape[2:]) <= r:
            raise ValueError(
                f"expected every spatial size > {r} for kernel_size {self.kernel_size}, got {tuple(moved.shape[2:])}"
            )
        pad = (r, r) * ndim
        cc = self._get(ndim)(F.pad(moved, pad, mode="replicate"), F.pad(fixed, pad, mode="replicate"))
        crop = (slice(None), slice(None)) + (slice(r, -r),) * ndim
        return cc[crop].mean()
