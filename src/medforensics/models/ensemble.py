"""Ensembles: several networks of one architecture whose class probabilities are averaged.

:class:`ProbabilityMean` returns the log of the members' mean softmax probabilities, so anything that
takes a softmax of a model's output (training, ``predict_proba``, the scan's :class:`Detector`) reads the
averaged probabilities unchanged. Averaging probabilities rather than logits keeps one over-confident member
from deciding alone: a member at 0.999 and three at 0.1 give 0.32, where averaged logits would give 0.85.

The usual way to make one is to train the members apart (seeds for initialisation and sample order, one
data split) and stack their weights with :func:`stack_members`; the result loads like any model folder
(``config.json`` names ``cnn_ensemble`` and ``model_kwargs.members``). Training ``cnn_ensemble`` directly
fits the averaged network end to end instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from medforensics.errors import ConfigError
from medforensics.models.cnn import cnn, test_cnn
from medforensics.models.registry import register_model

#: Prefix of member ``i``'s weights in an ensemble's state dict.
MEMBER_PREFIX = "members.{}."


class ProbabilityMean(nn.Module):
    """Members run on the same input; output ``log(mean_i softmax(member_i(x)))`` in float32."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(m(x).float(), dim=1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))


def _ensemble(factory: Callable[..., nn.Module], members: int, **kw: object) -> ProbabilityMean:
    if not isinstance(members, int) or isinstance(members, bool) or members < 1:
        raise ConfigError(f"members must be a whole number >= 1, got {members!r}")
    return ProbabilityMean([factory(**kw) for _ in range(members)])


@register_model("cnn_ensemble", input_kind="2d", input_size=128)
def cnn_ensemble(
    in_channels: int = 1, num_classes: int = 2, dropout: float = 0.5, members: int = 4
) -> ProbabilityMean:
    """``members`` custom 2D CNNs (``cnn``), class probabilities averaged."""
    return _ensemble(cnn, members, in_channels=in_channels, num_classes=num_classes, dropout=dropout)


@register_model("test_cnn_ensemble", input_kind="2d", input_size=32)
def test_cnn_ensemble(
    in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, members: int = 2
) -> ProbabilityMean:
    """Tiny twin of ``cnn_ensemble``."""
    return _ensemble(test_cnn, members, in_channels=in_channels, num_classes=num_classes, dropout=dropout)


def stack_members(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One ensemble state dict from the members' own state dicts (member ``i``'s keys get
    :data:`MEMBER_PREFIX`); the members must have the same keys."""
    if not states:
        raise ConfigError("an ensemble needs at least one member")
    keys = set(states[0])
    for i, s in enumerate(states[1:], 1):
        if set(s) != keys:
            raise ConfigError(f"member {i} has other weights than member 0 (not the same architecture)")
    return {MEMBER_PREFIX.format(i) + k: v for i, s in enumerate(states) for k, v in s.items()}
