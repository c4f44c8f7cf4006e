"""Data-set scans scanned in worker processes (``evaluate --jobs N``), as ``scan --jobs`` scans series.

Each worker is a spawned process that loads the detectors once (the bundled ones or a dense localiser's
folder, with the command's ``--max-slice-mm`` / ``--max-pixel-mm``) and returns each scan's
:class:`~medforensics.evaluate.scan_level.ScanRow`; rows come back in the data set's order, so the
evaluation is the same whatever N. Workers share this process's torch threads and log through it
(:class:`~medforensics.scan.parallel.WorkerPool`). A worker that dies (out of memory, a crash in C) breaks the
pool, and every scan still out with it: the first of those is scanned again alone in a fresh process (an
error row, :data:`~medforensics.scan.parallel.DIED`, when that process dies too) and the rest in a fresh
pool.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medforensics._pools import results_in_order
from medforensics.evaluate.scan_level import Labelled, ScanRow, scan_row
from medforensics.scan.parallel import DIED, WorkerPool, shared_threads, start_worker

_WORKER: dict[str, Any] = {}


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker loads and how it runs."""

    model_dir: Path | None
    limits: tuple[float | None, float | None]
    threads: int
    log_level: int = logging.WARNING


def _init(setup: WorkerSetup, log_queue: Any) -> None:
    from medforensics.scan.detector import scan_detectors, with_limits

    start_worker(setup.log_level, setup.threads, log_queue)
    detectors = scan_detectors(setup.model_dir)
    with_limits(detectors[0], *setup.limits)
    _WORKER["detectors"] = detectors


def _task(item: Labelled) -> ScanRow:
    return scan_row(_WORKER["detectors"], item)


def _pool(setup: WorkerSetup, jobs: int) -> WorkerPool[Labelled, ScanRow]:
    return WorkerPool(jobs, _init, (setup,), _task)


def _died(item: Labelled) -> ScanRow:
    return replace(item.row, error=DIED)


def worker_setup(
    model_dir: str | Path | None, limits: tuple[float | None, float | None], jobs: int
) -> WorkerSetup:
    """The setup of ``jobs`` workers sharing this process's torch threads (at least one each)."""
    level = logging.getLogger().getEffectiveLevel()
    return WorkerSetup(None if model_dir is None else Path(model_dir), limits, shared_threads(jobs), level)


def rows_in_workers(
    items: Sequence[Labelled], setup: WorkerSetup, jobs: int
) -> Generator[ScanRow, None, None]:
    """Each scan's row, in the order of ``items``, scanned ``jobs`` at a time (see module docs); closed
    before its end (an interrupt, an error in the caller), it stops the workers at once."""
    yield from results_in_order(items, lambda n: _pool(setup, n), jobs, _died)
