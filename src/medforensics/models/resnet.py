"""ResNet18 / ResNet50 from MONAI (2D, stride-2 stem as in the usual ResNet)."""

from __future__ import annotations

from typing import Any

from monai.networks.nets import ResNet
from monai.networks.nets import resnet18 as _monai_resnet18
from monai.networks.nets import resnet50 as _monai_resnet50
from torch import nn

from medforensics.models.registry import register_model


def _with_dropout(net: ResNet, dropout: float) -> ResNet:
    """Put dropout before MONAI's final linear layer."""
    if dropout > 0:
        net.fc = nn.Sequential(nn.Dropout(dropout), net.fc)  # type: ignore[assignment,arg-type]
    return net


def _common(in_channels: int, num_classes: int) -> dict[str, Any]:
    return {
        "spatial_dims": 2,
        "n_input_channels": in_channels,
        "num_classes": num_classes,
        "conv1_t_stride": 2,
    }


@register_model("resnet18", input_kind="2d", input_size=224)
def resnet18(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> ResNet:
    """ResNet18 (MONAI, 2D)."""
    return _with_dropout(_monai_resnet18(**_common(in_channels, num_classes)), dropout)


@register_model("resnet50", input_kind="2d", input_size=224)
def resnet50(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> ResNet:
    """ResNet50 (MONAI, 2D, bottleneck blocks)."""
    return _with_dropout(_monai_resnet50(**_common(in_channels, num_classes)), dropout)


@register_model("test_resnet18", input_kind="2d", input_size=32)
def test_resnet18(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> ResNet:
    """Tiny twin of ``resnet18`` (one basic block per stage, 4-32 channels)."""
    net = ResNet("basic", [1, 1, 1, 1], [4, 8, 16, 32], **_common(in_channels, num_classes))
    return _with_dropout(net, dropout)


@register_model("test_resnet50", input_kind="2d", input_size=32)
def test_resnet50(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> ResNet:
    """Tiny twin of ``resnet50`` (one bottleneck block per stage)."""
    net = ResNet("bottleneck", [1, 1, 1, 1], [4, 8, 8, 8], **_common(in_channels, num_classes))
    return _with_dropout(net, dropout)
