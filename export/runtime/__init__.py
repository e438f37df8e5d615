"""The torch-free FNOReg runtime: register image pairs with an exported model (numpy + onnxruntime).

>>> from fnoreg_export.runtime import Registrator, write_outputs
>>> reg = Registrator.load("fnoreg-3d.onnx", threads=4)                                   # doctest: +SKIP
>>> result = reg.register(fixed=nib.load("fixed.nii.gz"), moving=nib.load("moving.nii.gz"))  # doctest: +SKIP

Rooms
-----
:mod:`~fnoreg_export.runtime.backends`     one runner per backend (onnxruntime CPU/CUDA, TensorRT)
:mod:`~fnoreg_export.runtime.inputs`       the one validation layer for image inputs
:mod:`~fnoreg_export.runtime.registrator`  :class:`Registrator`: the staged pipeline (prepare -> working
                                           grid -> affine -> network -> refine -> map to the fixed grid ->
                                           warp -> metrics)
:mod:`~fnoreg_export.runtime.stages`       :class:`PipelineOptions` and the stages around the network
:mod:`~fnoreg_export.runtime.result`       :class:`RegistrationResult`, :func:`warp_labels`, resampling helpers
:mod:`~fnoreg_export.runtime.outputs`      the one writer and report schema (CLI, GUI, demo)

Backends: ``"onnxruntime-cpu"``, ``"onnxruntime-cuda"`` (package onnxruntime-gpu), ``"tensorrt"``
(``*.engine`` files with a ``<file>.json`` card; needs tensorrt and cuda-python or cupy), and
``"auto"``: tensorrt for ``.engine`` files, else onnxruntime-cuda where its provider is available,
else onnxruntime-cpu. One inference session per :class:`Registrator`, reused by every call.
"""

from .backends import (BACKENDS, BackendError, OrtRunner, RunInterrupted, TensorRTRunner, available_backends,
                       make_runner, ort_session_options)
from .registrator import NETWORK_ONLY, Registrator, check_size
from .stages import DEFAULT_REFINE, PipelineOptions, parse_refine, parse_work_res
from .result import RegistrationResult, resample_to_fixed, resample_to_grid, warp_image, warp_labels

__all__ = ["Registrator", "RegistrationResult", "BackendError", "RunInterrupted", "BACKENDS", "warp_labels",
           "warp_image", "resample_to_fixed", "resample_to_grid", "available_backends", "ort_session_options",
           "OrtRunner", "TensorRTRunner", "make_runner", "check_size", "PipelineOptions", "NETWORK_ONLY",
           "DEFAULT_REFINE", "parse_refine", "parse_work_res"]
