"""A scan of a DICOM series with one header value broken, in every slice or in one: each series ends with a
verdict or a one-line error, never an internal error, an exception or a hang (the values a fuzz of session
24 found wrong, and their neighbours)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest

from medforensics.scan.detector import Detector
from medforensics.scan.pipeline import scan_paths

CASES: list[tuple[str, Any]] = [
    ("NumberOfFrames", -1),
    ("NumberOfFrames", 0),
    ("NumberOfFrames", 100000),
    ("RescaleSlope", 0),
    ("RescaleSlope", -1),
    ("PixelSpacing", [1e-9, 1e-9]),
    ("PixelSpacing", [1e9, 1e9]),
    ("PixelSpacing", [0, 0]),
    ("PixelSpacing", [1]),
    ("SliceThickness", 0),
    ("ImagePositionPatient", [0, 0]),
    ("ImagePositionPatient", [0.0, 0.0, 0.0]),
    ("ImageOrientationPatient", [1, 0, 0, 1, 0, 0]),
    ("ImageOrientationPatient", [0, 0, 0, 0, 0, 0]),
    ("PhotometricInterpretation", "PALETTE COLOR"),
    ("PhotometricInterpretation", "FOO"),
    ("BitsAllocated", 12),
    ("BitsStored", 0),
    ("SamplesPerPixel", 3),
    ("Rows", 0),
    ("Columns", 1),
]


@pytest.mark.parametrize("scope", ["every slice", "one slice"])
@pytest.mark.parametrize(("keyword", "value"), CASES)
def test_a_broken_header_value_gives_a_verdict_or_a_one_line_error(
    tmp_path: Path, ct_series: Path, detector: Detector, keyword: str, value: Any, scope: str
) -> None:
    folder = tmp_path / "series"
    shutil.copytree(ct_series, folder)
    files = sorted(folder.glob("*.dcm"))
    for f in files if scope == "every slice" else files[3:4]:
        ds = pydicom.dcmread(f)
        setattr(ds, keyword, value)
        ds.save_as(f)
    report, _ = scan_paths([folder], detector=detector, signatures=False)
    assert report.series, "the series vanished from the report"
    for res in report.series:
        if res.verdict == "error":
            assert res.error and "\n" not in res.error and not res.error.startswith("internal error")
        else:
            assert res.error is None and res.score is not None
