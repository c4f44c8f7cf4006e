"""VGG16 with batch normalisation (own module; global-pool head instead of the 4096-unit FC stack)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medforensics.models.blocks import ClassifierHead, conv_bn_act
from medforensics.models.registry import register_model

#: Channels per conv, "M" = 2x2 max-pool (configuration D of Simonyan & Zisserman).
VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


class VGG(nn.Module):
    """VGG feature stack from a config list, then pool + dense head with dropout."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        cfg: Sequence[int | str] = VGG16_CFG,
        hidden: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(conv_bn_act(cin, int(item), 3))
                cin = int(item)
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(cin, num_classes, dropout=dropout, hidden=hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("vgg16", input_kind="2d", input_size=224)
def vgg16(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.5) -> VGG:
    """VGG16-BN."""
    return VGG(in_channels, num_classes, VGG16_CFG, hidden=512, dropout=dropout)


@register_model("test_vgg16", input_kind="2d", input_size=32)
def test_vgg16(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> VGG:
    """Tiny twin of ``vgg16``."""
    return VGG(in_channels, num_classes, (4, "M", 8, "M", 8), hidden=8, dropout=dropout)
