"""The dense localiser's loss and one optimiser step, as training takes it (and the device's smoke check)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from medforensics.train.dense_config import DenseConfig


def loss_fn(logits: torch.Tensor, target: torch.Tensor, cfg: DenseConfig) -> torch.Tensor:
    """Weighted cross-entropy + ``dice_weight`` x soft Dice of the tamper map + ``peak_weight`` x patch
    BCE."""
    w = torch.tensor(cfg.class_weights, dtype=torch.float32, device=logits.device)
    ce = F.cross_entropy(logits.float(), target, weight=w)
    p = 1.0 - torch.softmax(logits.float(), dim=1)[:, 0]
    t = (target > 0).float()
    inter = (p * t).sum()
    dice = 1.0 - (2 * inter + 1.0) / (p.sum() + t.sum() + 1.0)
    # patch level (what the scan reads): the strongest 3x3x3-averaged tamper probability must be high in a
    # patch holding an attack and low elsewhere, so isolated false hot spots cost as much as a missed edit
    peak = F.avg_pool3d(p[:, None], 3, stride=1, padding=1).amax(dim=(1, 2, 3, 4)).clamp(1e-4, 1 - 1e-4)
    has = t.amax(dim=(1, 2, 3))
    # written out: F.binary_cross_entropy refuses to run under CUDA autocast
    mil = -(has * peak.log() + (1 - has) * (1 - peak).log()).mean()
    return ce + cfg.dice_weight * dice + cfg.peak_weight * mil


def step_loss(model: Any, x: torch.Tensor, y: torch.Tensor, cfg: DenseConfig, step: int) -> torch.Tensor:
    """Loss of one training batch (:func:`loss_fn`). With ``mirror_pairs`` or ``mirror_consistency`` the
    batch is also passed in an in-plane mirror view (:data:`~medforensics.models.tamperseg.MIRROR_VIEWS`,
    cycled by ``step``), its logits mapped back; the two losses are averaged, plus ``mirror_consistency``
    x the mean squared difference of the two passes' voxel tamper probabilities."""
    from medforensics.models.tamperseg import MIRROR_VIEWS

    logits = model(x)
    loss = loss_fn(logits, y, cfg)
    if not (cfg.mirror_pairs or cfg.mirror_consistency > 0):
        return loss
    dims = MIRROR_VIEWS[1 + (step - 1) % (len(MIRROR_VIEWS) - 1)]
    back = model(x.flip(dims)).flip(dims)
    loss = 0.5 * (loss + loss_fn(back, y, cfg))
    if cfg.mirror_consistency > 0:
        p = 1.0 - torch.softmax(logits.float(), dim=1)[:, 0]
        q = 1.0 - torch.softmax(back.float(), dim=1)[:, 0]
        loss = loss + cfg.mirror_consistency * (p - q).pow(2).mean()
    return loss


def train_step(
    model: Any,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: DenseConfig,
    step: int,
    dev: torch.device,
) -> torch.Tensor:
    """One optimiser step on the batch ``(x, y)`` as training takes it (on ``dev``, under the run's
    autocast, :func:`step_loss`); returns the loss. ``benchmarks/device/smoke.py`` runs it too."""
    from medforensics.models.inference import autocast

    model.train()
    with autocast(cfg.precision, dev.type):
        loss = step_loss(model, x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), cfg, step)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss
