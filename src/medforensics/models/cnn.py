"""A small custom 2D CNN (the seed studies' 4-conv baseline) and its 2.5D twin."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medforensics.models.blocks import ClassifierHead, conv_bn_act
from medforensics.models.registry import register_model


class SimpleCNN(nn.Module):
    """Stacked conv-BN-ReLU + max-pool stages, global pooling, dropout, linear head (2D or 3D)."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        widths: Sequence[int] = (32, 64, 128, 256),
        dropout: float = 0.5,
        dims: int = 2,
    ) -> None:
        super().__init__()
        pool = nn.MaxPool2d(2) if dims == 2 else nn.MaxPool3d(2)
        layers: list[nn.Module] = []
        cin = in_channels
        for i, w in enumerate(widths):
            layers.append(conv_bn_act(cin, w, 3, dims=dims))
            if i < len(widths) - 1:
                layers.append(pool)
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(cin, num_classes, dropout=dropout, dims=dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("cnn", input_kind="2d", input_size=128)
def cnn(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.5) -> SimpleCNN:
    """Custom 4-stage 2D CNN (32-256 channels)."""
    return SimpleCNN(in_channels, num_classes, (32, 64, 128, 256), dropout)


@register_model("test_cnn", input_kind="2d", input_size=32)
def test_cnn(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> SimpleCNN:
    """Tiny twin of ``cnn``."""
    return SimpleCNN(in_channels, num_classes, (4, 8), dropout)


@register_model("cnn_25d", input_kind="2.5d", input_size=128, in_channels=5)
def cnn_25d(in_channels: int = 5, num_classes: int = 2, dropout: float = 0.5) -> SimpleCNN:
    """2.5D CNN: 5 neighbouring slices as channels."""
    return SimpleCNN(in_channels, num_classes, (32, 64, 128, 256), dropout)


@register_model("test_cnn_25d", input_kind="2.5d", input_size=32, in_channels=5)
def test_cnn_25d(in_channels: int = 5, num_classes: int = 2, dropout: float = 0.0) -> SimpleCNN:
    """Tiny twin of ``cnn_25d``."""
    return SimpleCNN(in_channels, num_classes, (4, 8), dropout)
