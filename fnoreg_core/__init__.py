"""FNOReg core: spectral layers, models, warping, losses, metrics, data, training.

Importing this package does not import torch: the numpy-only modules (``fnoreg_core.fields``,
``fnoreg_core.metrics``) are used by the torch-free runtime and GUI.
"""

__version__ = "0.1.0"
