from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import ConfigError, InputError
from medforensics.scan import detector as D
from tests.scan._helpers import tiny_detector_dir


def test_loads_model_folder_with_spec_and_hash(model_dir: Path) -> None:
    det = D.Detector.from_dir(model_dir)
    assert det.spec.kind == "3d" and det.spec.size == 16 and det.spec.cube_mm == 16.0
    assert det.spec.classes == ("authentic", "injected", "removed")
    assert det.info.sha256 == hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert det.info.threshold == 0.0 and det.calibration.present


def test_uncalibrated_folder_says_so(tmp_path: Path) -> None:
    det = D.Detector.from_dir(tiny_detector_dir(tmp_path / "m"))
    assert not det.calibration.present and det.info.threshold == 0.5
    assert "uncalibrated" in det.info.version


def test_score_cubes_shapes_ranges_and_calibration(tmp_path: Path) -> None:
    cubes = np.random.default_rng(0).uniform(-1000, 400, (5, 16, 16, 16)).astype(np.float32)
    raw = D.Detector.from_dir(tiny_detector_dir(tmp_path / "a"))
    p, pt = raw.score_cubes(cubes)
    assert p.shape == (5,) and pt.shape == (5, 3)
    assert np.all((p >= 0) & (p <= 1)) and np.allclose(pt.sum(1), 1, atol=1e-3)
    # p_tamper = 1 - p(authentic)
    assert np.allclose(p, 1 - pt[:, 0], atol=2e-2)
    cal = D.Detector.from_dir(tiny_detector_dir(tmp_path / "b", {"platt": [2.0, -1.0], "threshold": 0.9}))
    q, _ = cal.score_cubes(cubes)
    logit = np.log(p / (1 - p))
    assert np.allclose(q, 1 / (1 + np.exp(-(2 * logit - 1))), atol=1e-6)
    assert raw.score_cubes(np.zeros((0, 16, 16, 16)))[0].shape == (0,)


def test_no_bundled_detector_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(D, "bundled_dir", lambda kind="detector": tmp_path / kind)
    with pytest.raises(ConfigError, match="no bundled CT detector"):
        D.Detector.default()


def test_bad_calibration_and_missing_folder(tmp_path: Path) -> None:
    folder = tiny_detector_dir(tmp_path / "m")
    (folder / "calibration.json").write_text(json.dumps({"threshold": 3}))
    with pytest.raises(InputError, match="thresholds"):
        D.Detector.from_dir(folder)
    with pytest.raises(InputError, match="does not exist"):
        D.Detector.from_dir(tmp_path / "nope")


@pytest.mark.parametrize(
    "calibration",
    [
        {"series_threshold": "abc"},
        {"series_threshold": [0.5]},
        {"max_fpr": "abc"},
        {"max_fpr": 2.0},
        {"platt": [float("nan"), 0.0]},
        {"platt": [1.0, float("inf")]},
        {"platt": [1.0]},
        {"threshold": float("nan")},
        {"uncorrelated_noise": {"below": float("nan"), "series_threshold": 0.9}},
        {"uncorrelated_noise": {"below": 0.15}},
        {"views": 0},
        {"views": 9},
        {"views": 2.0},
        {"views": "4"},
        {"views": 4, "screen": 1.5},
        {"views": 4, "screen": "0.8"},
        [0.5],
    ],
)
def test_a_calibration_value_that_is_not_a_finite_number_is_one_error_naming_the_file(
    tmp_path: Path, calibration: object
) -> None:
    folder = tiny_detector_dir(tmp_path / "m")
    (folder / "calibration.json").write_text(json.dumps(calibration))
    with pytest.raises(InputError, match=r"m/calibration\.json: ") as info:
        D.Detector.from_dir(folder)
    assert "\n" not in info.value.one_line()


def test_metrics_that_are_not_a_json_object_are_one_error_naming_the_file(tmp_path: Path) -> None:
    folder = tiny_detector_dir(tmp_path / "m")
    (folder / "metrics.json").write_text("[]")
    with pytest.raises(InputError, match=r"m/metrics\.json: training metrics must be a JSON object"):
        D.Detector.from_dir(folder)


def test_the_screen_never_rises_above_what_keeps_every_verdict_of_the_full_views() -> None:
    # raw threshold 0.9 on the identity Platt map: four views' mean reaches it only where the first view
    # reaches 4 * 0.9 - 3 = 0.6
    cal = D.Calibration(series_threshold=0.9, present=True, views=4, screen=0.85)
    assert cal.screen_level() == pytest.approx(0.6)
    assert D.Calibration(series_threshold=0.9, present=True, views=4, screen=0.5).screen_level() == 0.5
    lower = D.Calibration(series_threshold=0.9, present=True, views=4, screen=0.85, uncorrelated=(0.15, 0.8))
    assert lower.screen_level() == pytest.approx(0.2)  # the lowest operating point bounds it
    # on a Platt map the bound is in raw terms: sigmoid(2 * logit(p) - 1) = 0.9 at p = 0.83182
    platt = D.Calibration(a=2.0, b=-1.0, series_threshold=0.9, present=True, views=2, screen=0.85)
    assert platt.screen_level() == pytest.approx(2 * 0.83182 - 1, abs=1e-4)
    assert D.Calibration(views=4, screen=0.85).screen_level() == 0.85  # a fit in progress: no thresholds
    assert D.Calibration(series_threshold=0.9, present=True, views=1, screen=0.85).screen_level() is None
    assert D.Calibration(series_threshold=0.9, present=True, views=4).screen_level() is None


def test_a_calibrations_screen_is_read(tmp_path: Path) -> None:
    folder = tiny_detector_dir(
        tmp_path / "m", {"platt": [1.0, 0.0], "threshold": 0.9, "views": 4, "screen": 0.3}
    )
    cal = D.Detector.from_dir(folder).calibration
    assert (cal.views, cal.screen, cal.screen_level()) == (4, 0.3, 0.3)
