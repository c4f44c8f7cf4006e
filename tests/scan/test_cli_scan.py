from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medforensics.cli import app
from medforensics.report import validate_report_dict
from tests.io.test_payload import lying_nifti


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


@pytest.mark.parametrize("name", ["bad.nii.gz", "bad.nrrd", "liar.nii.gz"])
def test_scan_exit_2_when_nothing_scanned(model_dir: Path, tmp_path: Path, name: str) -> None:
    bad = tmp_path / name
    if (
        name == "liar.nii.gz"
    ):  # a header promising 54 TB: the file is named, the machine's memory is not blamed
        lying_nifti(bad)
    else:
        bad.write_bytes(b"garbage" * 10)
    out = tmp_path / "scan.json"
    r = CliRunner().invoke(
        app, ["scan", str(bad), "--model", str(model_dir), "--json", str(out), "--no-audit"]
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
    series = json.loads(out.read_text())["series"][0]
    assert series["verdict"] == "error" and "\n" not in series["error"]
    assert "MemoryError" not in series["error"] and "Traceback" not in r.output
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


def test_max_pixel_mm_sets_the_in_plane_limit(model_dir: Path, ct_series: Path, tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    args = ["scan", str(ct_series), "--model", str(model_dir), "--json", str(out), "--no-audit"]
    args += ["--explain", "none"]
    r = CliRunner().invoke(app, [*args, "--max-pixel-mm", "0.1"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    err = json.loads(out.read_text())["series"][0]["error"]
    assert "up to 0.1 mm" in err and "not assessed" in err and "--max-pixel-mm" in err
    r = CliRunner().invoke(app, args)  # this model sets no limit
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


def test_outputs_that_would_change_an_input_or_each_other_are_refused_before_the_scan(
    ct_series: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import medforensics.scan.pipeline as pipeline

    series = tmp_path / "s1"
    shutil.copytree(ct_series, series)
    (series / "69.xml").write_text("<LidcReadMessage/>")  # an annotation beside the slices
    nifdir = tmp_path / "nifdir"
    nifdir.mkdir()
    (nifdir / "a.nii").write_bytes(b"\0" * 400)
    before = {p: p.read_bytes() for p in [*series.iterdir(), *nifdir.iterdir()]}
    scanned: list[object] = []
    monkeypatch.setattr(pipeline, "scan_volume", lambda *a, **k: scanned.append(a))
    out = tmp_path / "out"
    cases = [
        (series, ["--json", str(series / "69.xml")], "69.xml: is a file of the input"),
        (nifdir, ["--json", str(nifdir / "a.nii")], "a.nii: is a file of the input"),
        (series, ["--report", str(series / "69.xml")], "69.xml: is a file of the input"),
        (series, ["--sr", str(series)], "s1: is the input"),
        (series, ["--seg", str(series)], "s1: is the input"),
        (series, ["--sr", str(series / "sr")], "sr: lies inside the input"),
        (series, ["--seg", str(series / "seg")], "seg: lies inside the input"),
        (
            series,
            ["--json", str(out / "x"), "--report", str(out / "x")],
            "is both the --json and the --report",
        ),
        (series, ["--json", str(out / "x"), "--seg", str(out / "x")], "x: is the --seg folder"),
        (series, ["--report", str(out / "sr" / "r.html"), "--sr", str(out / "sr")], "lies inside the --sr"),
    ]
    for source, option, message in cases:
        r = CliRunner().invoke(app, ["scan", str(source), "--model", str(model_dir), "--no-audit", *option])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, (option, r.output)
        assert len(r.output.strip().splitlines()) == 1
    assert not scanned and not out.exists()
    assert {p: p.read_bytes() for p in [*series.iterdir(), *nifdir.iterdir()]} == before


def test_a_new_report_inside_an_input_folder_and_shared_sr_seg_folders_are_allowed(
    ct_series: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medforensics.cli.scan as scan_cli

    seen: list[object] = []

    def reached(model: object) -> None:
        seen.append(model)
        raise KeyError("stop here")

    monkeypatch.setattr(scan_cli, "load_detectors", reached)
    both = tmp_path / "dicom"
    args = ["--json", str(ct_series / "new.json"), "--sr", str(both), "--seg", str(both)]
    r = CliRunner().invoke(app, ["scan", str(ct_series), "--model", str(model_dir), "--no-audit", *args])
    assert seen and isinstance(r.exception, KeyError)  # the checks let it through to the scan


def test_why_a_series_got_no_sr_or_seg_is_said_on_stderr(
    ct_series: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from medforensics.io.nifti import write_nifti
    from medforensics.io.volume import Volume
    from tests.scan._helpers import tiny_detector_dir

    never = tiny_detector_dir(tmp_path / "never", {"platt": [1.0, 0.0], "threshold": 1.0})  # all authentic
    mr = tmp_path / "mr.nii.gz"
    write_nifti(
        Volume(np.random.default_rng(1).random((12, 32, 32)).astype(np.float32) * 500, modality="MR"), mr
    )
    studies = tmp_path / "studies"
    for name in ("a", "b"):
        shutil.copytree(ct_series, studies / name)
    sr, seg = tmp_path / "sr", tmp_path / "seg"
    args = ["--model", str(never), "--no-audit", "--sr", str(sr), "--seg", str(seg)]
    r = CliRunner().invoke(app, ["scan", str(mr), str(studies), *args])
    assert r.exit_code == 0, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3 and all(str(mr) in line and "series was not scanned" in line for line in lines[:2])
    assert lines[0].startswith("SR skipped: ") and lines[1].startswith("SEG skipped: ")
    # the authentic series: one line, not one each (was: "SEG skipped: <path>: ..." per series)
    summed = "SEG not written for 2 authentic series: no finding with a region to segment (-v names them)"
    assert lines[2] == summed
    assert len(list(sr.iterdir())) == 2 and not seg.exists()


def test_the_summary_prints_each_caveat_under_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    from medforensics.cli.scan import print_summary
    from medforensics.scan.result import ModelInfo, ScanReport, SeriesResult

    odd = SeriesResult(path="odd.nii.gz", verdict="authentic", score=0.3, modality="CT")
    odd.extra["caveats"] = ["pixels 0.98 mm, coarser than the 0.68-0.82 mm pixels"]
    plain = SeriesResult(path="plain.nii.gz", verdict="authentic", score=0.1, modality="CT")
    print_summary(ScanReport(model=ModelInfo("m", "1", "0" * 64), series=[odd, plain]))
    out = capsys.readouterr().out
    assert "odd.nii.gz: caveat: pixels 0.98 mm, coarser than the 0.68-0.82 mm pixels" in out
    assert out.count("caveat:") == 1


def test_the_summary_prints_bracketed_paths_literally_and_whole_in_a_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from medforensics.cli.scan import print_summary
    from medforensics.scan.result import ModelInfo, ScanReport, SeriesResult

    long = "/".join(["a-study-folder-with-a-long-name"] * 3)
    ok = SeriesResult(
        path=f"{long}/CT [contrast]", verdict="authentic", score=0.3, modality="CT", signature="absent"
    )
    ok.seconds = 12.5
    ok.extra["caveats"] = ["pixels [0.98 mm] coarser"]
    bad = SeriesResult(path="x[/]y", verdict="error", error="unreadable [/] header")
    report = ScanReport(model=ModelInfo("m", "1", "0" * 64), series=[ok, bad])
    report.skipped = [{"path": "junk [1].dcm", "reason": "not DICOM"}]
    print_summary(report)  # rich once read "[/]" as markup: a MarkupError after the whole scan
    out = capsys.readouterr().out
    assert "CT [contrast]" in out and "12.5" in out and "absent" in out  # the last columns, not cut at 80
    assert f"{long}/CT [contrast]: caveat: pixels [0.98 mm] coarser" in out
    assert "x[/]y: error: unreadable [/] header" in out and "skipped junk [1].dcm: not DICOM" in out
    assert out.rstrip().splitlines()[-1] == "2 series: 1 authentic, 1 error; 1 file skipped"


def test_the_tally_counts_each_verdict_and_what_was_not_assessed() -> None:
    from medforensics.cli.scan import tally
    from medforensics.scan.result import ModelInfo, ScanReport, SeriesResult

    def res(verdict: str, not_assessed: bool = False) -> SeriesResult:
        return SeriesResult(path="p", verdict=verdict, not_assessed=not_assessed)

    verdicts = ["authentic", "tampered", "tampered", "error", "error", "synthetic"]
    report = ScanReport(model=ModelInfo("m", "1", "0" * 64), series=[res(v) for v in verdicts])
    report.series.append(res("error", not_assessed=True))
    line = "7 series: 2 tampered, 1 synthetic, 1 authentic, 2 errors, 1 not assessed"
    assert tally(report) == line
    report.series[1].extra["same_as"] = "p"
    assert tally(report) == line + "; 1 byte-for-byte copy of an earlier series, not scanned again"
    assert tally(ScanReport(model=report.model)) == "0 series"


def test_a_series_folder_whose_name_is_not_utf8_is_scanned_and_reported(
    ct_series: Path, model_dir: Path, tmp_path: Path
) -> None:
    import os
    import shutil

    folder = tmp_path / os.fsdecode(b"Thorax_\xc4")  # a Latin-1 name from an old share
    shutil.copytree(ct_series, folder)
    out, html = tmp_path / "scan.json", tmp_path / "r.html"
    r = CliRunner().invoke(
        app, ["scan", str(folder), "--model", str(model_dir), "--json", str(out), "--report", str(html)]
    )  # the audit log too (MEDFORENSICS_HOME): it hashes the path
    assert r.exit_code == 0, r.output
    series = json.loads(out.read_text(encoding="utf-8"))["series"][0]
    assert series["path"].endswith("Thorax_\\xc4") and series["verdict"] == "tampered"
    assert "Thorax_\\xc4" in html.read_text(encoding="utf-8")
    assert (tmp_path / "home" / "audit.sqlite").is_file()


def test_no_clone_check_skips_the_duplicated_region_search(
    model_dir: Path, ct_series: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scan.json"
    args = ["scan", str(ct_series), "--model", str(model_dir), "--json", str(out), "--no-audit"]
    args += ["--explain", "none"]
    for extra, searched in (([], True), (["--no-clone-check"], False)):
        r = CliRunner().invoke(app, [*args, *extra])
        assert r.exit_code == 0, r.output
        (series,) = json.loads(out.read_text())["series"]
        assert ("clones" in series.get("extra", {})) is searched
        assert "slice_clones" not in series.get("extra", {})


def test_clone_region_body_also_searches_every_slice_and_an_unknown_region_is_refused(
    model_dir: Path, ct_series: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scan.json"
    args = ["scan", str(ct_series), "--model", str(model_dir), "--json", str(out), "--no-audit"]
    r = CliRunner().invoke(app, [*args, "--explain", "none", "--clone-region", "body"])
    assert r.exit_code == 0, r.output
    (series,) = json.loads(out.read_text())["series"]
    assert series["extra"]["clones"] == [] and series["extra"]["slice_clones"] == []
    r = CliRunner().invoke(app, [*args, "--clone-region", "liver"])
    assert r.exit_code == 2 and "--clone-region: 'liver'; known: lungs, body" in r.output


def test_jobs_reaches_the_scan_and_zero_jobs_is_refused(
    model_dir: Path, ct_series: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medforensics.scan import pipeline

    seen: list[int] = []
    real = pipeline.scan_paths

    def spy(*args: object, **kw: object) -> object:
        seen.append(kw["jobs"])  # type: ignore[arg-type]
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "scan_paths", spy)
    args = ["scan", str(ct_series), "--model", str(model_dir), "--explain", "none", "--no-audit"]
    r = CliRunner().invoke(app, [*args, "--jobs", "3", "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    assert seen == [3]  # one series: scanned here, no workers started
    r = CliRunner().invoke(app, [*args, "--jobs", "0"])
    assert r.exit_code == 2 and "--jobs" in r.output and not seen[1:]


def test_a_study_zip_is_scanned_with_every_output_and_named_by_the_archive(
    ct_series: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(ct_series.iterdir()):
            zf.write(f, f"export/CT/{f.name}")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    out, html, seg = tmp_path / "scan.json", tmp_path / "r.html", tmp_path / "seg"
    args = ["scan", str(archive), "--model", str(model_dir), "--json", str(out), "--report", str(html)]
    r = CliRunner().invoke(app, [*args, "--seg", str(seg), "--explain", "none", "--no-audit"])
    assert r.exit_code == 0, r.output
    series = json.loads(out.read_text())["series"]
    assert [(s["path"], s["verdict"]) for s in series] == [(f"{archive}/export/CT", "tampered")]
    assert any(seg.iterdir()) and f"{archive}/export/CT" in html.read_text()
    assert list(scratch.iterdir()) == []  # the unpacked copy is gone


def test_no_thumbnails_reaches_the_html_report(ct_series: Path, tmp_path: Path) -> None:
    from tests.scan._helpers import tiny_detector_dir

    never = tiny_detector_dir(tmp_path / "never", {"platt": [1.0, 0.0], "threshold": 1.0})  # all authentic
    base = ["scan", str(ct_series), "--model", str(never), "--explain", "none", "--no-audit"]
    sizes = {}
    for flag in ([], ["--no-thumbnails"]):
        html = tmp_path / f"r{len(flag)}.html"
        r = CliRunner().invoke(app, [*base, "--report", str(html), *flag])
        assert r.exit_code == 0, r.output
        text = html.read_text()
        assert ("data:image/png" in text) == (not flag) and ("No picture" in text) == bool(flag)
        sizes[len(flag)] = len(text)
    assert sizes[1] < sizes[0]
    # above THUMBNAILS_UP_TO series none by default; --thumbnails draws them anyway
    import medforensics.report.html as report_html

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_html, "THUMBNAILS_UP_TO", 0)
        for flag in ([], ["--thumbnails"]):
            html = tmp_path / f"auto{len(flag)}.html"
            r = CliRunner().invoke(app, [*base, "--report", str(html), *flag])
            assert r.exit_code == 0, r.output
            text = html.read_text()
            assert ("data:image/png" in text) == bool(flag) and ("more than 0 series" in text) != bool(flag)


def test_json_dash_writes_the_report_to_stdout_and_the_table_to_stderr(
    ct_series: Path,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    from medforensics.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["medforensics", "scan", str(ct_series), "--model", str(model_dir), "--explain", "none"]
    monkeypatch.setattr(sys, "argv", [*argv, "--no-audit", "--json", "-"])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    assert info.value.code == 0
    data = json.loads(out)  # nothing but the JSON on stdout: `scan ... --json - | jq` works
    assert validate_report_dict(data) == [] and data["series"][0]["verdict"] == "tampered"
    assert "medforensics scan" in err and "1 series: 1 tampered" in err and "json: -" in err
    assert list(tmp_path.iterdir()) == []  # no file named "-"


def test_an_archive_s_many_skipped_files_are_counted_by_reason_under_the_first_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from medforensics.cli.scan import SKIPPED_LINES, print_summary
    from medforensics.scan.result import ModelInfo, ScanReport, SeriesResult

    report = ScanReport(
        model=ModelInfo("m", "1", "0" * 64), series=[SeriesResult(path="s", verdict="authentic")]
    )
    reasons = ["not DICOM"] * 30 + ["DICOM without an image (KOS)"] * 12 + ["empty file (0 bytes)"] * 3
    report.skipped = [{"path": f"f{k:03d}", "reason": r} for k, r in enumerate(reasons)]
    print_summary(report)
    out = capsys.readouterr().out
    assert out.count("skipped f0") + out.count("skipped f1") == SKIPPED_LINES == 20
    assert "... and 25 more skipped (12 DICOM without an image (KOS); 10 not DICOM; 3 empty file" in out
    assert "(0 bytes)): each is in the JSON" in out
    assert out.rstrip().splitlines()[-1] == "1 series: 1 authentic; 45 files skipped"


def test_an_archive_s_many_not_assessed_members_are_counted_by_kind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from medforensics.cli.scan import SKIPPED_LINES, print_summary
    from medforensics.scan.result import ModelInfo, ScanReport, SeriesResult

    def member(k: int, reason: str) -> SeriesResult:
        return SeriesResult(path=f"s{k:03d}", verdict="error", error=reason, not_assessed=True)

    scout = "CT localizer (scout/topogram, ImageType LOCALIZER): a projection image; not assessed"
    thick = "slices 5 mm apart: the CT detector is validated for slices up to 3 mm apart"
    series = [member(k, scout if k % 2 else thick) for k in range(30)]
    series.append(SeriesResult(path="broken", verdict="error", error="no pixel data"))
    print_summary(ScanReport(model=ModelInfo("m", "1", "0" * 64), series=series))
    out = capsys.readouterr().out
    assert out.count(": not assessed: ") == SKIPPED_LINES and "broken: error: no pixel data" in out
    assert (
        "... and 10 more not assessed (5 slices 5 mm apart; 5 CT localizer (scout/topogram, ImageType" in out
    )


@pytest.mark.parametrize("option", ["--report", "--sr", "--seg", "--journal"])
def test_a_dash_is_stdout_for_json_only(
    ct_series: Path, model_dir: Path, tmp_path: Path, option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["scan", str(ct_series), "--model", str(model_dir), option, "-"])
    assert (
        r.exit_code == 2
        and f"stands for stdout, which only --json writes to: give {option} a path" in r.output
    )
    assert list(tmp_path.iterdir()) == []  # no file or folder named "-"


def test_fail_on_alarm_exits_1_for_a_flagged_series_and_keeps_2_for_nothing_scanned(
    ct_series: Path, model_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"garbage" * 10)
    base = ["scan", "--model", str(model_dir), "--explain", "none", "--no-audit", "--no-signatures"]
    flagged = CliRunner().invoke(app, [*base, str(ct_series), str(bad), "--fail-on-alarm"])
    assert flagged.exit_code == 1, flagged.output  # the test detector flags every series
    assert CliRunner().invoke(app, [*base, str(ct_series), str(bad)]).exit_code == 0  # opt-in only
    assert CliRunner().invoke(app, [*base, str(bad), "--fail-on-alarm"]).exit_code == 2


def test_alarms_are_flagged_series_and_bad_signatures_not_errors() -> None:
    from medforensics.scan.result import ModelInfo, ScanReport, SeriesResult

    def report(*series: tuple[str, str | None]) -> ScanReport:
        rows = [SeriesResult(path=f"s{i}", verdict=v, signature=sig) for i, (v, sig) in enumerate(series)]
        return ScanReport(model=ModelInfo("m", "1", "0" * 64), series=rows)

    assert report(("authentic", "valid"), ("error", None)).alarm_exit_status() == 0
    assert report(("authentic", None), ("synthetic", None)).alarm_exit_status() == 1
    for sig in ("invalid", "mixed", "untrusted"):
        assert report(("authentic", sig)).alarm_exit_status() == 1
    assert report(("error", "invalid")).alarm_exit_status() == 2  # nothing scanned
    assert [s.path for s in report(("tampered", None), ("authentic", "absent")).alarms] == ["s0"]
