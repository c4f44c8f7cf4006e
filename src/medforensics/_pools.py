"""Process pools a command can interrupt: workers that leave Ctrl-C to the command, and a stop at once."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
T_contra = TypeVar("T_contra", contravariant=True)


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


class OrderedPool(Protocol[T_contra, R]):
    """A pool of workers :func:`results_in_order` drives."""

    def submit_all(self, items: Sequence[T_contra], /) -> Sequence[Future[R]]:
        """Each item's work, submitted (the workers ignoring SIGINT: :func:`children_ignore_sigint`)."""
        ...

    def shutdown(self) -> None:
        """Let the workers finish and exit (the work not started cancelled)."""
        ...

    def stop(self) -> None:
        """Stop now (:func:`stop_pool`)."""
        ...


def _alone(item: T, new_pool: Callable[[int], OrderedPool[T, R]], died: Callable[[T], R]) -> R:
    """``item`` done in a pool of one process of its own; ``died(item)`` if that process dies too."""
    pool = new_pool(1)
    try:
        return pool.submit_all([item])[0].result()
    except BrokenProcessPool:
        return died(item)
    finally:
        pool.shutdown()


def results_in_order(
    items: Sequence[T], new_pool: Callable[[int], OrderedPool[T, R]], jobs: int, died: Callable[[T], R]
) -> Generator[R, None, None]:
    """Each item's result in the order of ``items``, ``jobs`` at a time in a pool ``new_pool(jobs)`` makes.
    A worker that dies breaks the pool and every item still out with it: which one killed it is unknown, so
    the first of those is done again alone in a fresh process (``died(item)`` when that one dies too) and the
    rest in a fresh pool. Closed before its end (an interrupt, an error in the caller), it stops the workers
    at once."""
    pool = new_pool(jobs)
    finished = False
    try:
        futures = list(pool.submit_all(items))
        for i, item in enumerate(items):
            try:
                yield futures[i].result()
            except BrokenProcessPool:
                pool.shutdown()
                yield _alone(item, new_pool, died)
                pool = new_pool(jobs)
                futures[i + 1 :] = pool.submit_all(items[i + 1 :])
        finished = True
    finally:
        if finished:
            pool.shutdown()
        else:
            pool.stop()
