"""Displacement regularisers (to MINIMISE)."""

from __future__ import annotations

import torch
from torch import nn

from ..fields import norm_to_vox_scale

__all__ = ["DiffusionLoss"]


class DiffusionLoss(nn.Module):
    """Diffusion regulariser: mean squared forward difference of the field in VOXELS.

    .. math::

        L = \\frac{1}{n} \\sum_{a=1}^{n} \\operatorname{mean}_{b, c, p}
            \\left(u^{vox}_c(p + e_a) - u^{vox}_c(p)\\right)^2

    where ``n = ndim``, ``u_vox = ddf_norm * (N_c - 1) / 2`` on channel ``c``
    (:func:`fnoreg_core.fields.norm_to_vox_scale`) and the mean runs over batch,
    all ``ndim`` channels and the ``N_a - 1`` forward differences along axis ``a``.

    Expressing the field in voxels on EVERY axis makes the value resolution
    consistent: a physical deformation sampled at N and 2N voxels per axis gives
    nearly the same loss (in ``_norm`` units it would shrink ~4x). This is the
    FNOReg reference's ``smoothloss`` except that the reference scales by
    ``N / 2`` instead of ``(N - 1) / 2`` (a relative difference of ~2/N).

    Examples
    --------
    >>> loss = DiffusionLoss()
    >>> float(loss(torch.zeros(1, 3, 8, 8, 8)))
    0.0
    """

    def forward(self, ddf_norm: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        ddf_norm : (B, ndim, *spatial) floating tensor, ndim in {2, 3}
            Displacement in ``grid_sample`` normalised units (see
            :mod:`fnoreg_core.fields`). Every spatial size must be >= 2.

        Returns
        -------
        () tensor
            Loss in squared voxels per voxel (dimensionless).

        Raises
        ------
        TypeError
            If ``ddf_norm`` is not a floating-point tensor.
        ValueError
            If the shape is not ``(B, ndim, *spatial)`` with ndim in {2, 3}, or a
            spatial size is < 2.
        """
        if not isinstance(ddf_norm, torch.Tensor):
            raise TypeError(f"expected ddf_norm to be a torch.Tensor, got {type(ddf_norm).__name__}")
        if ddf_norm.dim() not in (4, 5) or ddf_norm.shape[1] != ddf_norm.dim() - 2:
            raise ValueError(
                f"expected ddf_norm of shape (B, 2, H, W) or (B, 3, D, H, W), got {tuple(ddf_norm.shape)}"
            )
        if not ddf_norm.is_floating_point():
            raise TypeError(f"expected a floating-point ddf_norm, got dtype {ddf_norm.dtype}")
        ndim = ddf_norm.dim() - 2
        scale = norm_to_vox_scale(tuple(ddf_norm.shape[2:]))
        u_vox = ddf_norm * ddf_norm.new_tensor(scale).reshape(1, ndim, *([1] * ndim))
        total = ddf_norm.new_zeros(())
        for axis in range(2, ndim + 2):
            n = u_vox.shape[axis]
            diff = u_vox.narrow(axis, 1, n - 1) - u_vox.narrow(axis, 0, n - 1)
            total = total + torch.mean(diff * diff)
        return total / ndim
