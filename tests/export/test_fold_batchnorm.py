"""fold_batchnorm: the exported graph's batch norms folded into the 1x1 convolutions before them."""

import torch

from fnoreg_core.models import create_model
from fnoreg_export.onnx_export import fold_batchnorm


def test_fold_batchnorm_same_outputs_model_untouched():
    torch.manual_seed(0)
    model = create_model("fnoreg", preset="3d-cpu")
    model.train()
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm3d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    assert model.training  # the original keeps its mode, parameters and keys
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm3d)) for m in folded.modules())
    a, b = torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16)
    model.eval()
    with torch.no_grad():
        ref, out = model(a, b), folded(a, b)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-5
