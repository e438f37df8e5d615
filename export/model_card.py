"""Model card: what a deployed FNOReg model is and how to feed it (JSON; torch-free).

A card travels inside every exported ONNX file (``metadata_props["fnoreg_model_card"]``) and beside
it as ``<file>.json``; TensorRT engines get a sidecar with the same card plus build facts. The
runtime reads nothing but these cards and the model files themselves.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ModelCard", "CARD_FORMAT", "ONNX_METADATA_KEY", "ModelCardError", "embed_card", "read_card"]

CARD_FORMAT = "fnoreg-model-card/1"
ONNX_METADATA_KEY = "fnoreg_model_card"


class ModelCardError(ValueError):
    """A card is missing, malformed, or not an FNOReg model card."""


@dataclass
class ModelCard:
    """Everything a runtime needs to use an exported model correctly.

    Sizes are spatial, array order ``(D, H, W)`` / ``(H, W)``.

    name, version : model name (e.g. "fnoreg-3d-cpu") and its version string
    arch, preset, dims : registry name ("fnoreg"), preset, 2 or 3
    config : full model config (``fnoreg_core.models.config_to_dict``)
    train_resolution : spatial size the weights were trained at
    voxel_size_mm : training voxel size (mm per array axis), informative
    min_size, max_size, size_multiple : accepted spatial sizes of a dynamic graph (each axis
        ``min <= n <= max`` and ``n % size_multiple == 0``); a static graph takes ``static_size`` only
    static_size : the one accepted size of a static graph, else None
    precision : "fp32" | "fp16" (input/output dtype of the graph)
    intensity_norm : :class:`fnoreg_core.intensity.IntensityNorm` as a dict
    displacement : :data:`fnoreg_core.fields.DDF_CONVENTION`
    inputs, outputs : ``{name: {"shape": [...], "dtype": ...}}`` with symbolic dims as strings
    opset : ONNX opset
    parity : measured export parity ``{"<size>": {"max_abs_vox": .., "mean_abs_vox": ..}}``
    extra : anything else (training data, metrics, licence)
    """

    name: str
    arch: str
    dims: int
    config: dict[str, Any]
    train_resolution: list[int]
    min_size: list[int]
    max_size: list[int]
    size_multiple: int = 1
    static_size: list[int] | None = None
    version: str = "0.1.0"
    preset: str | None = None
    voxel_size_mm: list[float] | None = None
    precision: str = "fp32"
    intensity_norm: dict[str, Any] = field(default_factory=lambda: {"method": "percentile", "high_pct": 99.5})
    displacement: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    opset: int | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = CARD_FORMAT

    # -- sizes ---------------------------------------------------------------------------------
    def accepts(self, size: tuple[int, ...] | list[int]) -> bool:
        """Whether the graph takes spatial ``size`` directly (no resampling)."""
        size = [int(n) for n in size]
        if len(size) != self.dims:
            return False
        if self.static_size is not None:
            return size == list(self.static_size)
        return all(lo <= n <= hi and n % self.size_multiple == 0
                   for n, lo, hi in zip(size, self.min_size, self.max_size))

    def nearest_accepted(self, size: tuple[int, ...] | list[int]) -> list[int]:
        """The accepted size closest to ``size`` (per axis: rounded to the multiple, clamped)."""
        if self.static_size is not None:
            return list(self.static_size)
        m = self.size_multiple
        out = []
        for n, lo, hi in zip(size, self.min_size, self.max_size):
            k = max(int(round(n / m)) * m, -(-lo // m) * m)
            out.append(min(k, (hi // m) * m))
        return out

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelCard":
        if not isinstance(values, dict) or values.get("format") != CARD_FORMAT:
            raise ModelCardError(f"not an FNOReg model card (expected format {CARD_FORMAT!r})")
        known = {f for f in cls.__dataclass_fields__}
        try:
            card = cls(**{k: v for k, v in values.items() if k in known})
        except TypeError as exc:
            raise ModelCardError(f"malformed FNOReg model card: {exc}") from None
        card.validate()
        return card

    def validate(self) -> None:
        """Types and ranges of the fields the runtime relies on; ``ModelCardError`` saying which is wrong."""
        def bad(field_name: str, expected: str) -> ModelCardError:
            return ModelCardError(f"malformed FNOReg model card: {field_name} = {getattr(self, field_name)!r}, "
                                  f"expected {expected}; re-export the model with fnoreg-export")

        def ints(v, n, lo, hi):  # n axes (the graph's rank is checked against dims when the model loads)
            return (isinstance(v, (list, tuple)) and len(v) in (2, 3) and
                    all(isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi for x in v))

        if not isinstance(self.dims, int) or isinstance(self.dims, bool) or self.dims not in (2, 3):
            raise ModelCardError(f"malformed FNOReg model card: dims={self.dims!r}, expected 2 or 3; re-export the "
                                 "model with fnoreg-export")
        for key in ("name", "arch", "version"):
            if not isinstance(getattr(self, key), str):
                raise bad(key, "text")
        if not isinstance(self.config, dict):
            raise bad("config", "a mapping")
        for key in ("min_size", "max_size"):
            if not ints(getattr(self, key), self.dims, 1, 1 << 16):
                raise bad(key, "2 or 3 integers in 1..65536")
        if any(lo > hi for lo, hi in zip(self.min_size, self.max_size)):
            raise bad("min_size", f"<= max_size {self.max_size}")
        if self.train_resolution is not None and not ints(self.train_resolution, self.dims, 1, 1 << 16):
            raise bad("train_resolution", "2 or 3 integers in 1..65536 (or null)")
        if not isinstance(self.size_multiple, int) or isinstance(self.size_multiple, bool) or \
                not 1 <= self.size_multiple <= 4096:
            raise bad("size_multiple", "an integer in 1..4096")
        if self.static_size is not None and not ints(self.static_size, self.dims, 2, 1 << 14):
            raise bad("static_size", "2 or 3 integers in 2..16384 (or null)")
        if self.static_size is not None:
            from fnoreg_core.geometry import MAX_VOXELS

            if math.prod(self.static_size) > MAX_VOXELS:
                raise bad("static_size", f"at most {MAX_VOXELS:,} voxels")
        if not isinstance(self.intensity_norm, dict):
            raise bad("intensity_norm", "a mapping")
        try:
            from fnoreg_core.intensity import IntensityNorm

            norm = IntensityNorm.from_dict(self.intensity_norm)
            if norm.method not in ("percentile", "minmax", "none"):
                raise ValueError(f"unknown method {norm.method!r}, expected percentile, minmax or none")
            if not (isinstance(norm.high_pct, (int, float)) and 0 < norm.high_pct <= 100):
                raise ValueError(f"high_pct {norm.high_pct!r} must be in (0, 100]")
        except (TypeError, ValueError, KeyError) as exc:
            raise ModelCardError(f"malformed FNOReg model card: intensity_norm {self.intensity_norm!r} ({exc}); "
                                 "re-export the model with fnoreg-export") from None
        for key in ("inputs", "outputs", "parity", "extra"):
            if not isinstance(getattr(self, key), dict):
                raise bad(key, "a mapping")

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelCard":
        try:
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            values = json.loads(text)
        except UnicodeDecodeError:
            raise ModelCardError("model card is not UTF-8 text; re-export the model with fnoreg-export") from None
        except RecursionError:
            raise ModelCardError("model card is nested too deeply to be an FNOReg card") from None
        except json.JSONDecodeError as exc:
            raise ModelCardError(f"model card is not valid JSON: {exc}") from None
        return cls.from_dict(values)

    @classmethod
    def load(cls, path: str | Path) -> "ModelCard":
        path = Path(path)
        if not path.is_file():
            raise ModelCardError(f"model card {path} does not exist")
        try:
            return cls.from_json(path.read_bytes())
        except OSError as exc:
            raise ModelCardError(f"cannot read model card {path}: {exc.strerror or exc}") from None


def embed_card(onnx_path: str | Path, card: ModelCard) -> None:
    """Store ``card`` in the ONNX file's ``metadata_props`` (key :data:`ONNX_METADATA_KEY`), in place.

    Needs the ``onnx`` package (export side). Large models keep their external-data layout.
    """
    import onnx

    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    props[ONNX_METADATA_KEY] = card.to_json()
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(onnx_path))


def _varint(fh) -> int | None:
    """One protobuf varint from a binary file (None at end of file)."""
    shift = result = 0
    while True:
        byte = fh.read(1)
        if not byte:
            return None
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file, read from the protobuf stream without loading the graph.

    ``ModelProto`` field 14 holds ``StringStringEntryProto`` (key = 1, value = 2); every other field
    (the graph with its weights, field 7) is skipped by seeking past it, so a large model costs a
    few reads. No onnx or onnxruntime needed.

    Raises
    ------
    ModelCardError
        The file is not a protobuf stream (not an ONNX model).
    """
    path = Path(path)
    props: dict[str, str] = {}
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            while True:
                tag = _varint(fh)
                if tag is None:
                    break
                field, wire = tag >> 3, tag & 7
                if field == 0:
                    raise ValueError("field number 0")
                if wire == 0:
                    _varint(fh)
                elif wire == 1:
                    fh.seek(8, 1)
                elif wire == 5:
                    fh.seek(4, 1)
                elif wire == 2:
                    length = _varint(fh)
                    if length is None or fh.tell() + length > size:
                        raise ValueError("truncated field")
                    if field != 14:
                        fh.seek(length, 1)
                        continue
                    entry = _entry(fh.read(length))
                    if entry[0] is not None:
                        props[entry[0]] = entry[1] or ""
                else:
                    raise ValueError(f"wire type {wire}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{path} is not a loadable ONNX model ({exc})") from None
    return props


