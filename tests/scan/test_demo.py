"""The demo: its truth matching (found only when a finding lies within 10 mm) and its output folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume
from medforensics.scan.demo import FOUND_WITHIN_MM, Truth, _recorded_lesion, match_truth
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


def test_demo_out_that_cannot_be_its_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    from medforensics.errors import ConfigError, OutputError
    from medforensics.scan.demo import check_demo_out

    afile = tmp_path / "afile"
    afile.write_text("x")
    busy = tmp_path / "busy"
    (busy / "original").mkdir(parents=True)
    (busy / "notes.txt").write_text("mine")
    for out, why in [(afile, "is a file"), (afile / "sub", "is a file"), (busy, "notes.txt")]:
        with pytest.raises(OutputError, match=why):
            check_demo_out(out, 0)
    assert (busy / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="--seed"):
        check_demo_out(tmp_path / "new", -1)
    rerun = tmp_path / "rerun"  # the demo's own earlier output may be replaced
    for name in ("original", "tampered", "report"):
        (rerun / name).mkdir(parents=True)
    check_demo_out(rerun, 0)
    check_demo_out(tmp_path / "new", 2**32 - 1)


def test_demo_cli_bad_out_is_one_line_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medforensics.cli import app

    (tmp_path / "afile").write_text("x")
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "afile")])
    assert res.exit_code == 2
    assert "is a file, not a folder" in res.output and "internal error" not in res.output


def test_demo_folder_refused_by_the_file_system_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder that passes the up-front check but cannot be made (``/proc/x`` as root: before, an internal
    error and exit 1)."""
    from typer.testing import CliRunner

    from medforensics.cli import app

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(Path, "mkdir", refuse)
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "new")])
    assert res.exit_code == 2, res.output
    assert f"{tmp_path / 'new'}: cannot be written (No such file or directory)" in res.output
    assert "internal error" not in res.output and "Traceback" not in res.output


def test_demo_removes_a_recorded_lesion_that_fits_else_none() -> None:
    vol = Volume(np.zeros((60, 120, 120), np.float32), spacing=(2.5, 1.0, 1.0), origin=(5.0, -7.0, 11.0))

    def lesion(index: tuple[int, int, int]) -> Nodule:
        mm = tuple(float(v) for v in vol.index_to_patient(np.asarray(index, np.float64)))
        return Nodule(center_voxel=index, center_mm=mm, diameter_mm=23.0)  # type: ignore[arg-type]

    avoid = (30, 30, 30)
    near, edge, fits = lesion((32, 40, 40)), lesion((30, 60, 118)), lesion((30, 90, 90))
    assert _recorded_lesion(vol, avoid, [near, edge]) is None  # 26 mm from the injection; at the border
    centre, note = _recorded_lesion(vol, avoid, [near, edge, fits])  # type: ignore[misc]
    assert centre == (30, 90, 90) and "23 mm" in note
