"""BatchNorm folding for scoring; 3-D convolutions kept on oneDNN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medforensics.models.blocks import Conv3d, fold_batchnorm
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


def _ops(fn: object) -> set[str]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()  # type: ignore[operator]
    return {e.key for e in prof.key_averages()}


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
def test_small_single_item_convolutions_run_on_onednn_with_the_same_values() -> None:
    torch.manual_seed(0)
    ours = Conv3d(4, 4, 3, padding=1)
    plain = nn.Conv3d(4, 4, 3, padding=1)
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(1, 4, 8, 24, 24)  # 4 x 8 x 24 <= 20480: PyTorch's own rule takes its im2col kernel
    with torch.no_grad():
        assert "aten::mkldnn_convolution" in _ops(lambda: ours(x))
        assert "aten::mkldnn_convolution" not in _ops(lambda: plain(x))
        torch.testing.assert_close(ours(x), plain(x), rtol=1e-5, atol=1e-5)
        pair = torch.randn(2, 4, 8, 24, 24)  # a batch of two goes to oneDNN either way: bit for bit
        assert torch.equal(ours(pair), plain(pair))
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast's bf16 cast is not bypassed
            assert ours(x).dtype == torch.bfloat16


def test_training_keeps_pytorchs_own_dispatch_and_its_gradients() -> None:
    torch.manual_seed(0)
    ours = Conv3d(2, 3, 3, padding=1)
    plain = nn.Conv3d(2, 3, 3, padding=1)
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(1, 2, 6, 16, 16)
    ours(x).square().sum().backward()
    plain(x).square().sum().backward()
    assert ours.weight.grad is not None and plain.weight.grad is not None
    assert torch.equal(ours.weight.grad, plain.weight.grad)
