"""Copies of a series given in one scan: scanned once, each reported under its own path."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import medforensics.scan.copies as copies
from medforensics.io.reader import discover
from medforensics.scan.detector import Detector
from medforensics.scan.pipeline import scan_paths
from tests.scan._helpers import another_series


@pytest.fixture
def archive(tmp_path: Path, ct_series: Path) -> Path:
    """``a``; ``b`` and ``c`` byte copies of it; ``d`` a copy with one pixel bit changed (same names and
    sizes); ``e`` the same pixels written as another series (new UIDs)."""
    root = tmp_path / "archive"
    for name in ("a", "b", "c", "d"):
        shutil.copytree(ct_series, root / name)
    f = sorted((root / "d").glob("*.dcm"))[5]
    data = bytearray(f.read_bytes())
    data[-100] ^= 0x01
    f.write_bytes(bytes(data))
    another_series(ct_series, root / "e")
    return root


def test_identical_series_are_found_by_bytes_and_only_look_alikes_are_hashed(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = discover([archive]).series
    assert [Path(r.path).name for r in refs] == ["a", "b", "c", "d", "e"]
    hashed: list[str] = []
    real = copies.files_digest

    def counting(files: Any) -> Any:
        files = list(files)
        hashed.append(Path(files[0]).parent.name)
        return real(files)

    monkeypatch.setattr(copies, "files_digest", counting)
    assert copies.identical_series(refs) == {1: 0, 2: 0}
    assert sorted(hashed) == ["a", "b", "c", "d"]  # e (another UID) is never read
    hashed.clear()
    assert copies.identical_series(refs, skip={0}) == {2: 1}


def test_a_copy_takes_the_first_one_s_result_under_its_own_path(
    archive: Path, detector: Detector, scans: list[str]
) -> None:
    report, volumes = scan_paths([archive], detector=detector, explain="gradcam", keep_volumes="lazy")
    assert scans == ["a", "d", "e"]
    a, b, c, d, e = report.series
    for copy in (b, c):
        assert copy.extra["same_as"] == a.path and copy.path != a.path
        assert (copy.verdict, copy.score, copy.label) == (a.verdict, a.score, a.label)
        assert [f.to_dict() for f in copy.findings] == [f.to_dict() for f in a.findings]
        assert copy.signature == a.signature == "absent"  # checked on the copy's own files
        assert copy.key and volumes[copy.key].shape == volumes[a.key].shape  # the writers read the copy
    assert "same_as" not in d.extra and "same_as" not in e.extra
    assert any(f.heatmap is not None for f in b.findings)
