"""Calibration of a finished dense run: Platt scaling and the series operating point."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

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


def test_card_states_the_pixel_limit_when_the_config_sets_one(tmp_path: Path) -> None:
    from medforensics.train.dense_config import DenseConfig
    from medforensics.train.dense_report import model_card

    bundled = files("medforensics") / "assets" / "detector"
    (tmp_path / "calibration.json").write_text((bundled / "calibration.json").read_text())
    metrics = json.loads((bundled / "metrics.json").read_text())
    limited = model_card(DenseConfig(data="d", out=str(tmp_path), max_pixel_mm=1.0), metrics)
    assert "pixels exceed 1 mm (`max_pixel_mm`)" in limited
    assert "`--max-slice-mm` and `--max-pixel-mm` score them anyway" in limited
    plain = model_card(DenseConfig(data="d", out=str(tmp_path)), metrics)
    assert "max_pixel_mm" not in plain and "`--max-slice-mm` scores them anyway" in plain
