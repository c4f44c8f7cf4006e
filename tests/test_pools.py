"""Worker processes leave Ctrl-C to the command (no traceback from each), and a pool stops at once."""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from concurrent.futures import ProcessPoolExecutor

from medforensics._pools import children_ignore_sigint, stop_pool


def _sigint_ignored() -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def _sleep(s: float) -> float:
    time.sleep(s)
    return s


def test_workers_started_inside_ignore_sigint_and_this_process_keeps_its_handler() -> None:
    """Ctrl-C at a terminal reaches every process of the group: a worker interrupted while it started
    printed a traceback (forge dataset --jobs 2, session 71). Started inside the block, spawned or forked,
    it ignores SIGINT; this process's handler is back after the block; started outside, a worker has
    Python's own handler."""
    before = signal.getsignal(signal.SIGINT)
    for method in ("spawn", "fork"):
        with ProcessPoolExecutor(1, mp.get_context(method)) as ex:
            with children_ignore_sigint():
                inside = ex.submit(_sigint_ignored)
            assert inside.result(timeout=60), method
        assert signal.getsignal(signal.SIGINT) is before
        with ProcessPoolExecutor(1, mp.get_context(method)) as ex:
            assert not ex.submit(_sigint_ignored).result(timeout=60), method


def test_stop_pool_does_not_wait_for_the_work_in_progress() -> None:
    ex = ProcessPoolExecutor(1, mp.get_context("spawn"))
    running = ex.submit(_sleep, 60.0)
    while not running.running():
        time.sleep(0.05)
    t0 = time.perf_counter()
    stop_pool(ex)
    assert time.perf_counter() - t0 < 20 and mp.active_children() == []
