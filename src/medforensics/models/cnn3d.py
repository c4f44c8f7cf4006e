"""3D CNN detector for CT cubes (32^3 or 48^3 voxels at 1 mm isotropic around a candidate).

One head with ``num_classes=3`` logits in the order of :data:`ATTACK_CLASSES` (authentic, injected,
removed). The tamper logit and the attack-type probabilities both come from it (:func:`split_outputs`):
``tamper_logit = logsumexp(logits[:, 1:]) - logits[:, 0]``, so ``sigmoid(tamper_logit)`` equals
``1 - softmax(logits)[:, 0]``, the probability that the cube is not authentic. Trained with the ``attack``
task; with ``num_classes=2`` it is a plain real/fake detector.
"""

from __future__ import annotations

import torch
from torch import nn

from medforensics.models.cnn import SimpleCNN
from medforensics.models.registry import register_model

#: Class order of the attack-type head.
ATTACK_CLASSES: tuple[str, ...] = ("authentic", "injected", "removed")


def split_outputs(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tamper_logit (B,), attack-type probabilities (B, K))`` from logits (class 0 = authentic)."""
    tamper = torch.logsumexp(logits[:, 1:], dim=1) - logits[:, 0]
    return tamper, torch.softmax(logits, dim=1)


class CubeDetector(nn.Module):
    """Small 3D CNN: one 3x3x3 conv-BN-ReLU per stage, max-pool between stages, global pool, dropout."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 3,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.net = SimpleCNN(in_channels, num_classes, widths, dropout=dropout, dims=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tamper logit and attack-type probabilities (see :func:`split_outputs`)."""
        return split_outputs(self.forward(x))


@register_model("cnn3d", input_kind="3d", input_size=32, num_classes=3)
def cnn3d(in_channels: int = 1, num_classes: int = 3, dropout: float = 0.3) -> CubeDetector:
    """3D CNN for 32^3/48^3 CT cubes: tamper logit + attack type (authentic/injected/removed)."""
    return CubeDetector(in_channels, num_classes, (16, 32, 64, 128), dropout)


@register_model("test_cnn3d", input_kind="3d", input_size=16, num_classes=3)
def test_cnn3d(in_channels: int = 1, num_classes: int = 3, dropout: float = 0.0) -> CubeDetector:
    """Tiny twin of ``cnn3d``."""
    return CubeDetector(in_channels, num_classes, (4, 8), dropout)
