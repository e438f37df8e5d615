"""NVIDIA Triton Inference Server model repository for exported FNOReg models (no Triton needed).

Layout written (one Triton model per exported file)::

    <repo>/<model>/config.pbtxt              name, platform, max_batch_size, inputs/outputs with dims and dtypes
    <repo>/<model>/1/model.onnx | model.plan  the ONNX graph (platform onnxruntime_onnx) or the engine (tensorrt_plan)
    <repo>/<model>/fnoreg_model_card.json    the model card (Triton ignores it; clients read the conventions there)

Batching decisions:

* a dynamic ONNX graph (batch and spatial axes symbolic) gets ``max_batch_size: N`` (default 4)
  and ``dynamic_batching {}``: Triton then stacks concurrent requests of one size into one run,
  which is what serving a cohort resampled to one grid needs; dims exclude the batch axis and
  spatial axes are ``-1``;
* a static graph or an engine (batch 1, one size) gets ``max_batch_size: 0`` and full dims
  ``[1, 1, D, H, W]``.

Start a server with ``tritonserver --model-repository <repo>``; send ``moving`` and ``fixed``
(float32 or float16, as the config says) and read ``ddf_norm`` (see the card's ``displacement``).

Engines and Triton: Triton runs a ``model.plan`` with the TensorRT inside its container, and an
engine loads only under the TensorRT release and on the GPU architecture it was built with. The
config of an engine therefore opens with ``#`` comment lines (protobuf text format comments; Triton
ignores them) that record the build: TensorRT version, GPU and compute capability, compatibility
flags, and what the server needs: a Triton release whose container ships that TensorRT version
(see the Triton framework support matrix), a GPU of that compute capability unless the engine was
built hardware-compatible, and ``--backend-config=tensorrt,version-compatible=true`` for a
version-compatible engine. The ONNX models (platform ``onnxruntime_onnx``) have no such tie.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

__all__ = ["TRITON_DTYPES", "PLATFORMS", "triton_model_name", "config_pbtxt", "engine_notes", "write_triton_model"]

TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "int64": "TYPE_INT64",
                 "int32": "TYPE_INT32", "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8"}
PLATFORMS = {".onnx": ("onnxruntime_onnx", "model.onnx"), ".engine": ("tensorrt_plan", "model.plan"),
             ".plan": ("tensorrt_plan", "model.plan")}
CARD_NAME = "fnoreg_model_card.json"


def triton_model_name(text: str) -> str:
    """A Triton model (= directory) name: letters, digits, ``_`` and ``-`` only (other characters become ``_``)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-")
    if not name:
        raise ValueError(f"cannot make a Triton model name from {text!r}")
    return name


def _dims(shape: list, batched: bool) -> list[int]:
    dims = [int(d) if isinstance(d, int) else -1 for d in shape]
    return dims[1:] if batched else dims


def _tensor_block(spec: dict[str, Any], name: str, batched: bool) -> str:
    dtype = spec.get("dtype", "float32")
    if dtype not in TRITON_DTYPES:
        raise ValueError(f"tensor {name!r} has dtype {dtype!r}, which has no Triton type")
    dims = ", ".join(str(d) for d in _dims(spec["shape"], batched))
    return f'  {{\n    name: "{name}"\n    data_type: {TRITON_DTYPES[dtype]}\n    dims: [ {dims} ]\n  }}'


def engine_notes(facts: dict[str, Any]) -> list[str]:
    """Comment lines for an engine's ``config.pbtxt``: the build (from the card's ``extra.engine``)
    and what a Triton server needs to load it."""
    if not facts:
        return ["TensorRT engine: load it only with the TensorRT version and on the GPU architecture it was built "
                "with (its build facts are missing from the model card)"]
    version = facts.get("tensorrt_version", "?")
    cc = facts.get("compute_capability", "?")
    hw = facts.get("hardware_compatibility") or "none"
    lines = [f"TensorRT engine built with TensorRT {version} on {facts.get('gpu_name', '?')} "
             f"(compute capability {cc}, CUDA {facts.get('cuda_version', '?')}), precision {facts.get('precision', '?')}"]
    if facts.get("version_compatible"):
        lines.append(f"version-compatible: loads under TensorRT {version} and later {str(version).split('.')[0]}.x; "
                     "start Triton with --backend-config=tensorrt,version-compatible=true")
    else:
        lines.append(f"needs a Triton release whose container ships TensorRT {version} exactly "
                     "(Triton framework support matrix); other versions refuse the plan")
    if hw == "ampere-plus":
        lines.append("hardware-compatible: any GPU of compute capability 8.0 or newer (Ampere+)")
    elif hw == "same-cc":
        lines.append(f"hardware-compatible: any GPU of compute capability {cc}")
    else:
        lines.append(f"runs only on GPUs of compute capability {cc}; rebuild (fnoreg-export --trt) for other GPUs")
    return lines


