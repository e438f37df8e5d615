"""Soft Dice loss over one-hot / probability label maps (to MINIMISE)."""

from __future__ import annotations

import torch
from monai.losses import DiceLoss
from torch import nn

from ._checks import check_pair

__all__ = ["SoftDiceLoss"]


class SoftDiceLoss(nn.Module):
    """``1 - mean_k soft Dice_k`` over label channels (MONAI ``DiceLoss``).

    For each batch item ``b`` and channel ``k``:

    .. math::

        D_{bk} = \\frac{2 \\sum_p P_{bk}(p) T_{bk}(p) + s_{nr}}
                       {\\sum_p P_{bk}(p)^2 + \\sum_p T_{bk}(p)^2 + s_{dr}}

    and the loss is ``1 - mean_{b,k} D_bk`` (range [0, 1], 0 for a perfect match).
    The defaults (squared denominator, ``s_nr = 0``, ``s_dr = 1e-5``, background
    included) reproduce the FNOReg reference 3D Dice loss. With ``s_nr = 0`` a
    channel empty in both maps scores Dice 0 (a constant, gradient-free offset).

    Parameters
    ----------
    include_background : bool, default True
        If False, channel 0 is dropped (needs K >= 2).
    squared_pred : bool, default True
        Square the terms of the denominator (as in the reference) or not.
    smooth_nr, smooth_dr : float, default 0.0 and 1e-5
        Added to numerator and denominator.

    Raises
    ------
    ValueError
        If ``smooth_dr`` is negative.

    Examples
    --------
    >>> loss = SoftDiceLoss()
    >>> t = torch.nn.functional.one_hot(torch.randint(0, 4, (1, 8, 8)), 4).permute(0, 3, 1, 2).float()
    >>> float(loss(t, t)) < 1e-6
    True
    """

    def __init__(
        self,
        include_background: bool = True,
        squared_pred: bool = True,
        smooth_nr: float = 0.0,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__()
        if smooth_dr < 0 or smooth_nr < 0:
            raise ValueError(f"expected smooth_nr, smooth_dr >= 0, got {smooth_nr!r}, {smooth_dr!r}")
        self.include_background = bool(include_background)
        self._dice = DiceLoss(
            include_background=True,  # background handled here, to validate K
            squared_pred=squared_pred,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            reduction="mean",
            batch=False,
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        pred : (B, K, H, W) or (B, K, D, H, W) floating tensor
            Per-class probabilities, e.g. the moving one-hot labels warped bilinearly.
        target : same shape as ``pred``
            One-hot (or probability) labels of the fixed image.

        Returns
        -------
        () tensor
            ``1 - mean soft Dice`` in [0, 1].

        Raises
        ------
        TypeError
            If an input is not a floating-point tensor.
        ValueError
            If an input is not 4-D/5-D, the shapes differ, or background is
            excluded with K < 2.
        """
        check_pair(pred, target, ("pred", "target"))
        if not self.include_background:
            if pred.shape[1] < 2:
                raise ValueError(
                    f"expected K >= 2 channels with include_background=False, got K={pred.shape[1]}"
                )
            pred, target = pred[:, 1:], target[:, 1:]
        return self._dice(pred, target)
