"""``medforensics keys create | sign | verify | audit`` via the CLI: exit codes, outputs, audit entries."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medforensics.cli import app

from .conftest import sample_file, tamper_pixel

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFORENSICS_HOME", str(tmp_path / "home"))


@pytest.fixture()
def keys(tmp_path: Path) -> Path:
    result = runner.invoke(app, ["keys", "create", "--out", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output
    return tmp_path / "keys"


@pytest.fixture()
def series(tmp_path: Path) -> Path:
    folder = tmp_path / "series"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(sample_file("CT_small.dcm"), folder / "a.dcm")
    shutil.copy(sample_file("693_UNCR.dcm"), folder / "sub" / "b.dcm")
    (folder / "README.txt").write_text("not an image")
    return folder


def _sign(keys: Path, *args: str) -> object:
    return runner.invoke(
        app, ["sign", *args, "--key", str(keys / "signer-key.pem"), "--cert", str(keys / "signer.pem")]
    )


def test_keys_create_refuses_to_overwrite(keys: Path) -> None:
    before = (keys / "signer-key.pem").read_bytes()
    result = runner.invoke(app, ["keys", "create", "--out", str(keys)])
    assert result.exit_code == 2 and "--force" in result.output
    assert (keys / "signer-key.pem").read_bytes() == before
    assert (keys / "signer-key.pem").stat().st_mode & 0o077 == 0
    assert (
        runner.invoke(
            app, ["keys", "create", "--out", str(keys), "--force", "--algorithm", "ecdsa"]
        ).exit_code
        == 0
    )
    assert (keys / "signer-key.pem").read_bytes() != before


def test_sign_series_then_verify(keys: Path, series: Path, tmp_path: Path) -> None:
    originals = {p: p.read_bytes() for p in series.rglob("*.dcm")}
    out = tmp_path / "signed"
    result = _sign(keys, str(series), "--out", str(out))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert {p: p.read_bytes() for p in series.rglob("*.dcm")} == originals  # inputs untouched
    assert (out / "a.dcm").exists() and (out / "sub" / "b.dcm").exists()
    report = tmp_path / "v.json"
    ok = runner.invoke(app, ["verify", str(out), "--ca", str(keys / "ca.pem"), "--json", str(report)])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.count("valid") == 2
    doc = json.loads(report.read_text())
    assert [f["status"] for f in doc["files"]] == ["valid", "valid"] and doc["counts"] == {"valid": 2}
    tamper_pixel(out / "a.dcm")
    bad = runner.invoke(
        app,
        ["verify", str(out), str(series / "a.dcm"), str(series / "README.txt"), "--ca", str(keys / "ca.pem")],
    )
    assert bad.exit_code == 2
    lines = bad.stdout.splitlines()
    assert lines[0].startswith("invalid") and "does not match" in lines[0]
    assert lines[1].startswith("valid")
    assert lines[2].startswith("absent") and lines[3].startswith("error")
    audit = runner.invoke(app, ["audit", "verify"])
    assert audit.exit_code == 0 and "ok: 3 entries" in audit.stdout


def test_sign_in_place_and_refusals(keys: Path, series: Path, tmp_path: Path) -> None:
    assert _sign(keys, str(series)).exit_code == 2  # type: ignore[attr-defined]
    assert _sign(keys, str(series), "--out", str(series)).exit_code == 2  # type: ignore[attr-defined]
    assert (
        _sign(keys, str(series / "a.dcm"), "--profile", "bogus", "--out", str(tmp_path / "o")).exit_code == 2
    )  # type: ignore[attr-defined]
    result = _sign(keys, str(series / "a.dcm"), "--in-place", "--profile", "creator")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert runner.invoke(app, ["verify", str(series / "a.dcm"), "--ca", str(keys / "ca.pem")]).exit_code == 0


def test_sign_bad_file_goes_on(keys: Path, series: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"garbage")
    result = _sign(keys, str(junk), str(series / "a.dcm"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "error" in result.stdout and "not a DICOM file" in result.stdout  # type: ignore[attr-defined]
    assert (tmp_path / "o" / "a.dcm").exists() and not (tmp_path / "o" / "junk.dcm").exists()
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


def test_audit_cli_reports_tampering(keys: Path, series: Path, tmp_path: Path) -> None:
    log = tmp_path / "custom.sqlite"
    for _ in range(3):
        assert runner.invoke(app, ["verify", str(series / "a.dcm"), "--audit-log", str(log)]).exit_code == 2
    shown = runner.invoke(app, ["audit", "show", "--audit-log", str(log), "--json"])
    entries = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    text = json.dumps(entries)
    assert "CT_small" not in text and "series" not in text.replace("series_instance_uid", "")  # no paths
    assert "PatientName" not in text
    con = sqlite3.connect(log)
    con.execute("DROP TRIGGER entries_no_update")
    con.execute("UPDATE entries SET action = 'sign' WHERE seq = 2")
    con.commit()
    con.close()
    bad = runner.invoke(app, ["audit", "verify", "--audit-log", str(log)])
    assert bad.exit_code == 2 and "first bad entry 2" in bad.stdout
    assert not (tmp_path / "home" / "audit.sqlite").exists()


def test_sign_goes_on_past_a_missing_input_and_a_file_pydicom_cannot_write(
    keys: Path, series: Path, tmp_path: Path
) -> None:
    import pydicom

    odd = tmp_path / "odd.dcm"
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5"  # not a transfer syntax: was an internal error
    ds.save_as(odd, enforce_file_format=False)
    missing = tmp_path / "nope.dcm"
    pipe = tmp_path / "pipe.dcm"
    os.mkfifo(pipe)  # opening it would wait for a writer: refused by its type
    args = [
        str(missing),
        str(pipe),
        str(odd),
        str(series / "a.dcm"),
        str(series / "a.dcm"),
        "--out",
        str(tmp_path / "o"),
    ]
    result = _sign(keys, *args)
    out = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2 and "Traceback" not in out and "internal error" not in out  # type: ignore[attr-defined]
    assert f"{missing}: no such file or folder" in out and f"{odd}: " in out
    assert f"{pipe}: a named pipe, not a regular file" in out
    assert (tmp_path / "o" / "a.dcm").exists()  # the good file was signed
    assert "1 signed, 3 failed" in out  # a.dcm named twice is signed once


def test_verify_refuses_a_json_report_over_its_input(series: Path) -> None:
    target = series / "a.dcm"
    before = target.read_bytes()
    result = runner.invoke(app, ["verify", str(target), "--json", str(target), "--no-audit"])
    assert result.exit_code == 2 and "would overwrite the input" in result.output
    assert target.read_bytes() == before


def test_a_corrupt_audit_log_is_a_one_line_error_before_any_work(
    keys: Path, series: Path, tmp_path: Path
) -> None:
    log = tmp_path / "bad.sqlite"
    con = sqlite3.connect(log)
    con.execute(
        "CREATE TABLE entries (seq TEXT, time TEXT, actor TEXT, action TEXT, subjects TEXT, "
        "details TEXT, prev_hash TEXT, hash TEXT)"
    )
    con.execute("INSERT INTO entries VALUES ('x1', '', '', '', '[]', '{}', '', '')")
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.commit()
    con.close()
    out = tmp_path / "o"
    for args in (
        [
            "sign",
            str(series / "a.dcm"),
            "--out",
            str(out),
            "--key",
            str(keys / "signer-key.pem"),
            "--cert",
            str(keys / "signer.pem"),
            "--audit-log",
            str(log),
        ],
        ["verify", str(series / "a.dcm"), "--audit-log", str(log)],
        ["audit", "verify", "--audit-log", str(log)],
        ["audit", "show", "--audit-log", str(log)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "internal error" not in result.output and "Traceback" not in result.output
    assert not out.exists()  # refused before signing anything


def test_sign_into_its_own_input_folder_or_of_nothing_says_why(
    keys: Path, series: Path, tmp_path: Path
) -> None:
    result = _sign(keys, str(series), "--out", str(series), "--no-audit")
    assert result.exit_code == 2 and "is the input folder; use --in-place" in result.output  # type: ignore[attr-defined]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _sign(keys, str(empty), "--out", str(tmp_path / "o"), "--no-audit")
    assert result.exit_code == 2 and f"error: {empty}: no DICOM files to sign" in result.output  # type: ignore[attr-defined]


def test_a_key_that_cannot_sign_is_one_line_before_any_file(keys: Path, series: Path, tmp_path: Path) -> None:
    """A certificate that is not the key's (here the CA's) or a MAC the profile refuses: one line naming the
    key and certificate and exit 2 before any file is read, not one error per file of the series."""
    out = tmp_path / "signed"
    cases = {
        "the certificate does not match the private key": ["--cert", str(keys / "ca.pem")],
        "MAC algorithm MD5 is not allowed": ["--cert", str(keys / "signer.pem"), "--mac", "MD5"],
    }
    for why, extra in cases.items():
        r = runner.invoke(
            app, ["sign", str(series), "--out", str(out), "--key", str(keys / "signer-key.pem"), *extra]
        )
        assert r.exit_code == 2 and why in r.output and str(keys / "signer-key.pem") in r.output, r.output
        assert "a.dcm" not in r.output and not out.exists()


def test_importing_the_signature_code_prints_no_deprecation_warning() -> None:
    """cryptography deprecates DSA; naming its key class at import printed a warning on every command."""
    import subprocess
    import sys

    code = "import medforensics.provenance.signature, medforensics.provenance.verify"
    r = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
