"""Model registry: models by name, presets by name, configs saved with every checkpoint.

>>> from fnoreg_core.models import create_model
>>> model = create_model("fnoreg", dims=2, preset="2d-cpu")
>>> model.config.hidden_channels
16
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from torch import nn

__all__ = ["register_model", "create_model", "available_models", "available_presets", "model_from_config",
           "config_to_dict"]

_REGISTRY: dict[str, tuple[type, type, dict[str, dict[str, Any]]]] = {}


def register_model(name: str, config_cls: type, presets: dict[str, dict[str, Any]]) -> Callable[[type], type]:
    """Class decorator: register ``cls(config)`` under ``name`` with its named presets."""

    def wrap(cls: type) -> type:
        _REGISTRY[name] = (cls, config_cls, presets)
        cls.arch = name
        return cls

    return wrap


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def available_presets(name: str) -> list[str]:
    return sorted(_lookup(name)[2])


def _lookup(name: str):
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}, expected one of {available_models()}")
    return _REGISTRY[name]


def _coerce(config_cls: type, values: dict[str, Any]):
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {config_cls.__name__}, expected some of {sorted(fields)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_cls(**fixed)


def create_model(name: str, dims: int | None = None, preset: str | None = None, **overrides) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : "fnoreg" | "fno" | "voxelmorph" | "fourier-net" | "transmorph"
    dims : 2 or 3; default: the preset's (or 3)
    preset : a name from :func:`available_presets`; ``None`` uses the config defaults
    **overrides : config fields to change

    Raises
    ------
    ValueError
        Unknown model, preset or option, or a preset of the other dimensionality.
    """
    cls, config_cls, presets = _lookup(name)
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in presets:
            raise ValueError(f"unknown preset {preset!r} for {name!r}, expected one of {sorted(presets)}")
        values.update(presets[preset])
    if dims is not None:
        if "dims" in values and values["dims"] != dims:
            raise ValueError(f"preset {preset!r} is {values['dims']}D, got dims={dims}")
        values["dims"] = dims
    values.update(overrides)
    return cls(_coerce(config_cls, values))


def config_to_dict(model: nn.Module) -> dict[str, Any]:
    """``{"arch": name, **config fields}`` with tuples as lists (JSON- and weights_only-safe)."""
    out = {"arch": model.arch}
    for k, v in dataclasses.asdict(model.config).items():
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def model_from_config(config: dict[str, Any]) -> nn.Module:
    """Inverse of :func:`config_to_dict`."""
    values = dict(config)
    if "arch" not in values:
        raise ValueError(f"expected a model config with an 'arch' key, got keys {sorted(values)}")
    name = values.pop("arch")
    cls, config_cls, _ = _lookup(name)
    return cls(_coerce(config_cls, values))
