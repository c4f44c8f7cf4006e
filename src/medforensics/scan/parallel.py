"""Series scanned in worker processes (``scan --jobs N``).

A scan's network uses torch's threads, but the stages around it (reading, lung mask, candidate search,
reports) use one core for much of the time, and torch's 3-D convolutions scale poorly past a few threads.
A folder of many series is therefore scanned faster as N series at a time, each on its share of the
threads, than one at a time on all of them. Each worker is a spawned process that receives the detectors
once (pickled, with the options the command set on them) and returns each series' :class:`SeriesResult`
(findings, heatmaps and masks included); the volumes stay behind, and report writers read them again
(:class:`~medforensics.scan.volumes.LazyVolumes`). Results come back in the order of the series, so the
report is the same whatever N.

A worker that dies (the kernel's out-of-memory killer, a crash in C) breaks the pool, and every series
still out with it. The first of those is then scanned again alone in a fresh process, and the rest in a
fresh pool: the series that killed a pool gets ``verdict: "error"`` (:data:`DIED`) when it kills a process
of its own too, and the others their results.

Workers log nothing themselves: their records go to this process (:class:`LogRelay`), which handles them as
its own, so a warning a worker gave is not printed again when a report writer reads the series here (each
distinct warning once), and none is written past a progress bar on the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import multiprocessing as mp
import pickle
import threading
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from medforensics._pools import children_ignore_sigint, results_in_order, stop_pool
from medforensics.errors import ConfigError
from medforensics.io.reader import SeriesRef
from medforensics.logging import configure
from medforensics.scan.detector import Detector
from medforensics.scan.result import SeriesResult

#: What died with a series whose worker process died scanning it.
DIED = "its scanning process died (out of memory, or a crash in a decoder or library)"

_WORKER: dict[str, Any] = {}
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Setup:
    """What every worker scans with: the detectors as the command configured them, and the options."""

    detector: Detector
    detector2d: Detector | None
    explain: str | None
    stream: int | None
    threads: int
    #: whether this process raised the allocator's thresholds (:mod:`medforensics._alloc`): workers follow
    tuned_allocator: bool = False
    #: the parent's logging level: workers log as it does (``-v`` included), each distinct warning once
    log_level: int = logging.WARNING
    #: hash each series' files before reading it (``scan --journal``: :func:`~medforensics.scan.journal.
    #: files_digest`)
    digest: bool = False

    @classmethod
    def share(
        cls,
        detector: Detector,
        detector2d: Detector | None,
        explain: str | None,
        stream: int | None,
        jobs: int,
        digest: bool = False,
    ) -> Setup:
        """The setup of ``jobs`` workers sharing this process's torch threads (at least one each)."""
        from medforensics._alloc import allocator_tuned

        level = logging.getLogger().getEffectiveLevel()
        return cls(
            detector, detector2d, explain, stream, shared_threads(jobs), allocator_tuned(), level, digest
        )


