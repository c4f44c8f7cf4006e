"""Named building blocks shared by the zoo (MONAI habit: networks assembled from small blocks)."""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that keeps fp32 convolutions on the CPU on oneDNN.

    PyTorch sends a CPU convolution to oneDNN unless its batch is one and batch x channels x the first two
    spatial sizes is at most 20480 (a rule written for 2-D inputs); those go to its im2col kernel, which for
    3-D inputs is 8-14x slower (fp32, AVX2: a 32-channel 30 x 19 x 24 layer 41 ms against 5 ms, a 4-channel
    24 x 96 x 96 one 90 ms against 6 ms, session 61). Everything else already runs on oneDNN and gives the
    same values bit for bit. Only where no gradient is wanted (inference): training keeps PyTorch's own
    dispatch, whose oneDNN backward differs from the direct call's in the last bits. Under autocast (bf16)
    PyTorch's dispatch is kept too; it uses oneDNN.
    """

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if (
            input.device.type == "cpu"
            and input.dtype == weight.dtype == torch.float32
            and input.dim() == 5
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
            and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled("cpu")
            and not (torch.is_grad_enabled() and (input.requires_grad or weight.requires_grad))
        ):
            return torch.ops.aten.mkldnn_convolution(
                input, weight, bias, list(self.padding), list(self.stride), list(self.dilation), self.groups
            )
        return super()._conv_forward(input, weight, bias)


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
    conv_cls = nn.Conv2d if dims == 2 else Conv3d
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
