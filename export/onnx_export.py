"""Export a registration network to ONNX with dynamic batch and spatial axes.

torch is imported lazily so that ``import fnoreg_export`` stays torch-free.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

__all__ = ["export_onnx", "DEFAULT_OPSET", "INPUT_NAMES", "OUTPUT_NAMES"]

#: Opset 20 is the first with 5-D GridSample; all our graphs use it.
DEFAULT_OPSET = 20
INPUT_NAMES = ("moving", "fixed")
OUTPUT_NAMES = ("ddf_norm",)


def export_onnx(model, path: str | Path, example_size: tuple[int, ...], dynamic: bool = True,
                opset: int = DEFAULT_OPSET, max_size: int = 1024) -> Path:
    """Export ``model(moving, fixed) -> ddf_norm`` to ``path``.

    Parameters
    ----------
    model : fnoreg_core.models RegistrationNet (put in eval mode here)
    path : output ``.onnx`` file (written atomically: removed again if the export fails)
    example_size : spatial size of the tracing example, e.g. (32, 48, 32); with ``dynamic`` each
        entry must be a multiple of ``model.size_multiple()``
    dynamic : dynamic batch and spatial axes (one graph for every size that is a multiple of
        ``model.size_multiple()``, up to ``max_size``); otherwise a static graph for batch 1 and
        exactly ``example_size``
    opset : ONNX opset (>= 20)

    Returns
    -------
    Path of the written model. Inputs ``moving``/``fixed`` (B, 1, *spatial) float32, output
    ``ddf_norm`` (B, dims, *spatial) float32 (see ``fnoreg_core.fields``).

    Raises
    ------
    ValueError
        Opset below 20, or an example size the model cannot take.
    """
    import onnx
    import torch

    if opset < DEFAULT_OPSET:
        raise ValueError(f"expected opset >= {DEFAULT_OPSET} (5-D GridSample), got {opset}")
    dims = model.dims
    example_size = tuple(int(n) for n in example_size)
    if len(example_size) != dims:
        raise ValueError(f"expected {dims} spatial sizes, got {example_size}")
    multiple = model.size_multiple() if dynamic else 1
    if any(n % multiple for n in example_size):
        raise ValueError(f"expected example sizes that are multiples of {multiple}, got {example_size}")
    model = model.eval()
    batch = 2 if dynamic else 1  # an example batch of 1 would be specialised to 1
    gen = torch.Generator().manual_seed(0)
    # distinct example tensors: passing one tensor twice makes the exporter alias the inputs
    moving = torch.rand(batch, 1, *example_size, generator=gen)
    fixed = torch.rand(batch, 1, *example_size, generator=gen)
    dynamic_shapes = None
    if dynamic:
        Dim = torch.export.Dim
        spatial = {}
        for axis, name in zip(range(2, 2 + dims), "dhw"[-dims:]):
            if multiple > 1:
                spatial[axis] = multiple * Dim(name, min=1, max=max_size // multiple)
            else:
                spatial[axis] = Dim(name, min=2, max=max_size)
        shape = {0: Dim("batch", min=1, max=64), **spatial}
        dynamic_shapes = {"moving": shape, "fixed": shape}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            torch.onnx.export(
                model, (moving, fixed), str(path), dynamo=True, opset_version=opset,
                input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                dynamic_shapes=dynamic_shapes, verbose=False,
            )
        onnx.checker.check_model(str(path))
    except BaseException:
        path.unlink(missing_ok=True)
        Path(str(path) + ".data").unlink(missing_ok=True)
        raise
    return path
