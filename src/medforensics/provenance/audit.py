"""Tamper-evident audit log: an append-only, hash-chained SQLite table.

Each entry is ``(seq, time, actor, action, subjects, details, prev_hash, hash)`` where ``hash`` is the
SHA-256 of the canonical JSON of all other fields (``prev_hash`` included), so every entry commits to the
whole history before it. The head (last seq and hash) is kept twice more: in a ``meta`` table and in a
sidecar file ``<log>.head``, so that removing entries from the end is detected too. Triggers refuse
UPDATE and DELETE; someone who drops them and rewrites rows is caught by :func:`verify_log`.

Tamper-evidence is relative to the head: someone able to rewrite the database *and* both head copies can
forge a consistent log. Record the head hash somewhere else (print it with ``medforensics audit show``) to
anchor it.

Entries hold UIDs, digests and counts only, never patient names, IDs or file paths.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import json
import os
import socket
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medforensics._atomic import write_text_atomic
from medforensics.errors import InputError

GENESIS_HASH = "0" * 64
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subjects TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
"""


@dataclass(frozen=True)
class AuditEntry:
    """One log entry as stored."""

    seq: int
    time: str
    actor: str
    action: str
    subjects: list[dict[str, Any]]
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class AuditCheck:
    """Result of :func:`verify_log`: ``ok``, entry count, head hash, and the first bad seq with the reason."""

    ok: bool
    n_entries: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None


def medforensics_home() -> Path:
    """``$MEDFORENSICS_HOME`` or ``~/.medforensics``."""
    return Path(os.environ.get("MEDFORENSICS_HOME") or Path.home() / ".medforensics")


def default_log_path() -> Path:
    """The default audit log: ``$MEDFORENSICS_HOME/audit.sqlite``."""
    return medforensics_home() / "audit.sqlite"


