"""CT-GAN networks: a pix2pix-like 3-D U-Net generator and a 3-D PatchGAN discriminator.

Sized for CPU training: with ``base=12`` the generator has ~0.4 M parameters (1.6 MB in fp32).
Generator input: 3 channels (normalised cube with the hole blanked, hole mask, wanted-nodule sphere);
output: the whole cube in [-1, 1] (tanh).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

IN_CHANNELS = 3


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1),
        nn.GroupNorm(min(4, cout), cout),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1),
        nn.GroupNorm(min(4, cout), cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


class UNet3D(nn.Module):
    """3-D U-Net with ``depth`` down-sampling steps (stride-2 convs) and skip connections."""

    def __init__(self, base: int = 12, depth: int = 3, in_channels: int = IN_CHANNELS) -> None:
        super().__init__()
        self.config: dict[str, Any] = {"base": base, "depth": depth, "in_channels": in_channels}
        chans = [base * 2**i for i in range(depth + 1)]
        self.enc = nn.ModuleList([_block(in_channels, chans[0])])
        self.down = nn.ModuleList()
        for i in range(depth):
            self.down.append(nn.Conv3d(chans[i], chans[i], 4, stride=2, padding=1))
            self.enc.append(_block(chans[i], chans[i + 1]))
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            self.up.append(nn.ConvTranspose3d(chans[i + 1], chans[i], 4, stride=2, padding=1))
            self.dec.append(_block(chans[i] * 2, chans[i]))
        self.head = nn.Conv3d(chans[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = self.enc[0](x)
        for down, enc in zip(self.down, self.enc[1:], strict=True):
            skips.append(h)
            h = enc(down(h))
        for up, dec in zip(self.up, self.dec, strict=True):
            h = dec(torch.cat([up(h), skips.pop()], dim=1))
        out: torch.Tensor = torch.tanh(self.head(h))
        return out


class PatchDiscriminator3D(nn.Module):
    """3-D PatchGAN: judges overlapping ~14^3 patches of (condition, cube) pairs; logits out."""

    def __init__(self, base: int = 12, in_channels: int = IN_CHANNELS + 1) -> None:
        super().__init__()
        self.config: dict[str, Any] = {"base": base, "in_channels": in_channels}
        self.net = nn.Sequential(
            nn.Conv3d(in_channels, base, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv3d(base, base * 2, 4, stride=2, padding=1),
            nn.GroupNorm(4, base * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv3d(base * 2, base * 4, 3, padding=1),
            nn.GroupNorm(4, base * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv3d(base * 4, 1, 3, padding=1),
        )

    def forward(self, cond: torch.Tensor, cube: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(torch.cat([cond, cube], dim=1))
        return out


def n_params(module: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in module.parameters())
