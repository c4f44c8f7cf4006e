"""Uniform inference over the zoo: class probabilities for CNNs and feature models alike."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from medforensics.logging import get_logger

log = get_logger("models.inference")


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


@functools.cache
def bf16_native(device_type: str = "cpu") -> bool:
    """Whether ``device_type`` computes in bf16 natively. On a CPU that needs AVX512-BF16 or AMX (oneDNN's
    own check): without them PyTorch emulates bf16, and a 3-D U-Net ran 75x slower than in fp32 (AVX2 only,
    session 15). On CUDA: what the GPU reports."""
    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: ask the CPU flags PyTorch reads
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def effective_precision(precision: str, device_type: str = "cpu") -> str:
    """``precision`` as it will run on ``device_type``: ``bf16`` falls back to ``fp32`` where bf16 is not
    native (:func:`bf16_native`), logged once."""
    if precision == "bf16" and not bf16_native(device_type):
        _warn_fallback(device_type)
        return "fp32"
    return precision


@functools.cache
def _warn_fallback(device_type: str) -> None:
    log.info("bf16 is not native on this %s (no AVX512-BF16/AMX): running in fp32", device_type)


@contextlib.contextmanager
def autocast(precision: str, device_type: str = "cpu") -> Iterator[None]:
    """bf16 autocast on ``device_type`` when ``precision == "bf16"`` and the device computes bf16 natively
    (CPU: AMX or AVX512-BF16, :func:`effective_precision`), else nothing (fp32)."""
    if effective_precision(precision, device_type) == "bf16":
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
    """``(N, num_classes)`` class probabilities for a CNN (softmax of logits) or a feature model (any other
    model: its own ``predict_proba``)."""
    if not isinstance(model, nn.Module):
        return np.asarray(model.predict_proba(x), np.float64)
    logits = logits_batches(model, x, batch_size, precision, channels_last)
    return torch.softmax(logits, dim=1).double().numpy()
