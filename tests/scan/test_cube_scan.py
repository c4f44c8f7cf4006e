"""The cube detector's CT path (``scan.cube_scan``): candidates scored, refined and aggregated."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from medforensics.errors import MedforensicsError
from medforensics.scan.cube_scan import REFINE_TOP, scan_ct
from medforensics.scan.detector import Detector
from medforensics.scan.result import SeriesResult
from tests.scan._helpers import ct_crop, tiny_detector_dir


def test_candidates_are_scored_refined_and_reported_above_the_threshold(detector: Detector) -> None:
    """The fixture's threshold of 0 flags every candidate: findings (at most MAX_FINDINGS, apart in mm)
    with boxes inside the volume, and the 26 lattice neighbours of each of the best few scored too."""
    vol = ct_crop()
    res = SeriesResult(path="ct")
    scan_ct(vol, detector, res, explain=None)
    extra = res.extra
    assert res.verdict == "tampered" and extra["candidates"] > 0
    assert extra["refined"] == 26 * min(REFINE_TOP, extra["candidates"])
    found = [f for f in res.findings if f.type in ("injected", "removed")]
    assert 1 <= len(found) <= 5
    for f in found:
        assert f.bbox_voxel is not None
        z0, y0, x0, z1, y1, x1 = f.bbox_voxel
        assert 0 <= z0 < z1 <= vol.shape[0] and 0 <= y0 < y1 <= vol.shape[1] and 0 <= x0 < x1 <= vol.shape[2]


def test_a_threshold_no_candidate_reaches_gives_no_finding(tmp_path: Path) -> None:
    det = Detector.from_dir(tiny_detector_dir(tmp_path / "m", {"platt": [1.0, 0.0], "threshold": 1.0}))
    res = SeriesResult(path="ct")
    scan_ct(ct_crop(), det, res, explain=None)
    assert res.verdict == "authentic"
    assert not [f for f in res.findings if f.type in ("injected", "removed")]


def test_a_detector_of_other_inputs_is_refused(detector: Detector, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detector, "spec", dataclasses.replace(detector.spec, kind="2d"))
    with pytest.raises(MedforensicsError, match="CT volumes need a 3-D detector"):
        scan_ct(ct_crop(), detector, SeriesResult(path="ct"))
