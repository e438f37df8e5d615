"""``fnoreg-eval`` with exported models: :func:`fnoreg_core.evaluate.main` plus the runtime's backends.

fnoreg_core does not import fnoreg_export; this module injects a loader for exported files
(``.onnx`` through onnxruntime, TensorRT engines with their ``.json`` card) so that fnoreg-eval runs
them through the same runners as the runtime (:mod:`fnoreg_export.runtime.backends`). Checkpoints
(``.pt``) are evaluated by fnoreg_core itself. Same options as ``python -m fnoreg_core.evaluate``::

    fnoreg-eval model.onnx --data oasis:/data/neurite-oasis --res 160x192x224 --split test
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["exported_predictor", "main"]


def exported_predictor(path: str | Path, threads: int | None = None, backend: str = "onnxruntime-cpu"):
    """``(predict, info)`` of an exported model for :func:`fnoreg_core.evaluate.evaluate`.

    ``predict(moving, fixed) -> ddf_vox``: both (*spatial) float32 in [0, 1], at a size the graph
    takes (the card says which; other sizes raise :class:`fnoreg_core.evaluate.EvalError` with the
    nearest accepted ``--res``). ``info``: ``{"dims", "name", "min_size"}``.
    """
    from fnoreg_core.evaluate import EvalError
    from fnoreg_core.fields import ddf_norm_to_vox

    from .model_card import ModelCardError, read_card
    from .runtime.backends import BackendError, ENGINE_SUFFIXES, make_runner
    from .runtime.inputs import check_network_output

    path = Path(path)
    try:
        card = read_card(path)
        runner = make_runner(path, "tensorrt" if path.suffix in ENGINE_SUFFIXES else backend, threads, dims=card.dims)
    except (ModelCardError, BackendError) as exc:
        raise EvalError(str(exc)) from None

    def predict(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        if not card.accepts(fixed.shape):
            raise EvalError(f"{path} does not take size {fixed.shape} (card: min {card.min_size}, max {card.max_size}, "
                            f"multiple of {card.size_multiple}); evaluate with --res "
                            f"{'x'.join(map(str, card.nearest_accepted(fixed.shape)))}")
        try:
            ddf = runner(moving[None, None].astype(np.float32), fixed[None, None].astype(np.float32))
            ddf = check_network_output(ddf, (1, card.dims) + tuple(fixed.shape), path)
        except BackendError as exc:
            raise EvalError(str(exc)) from None
        return ddf_norm_to_vox(ddf[0], fixed.shape)

    predict.warmup = True
    info: dict[str, Any] = {"dims": card.dims, "name": card.name, "min_size": tuple(card.min_size)}
    return predict, info


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fnoreg-eval``."""
    from fnoreg_core.evaluate import main as core_main

    from .runtime.backends import ENGINE_SUFFIXES

    loaders = {suffix: exported_predictor for suffix in (".onnx",) + ENGINE_SUFFIXES}
    return core_main(argv, loaders=loaders)


if __name__ == "__main__":
    sys.exit(main())
