"""Process pools a command can interrupt: workers that leave Ctrl-C to the command, and a stop at once."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor


@contextlib.contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """Worker processes started inside this block ignore SIGINT for their whole life (an ignored signal
    stays ignored through exec, and Python then installs no KeyboardInterrupt handler): Ctrl-C at a
    terminal reaches the whole process group, and a worker interrupted while starting printed a traceback;
    the command alone handles it and stops them (:func:`stop_pool`). This process ignores SIGINT for the
    block's few milliseconds; outside the main thread nothing changes (no handler can be set there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def stop_pool(ex: ProcessPoolExecutor, join_s: float = 10.0) -> None:
    """Terminate ``ex``'s workers and cancel the work not started, without waiting for it: a SIGINT to the
    parent alone (``kill -INT``, a scheduler) left a worker blocked on its queue and the graceful shutdown
    waiting for it for ever (session 69)."""
    workers = list((getattr(ex, "_processes", None) or {}).values())  # no public way before Python 3.14
    for w in workers:
        w.terminate()
    ex.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + join_s
    for w in workers:
        w.join(timeout=max(0.0, deadline - time.monotonic()))
        # join can return as the worker's pipe closes, before its exit is reaped: it then stayed among
        # this process's children (a flaky test, session 72); exitcode reaps it
        while w.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.01)
