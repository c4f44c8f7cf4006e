"""What native libraries print on the process's standard error, captured instead of shown.

ITK's MetaImage reader (inside SimpleITK) writes its parse errors straight to file descriptor 2 ("ElementType
required and not defined.", "MetaImage: Read: Cannot parse file") and then raises an exception that says
only "No such file or directory". The command line promises one line per bad input, so those lines are
captured while the native call runs and the first one becomes the reason.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Redirect file descriptor 2 to a temporary file while the block runs; the yielded list holds the
    non-empty lines written there once the block has ended (nothing is captured where fd 2 cannot be
    duplicated)."""
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:
        yield lines
        return
    try:
        with tempfile.TemporaryFile() as tmp:
            sys.stderr.flush()
            os.dup2(tmp.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", errors="replace")
                lines.extend(line.strip() for line in text.splitlines() if line.strip())
    finally:
        os.close(saved)
