"""Vision Transformer (MONAI ``ViT``, needs ``einops``), small and tiny sizes."""

from __future__ import annotations

import torch
from torch import nn

from medforensics.errors import MissingDependencyError
from medforensics.models.registry import register_model


class ViTClassifier(nn.Module):
    """MONAI ViT in classification mode, returning logits only (MONAI also returns hidden states)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        img_size: int,
        patch_size: int,
        hidden: int,
        layers: int,
        heads: int,
        dropout: float,
    ) -> None:
        super().__init__()
        try:
            import einops  # noqa: F401
            from monai.networks.nets import ViT
        except ImportError as err:
            raise MissingDependencyError("the ViT models need einops: pip install einops") from err
        self.vit = ViT(
            in_channels=in_channels,
            img_size=img_size,
            patch_size=patch_size,
            hidden_size=hidden,
            mlp_dim=4 * hidden,
            num_layers=layers,
            num_heads=heads,
            classification=True,
            num_classes=num_classes,
            dropout_rate=dropout,
            spatial_dims=2,
            post_activation="none",
            qkv_bias=True,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)[0]


@register_model("vit_small", input_kind="2d", input_size=224)
def vit_small(
    in_channels: int = 1, num_classes: int = 2, dropout: float = 0.1, img_size: int = 224
) -> ViTClassifier:
    """ViT-S/16 (384 wide, 12 layers, 6 heads)."""
    return ViTClassifier(in_channels, num_classes, img_size, 16, 384, 12, 6, dropout)


@register_model("test_vit_small", input_kind="2d", input_size=32)
def test_vit_small(
    in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, img_size: int = 32
) -> ViTClassifier:
    """Tiny twin of ``vit_small`` (32 wide, one layer, patch 8)."""
    return ViTClassifier(in_channels, num_classes, img_size, 8, 32, 1, 2, dropout)