def config_pbtxt(name: str, platform: str, inputs: dict[str, Any], outputs: dict[str, Any],
                 max_batch_size: int = 0, default_model_filename: str | None = None,
                 notes: list[str] | None = None) -> str:
    """The text of a ``config.pbtxt`` (protobuf text format of Triton's ``ModelConfig``).

    ``inputs``/``outputs`` are model-card specs ``{name: {"shape": [...], "dtype": "float32"}}``
    with symbolic dims as strings (written as ``-1``). With ``max_batch_size > 0`` the first axis
    is Triton's batch axis: it is left out of ``dims`` and dynamic batching is enabled. ``notes``
    become ``#`` comment lines at the top (e.g. :func:`engine_notes`).
    """
    if max_batch_size < 0:
        raise ValueError(f"expected max_batch_size >= 0, got {max_batch_size}")
    batched = max_batch_size > 0
    if batched:
        for spec_name, spec in {**inputs, **outputs}.items():
            if isinstance(spec["shape"][0], int):
                raise ValueError(f"tensor {spec_name!r} has a fixed batch axis {spec['shape'][0]}; "
                                 "use max_batch_size 0 for static graphs")
    lines = [f"# {line}" for note in (notes or []) for line in str(note).splitlines()]
    lines += [f'name: "{name}"', f'platform: "{platform}"', f"max_batch_size: {max_batch_size}"]
    if default_model_filename:
        lines.append(f'default_model_filename: "{default_model_filename}"')
    lines.append("input [\n" + ",\n".join(_tensor_block(s, n, batched) for n, s in inputs.items()) + "\n]")
    lines.append("output [\n" + ",\n".join(_tensor_block(s, n, batched) for n, s in outputs.items()) + "\n]")
    if batched:
        lines.append("dynamic_batching { }")
    lines.append("version_policy: { latest: { num_versions: 1 } }")
    return "\n".join(lines) + "\n"


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def write_triton_model(repo: str | Path, model_file: str | Path, card: dict[str, Any], name: str,
                       max_batch_size: int | None = None, version: int = 1) -> Path:
    """Add one exported file (``.onnx`` or ``.engine``) to a Triton repository; returns the model folder.

    Parameters
    ----------
    repo : repository root (created if missing)
    model_file : the exported graph or engine; an ONNX file's external weights (``<file>.data``)
        are placed beside it under their own name, where the graph looks for them
    card : the file's model card as a dict (inputs, outputs, static_size); written beside the config
    name : Triton model name (see :func:`triton_model_name`)
    max_batch_size : default 4 for graphs with a symbolic batch axis, else 0
    version : version folder
    """
    model_file = Path(model_file)
    suffix = model_file.suffix
    if suffix not in PLATFORMS:
        raise ValueError(f"expected an .onnx or .engine file, got {model_file.name}")
    platform, filename = PLATFORMS[suffix]
    name = triton_model_name(name)
    inputs, outputs = card["inputs"], card["outputs"]
    symbolic_batch = all(not isinstance(spec["shape"][0], int) for spec in {**inputs, **outputs}.values())
    if max_batch_size is None:
        max_batch_size = 4 if symbolic_batch else 0
    if platform == "tensorrt_plan" or not symbolic_batch:
        max_batch_size = 0
    notes = engine_notes(card.get("extra", {}).get("engine", {})) if platform == "tensorrt_plan" else None
    text = config_pbtxt(name, platform, inputs, outputs, max_batch_size, notes=notes)
    folder = Path(repo) / name
    version_dir = folder / str(int(version))
    version_dir.mkdir(parents=True, exist_ok=True)
    _link_or_copy(model_file, version_dir / filename)
    data = model_file.with_name(model_file.name + ".data")
    if suffix == ".onnx" and data.is_file():
        _link_or_copy(data, version_dir / data.name)
    for target, content in ((folder / "config.pbtxt", text), (folder / CARD_NAME, json.dumps(card, indent=2) + "\n")):
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(content)
        os.replace(tmp, target)
    return folder
