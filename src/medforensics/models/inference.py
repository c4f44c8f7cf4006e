"""Uniform inference over the zoo: class probabilities for CNNs and feature models alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from medforensics.models.classical import FeatureModel


def memory_format(ndim: int) -> torch.memory_format:
    """channels_last for 4-D inputs, channels_last_3d for 5-D."""
    return torch.channels_last if ndim == 4 else torch.channels_last_3d


@contextlib.contextmanager
def autocast(precision: str, device_type: str = "cpu") -> Iterator[None]:
    """bf16 autocast on ``device_type`` (CPU: fast with AMX) when ``precision == "bf16"``, else nothing."""
    if precision == "bf16":
        with torch.autocast(device_type, dtype=torch.bfloat16):
            yield
    else:
        yield


def logits_batches(
    model: nn.Module,
    x: NDArray[Any] | torch.Tensor,
    batch_size: int = 64,
    precision: str = "fp32",
    channels_last: bool = False,
) -> torch.Tensor:
    """Float32 logits of ``model`` (put in eval mode) over ``x`` in batches, without gradients."""
    model.eval()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x
    outs = []
    with torch.inference_mode(), autocast(precision):
        for i in range(0, len(xt), batch_size):
            b = xt[i : i + batch_size]
            if channels_last:
                b = b.contiguous(memory_format=memory_format(b.ndim))
            outs.append(model(b).float())
    if not outs:
        return torch.zeros((0, 0))
    return torch.cat(outs)


def predict_proba(
    model: Any, x: NDArray[Any], batch_size: int = 64, precision: str = "fp32", channels_last: bool = False
) -> NDArray[np.float64]:
    """``(N, num_classes)`` class probabilities for a CNN (softmax of logits) or a feature model."""
    if isinstance(model, FeatureModel):
        return model.predict_proba(x)
    logits = logits_batches(model, x, batch_size, precision, channels_last)
    return torch.softmax(logits, dim=1).double().numpy()
