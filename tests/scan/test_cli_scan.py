from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medforensics.cli import app
from medforensics.report import validate_report_dict


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFORENSICS_HOME", str(tmp_path / "home"))


def test_scan_writes_json_and_exits_0(ct_series: Path, model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti at all" * 10)
    out = tmp_path / "out" / "scan.json"
    r = CliRunner().invoke(
        app,
        [
            "scan",
            str(ct_series),
            str(bad),
            "--model",
            str(model_dir),
            "--json",
            str(out),
            "--explain",
            "none",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert validate_report_dict(d) == []
    assert [s["verdict"] for s in d["series"]] == ["error", "tampered"] or sorted(
        s["verdict"] for s in d["series"]
    ) == ["error", "tampered"]
    assert "tampered" in r.output.replace("\n", "") and (tmp_path / "home" / "audit.sqlite").is_file()


@pytest.mark.parametrize("name", ["bad.nii.gz", "bad.nrrd"])
def test_scan_exit_2_when_nothing_scanned(model_dir: Path, tmp_path: Path, name: str) -> None:
    bad = tmp_path / name
    bad.write_bytes(b"garbage" * 10)
    out = tmp_path / "scan.json"
    r = CliRunner().invoke(
        app, ["scan", str(bad), "--model", str(model_dir), "--json", str(out), "--no-audit"]
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
    series = json.loads(out.read_text())["series"][0]
    assert series["verdict"] == "error" and "\n" not in series["error"]
    assert not (tmp_path / "home" / "audit.sqlite").exists()


def test_scan_without_bundled_detector_is_one_line_error(
    ct_series: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medforensics.scan import detector as D

    monkeypatch.setattr(D, "bundled_dir", lambda kind="detector": tmp_path / kind)
    r = CliRunner().invoke(app, ["scan", str(ct_series)])
    assert r.exit_code == 2
    assert "no bundled CT detector" in r.output and "Traceback" not in r.output


def test_scan_html_sr_seg(ct_series: Path, model_dir: Path, tmp_path: Path) -> None:
    html, sr, seg = tmp_path / "r.html", tmp_path / "sr", tmp_path / "seg"
    r = CliRunner().invoke(
        app,
        [
            "scan",
            str(ct_series),
            "--model",
            str(model_dir),
            "--report",
            str(html),
            "--sr",
            str(sr),
            "--seg",
            str(seg),
        ],
    )
    assert r.exit_code == 0, r.output
    assert html.stat().st_size > 1000 and any(sr.iterdir()) and any(seg.iterdir())


def test_thick_series_is_not_assessed_unless_max_slice_mm_allows_it(model_dir: Path, tmp_path: Path) -> None:
    from medforensics.io.dicom_write import write_dicom_series
    from tests.scan._helpers import ct_crop

    thin = ct_crop()
    thick = thin.with_array(
        thin.array[::2].copy(), spacing=(2 * thin.spacing[0], thin.spacing[1], thin.spacing[2])
    )
    folder = tmp_path / "thick"
    write_dicom_series(thick, folder)
    out = tmp_path / "scan.json"
    args = ["scan", str(folder), "--model", str(model_dir), "--json", str(out), "--no-audit"]
    args += ["--explain", "none"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "Traceback" not in r.output
    err = json.loads(out.read_text())["series"][0]["error"]
    assert "slices 5 mm apart" in err and "up to 3 mm" in err and "not assessed" in err
    r = CliRunner().invoke(app, [*args, "--max-slice-mm", "6"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["series"][0]["verdict"] in ("authentic", "tampered")


def test_outputs_that_cannot_be_written_are_refused_before_the_scan(
    ct_series: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medforensics.scan.pipeline as pipeline

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "a_dir").mkdir()
    scanned: list[object] = []
    monkeypatch.setattr(pipeline, "scan_volume", lambda *a, **k: scanned.append(a))
    cases = [
        (["--json", str(a_file / "r.json")], "a_file is a file, not a folder"),
        (["--json", str(tmp_path / "a_dir")], "is a folder, not a file"),
        (["--report", str(tmp_path / "a_dir")], "is a folder, not a file"),
        (["--sr", str(a_file)], "is a file, not a folder"),
        (["--seg", str(a_file)], "is a file, not a folder"),
        (["--explain", "gradcom"], "--explain: unknown method 'gradcom'; known: gradcam, occlusion, none"),
    ]
    for option, message in cases:
        r = CliRunner().invoke(
            app, ["scan", str(ct_series), "--model", str(model_dir), "--no-audit", *option]
        )
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1 and option[1] in r.output
    assert not scanned and a_file.read_text() == "x"