def _entry(buf: bytes) -> tuple[str | None, str | None]:
    """(key, value) of a serialised ``StringStringEntryProto``."""
    import io

    fh, out = io.BytesIO(buf), {1: None, 2: None}
    while True:
        tag = _varint(fh)
        if tag is None:
            return out[1], out[2]
        field, wire = tag >> 3, tag & 7
        if wire != 2:
            raise ValueError("unexpected metadata entry")
        length = _varint(fh)
        out[field] = fh.read(length).decode("utf-8")


def read_card(model_path: str | Path) -> ModelCard:
    """The card of an exported model: ``<file>.json`` beside it, else (ONNX) the embedded metadata.

    Torch-, onnx- and onnxruntime-free: the embedded card is read from the file's protobuf stream
    (:func:`onnx_metadata`) without loading the graph or opening an inference session (the runtime
    opens its one session afterwards).

    Raises
    ------
    ModelCardError
        No card found, or one that is not an FNOReg card: the file is not an FNOReg export.
    """
    model_path = Path(model_path)
    sidecar = model_path.with_name(model_path.name + ".json")
    if sidecar.is_file():
        return ModelCard.load(sidecar)
    if model_path.suffix == ".onnx" and model_path.is_file():
        text = onnx_metadata(model_path).get(ONNX_METADATA_KEY)
        if text:
            return ModelCard.from_json(text)
    raise ModelCardError(f"{model_path} is not an FNOReg export: no model card (embedded or {sidecar.name}); "
                         "export models with fnoreg-export")
