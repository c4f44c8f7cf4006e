"""The demo's truth matching: a truth is found only when a finding's centre lies within 10 mm."""

from __future__ import annotations

import pytest

from medforensics.scan.demo import FOUND_WITHIN_MM, Truth, match_truth
from medforensics.scan.result import Finding, ModelInfo, ScanReport, SeriesResult


def _report(findings: list[Finding]) -> ScanReport:
    decoy = Finding("injected", 0.9, (10, 10, 10), (0.0, 0.0, 0.0))  # on the truth, but in the other series
    other = SeriesResult("original", verdict="authentic", findings=[decoy])
    tampered = SeriesResult("tampered", verdict="tampered", findings=findings)
    return ScanReport(ModelInfo("m", "1", "0" * 64), [other, tampered])


TRUTHS = [
    Truth("injected", "ctgan-inject", (10, 10, 10), (0.0, 0.0, 0.0)),
    Truth("removed", "ctgan-remove", (20, 20, 20), (100.0, 0.0, 0.0)),
]


def test_nearest_finding_within_10_mm_is_a_hit_farther_is_a_miss() -> None:
    findings = [
        Finding("injected", 0.98, (10, 10, 13), (0.0, 0.0, 6.0)),
        Finding("removed", 0.80, (20, 20, 20), (100.0, 0.0, FOUND_WITHIN_MM + 0.5)),
        Finding("metadata", 1.0, (0, 0, 0), (100.0, 0.0, 0.0)),  # not an image finding: never matched
    ]
    inj, rem = match_truth(_report(findings), "tampered", TRUTHS)
    assert inj["found"] == "injected" and inj["hit"] and inj["distance_mm"] == pytest.approx(6.0)
    assert rem["found"] == "removed" and not rem["hit"]
    assert rem["distance_mm"] == pytest.approx(FOUND_WITHIN_MM + 0.5)


def test_no_image_finding_is_a_miss_without_distance() -> None:
    out = match_truth(_report([]), "tampered", TRUTHS)
    assert [m["hit"] for m in out] == [False, False]
    assert [m["distance_mm"] for m in out] == [None, None]
