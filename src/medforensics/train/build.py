"""A training config's model: its input size and channels, and the model built from them (no training
imports: loading a trained detector for a scan uses this alone)."""

from __future__ import annotations

import inspect
from typing import Any

from medforensics.errors import ConfigError
from medforensics.models.registry import ModelInfo, create_model, model_info
from medforensics.train.config import TrainConfig
from medforensics.train.data import TASK_CLASSES


def input_size(cfg: TrainConfig, info: ModelInfo) -> int:
    """The crop/cube edge: the config's size, else the model default capped by ``data.max_size``."""
    if cfg.data.size is not None:
        return cfg.data.size
    return min(info.input_size, cfg.data.max_size) if cfg.data.max_size else info.input_size


def input_channels(cfg: TrainConfig, info: ModelInfo) -> int:
    """2.5D models take ``data.slices`` channels; others their registered count."""
    return cfg.data.slices if info.input_kind == "2.5d" else info.in_channels


def build_model(cfg: TrainConfig, *, pretrained: bool = True) -> Any:
    """The model of ``cfg`` (classes from the task; dropout/img_size/seed where accepted).

    ``pretrained=False`` skips a model's pretrained starting weights (a checkpoint replaces them anyway).
    """
    info = model_info(cfg.model)
    params = inspect.signature(info.factory).parameters
    kw: dict[str, Any] = {}
    if "dropout" in params and cfg.dropout is not None:
        kw["dropout"] = cfg.dropout
    if "img_size" in params:
        kw["img_size"] = input_size(cfg, info)
    if "seed" in params:
        kw["seed"] = cfg.seed
    if "class_weight" in params:
        kw["class_weight"] = "balanced" if cfg.class_weighting else None
    kw.update(cfg.model_kwargs)
    if not pretrained and "pretrained" in params:
        kw["pretrained"] = False
    num_classes = 2 if info.family == "anomaly" else len(TASK_CLASSES[cfg.data.task])
    if info.family == "anomaly" and cfg.data.task != "binary":
        raise ConfigError(f"model {cfg.model!r} scores real vs fake only: use data.task = 'binary'")
    return create_model(cfg.model, in_channels=input_channels(cfg, info), num_classes=num_classes, **kw)
