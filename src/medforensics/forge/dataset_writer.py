"""Writing a forge data set's samples: in the forging process, or in worker processes beside it.

Forging (crops, attack parameters, augmentation, UIDs: every random draw) stays in one process, in plan
order; only writing a finished sample (its DICOM series, mask and record: about three quarters of the
per-sample time, profiled in session 43) may go to ``jobs`` spawned workers. The data set is therefore the
same, file for file, whatever ``jobs`` (600 scans on 2 cores: 102.5 s with 1, 83.3 s with 2).
"""

from __future__ import annotations

import json
import multiprocessing as mp
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from medforensics._atomic import write_text_atomic
from medforensics.errors import MedforensicsError
from medforensics.forge import dataset_layout as L
from medforensics.io.volume import Volume

__all__ = ["SampleWriter", "WorkerWriteFailed", "write_sample"]


class WorkerWriteFailed(RuntimeError):
    """A worker could not write a sample for a reason of that sample (a :class:`MedforensicsError`). The
    forging process counts such a sample as failed and makes another in its place, which changes the draws
    after it, so the caller builds the data set again in one process (as ``jobs`` 1 would have)."""


def write_sample(out: Path, vol: Volume, mask: np.ndarray, side: dict[str, Any]) -> str:
    """Write one sample under ``out``: ``scans/<uuid>/``, ``masks/<uuid>.nii.gz``, ``records/<uuid>.json``
    (``side`` is the record). Returns the scan's format."""
    from medforensics.io.nifti import write_nifti

    uid = side["uuid"]
    fmt = L.write_scan(vol, out / "scans" / uid, side["new_uids"])
    write_nifti(vol.with_array(mask.astype(np.float32)), out / "masks" / f"{uid}.nii.gz", dtype=np.uint8)
    write_text_atomic(out / "records" / f"{uid}.json", json.dumps(side, indent=1) + "\n")
    return fmt


class SampleWriter:
    """``writer(sample, vol, mask, side)`` writes the sample under ``out`` and sets ``sample.scan_format``:
    at once (``jobs`` 1), or in ``jobs`` spawned processes, at most ``2 x jobs`` samples waiting (memory
    stays bounded). Use as a context manager: leaving it waits for every write; a worker's
    :class:`MedforensicsError` is raised as :class:`WorkerWriteFailed`."""

    def __init__(self, out: Path, jobs: int = 1) -> None:
        self.out = out
        self.jobs = jobs
        self.pool: ProcessPoolExecutor | None = None
        self.pending: list[tuple[L.Sample, Future[str]]] = []

    def __enter__(self) -> SampleWriter:
        if self.jobs > 1:  # spawned, not forked: the forging process may hold torch's threads
            self.pool = ProcessPoolExecutor(self.jobs, mp_context=mp.get_context("spawn"))
        return self

    def __call__(self, sample: L.Sample, vol: Volume, mask: np.ndarray, side: dict[str, Any]) -> None:
        if self.pool is None:
            sample.scan_format = write_sample(self.out, vol, mask, side)
            return
        self.pending.append((sample, self.pool.submit(write_sample, self.out, vol, mask, side)))
        while len(self.pending) > 2 * self.jobs:
            self._collect(*self.pending.pop(0))

    def _collect(self, sample: L.Sample, future: Future[str]) -> None:
        try:
            sample.scan_format = future.result()
        except MedforensicsError as err:
            raise WorkerWriteFailed(f"sample {sample.uuid}: {err.reason}") from err

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                while self.pending:
                    self._collect(*self.pending.pop(0))
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            self.pending = []