def default_actor() -> str:
    """``$MEDFORENSICS_ACTOR`` or ``user@host`` of the operator."""
    actor = os.environ.get("MEDFORENSICS_ACTOR")
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def entry_hash(
    seq: int, time: str, actor: str, action: str, subjects: Any, details: Any, prev_hash: str
) -> str:
    """SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of an entry's fields."""
    body = {
        "seq": seq,
        "time": time,
        "actor": actor,
        "action": action,
        "subjects": subjects,
        "details": details,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _head_file(log: Path) -> Path:
    return log.with_name(log.name + ".head")


#: What to do about a file of :func:`medforensics_home` (the audit log, the journal key) that cannot be made.
HOME_HINT = "set MEDFORENSICS_HOME to a folder this account can write"
_WRITABLE_HINT = f"{HOME_HINT}, or pass --no-audit"


def _make_folder(log: Path) -> None:
    """The log's folder, made if missing; :class:`InputError` with what to do when it cannot be (a
    read-only or missing home of a service account)."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = f"cannot make the audit log's folder ({exc.strerror or exc}); {_WRITABLE_HINT}"
        raise InputError(why, path=log.parent) from None
    if not os.access(log.parent, os.W_OK | os.X_OK):
        raise InputError(f"the audit log's folder is not writable; {_WRITABLE_HINT}", path=log.parent)


@contextlib.contextmanager
def _connect(log: Path, create: bool) -> Iterator[sqlite3.Connection]:
    if not create and not log.exists():
        raise InputError("no audit log here", path=log)
    if create:
        _make_folder(log)
    try:
        con = sqlite3.connect(log, timeout=30, isolation_level=None)
    except sqlite3.Error as err:
        raise InputError(f"cannot open audit log ({err})", path=log) from None
    try:
        if create:
            con.executescript(_SCHEMA)
        yield con
    except sqlite3.DatabaseError as err:
        raise InputError(f"audit log unreadable ({err})", path=log) from None
    finally:
        con.close()


def append_entry(
    action: str,
    subjects: Sequence[Mapping[str, Any]] = (),
    details: Mapping[str, Any] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    actor: str | None = None,
    now: dt.datetime | None = None,
) -> AuditEntry:
    """Append one entry (atomically, serialised against concurrent writers) and return it.

    ``subjects``: what the action was about, as UIDs and digests (e.g. ``{"sop_instance_uid": ...,
    "sha256": ...}``); ``details``: JSON-serialisable parameters and outcome. No patient identifiers.
    """
    log = Path(log_path) if log_path is not None else default_log_path()
    subj = json.loads(json.dumps(list(subjects)))  # canonical, JSON-only values
    det = json.loads(json.dumps(dict(details or {})))
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat(timespec="microseconds")
    who = actor or default_actor()
    with _connect(log, create=True) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            last = con.execute("SELECT * FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
            if last is not None:
                _check_row(last, log)
            seq, prev = (last[0] + 1, last[7]) if last else (1, GENESIS_HASH)
            digest = entry_hash(seq, when, who, action, subj, det, prev)
            con.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, when, who, action, json.dumps(subj), json.dumps(det), prev, digest),
            )
            con.execute("INSERT OR REPLACE INTO meta VALUES ('head_seq', ?)", (str(seq),))
            con.execute("INSERT OR REPLACE INTO meta VALUES ('head_hash', ?)", (digest,))
            write_text_atomic(_head_file(log), json.dumps({"seq": seq, "hash": digest}) + "\n")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return AuditEntry(seq, when, who, action, subj, det, prev, digest)


def read_entries(log_path: str | os.PathLike[str] | None = None) -> list[AuditEntry]:
    """All entries in storage order (ascending seq)."""
    log = Path(log_path) if log_path is not None else default_log_path()
    with _connect(log, create=False) as con:
        rows = con.execute("SELECT * FROM entries ORDER BY seq").fetchall()
    out = []
    for row in rows:
        _check_row(row, log)
        seq, time, actor, action, subjects, details, prev_hash, digest = row
        try:
            subj, det = json.loads(subjects), json.loads(details)
        except (TypeError, ValueError, RecursionError):  # RecursionError: JSON nested past Python's limit
            subj, det = subjects, details  # verify_log reports the mismatch
        out.append(AuditEntry(seq, time, actor, action, subj, det, prev_hash, digest))
    return out


def _check_row(row: Sequence[Any], log: Path) -> None:
    """InputError for an entries row this module never writes: another table layout, or an entry number
    that is not an integer (the log was altered or is not ours)."""
    if len(row) != 8:
        raise InputError(f"audit log corrupt: its entries have {len(row)} columns, not 8", path=log)
    if not isinstance(row[0], int) or isinstance(row[0], bool):
        raise InputError(f"audit log corrupt: entry number {str(row[0])[:40]!r} is not an integer", path=log)


def check_appendable(log_path: str | os.PathLike[str] | None = None) -> None:
    """InputError now, before any work is done, when the existing log could not take another entry (its
    last row is not one this module writes), or a missing one could not be made (its folder cannot be made
    or written: the work would be done and its entry lost)."""
    log = Path(log_path) if log_path is not None else default_log_path()
    if not log.exists():
        _make_folder(log)
        return
    with _connect(log, create=False) as con:
        last = con.execute("SELECT * FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    if last is not None:
        _check_row(last, log)


def verify_log(log_path: str | os.PathLike[str] | None = None) -> AuditCheck:
    """Check the chain: contiguous seqs from 1, each prev_hash = previous hash, each hash recomputed, and
    the head in ``meta`` and in the ``.head`` file = the last entry. Reports the first bad seq."""
    log = Path(log_path) if log_path is not None else default_log_path()
    entries = read_entries(log)
    prev, expected_seq = GENESIS_HASH, 1
    for e in entries:
        problem = None
        if e.seq != expected_seq:
            problem = f"entry {expected_seq} missing (next stored entry is {e.seq})"
        elif e.prev_hash != prev:
            problem = (
                "chain broken: prev_hash does not match the previous entry (removed or reordered entries)"
            )
        elif entry_hash(e.seq, e.time, e.actor, e.action, e.subjects, e.details, e.prev_hash) != e.hash:
            problem = "entry altered: its hash does not match its content"
        if problem:
            return AuditCheck(False, len(entries), prev, min(e.seq, expected_seq), problem)
        prev, expected_seq = e.hash, e.seq + 1
    last_seq = entries[-1].seq if entries else 0
    with _connect(log, create=False) as con:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    heads = [("meta table", meta.get("head_seq"), meta.get("head_hash"))]
    head_file = _head_file(log)
    if head_file.exists():
        try:
            stored = json.loads(head_file.read_text())
            heads.append(("head file", str(stored.get("seq")), stored.get("hash")))
        except (OSError, ValueError, AttributeError):
            return AuditCheck(
                False, len(entries), prev, last_seq + 1, f"head file {head_file.name} unreadable"
            )
    elif entries:
        return AuditCheck(False, len(entries), prev, last_seq + 1, f"head file {head_file.name} missing")
    for where, seq, digest in heads:
        if seq is None and not entries:
            continue
        if seq != str(last_seq) or digest != prev:
            head_seq = int(seq) if seq and seq.isdigit() else last_seq
            first_bad = last_seq + 1 if head_seq >= last_seq else head_seq + 1
            reason = f"log ends at entry {last_seq} but the {where} records head {seq} with another hash"
            if head_seq > last_seq:
                reason = (
                    f"log ends at entry {last_seq} but the {where} records {seq}: "
                    "entries removed from the end"
                )
            return AuditCheck(False, len(entries), prev, first_bad, reason)
    return AuditCheck(True, len(entries), prev)
