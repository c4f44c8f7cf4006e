"""Logging helpers that never leak patient identifiers.

Log UIDs or :func:`short_hash` of identifiers, never names, IDs or ``str(dataset)``.
"""

from __future__ import annotations

import hashlib
import logging

from medforensics._text import fs_bytes

LOGGER_NAME = "medforensics"


def get_logger(name: str) -> logging.Logger:
    """A child of the package logger (``medforensics.<name>``)."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")


def short_hash(value: object, length: int = 12) -> str:
    """A stable, non-reversible short hash of an identifier, safe to log."""
    return hashlib.sha256(fs_bytes(str(value))).hexdigest()[:length]
