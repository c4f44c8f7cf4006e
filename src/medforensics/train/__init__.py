"""Training: configs (JSON/TOML, strict), presets, data sources, the loop and checkpoints."""

from __future__ import annotations

from medforensics.train.config import PRESETS, DataConfig, TrainConfig, config_from_dict, load_config
from medforensics.train.data import ArraySource, ForgeDatasetSource, Sample, SampleSource, collect_splits
from medforensics.train.loop import TrainResult, build_model, train

__all__ = [
    "PRESETS",
    "ArraySource",
    "DataConfig",
    "ForgeDatasetSource",
    "Sample",
    "SampleSource",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "collect_splits",
    "config_from_dict",
    "load_config",
    "train",
]
