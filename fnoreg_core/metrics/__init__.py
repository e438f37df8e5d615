"""Registration metrics (numpy only: imported by the torch-free runtime and the GUI).

* Overlap: :func:`dice_per_label`, :func:`mean_dice` (labels present in both, background excluded).
* Regularity: :func:`jacobian_determinant` (voxel units, or physical with spacing),
  :func:`folding_fraction` (% J <= 0 and % J < 0), :func:`sdlogj`.
* :func:`registration_report`: all of the above in one dict.
"""

from .jacobian import SDLOGJ_EPS, folding_fraction, jacobian_determinant, sdlogj
from .overlap import dice_per_label, mean_dice
from .report import registration_report

__all__ = [
    "dice_per_label",
    "mean_dice",
    "jacobian_determinant",
    "folding_fraction",
    "sdlogj",
    "SDLOGJ_EPS",
    "registration_report",
]
