"""Registration losses (torch); every loss returns a scalar to MINIMISE.

* :class:`MSELoss` - image similarity (FNOReg paper).
* :class:`LocalNCCLoss` - negative local squared NCC, in [-1, 0].
* :class:`DiffusionLoss` - mean squared forward difference of the field in voxels.
* :class:`SoftDiceLoss` - ``1 - soft Dice`` over one-hot label maps.

Paper objective: ``MSE + 0.01 * Diffusion`` (2D), ``+ 0.01 * SoftDice`` on 3D labels.
"""

from .dice import SoftDiceLoss
from .regularization import DiffusionLoss
from .similarity import LocalNCCLoss, MSELoss

__all__ = ["MSELoss", "LocalNCCLoss", "DiffusionLoss", "SoftDiceLoss"]
