"""Logging helpers that never leak patient identifiers.

Log UIDs or :func:`short_hash` of identifiers, never names, IDs or ``str(dataset)``.
"""

from __future__ import annotations

import hashlib
import logging

from medforensics._text import fs_bytes

LOGGER_NAME = "medforensics"


#: Distinct warnings :class:`OnceFilter` remembers (past it, it forgets them all and starts again).
ONCE_KEEP = 100_000


class OnceFilter(logging.Filter):
    """Lets each distinct warning (logger, level, message) through once per process: a series' reading
    warnings ("irregular slice spacing", ...) would come again each time a report writer reads it again.
    Records below WARNING (``-v``) all pass."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        if key in self._seen:
            return False
        if len(self._seen) >= ONCE_KEEP:
            self._seen.clear()
        self._seen.add(key)
        return True


def configure(level: int = logging.WARNING, to: logging.Handler | None = None) -> None:
    """The command line's logging: ``LEVEL name: message`` on stderr, each distinct warning once
    (:class:`OnceFilter`); pydicom's own logger quiet unless ``level`` is INFO or lower (it logs a traceback
    for every decoder it tries on pixel data it cannot decode; the reader's one-line error says what went
    wrong). Worker processes call it with their parent's level and ``to``, a handler that sends their
    records to the parent (which prints them, once)."""
    import sys

    root = logging.getLogger()
    if not root.handlers:  # as logging.basicConfig: a program (or test runner) that set up its own keeps it
        handler = to
        if handler is None:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            handler.addFilter(OnceFilter())
        root.addHandler(handler)
        root.setLevel(level)
    import pydicom.config  # it sets its logger's level when imported: import it first

    pydicom.config.logger.setLevel(level if level <= logging.INFO else logging.CRITICAL)


def get_logger(name: str) -> logging.Logger:
    """A child of the package logger (``medforensics.<name>``)."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")


def short_hash(value: object, length: int = 12) -> str:
    """A stable, non-reversible short hash of an identifier, safe to log."""
    return hashlib.sha256(fs_bytes(str(value))).hexdigest()[:length]