class LogRelay:
    """Log records of a pool's workers, handled in this process by the logger each was made for (its
    handlers and filters, the command line's :class:`~medforensics.logging.OnceFilter` among them) on a
    thread of its own. One relay a pool: a worker killed while writing (out of memory) may leave its queue
    unusable, and a fresh pool starts with a fresh one."""

    def __init__(self) -> None:
        self.queue: Any = mp.get_context("spawn").Queue()
        self._thread = threading.Thread(target=self._run, name="medforensics-log-relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                record = self.queue.get()
            except Exception:  # the queue closed, or a record a killed worker left half written
                return
            if record is None:
                return
            logging.getLogger(record.name).handle(record)

    def close(self, timeout: float = 5.0) -> None:
        """Handle what the workers sent (they have exited: all of it is in the queue), then stop; a queue
        a killed worker left unusable is given up after ``timeout`` seconds, never waited on for ever."""
        with contextlib.suppress(Exception):
            self.queue.put(None)
        self._thread.join(timeout)
        self.queue.cancel_join_thread()
        self.queue.close()


def shared_threads(jobs: int) -> int:
    """Torch threads of each of ``jobs`` workers sharing this process's (at least one each)."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


def start_worker(log_level: int, threads: int, log_queue: Any = None) -> None:
    """A spawned worker's logging and torch threads: without this a warning came bare, and ``-v``'s detail
    not at all; through the relay's queue (:class:`LogRelay`) the parent prints them."""
    import torch

    to = logging.handlers.QueueHandler(log_queue) if log_queue is not None else None
    configure(log_level, to)
    torch.set_num_threads(threads)


def _init(setup: Setup, log_queue: Any = None) -> None:
    from medforensics._alloc import tune_allocator

    if setup.tuned_allocator:  # as the parent: the command line's scan raised its thresholds
        tune_allocator()
    start_worker(setup.log_level, setup.threads, log_queue)
    _WORKER["setup"] = setup


#: A series' result, whether its volume was read, and (``Setup.digest``) its files' digest before that
#: (None when not asked for or a file could not be read).
Scanned = tuple[SeriesResult, bool, str | None]


def scan_ref(ref: SeriesRef, setup: Setup) -> Scanned:
    """Load and scan one series (its volume is not kept); ``seconds`` covers both."""
    from medforensics.scan.journal import files_digest
    from medforensics.scan.pipeline import _load_and_scan

    t0 = time.perf_counter()
    digest = files_digest(ref.files) if setup.digest else None
    res, vol = _load_and_scan(ref, setup.stream, setup.detector, setup.detector2d, setup.explain)
    res.seconds = time.perf_counter() - t0
    return res, vol is not None, digest


def _scan_task(ref: SeriesRef) -> Scanned:
    return scan_ref(ref, _WORKER["setup"])


class WorkerPool(Generic[T, R]):
    """A spawned process pool of ``jobs`` workers, each started by ``init(*args, log_queue)`` and running
    ``task`` on each item, with its :class:`LogRelay` (one pool of :func:`~medforensics._pools.
    results_in_order`; ``evaluate --jobs`` uses it too)."""

    def __init__(
        self, jobs: int, init: Callable[..., None], args: tuple[Any, ...], task: Callable[[T], R]
    ) -> None:
        self.relay = LogRelay()
        self.task = task
        self.ex = ProcessPoolExecutor(jobs, mp.get_context("spawn"), init, (*args, self.relay.queue))

    def submit_all(self, items: Sequence[T]) -> list[Future[R]]:
        """Each item's task, submitted (the workers start now, ignoring SIGINT: the command handles it)."""
        with children_ignore_sigint():
            return [self.ex.submit(self.task, item) for item in items]

    def shutdown(self) -> None:
        """Wait for the workers to finish and exit (the work not started is cancelled), then relay the
        last of their records."""
        self.ex.shutdown(wait=True, cancel_futures=True)
        self.relay.close()

    def stop(self) -> None:
        """Stop now (:func:`~medforensics._pools.stop_pool`): an interrupted scan neither waits for the
        series in progress nor hangs."""
        stop_pool(self.ex)
        self.relay.close(timeout=1.0)


def _pool(setup: Setup, jobs: int) -> WorkerPool[SeriesRef, Scanned]:
    return WorkerPool(jobs, _init, (setup,), _scan_task)


def _died(ref: SeriesRef) -> Scanned:
    return SeriesResult(path=str(ref.path), series_uid=ref.series_uid, error=DIED), False, None


def scan_in_workers(refs: Sequence[SeriesRef], setup: Setup, jobs: int) -> Generator[Scanned, None, None]:
    """Each series' result (and whether it was read), in the order of ``refs``, scanned ``jobs`` at a time
    (see module docs). A detector that cannot be pickled is a :class:`ConfigError` before any worker
    starts. Closed before its end (an interrupt, an error in the caller), it stops the workers at once."""
    try:
        pickle.dumps(setup)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise ConfigError(f"--jobs {jobs}: the detector cannot be sent to worker processes ({err})") from None
    yield from results_in_order(refs, lambda n: _pool(setup, n), jobs, _died)
