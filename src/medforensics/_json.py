"""What counts as a number in the JSON files the tools read back (configs, calibrations, records)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def is_finite_number(value: Any) -> bool:
    """True for a JSON number that is finite: an int or float, not a bool, not NaN or infinite (an
    integer too large for a float is not finite either)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def finite_numbers(value: Any, count: int) -> list[float] | None:
    """``value`` as ``count`` finite floats, or None when it is not a list of so many finite numbers."""
    if not isinstance(value, (list, tuple)) or len(value) != count or not all(map(is_finite_number, value)):
        return None
    return [float(v) for v in value]


def json_digest(obj: Any) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys; what JSON cannot hold as its ``str``): the key of
    a kept result (a scan journal's entry, a benchmark's finished run) from what decided it."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
