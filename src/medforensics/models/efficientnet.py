"""EfficientNet-B0 backbone (MONAI, no pretrained weights) + CBAM attention + dense head (MedNet-style)."""

from __future__ import annotations

import torch
from monai.networks.nets import EfficientNet, EfficientNetBN
from torch import nn

from medforensics.models.blocks import CBAM, ClassifierHead
from medforensics.models.registry import register_model


class AttentionEfficientNet(nn.Module):
    """EfficientNet features -> CBAM (channel then spatial attention) -> pool -> dense(hidden) -> logits."""

    def __init__(
        self, backbone: EfficientNet, num_classes: int, hidden: int = 256, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.backbone = backbone
        channels = backbone._fc.in_features
        self.attention = CBAM(channels)
        self.head = ClassifierHead(channels, num_classes, dropout=dropout, hidden=hidden)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's feature map (before pooling), as MONAI's forward computes it."""
        b = self.backbone
        x = b._swish(b._bn0(b._conv_stem(b._conv_stem_padding(x))))
        x = b._blocks(x)
        return b._swish(b._bn1(b._conv_head(b._conv_head_padding(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attention(self.features(x)))


@register_model("efficientnet_b0", input_kind="2d", input_size=224)
def efficientnet_b0(
    in_channels: int = 1, num_classes: int = 2, dropout: float = 0.5
) -> AttentionEfficientNet:
    """EfficientNet-B0 (MONAI) with a CBAM block and a 256-unit dense head with dropout."""
    backbone = EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2, in_channels=in_channels)
    return AttentionEfficientNet(backbone, num_classes, hidden=256, dropout=dropout)


@register_model("test_efficientnet_b0", input_kind="2d", input_size=32)
def test_efficientnet_b0(
    in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0
) -> AttentionEfficientNet:
    """Tiny twin of ``efficientnet_b0`` (two MBConv stages, 8-16 channels)."""
    blocks = ["r1_k3_s11_e1_i32_o16_se0.25", "r1_k3_s22_e2_i16_o24_se0.25"]
    backbone = EfficientNet(
        blocks,
        spatial_dims=2,
        in_channels=in_channels,
        width_coefficient=0.25,
        image_size=32,
        depth_divisor=4,
    )
    backbone._conv_head = nn.Conv2d(backbone._conv_head.in_channels, 32, 1, bias=False)
    backbone._bn1 = nn.BatchNorm2d(32)
    backbone._fc = nn.Linear(32, num_classes)
    return AttentionEfficientNet(backbone, num_classes, hidden=16, dropout=dropout)
