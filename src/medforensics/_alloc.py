"""The C allocator's settings for a scan: large arrays from the heap, freed memory kept for the next one.

A scan allocates and frees hundreds of arrays of 10-300 MB (the model grid's channels, the network's
activations, the blob search's filter passes). glibc's ``malloc`` serves each block over its mmap threshold
(128 KB to 32 MB, adjusted as it goes) with a fresh ``mmap`` and unmaps it on ``free``, so every such array
is faulted in again page by page and zeroed by the kernel: a process that scanned the demo CT (133 x 512 x
512) four times spent 5.1 of its 28 CPU seconds in the kernel, and the network ran at about two thirds of its
speed (session 57). Raising the mmap and trim thresholds (what
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:glibc.malloc.trim_threshold=...`` does at start-up;
``../shared/MACHINE-NOTES.md``) makes ``free`` keep the pages for the next array: the same results, fewer
page faults, and a higher peak resident memory the price (``benchmarks/scan_speed.md``).

:func:`tune_allocator` sets both with ``mallopt`` on glibc and does nothing elsewhere (musl, macOS,
Windows), when ``MEDFORENSICS_MALLOC=default``, or when ``GLIBC_TUNABLES`` already sets a malloc tunable (the
user's choice stands). ``medforensics scan`` and ``demo`` call it, and so does each ``--jobs`` worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

#: ``mallopt`` parameters (glibc's ``malloc.h``).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size (MB) come from the heap, and up to this much free memory at its top is kept; a
#: larger block (a long series' volume) is still mapped on its own and unmapped when freed. On the demo CT
#: 256 MB was as fast as 2047 MB (the most ``mallopt``'s ``int`` takes) within the machine's drift, and
#: faster than 128 MB (medians 3.17 against 3.36 s; glibc's 3.71); a 1000-slice scan peaked at 2.0-2.4 GB
#: with any of them from run to run, against 1.7 GB with glibc's settings (``benchmarks/scan_speed.md``).
THRESHOLD_MB = 256
#: The most ``mallopt`` takes (bytes).
MAX_BYTES = 2**31 - 1
#: ``MEDFORENSICS_MALLOC=default`` leaves the allocator as it is; a number sets the threshold in MB.
ENV = "MEDFORENSICS_MALLOC"

_state: dict[str, bool] = {}


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds to :data:`THRESHOLD_MB` (or ``MEDFORENSICS_MALLOC`` MB) for
    this process, once; True if they are raised (now or before), False where they are left alone (see the
    module docs)."""
    if "tuned" in _state:
        return _state["tuned"]
    _state["tuned"] = False
    setting = os.environ.get(ENV, "").strip().lower()
    if setting == "default":
        return False
    limit = THRESHOLD_MB * 2**20
    if setting:
        try:
            limit = min(MAX_BYTES, max(0, int(setting)) * 2**20)
        except ValueError:
            log.warning("%s=%r: neither 'default' nor a size in MB; using %d MB", ENV, setting, THRESHOLD_MB)
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no glibc: musl's mallopt is absent or a stub
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    tuned = mallopt(M_MMAP_THRESHOLD, limit) == 1 and mallopt(M_TRIM_THRESHOLD, limit) == 1
    _state["tuned"] = tuned
    log.debug("allocator thresholds %s", "raised" if tuned else "left as they are (mallopt refused)")
    return tuned


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` raised the thresholds in this process."""
    return _state.get("tuned", False)


def release_free_memory() -> None:
    """Hand the free memory the raised thresholds keep back to the system (glibc's ``malloc_trim``), where
    :func:`tune_allocator` raised them; between a scan's stages, so the next one's arrays do not stack on
    pages the last one freed (a 500-slice scan kept about 0.9 GB so, session 61). Nothing elsewhere."""
    if not allocator_tuned():
        return
    with contextlib.suppress(OSError, AttributeError):  # no glibc after all
        ctypes.CDLL(None).malloc_trim(0)
