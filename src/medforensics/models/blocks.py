"""Named building blocks shared by the zoo (MONAI habit: networks assembled from small blocks)."""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def conv_bn_act(
    cin: int,
    cout: int,
    kernel: int | tuple[int, int] = 3,
    stride: int = 1,
    groups: int = 1,
    act: bool = True,
    dims: int = 2,
    padding: int | tuple[int, ...] | None = None,
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU (or no activation), 2D or 3D, 'same'-style padding."""
    conv_cls = nn.Conv2d if dims == 2 else nn.Conv3d
    bn_cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    if padding is None:
        padding = tuple(k // 2 for k in kernel) if isinstance(kernel, tuple) else kernel // 2
    layers: list[nn.Module] = [
        conv_cls(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False),  # type: ignore[arg-type]
        bn_cls(cout),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ClassifierHead(nn.Module):
    """Global average pool, dropout, optional hidden dense layer, linear to logits."""

    def __init__(
        self, cin: int, num_classes: int, dropout: float = 0.0, hidden: int = 0, dims: int = 2
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            cin = hidden
        layers.append(nn.Linear(cin, num_classes))
        self.fc = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(x))


class CBAM(nn.Module):
    """Convolutional block attention: channel attention (MLP on avg+max pool), then spatial."""

    def __init__(self, channels: int, reduction: int = 16, kernel: int = 7) -> None:
        super().__init__()
        mid = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Linear(channels, mid), nn.ReLU(inplace=True), nn.Linear(mid, channels))
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        att = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        x = x * torch.sigmoid(att).view(b, c, 1, 1)
        s = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(s))


def scaled(width: int, mult: float, divisor: int = 4) -> int:
    """Channel count ``width * mult`` rounded to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, round(width * mult / divisor) * divisor)


def fold_batchnorm(model: ModuleT) -> ModuleT:
    """An eval-mode copy of ``model`` in which every BatchNorm that directly follows a convolution inside a
    ``nn.Sequential`` (the :func:`conv_bn_act` layout) is folded into that convolution's weights and bias
    and replaced by ``nn.Identity``: the same function (up to float rounding), one pass over the feature
    map fewer per block. ``model`` itself is not changed."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    bns = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    for seq in folded.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, convs) and isinstance(bn, bns) and bn.track_running_stats:
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
    return folded
