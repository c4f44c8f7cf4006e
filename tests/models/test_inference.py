"""Precision resolution: bf16 only where the device computes it natively."""

from __future__ import annotations

import pytest
import torch

from medforensics.models import inference
from medforensics.models.inference import autocast, effective_precision


@pytest.mark.parametrize("native", [True, False])
def test_bf16_runs_only_where_native(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(inference, "bf16_native", lambda device_type="cpu": native)
    conv = torch.nn.Conv2d(1, 2, 3)
    with torch.no_grad(), autocast("bf16", "cpu"):
        out = conv(torch.ones(1, 1, 5, 5))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    assert effective_precision("bf16") == ("bf16" if native else "fp32")
    assert effective_precision("fp32") == "fp32"


def test_fp32_never_autocasts() -> None:
    with torch.no_grad(), autocast("fp32", "cpu"):
        out = torch.nn.Linear(3, 2)(torch.ones(1, 3))
    assert out.dtype == torch.float32


def test_bf16_native_answers_for_this_cpu() -> None:
    flags = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert isinstance(inference.bf16_native("cpu"), bool)
    if not flags:  # oneDNN does not compute bf16 natively without AVX512-BF16 or AMX
        assert inference.bf16_native("cpu") is False
