"""MobileNetV2 (own module: inverted residual blocks with linear bottlenecks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medforensics.models.blocks import ClassifierHead, conv_bn_act, scaled
from medforensics.models.registry import register_model

#: (expansion t, channels c, repeats n, stride s) as in Sandler et al. 2018.
MOBILENET_V2_CFG: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise, 1x1 linear project; identity shortcut when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_act(cin, mid, 1))
        layers += [conv_bn_act(mid, mid, 3, stride=stride, groups=mid), conv_bn_act(mid, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 with a width multiplier; ReLU instead of ReLU6 (same accuracy, simpler export)."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        width_mult: float = 1.0,
        cfg: Sequence[tuple[int, int, int, int]] = MOBILENET_V2_CFG,
        last_channels: int = 1280,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        cin = scaled(32, width_mult, 8)
        layers: list[nn.Module] = [conv_bn_act(in_channels, cin, 3, stride=2)]
        for t, c, n, s in cfg:
            cout = scaled(c, width_mult, 8)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        last = scaled(last_channels, max(1.0, width_mult), 8)
        layers.append(conv_bn_act(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(last, num_classes, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("mobilenetv2", input_kind="2d", input_size=224)
def mobilenetv2(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 (width 1.0)."""
    return MobileNetV2(in_channels, num_classes, dropout=dropout)


@register_model("test_mobilenetv2", input_kind="2d", input_size=32)
def test_mobilenetv2(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> MobileNetV2:
    """Tiny twin of ``mobilenetv2``."""
    cfg = ((1, 8, 1, 1), (2, 8, 1, 2), (2, 16, 1, 2))
    return MobileNetV2(in_channels, num_classes, 0.25, cfg=cfg, last_channels=16, dropout=dropout)
