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


def resolve_device(name: str) -> torch.device:
    """The device a config names: ``cpu``, ``cuda`` or ``auto`` (CUDA when there is one); ConfigError when
    unknown or when CUDA is asked for on a machine without it."""
    from medforensics.errors import ConfigError

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu, cuda or auto, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but this machine has no CUDA device")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """``cpu`` or the GPU's name (recorded beside trained models and benchmark figures)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def model_device(model: nn.Module) -> torch.device:
    """Where a module's parameters are (the CPU for a module without any)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


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
    """Float32 logits (on the CPU) of ``model`` (put in eval mode, on its own device) over ``x`` in batches,
    without gradients."""
    model.eval()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x
    dev = model_device(model)
    outs = []
    with torch.inference_mode(), autocast(precision, dev.type):
        for i in range(0, len(xt), batch_size):
            b = xt[i : i + batch_size].to(dev)
            if channels_last:
                b = b.contiguous(memory_format=memory_format(b.ndim))
            outs.append(model(b).float().cpu())
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
