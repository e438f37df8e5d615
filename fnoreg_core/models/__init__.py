"""Registration networks and their registry (``create_model``)."""

from .registry import available_models, available_presets, config_to_dict, create_model, model_from_config, register_model
from .fnoreg import FNOReg, FNORegConfig
from .fno import FNO, FNOConfig
from .voxelmorph import VoxelMorph, VoxelMorphConfig
from .fourier_net import FourierNet, FourierNetConfig
from .transmorph import TransMorph, TransMorphConfig

__all__ = ["create_model", "available_models", "available_presets", "model_from_config", "config_to_dict",
           "register_model", "FNOReg", "FNORegConfig", "FNO", "FNOConfig", "VoxelMorph", "VoxelMorphConfig",
           "FourierNet", "FourierNetConfig", "TransMorph", "TransMorphConfig"]
