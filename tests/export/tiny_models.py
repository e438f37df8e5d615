"""Tiny exported models shared by the export tests (imported by conftest.py and the test modules).

Models are tiny and untrained, with a last layer scaled up so that displacements reach a few voxels.
The plain FNO architecture exports in ~10 s; FNOReg's dynamic export takes minutes on 2 cores.
"""

from pathlib import Path

TINY = {
    2: dict(dims=2, hidden_channels=4, n_layers=1, n_modes=(8, 8), projection_channels=8, factorization=None),
    3: dict(dims=3, hidden_channels=4, n_layers=1, n_modes=(8, 8, 8), projection_channels=8, factorization=None),
}
EXAMPLE = {2: (32, 48), 3: (16, 32, 16)}


def tiny_model(arch: str, dims: int):
    import torch

    from fnoreg_core.models import create_model

    torch.manual_seed(0)
    model = create_model(arch, **TINY[dims]).eval()
    torch.nn.init.normal_(model.projection[-1].weight, std=0.05)
    return model


def tiny_card(model, name: str):
    from fnoreg_core.fields import DDF_CONVENTION
    from fnoreg_core.models import config_to_dict
    from fnoreg_export.model_card import ModelCard

    dims = model.dims
    return ModelCard(name=name, arch=model.arch, dims=dims, config=config_to_dict(model),
                     train_resolution=list(EXAMPLE[dims]), min_size=[16] * dims, max_size=[256] * dims,
                     size_multiple=16, displacement=DDF_CONVENTION, opset=20,
                     intensity_norm={"method": "percentile", "high_pct": 99.5})


def export_tiny(tmp_path_factory, arch: str, dims: int):
    """(model, path to a dynamic .onnx with its .json card), exported once per session."""
    from fnoreg_export.onnx_export import export_onnx

    root = tmp_path_factory.getbasetemp() / "fnoreg_tiny_models"
    root.mkdir(exist_ok=True)
    path = root / f"{arch}{dims}d.onnx"
    model = tiny_model(arch, dims)
    if not path.exists():
        tmp = root / f"{arch}{dims}d.partial.onnx"
        export_onnx(model, tmp, EXAMPLE[dims], dynamic=True)
        tmp.rename(path)
    tiny_card(model, f"tiny-{arch}-{dims}d").save(path.with_name(path.name + ".json"))
    return model, Path(path)
