"""Training: configs (JSON/TOML, strict), presets, data sources, the loop and checkpoints.

The names below are imported from their modules on first use: a scan that reads one training setting
(``dense_config``) does not import the training loop and, through its metrics, scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medforensics.train.build import build_model
    from medforensics.train.config import PRESETS, DataConfig, TrainConfig, config_from_dict, load_config
    from medforensics.train.data import ArraySource, ForgeDatasetSource, Sample, SampleSource, collect_splits
    from medforensics.train.loop import TrainResult, train

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
#: The module that defines each public name.
_HOME = {
    **dict.fromkeys(("PRESETS", "DataConfig", "TrainConfig", "config_from_dict", "load_config"), "config"),
    **dict.fromkeys(
        ("ArraySource", "ForgeDatasetSource", "Sample", "SampleSource", "collect_splits"), "data"
    ),
    **dict.fromkeys(("TrainResult", "train"), "loop"),
    "build_model": "build",
}


def __getattr__(name: str) -> Any:
    """A public name from its module (imported now)."""
    if name in _HOME:
        return getattr(importlib.import_module(f"medforensics.train.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
