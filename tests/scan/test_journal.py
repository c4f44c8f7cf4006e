"""The scan journal (``scan --journal``): results kept as each series is done, reused only while the series'
bytes and the scan's settings are those they were computed from."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import medforensics.scan.pipeline as pipeline
from medforensics.cli import app
from medforensics.scan.detector import Detector
from medforensics.scan.journal import MARKER, Journal, result_from_record, result_record
from medforensics.scan.pipeline import scan_paths
from medforensics.scan.result import Finding, SeriesResult


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFORENSICS_HOME", str(tmp_path / "home"))


@pytest.fixture
def studies(tmp_path: Path, ct_series: Path) -> Path:
    """Two series of the same CT (the second written with new UIDs) and a corrupt one."""
    from medforensics.io.dicom_write import write_dicom_series
    from medforensics.io.reader import read_volume

    root = tmp_path / "studies"
    shutil.copytree(ct_series, root / "a")
    write_dicom_series(read_volume(ct_series), root / "b", new_uids=True)
    (root / "bad").mkdir()
    src = sorted(ct_series.glob("*.dcm"))[0].read_bytes()
    (root / "bad" / "x.dcm").write_bytes(src[: len(src) // 2])
    return root


def _scan(root: Path, det: Detector, journal: Journal, **kw: Any) -> Any:
    """A scan with Grad-CAM heatmaps (and masks): the arrays the journal keeps beside an entry."""
    kw.setdefault("explain", "gradcam")
    report, _ = scan_paths([root], detector=det, signatures=False, journal=journal, **kw)
    return report


def _as_kept(report: Any) -> dict[str, Any]:
    """The report's JSON object but the seconds of series that ended in an error (scanned again each time:
    their time differs)."""
    out = report.to_dict()
    for s in out["series"]:
        if s["verdict"] == "error":
            s.pop("seconds")
    return out


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.name != MARKER)


def test_a_second_scan_reuses_every_result_as_it_was_and_tries_errors_again(
    studies: Path, detector: Detector, tmp_path: Path, scans: list[str]
) -> None:
    first = _scan(studies, detector, Journal(tmp_path / "j"))
    assert sorted(scans) == ["a", "b", "x.dcm"] and [s.verdict for s in first.series].count("error") == 1
    assert len(_entries(tmp_path / "j")) == 2  # the error is not kept
    scans.clear()
    journal = Journal(tmp_path / "j")
    second = _scan(studies, detector, journal)
    assert scans == ["x.dcm"] and (journal.reused, journal.written, journal.stale) == (2, 0, 0)
    assert _as_kept(second) == _as_kept(first)
    for old, new in zip(first.series, second.series, strict=True):
        assert [f.to_dict() for f in new.findings] == [f.to_dict() for f in old.findings]  # order kept
        for f_old, f_new in zip(old.findings, new.findings, strict=True):
            for name in ("heatmap", "mask"):
                a, b = getattr(f_old, name), getattr(f_new, name)
                assert (a is None) == (b is None) and (a is None or np.array_equal(a, b))
    assert any(f.heatmap is not None for s in second.series for f in s.findings)


def test_an_interrupted_scan_resumes_with_the_series_not_yet_done(
    studies: Path, detector: Detector, tmp_path: Path, scans: list[str]
) -> None:
    def stop(i: int, _n: int, _label: str) -> None:
        if i == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _scan(studies, detector, Journal(tmp_path / "j"), on_progress=stop)
    assert scans == ["a"] and len(_entries(tmp_path / "j")) == 1
    scans.clear()
    journal = Journal(tmp_path / "j")
    report = _scan(studies, detector, journal)
    assert scans == ["b", "x.dcm"] and journal.reused == 1
    assert [s.verdict for s in report.series].count("tampered") == 2


def test_a_file_edited_in_place_with_its_size_and_time_kept_is_scanned_again(
    studies: Path, detector: Detector, tmp_path: Path, scans: list[str]
) -> None:
    _scan(studies, detector, Journal(tmp_path / "j"))
    f = sorted((studies / "a").glob("*.dcm"))[5]
    st, data = f.stat(), bytearray(f.read_bytes())
    data[-100] ^= 0x01  # one pixel's low bit: same size
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    scans.clear()
    journal = Journal(tmp_path / "j")
    _scan(studies, detector, journal)
    assert sorted(scans) == ["a", "x.dcm"] and (journal.reused, journal.stale, journal.written) == (1, 1, 1)
    scans.clear()
    _scan(studies, detector, Journal(tmp_path / "j"))  # its new entry replaced the old one
    assert scans == ["x.dcm"] and len(_entries(tmp_path / "j")) == 2


def _without_path(report: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "path"} for s in _as_kept(report)["series"]]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_moved_export_is_reused_and_reported_under_its_new_path(
    studies: Path, detector: Detector, tmp_path: Path, scans: list[str], jobs: int
) -> None:
    first = _scan(studies, detector, Journal(tmp_path / "j"))
    moved = tmp_path / "exports" / "2026-12-08"
    moved.parent.mkdir()
    studies.rename(moved)
    scans.clear()
    journal = Journal(tmp_path / "j")
    second = _scan(moved, detector, journal, jobs=jobs)
    assert scans == ["x.dcm"] and (journal.reused, journal.copies, journal.written) == (2, 2, 0)
    assert [s.path for s in second.series] == [s.path.replace(str(studies), str(moved)) for s in first.series]
    assert _without_path(second) == _without_path(first)
    assert "2 series reused (2 of them found at another path)" in journal.summary()
    assert any(f.heatmap is not None for s in second.series for f in s.findings)


def test_a_copy_elsewhere_is_scanned_once_and_an_edited_copy_again(
    studies: Path, detector: Detector, tmp_path: Path, scans: list[str]
) -> None:
    root = tmp_path / "copies"
    for name in ("p1", "p2", "p3"):
        shutil.copytree(studies / "a", root / name)
    f = sorted((root / "p3").glob("*.dcm"))[5]
    data = bytearray(f.read_bytes())
    data[-100] ^= 0x01  # one pixel's low bit: the same names and sizes, other bytes
    f.write_bytes(bytes(data))
    journal = Journal(tmp_path / "j")
    report = _scan(root, detector, journal)  # p2: a copy of p1 in the same scan, not a journal entry
    assert scans == ["p1", "p3"] and (journal.reused, journal.copies, journal.written) == (0, 0, 2)
    p1, p2, p3 = _as_kept(report)["series"]
    assert p2["path"] == str(root / "p2") and p2["extra"].pop("same_as") == p1["path"]
    assert {**p2, "path": p1["path"], "seconds": p1["seconds"]} == p1
    assert p3["path"] == str(root / "p3") and "same_as" not in p3["extra"]
    scans.clear()
    (root / "p1").rename(root / "p0")  # both entries are candidates for it: the one of its bytes is taken
    again = Journal(tmp_path / "j")
    report = _scan(root, detector, again)
    assert scans == [] and (again.reused, again.copies) == (2, 1)  # p0 by p1's entry, p3 by its own
    assert [s.path for s in report.series] == [str(root / n) for n in ("p0", "p2", "p3")]
    assert report.series[1].extra["same_as"] == str(root / "p0")  # p2: a copy of p0 in this scan
    assert [s.path for s in report.series] == [str(root / n) for n in ("p0", "p2", "p3")]


def test_other_settings_or_another_detector_scan_again(
    studies: Path, detector: Detector, tmp_path: Path, scans: list[str]
) -> None:
    _scan(studies, detector, Journal(tmp_path / "j"))
    other = copy.copy(detector)
    other.clone_check = not detector.clone_check
    scans.clear()
    journal = Journal(tmp_path / "j")
    _scan(studies, other, journal)
    assert sorted(scans) == ["a", "b", "x.dcm"] and journal.stale == 2
    scans.clear()
    _scan(studies, other, Journal(tmp_path / "j"), jobs=1)
    assert scans == ["x.dcm"]
    scans.clear()
    journal = Journal(tmp_path / "j")
    _scan(studies, other, journal, explain=None)
    assert sorted(scans) == ["a", "b", "x.dcm"] and journal.stale == 2


def test_an_unreadable_entry_or_arrays_file_is_scanned_again(
    studies: Path, detector: Detector, tmp_path: Path, scans: list[str]
) -> None:
    first = _scan(studies, detector, Journal(tmp_path / "j"))
    entries = _entries(tmp_path / "j")
    entries[0].write_text('{"format": 1, "fingerprint"')  # cut short by a disk error
    npz = sorted((tmp_path / "j").glob("*.npz"))
    assert npz, "the tiny detector flags findings with heatmaps"
    for p in npz:
        p.write_bytes(b"not an npz")
    scans.clear()
    journal = Journal(tmp_path / "j")
    second = _scan(studies, detector, journal)
    assert sorted(scans) == ["a", "b", "x.dcm"] and journal.written == 2
    assert (journal.unreadable, journal.forged) == (1, 1)  # changed arrays fail the entry's authentication
    assert second.to_dict() == first.to_dict() | {"series": second.to_dict()["series"]}
    assert [s.verdict for s in second.series] == [s.verdict for s in first.series]


def test_series_scanned_in_workers_are_kept_and_reused(
    studies: Path, detector: Detector, tmp_path: Path
) -> None:
    first = _scan(studies, detector, Journal(tmp_path / "j"), jobs=2)
    assert len(_entries(tmp_path / "j")) == 2
    journal, seen = Journal(tmp_path / "j"), []
    # only the error is left: scanned here
    second = _scan(studies, detector, journal, jobs=2, on_progress=lambda i, n, label: seen.append(label))
    assert journal.reused == 2 and _as_kept(second) == _as_kept(first)
    assert [label.startswith("(journal) ") for label in seen[:3]] == [True] * 3  # the lookups are shown


def test_a_result_survives_its_record_whole() -> None:
    heat = np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    res = SeriesResult(
        path="s/\udcff",  # a name that is not UTF-8, as read from the disk
        series_uid="1.2.3",
        modality="CT",
        shape=(2, 3, 4),
        spacing_mm=(2.5, 0.7, 0.7),
        verdict="tampered",
        score=0.123456789,
        label="FM",
        findings=[
            Finding("metadata", 0.9, description="x", check="slice_gap"),
            Finding(
                "injected", 0.95, (1, 1, 2), (1.5, -2.25, 3.0), (0, 0, 0, 2, 3, 4), "y", heat, heat > 0.5
            ),
        ],
        seconds=4.25,
        signature="absent",
        study_uid="9.8",
        extra={"grid_mm": [2.5, 1.4, 1.4], "views_screened": {"voxels": 3}, "nodules": []},
    )
    record, arrays = result_record(res)
    back = result_from_record(json.loads(json.dumps(record)), arrays)
    assert back == res  # every field, the findings in their order, full precision
    assert np.array_equal(back.findings[1].heatmap, heat) and back.findings[1].mask.dtype == bool
    assert back.findings[0].heatmap is None and isinstance(back.shape, tuple)


def test_cli_journal_reports_what_it_kept_and_refuses_a_folder_that_is_not_one(
    ct_series: Path, model_dir: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    base = ["scan", str(ct_series), "--model", str(model_dir), "--explain", "none", "--no-audit"]
    journal = tmp_path / "journal"
    r = runner.invoke(app, [*base, "--journal", str(journal), "--json", str(tmp_path / "1.json")])
    assert r.exit_code == 0, r.output
    assert f"journal {journal}: 0 series reused, 1 scanned and kept" in r.output.replace("\n", "")
    r = runner.invoke(app, [*base, "--journal", str(journal), "--json", str(tmp_path / "2.json")])
    assert "1 series reused, 0 scanned and kept" in r.output.replace("\n", "")
    assert (tmp_path / "1.json").read_text() == (tmp_path / "2.json").read_text()

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    inside = ct_series / "journal"
    for folder, why in ((busy, "is not a scan journal"), (inside, "inside the input")):
        r = runner.invoke(app, [*base, "--journal", str(folder)])
        assert r.exit_code == 2 and why in r.output and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1 or r.output.count("error") == 1
    assert (busy / "notes.txt").read_text() == "mine" and not inside.exists()
    r = runner.invoke(app, [*base, "--journal", str(tmp_path / "o"), "--sr", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--sr folder" in r.output


def test_ctrl_c_says_what_the_journal_kept_and_the_same_command_resumes(
    studies: Path,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    from medforensics.cli import main

    real, calls = pipeline._load_and_scan, []

    def interrupted_at_the_second(ref: Any, *args: Any) -> Any:
        calls.append(ref)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(ref, *args)

    journal, out = tmp_path / "j", tmp_path / "scan.json"
    argv = ["medforensics", "scan", str(studies), "--model", str(model_dir), "--explain", "none"]
    argv += ["--no-audit", "--journal", str(journal), "--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(pipeline, "_load_and_scan", interrupted_at_the_second)
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 130 and err[-1] == "interrupted"
    assert f"journal {journal}: 0 series reused, 1 scanned and kept; the same command resumes" in " ".join(
        err
    )
    assert not out.exists() and len(_entries(journal)) == 1
    monkeypatch.setattr(pipeline, "_load_and_scan", real)
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 0 and "1 series reused, 1 scanned and kept" in capsys.readouterr().err
    assert [s["verdict"] for s in json.loads(out.read_text())["series"]].count("tampered") == 2


def test_a_journal_that_cannot_be_written_part_way_costs_the_journal_not_the_scan(
    studies: Path, detector: Detector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medforensics.scan.journal as journal_mod
    from medforensics.errors import OutputError

    journal = Journal(tmp_path / "j")

    def full(target: Any, text: str) -> Path:
        raise OutputError("cannot be written (No space left on device)", path=target)

    real = journal_mod.write_text_atomic
    journal.bind({})  # the marker is written; then the disk fills up
    monkeypatch.setattr(journal_mod, "write_text_atomic", full)
    report = _scan(studies, detector, journal)
    assert [s.verdict for s in report.series].count("tampered") == 2 and journal.written == 0
    assert journal.summary().endswith("writing failed part-way (see the log)")
    monkeypatch.setattr(journal_mod, "write_text_atomic", real)
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == [MARKER]  # no arrays without an entry


def test_a_kept_result_gets_its_signature_checked_again(
    studies: Path, detector: Detector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scans: list[str]
) -> None:
    import medforensics.provenance as provenance

    status = {"now": "valid"}
    monkeypatch.setattr(provenance, "series_signature_status", lambda files, trusted=None: status["now"])
    first, _ = scan_paths([studies], detector=detector, signatures=True, journal=Journal(tmp_path / "j"))
    assert [s.signature for s in first.series if s.verdict != "error"] == ["valid", "valid"]
    status["now"] = "invalid"  # its certificate expired, say
    scans.clear()
    second, _ = scan_paths([studies], detector=detector, signatures=True, journal=Journal(tmp_path / "j"))
    assert scans == ["x.dcm"]  # the two CTs came from the journal
    for s in (s for s in second.series if s.verdict != "error"):
        assert s.signature == "invalid" and [f.type for f in s.findings].count("signature") == 1
    scans.clear()
    third, _ = scan_paths([studies], detector=detector, signatures=False, journal=Journal(tmp_path / "j"))
    assert scans == ["x.dcm"]  # the signature check is not a setting the results depend on
    for s in third.series:
        assert s.signature is None and not any(f.type == "signature" for f in s.findings)


def test_a_journal_folder_that_cannot_be_made_is_one_line_before_the_scan(
    ct_series: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medforensics.scan import pipeline as pl

    def never(*a: Any, **k: Any) -> Any:
        raise AssertionError("discovery ran before the journal folder was made")

    monkeypatch.setattr(pl, "discover", never)
    where = tmp_path / "j"
    monkeypatch.setattr(
        Path, "mkdir", lambda self, *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied"))
    )
    r = CliRunner().invoke(app, ["scan", str(ct_series), "--model", str(model_dir), "--journal", str(where)])
    assert r.exit_code == 2 and f"error: {where}: cannot be made (denied)" in r.output.replace("\n", "")
    assert "Traceback" not in r.output


def test_an_entry_changed_outside_medforensics_is_not_taken(
    studies: Path, detector: Detector, tmp_path: Path, scans: list[str]
) -> None:
    """A verdict written over a tampered series' entry (the journal folder writable, the key not readable)
    must not hide the series: its entry fails its authentication and the series is scanned again."""
    from medforensics.scan.journal_key import entry_mac, key_path

    first = _scan(studies, detector, Journal(tmp_path / "j"))
    assert [s.verdict for s in first.series].count("tampered") == 2  # the test detector flags everything
    entry = _entries(tmp_path / "j")[0]
    data = json.loads(entry.read_text())
    data["result"].update(verdict="authentic", score=0.01, findings=[])
    entry.write_text(json.dumps(data))  # the old MAC kept
    other = _entries(tmp_path / "j")[1]
    data = json.loads(other.read_text())
    data["result"].update(verdict="authentic", score=0.01, findings=[])
    data["mac"] = entry_mac(b"\x01" * 32, data, b"")  # a MAC under a key of the attacker's
    other.write_text(json.dumps(data))
    scans.clear()
    journal = Journal(tmp_path / "j")
    second = _scan(studies, detector, journal)
    assert sorted(scans) == ["a", "b", "x.dcm"]
    assert (journal.forged, journal.reused, journal.stale) == (2, 0, 0)  # not also counted as changed
    assert [s.verdict for s in second.series] == [s.verdict for s in first.series]
    assert "2 failed their authentication" in journal.summary()
    key = key_path()
    assert key.stat().st_mode & 0o777 == 0o600 and len(bytes.fromhex(key.read_text())) == 32
    key.unlink()  # another key (another account, a key deleted): nothing is taken, all is scanned again
    scans.clear()
    journal = Journal(tmp_path / "j")
    _scan(studies, detector, journal)
    assert sorted(scans) == ["a", "b", "x.dcm"] and journal.forged == 2 and key.is_file()


def test_a_journal_key_that_is_not_one_is_one_line_before_the_scan(
    ct_series: Path, model_dir: Path, tmp_path: Path
) -> None:
    from medforensics.scan.journal_key import key_path

    key_path().parent.mkdir(parents=True)
    key_path().write_text("not hex\n")
    r = CliRunner().invoke(
        app, ["scan", str(ct_series), "--model", str(model_dir), "--journal", str(tmp_path / "j")]
    )
    assert r.exit_code == 2 and "is not a journal key (64 hex digits)" in r.output.replace("\n", "")
    assert "Traceback" not in r.output and key_path().read_text() == "not hex\n"


def test_lookups_on_threads_give_the_serial_lookups_and_stop_on_an_interrupt(
    studies: Path, detector: Detector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medforensics.io.reader import discover
    from medforensics.scan.journal import scan_settings, series_identity

    _scan(studies, detector, Journal(tmp_path / "j"))
    refs = [r for r in discover([studies]).series if Path(r.path).name in ("a", "b")]
    items = [(series_identity(r.kind, str(r.path), "", r.series_uid), r.files) for r in refs]

    def bound() -> Journal:
        journal = Journal(tmp_path / "j")
        journal.bind(scan_settings(detector, None, "gradcam"))
        return journal

    serial = bound()
    one_by_one = [serial.lookup(*it) for it in items]
    threaded, seen = bound(), []
    got = threaded.lookup_all([*items, None], 2, seen.append)
    assert seen == [0, 1, 2] and got[-1] == type(got[-1])()  # None: not looked up
    assert [g.result.to_dict() for g in got[:2]] == [g.result.to_dict() for g in one_by_one]  # type: ignore[union-attr]
    assert (threaded.reused, threaded.stale) == (serial.reused, serial.stale) == (2, 0)
    calls: list[str] = []
    real = Journal.lookup
    monkeypatch.setattr(Journal, "lookup", lambda self, *a: calls.append("x") or real(self, *a))

    def stop(i: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bound().lookup_all(items * 25, 2, stop)
    assert len(calls) < 10  # the 50 lookups not started are dropped, not run before the interrupt ends it


def test_a_journal_key_that_cannot_be_made_says_where_to_put_it(
    ct_series: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medforensics.scan.journal_key as jk

    real = os.open

    def denied(path: Any, *a: Any, **k: Any) -> int:
        if jk.KEY_FILE in str(path):
            raise PermissionError(13, "Permission denied")
        return real(path, *a, **k)

    monkeypatch.setattr(os, "open", denied)  # a service account whose home cannot be written
    r = CliRunner().invoke(
        app, ["scan", str(ct_series), "--model", str(model_dir), "--journal", str(tmp_path / "j")]
    )
    out = r.output.replace("\n", "")
    assert r.exit_code == 2 and "journal key cannot be made (Permission denied); set MEDFORENSICS_HOME" in out
    assert "Traceback" not in r.output and not jk.key_path().exists()
