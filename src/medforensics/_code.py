"""What version of this installation's code produced a result: a hash of its Python modules."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def code_hash() -> str:
    """SHA-256 over this installation's Python modules (their paths and bytes): another version of the code
    may compute a result otherwise, so results kept by one (a scan journal's entries, a benchmark's
    finished runs) are not reused by another."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()
