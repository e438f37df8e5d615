"""FNOReg export side: ONNX export of trained models (torch imported lazily) and, later, the
torch-free runtime. Installed as ``fnoreg_export``."""
