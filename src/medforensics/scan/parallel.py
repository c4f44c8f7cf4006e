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
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import pickle
import time
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from medforensics.errors import ConfigError
from medforensics.io.reader import SeriesRef
from medforensics.logging import configure
from medforensics.scan.detector import Detector
from medforensics.scan.result import SeriesResult

#: What died with a series whose worker process died scanning it.
DIED = "its scanning process died (out of memory, or a crash in a decoder or library)"

_WORKER: dict[str, Any] = {}


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
        import torch

        from medforensics._alloc import allocator_tuned

        threads = max(1, torch.get_num_threads() // jobs)
        level = logging.getLogger().getEffectiveLevel()
        return cls(detector, detector2d, explain, stream, threads, allocator_tuned(), level, digest)


def _init(setup: Setup) -> None:
    import torch

    from medforensics._alloc import tune_allocator

    if setup.tuned_allocator:  # as the parent: the command line's scan raised its thresholds
        tune_allocator()
    configure(setup.log_level)  # spawned: without it a warning came bare, and -v's detail not at all
    torch.set_num_threads(setup.threads)
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


def _pool(setup: Setup, jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(jobs, mp.get_context("spawn"), _init, (setup,))


def _alone(ref: SeriesRef, setup: Setup) -> Scanned:
    """``ref`` scanned in a process of its own: the error :data:`DIED` if that process dies too."""
    with _pool(setup, 1) as ex:
        try:
            return ex.submit(_scan_task, ref).result()
        except BrokenProcessPool:
            return SeriesResult(path=str(ref.path), series_uid=ref.series_uid, error=DIED), False, None


def _stop(ex: ProcessPoolExecutor) -> None:
    """Stop a pool now: its workers terminated, the work not started cancelled. An interrupted scan must
    neither wait for the series in progress nor hang: a SIGINT to this process alone (``kill -INT``, a
    scheduler) left a worker blocked on its queue and the graceful shutdown waiting for it for ever."""
    workers = list((getattr(ex, "_processes", None) or {}).values())  # no public way before Python 3.14
    for w in workers:
        w.terminate()
    ex.shutdown(wait=False, cancel_futures=True)
    for w in workers:
        w.join(timeout=10)


def scan_in_workers(refs: Sequence[SeriesRef], setup: Setup, jobs: int) -> Generator[Scanned, None, None]:
    """Each series' result (and whether it was read), in the order of ``refs``, scanned ``jobs`` at a time
    (see module docs). A detector that cannot be pickled is a :class:`ConfigError` before any worker
    starts. Closed before its end (an interrupt, an error in the caller), it stops the workers at once."""
    try:
        pickle.dumps(setup)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise ConfigError(f"--jobs {jobs}: the detector cannot be sent to worker processes ({err})") from None
    ex = _pool(setup, jobs)
    finished = False
    try:
        futures: list[Future[Scanned]] = [ex.submit(_scan_task, r) for r in refs]
        for i, ref in enumerate(refs):
            try:
                yield futures[i].result()
            except BrokenProcessPool:
                # which series killed it is unknown: this one is scanned alone, the rest in a fresh pool
                ex.shutdown(wait=True, cancel_futures=True)
                yield _alone(ref, setup)
                ex = _pool(setup, jobs)
                futures[i + 1 :] = [ex.submit(_scan_task, r) for r in refs[i + 1 :]]
        finished = True
    finally:
        if finished:
            ex.shutdown(wait=True, cancel_futures=True)
        else:
            _stop(ex)
