"""Evaluation: metrics, calibration, operating point, figures and the ``evaluate`` runner.

The names below are imported from :mod:`~medforensics.evaluate.metrics` on first use (it imports
scikit-learn), so a scan that only applies a calibration (:mod:`~medforensics.evaluate.calibration`) does not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medforensics.evaluate.metrics import (
        binary_metrics,
        evaluate_predictions,
        threshold_at_fpr,
        tpr_at_fpr,
    )

__all__ = ["binary_metrics", "evaluate_predictions", "threshold_at_fpr", "tpr_at_fpr"]


def __getattr__(name: str) -> Any:
    """A public name from :mod:`~medforensics.evaluate.metrics` (imported now)."""
    if name in __all__:
        return getattr(importlib.import_module("medforensics.evaluate.metrics"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
