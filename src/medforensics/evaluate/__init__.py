"""Evaluation: metrics, calibration, operating point, figures and the ``evaluate`` runner."""

from __future__ import annotations

from medforensics.evaluate.metrics import (
    binary_metrics,
    evaluate_predictions,
    threshold_at_fpr,
    tpr_at_fpr,
)

__all__ = ["binary_metrics", "evaluate_predictions", "threshold_at_fpr", "tpr_at_fpr"]
