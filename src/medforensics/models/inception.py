"""Compact Inception-v3 (Szegedy et al. 2016): stem, InceptionA/B/C/D/E blocks, no auxiliary head.

``width`` scales every branch's channels, ``repeats`` sets how many A, C and E blocks are stacked
(3, 4, 2 in the paper).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from medforensics.models.blocks import ClassifierHead, conv_bn_act, scaled
from medforensics.models.registry import register_model


class _Branches(nn.Module):
    """Parallel branches concatenated along channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


def _seq(*mods: nn.Module) -> nn.Sequential:
    return nn.Sequential(*mods)


def _pool_proj(cin: int, cout: int) -> nn.Sequential:
    return _seq(nn.AvgPool2d(3, 1, 1), conv_bn_act(cin, cout, 1))


def inception_a(cin: int, c: Callable[[int], int], pool: int) -> tuple[nn.Module, int]:
    """35x35 block: 1x1, 5x5, double 3x3 and pooled branches."""
    m = _Branches(
        conv_bn_act(cin, c(64), 1),
        _seq(conv_bn_act(cin, c(48), 1), conv_bn_act(c(48), c(64), 5)),
        _seq(conv_bn_act(cin, c(64), 1), conv_bn_act(c(64), c(96), 3), conv_bn_act(c(96), c(96), 3)),
        _pool_proj(cin, c(pool)),
    )
    return m, c(64) + c(64) + c(96) + c(pool)


def inception_b(cin: int, c: Callable[[int], int]) -> tuple[nn.Module, int]:
    """Grid reduction 35 -> 17."""
    m = _Branches(
        conv_bn_act(cin, c(384), 3, stride=2, padding=0),
        _seq(
            conv_bn_act(cin, c(64), 1),
            conv_bn_act(c(64), c(96), 3),
            conv_bn_act(c(96), c(96), 3, stride=2, padding=0),
        ),
        nn.MaxPool2d(3, 2),
    )
    return m, c(384) + c(96) + cin


def _fact7(cin: int, mid: int, cout: int, double: bool) -> nn.Sequential:
    """Factorised 7x7: 1x7 then 7x1 (twice when ``double``)."""
    pairs = [(mid, mid), (mid, cout)] if not double else [(mid, mid), (mid, mid), (mid, mid), (mid, cout)]
    mods: list[nn.Module] = [conv_bn_act(cin, mid, 1)]
    for i, (a, b) in enumerate(pairs):
        mods.append(conv_bn_act(a, b, (1, 7) if i % 2 == 0 else (7, 1)))
    return _seq(*mods)


def inception_c(cin: int, c: Callable[[int], int], mid: int) -> tuple[nn.Module, int]:
    """17x17 block with factorised 7x7 convolutions."""
    m = _Branches(
        conv_bn_act(cin, c(192), 1),
        _fact7(cin, c(mid), c(192), False),
        _fact7(cin, c(mid), c(192), True),
        _pool_proj(cin, c(192)),
    )
    return m, 4 * c(192)


def inception_d(cin: int, c: Callable[[int], int]) -> tuple[nn.Module, int]:
    """Grid reduction 17 -> 8."""
    m = _Branches(
        _seq(conv_bn_act(cin, c(192), 1), conv_bn_act(c(192), c(320), 3, stride=2, padding=0)),
        _seq(_fact7(cin, c(192), c(192), False), conv_bn_act(c(192), c(192), 3, stride=2, padding=0)),
        nn.MaxPool2d(3, 2),
    )
    return m, c(320) + c(192) + cin


class _SplitConv(nn.Module):
    """Conv, then 1x3 and 3x1 in parallel (Inception E's expanded filter bank)."""

    def __init__(self, head: nn.Module, cmid: int, cout: int) -> None:
        super().__init__()
        self.head = head
        self.split = _Branches(conv_bn_act(cmid, cout, (1, 3)), conv_bn_act(cmid, cout, (3, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.split(self.head(x))


def inception_e(cin: int, c: Callable[[int], int]) -> tuple[nn.Module, int]:
    """8x8 block with expanded 1x3 / 3x1 filter banks."""
    m = _Branches(
        conv_bn_act(cin, c(320), 1),
        _SplitConv(conv_bn_act(cin, c(384), 1), c(384), c(384)),
        _SplitConv(_seq(conv_bn_act(cin, c(448), 1), conv_bn_act(c(448), c(384), 3)), c(384), c(384)),
        _pool_proj(cin, c(192)),
    )
    return m, c(320) + 4 * c(384) + c(192)


class InceptionV3(nn.Module):
    """Inception-v3 without the auxiliary classifier; any input >= 75 px."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        width: float = 1.0,
        repeats: Sequence[int] = (3, 4, 2),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()

        def c(n: int) -> int:
            return scaled(n, width, 4)

        stem: list[nn.Module] = [
            conv_bn_act(in_channels, c(32), 3, stride=2, padding=0),
            conv_bn_act(c(32), c(32), 3, padding=0),
            conv_bn_act(c(32), c(64), 3),
            nn.MaxPool2d(3, 2),
            conv_bn_act(c(64), c(80), 1),
            conv_bn_act(c(80), c(192), 3, padding=0),
            nn.MaxPool2d(3, 2),
        ]
        blocks: list[nn.Module] = []
        cin = c(192)
        for i in range(repeats[0]):
            m, cin = inception_a(cin, c, 32 if i == 0 else 64)
            blocks.append(m)
        m, cin = inception_b(cin, c)
        blocks.append(m)
        for i in range(repeats[1]):
            m, cin = inception_c(cin, c, (128, 160, 160, 192)[min(i, 3)])
            blocks.append(m)
        m, cin = inception_d(cin, c)
        blocks.append(m)
        for _ in range(repeats[2]):
            m, cin = inception_e(cin, c)
            blocks.append(m)
        self.features = nn.Sequential(*stem, *blocks)
        self.head = ClassifierHead(cin, num_classes, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("inception_v3", input_kind="2d", input_size=224)
def inception_v3(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.5) -> InceptionV3:
    """Inception-v3 (full width, 3/4/2 A/C/E blocks)."""
    return InceptionV3(in_channels, num_classes, 1.0, (3, 4, 2), dropout)


@register_model("test_inception_v3", input_kind="2d", input_size=80)
def test_inception_v3(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> InceptionV3:
    """Tiny twin of ``inception_v3`` (1/16 width, one block of each kind)."""
    return InceptionV3(in_channels, num_classes, 1 / 16, (1, 1, 1), dropout)
