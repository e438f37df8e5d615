"""FNOReg export side, installed as ``fnoreg_export``.

* :mod:`fnoreg_export.cli` (``fnoreg-export``): ONNX (dynamic and per-resolution static, fp16),
  TensorRT engines, Triton model repositories, parity checks; needs torch (imported lazily).
* :mod:`fnoreg_export.runtime` (``Registrator``: backends, registrator, outputs) and
  :mod:`fnoreg_export.register_cli` (``fnoreg-register``): the torch-free runtime (numpy +
  onnxruntime [+ tensorrt]).
* :mod:`fnoreg_export.eval_cli` (``fnoreg-eval`` with exported models), :mod:`fnoreg_export.demo`
  (``fnoreg-demo``), :mod:`fnoreg_export.train_demo`, :mod:`fnoreg_export.bundled` (assets).
* :mod:`fnoreg_export.model_card`: the JSON model card every exported file carries.
"""
