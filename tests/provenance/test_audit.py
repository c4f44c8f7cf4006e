"""The hash-chained audit log: altered, removed, reordered and truncated entries are caught."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from medforensics.errors import InputError
from medforensics.provenance.audit import append_entry, default_log_path, entry_hash, read_entries, verify_log


def _log(tmp_path: Path, n: int = 5) -> Path:
    log = tmp_path / "audit.sqlite"
    for i in range(n):
        append_entry(
            "verify",
            [{"sop_instance_uid": f"1.2.3.{i}", "sha256": f"{i:064x}"}],
            {"i": i},
            log_path=log,
            actor="t",
        )
    return log


def _raw(log: Path, *statements: str) -> None:
    con = sqlite3.connect(log)
    con.execute("DROP TRIGGER IF EXISTS entries_no_update")
    con.execute("DROP TRIGGER IF EXISTS entries_no_delete")
    for sql in statements:
        con.execute(sql)
    con.commit()
    con.close()


def test_append_and_verify(tmp_path: Path) -> None:
    log = _log(tmp_path)
    check = verify_log(log)
    entries = read_entries(log)
    assert check.ok and check.n_entries == 5 and check.head_hash == entries[-1].hash
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == "0" * 64 and entries[1].prev_hash == entries[0].hash
    e = entries[2]
    assert entry_hash(e.seq, e.time, e.actor, e.action, e.subjects, e.details, e.prev_hash) == e.hash


def test_triggers_refuse_update_and_delete(tmp_path: Path) -> None:
    log = _log(tmp_path, 2)
    con = sqlite3.connect(log)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE entries SET action = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM entries WHERE seq = 1")
    con.close()


def test_altered_entry(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _raw(log, "UPDATE entries SET details = '{\"i\": 99}' WHERE seq = 3")
    check = verify_log(log)
    assert not check.ok and check.first_bad_seq == 3 and "altered" in (check.reason or "")


def test_altered_entry_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    log = _log(tmp_path)
    e = read_entries(log)[1]
    forged = entry_hash(e.seq, e.time, "mallory", e.action, e.subjects, e.details, e.prev_hash)
    _raw(log, f"UPDATE entries SET actor = 'mallory', hash = '{forged}' WHERE seq = 2")
    check = verify_log(log)
    assert not check.ok and check.first_bad_seq == 3 and "chain broken" in (check.reason or "")


def test_removed_entry(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _raw(log, "DELETE FROM entries WHERE seq = 2")
    check = verify_log(log)
    assert not check.ok and check.first_bad_seq == 2 and "missing" in (check.reason or "")


def test_swapped_entries(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _raw(
        log,
        "UPDATE entries SET seq = -2 WHERE seq = 2",
        "UPDATE entries SET seq = 2 WHERE seq = 4",
        "UPDATE entries SET seq = 4 WHERE seq = -2",
    )
    check = verify_log(log)
    assert not check.ok and check.first_bad_seq == 2


def test_truncated_tail_caught_by_head_copies(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _raw(log, "DELETE FROM entries WHERE seq = 5")
    check = verify_log(log)
    assert not check.ok and check.first_bad_seq == 5 and "removed from the end" in (check.reason or "")
    # the attacker also rewinds the meta table: the head file still knows
    last = read_entries(log)[-1]
    _raw(
        log,
        "UPDATE meta SET value = '4' WHERE key = 'head_seq'",
        f"UPDATE meta SET value = '{last.hash}' WHERE key = 'head_hash'",
    )
    check = verify_log(log)
    assert not check.ok and check.first_bad_seq == 5 and "head file" in (check.reason or "")


def test_default_path_and_missing_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFORENSICS_HOME", str(tmp_path / "home"))
    assert default_log_path() == tmp_path / "home" / "audit.sqlite"
    with pytest.raises(InputError, match="no audit log"):
        verify_log()
    append_entry("scan", [{"series_instance_uid": "1.2"}], {"verdict": "authentic"})
    assert verify_log().ok
    stored = (tmp_path / "home" / "audit.sqlite.head").read_text()
    assert json.loads(stored)["seq"] == 1


def test_a_log_that_cannot_be_made_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service account whose home cannot hold the log: before, ``scan`` scanned everything, wrote its
    reports, then failed with "internal error (FileNotFoundError ...)". Now the check before the work says
    what to do, and the scan command stops there (exit 2, nothing written)."""
    from typer.testing import CliRunner

    from medforensics.cli import app
    from medforensics.provenance.audit import check_appendable

    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("not a folder")
    log = blocker / "sub" / "audit.sqlite"
    with pytest.raises(InputError, match=r"cannot make the audit log's folder .*set MEDFORENSICS_HOME"):
        check_appendable(log)
    with pytest.raises(InputError, match="set MEDFORENSICS_HOME"):
        append_entry("x", log_path=log)
    check_appendable(tmp_path / "fresh" / "audit.sqlite")  # a missing log whose folder can be made: fine
    import shutil

    from pydicom.data import get_testdata_file

    series = tmp_path / "in"
    series.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), series / "ct.dcm")  # one image: scanned in a moment
    monkeypatch.setenv("MEDFORENSICS_HOME", str(blocker / "sub"))
    out = tmp_path / "scan.json"
    r = CliRunner().invoke(app, ["scan", str(series), "--json", str(out)])
    assert r.exit_code == 2 and "set MEDFORENSICS_HOME" in r.output and not out.exists()
