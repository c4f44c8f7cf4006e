"""The key that authenticates a scan journal's entries (``scan --journal``).

A journal caches verdicts: whoever could write its folder could otherwise write "authentic" over a tampered
series' entry, and the next scan would take it. Each entry therefore carries an HMAC-SHA256 of its content
and of its arrays' bytes under a key kept outside the journal, in ``$MEDFORENSICS_HOME/journal.key``
(``~/.medforensics``; 32 random bytes as hex, readable by its owner only, made on first use). An entry
whose MAC does not verify (changed outside medforensics, or written under another key: another account,
another machine, a key deleted since) is not taken: its series is scanned again, and the scan says so.
Moving a journal to another account means copying that key with it. Whoever can read the key can forge
entries: it is the scanning account's secret, as its audit log is its record.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from medforensics.errors import OutputError

#: The key's file name in ``$MEDFORENSICS_HOME``.
KEY_FILE = "journal.key"


def key_path() -> Path:
    """``$MEDFORENSICS_HOME/journal.key``."""
    from medforensics.provenance.audit import medforensics_home

    return medforensics_home() / KEY_FILE


def _read(path: Path) -> bytes:
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        key = b""
    if len(key) < 32:
        raise OutputError(
            "is not a journal key (64 hex digits): restore it, or delete it (every journal entry is then "
            "scanned again)",
            path=path,
        )
    return key


def journal_key(path: Path | None = None) -> bytes:
    """The journal key at ``path`` (default :func:`key_path`), made there (mode 600) when there is none;
    :class:`OutputError` when it cannot be read or made, or is not a key."""
    path = path or key_path()
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(f"journal key cannot be read ({exc.strerror})", path=path) from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        with contextlib.suppress(FileExistsError):  # a key another scan made meanwhile is kept
            os.link(tmp, path)  # whole or not at all
        return _read(path)
    except OSError as exc:
        from medforensics.provenance.audit import HOME_HINT

        raise OutputError(f"journal key cannot be made ({exc.strerror}); {HOME_HINT}", path=path) from None
    finally:
        tmp.unlink(missing_ok=True)


def entry_mac(key: bytes, data: dict[str, Any], arrays: bytes) -> str:
    """HMAC-SHA256 of a journal entry: its JSON fields but ``mac`` (canonical JSON: sorted keys) and the
    SHA-256 of its arrays' file bytes (empty without one)."""
    body = json.dumps({k: v for k, v in data.items() if k != "mac"}, sort_keys=True, allow_nan=True)
    message = body.encode() + b"\0" + hashlib.sha256(arrays).hexdigest().encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify_mac(key: bytes, data: dict[str, Any], arrays: bytes) -> bool:
    """Whether ``data["mac"]`` is :func:`entry_mac` of the entry (compared in constant time)."""
    return hmac.compare_digest(str(data.get("mac", "")), entry_mac(key, data, arrays))
