"""Calibration of a finished dense run: Platt scaling and the series operating point."""

from __future__ import annotations

import pytest

from medforensics.evaluate.metrics import apply_platt
from medforensics.train.dense_report import WHOLE_SERIES_MARGIN, calibrate


def test_threshold_stays_above_whole_authentic_series() -> None:
    rows = [{"score": s, "label": "TB"} for s in (0.1, 0.2, 0.3)] + [
        {"score": s, "label": "FM"} for s in (0.6, 0.7, 0.8)
    ]
    plain = calibrate(rows)
    raised = calibrate(rows, whole_authentic=[0.65])
    assert raised["platt"] == plain["platt"]
    assert raised["series_threshold"] > plain["series_threshold"]
    whole = float(apply_platt([0.65], plain["platt"])[0])
    assert raised["series_threshold"] == pytest.approx(min(whole + WHOLE_SERIES_MARGIN, (whole + 1) / 2))
    assert "whole authentic" in raised["fitted_on"]
