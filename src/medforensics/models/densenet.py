"""DenseNet121 from MONAI (2D)."""

from __future__ import annotations

from monai.networks.nets import DenseNet, DenseNet121

from medforensics.models.registry import register_model


@register_model("densenet121", input_kind="2d", input_size=224)
def densenet121(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> DenseNet:
    """DenseNet121 (MONAI; ``dropout`` inside the dense layers)."""
    return DenseNet121(
        spatial_dims=2, in_channels=in_channels, out_channels=num_classes, dropout_prob=dropout
    )


@register_model("test_densenet121", input_kind="2d", input_size=32)
def test_densenet121(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> DenseNet:
    """Tiny twin of ``densenet121`` (two dense blocks of one layer, growth 4)."""
    return DenseNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=num_classes,
        init_features=8,
        growth_rate=4,
        block_config=(1, 1),
        bn_size=2,
        dropout_prob=dropout,
    )
