"""BatchNorm folding for scoring."""

from __future__ import annotations

import torch
from torch import nn

from medforensics.models.blocks import fold_batchnorm
from medforensics.models.tamperseg import test_tamperseg3d as tiny_net


def test_folded_model_computes_the_same_map_without_batchnorm() -> None:
    torch.manual_seed(0)
    model = tiny_net(in_channels=2)
    model.train()
    with torch.no_grad():  # running statistics and affine parameters far from their defaults
        for _ in range(3):
            model(torch.randn(2, 2, 8, 16, 16) * 3.0 + 1.0)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-1.0, 1.0)
    model.eval()
    x = torch.randn(1, 2, 8, 16, 16)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm3d) for m in model.modules()) == 6  # untouched: 3 stages x 2
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
