"""Compressed DICOM files decoded on all cores.

The JPEG-LS, JPEG 2000 and JPEG decoders pydicom calls (pylibjpeg's) hold the GIL: threads decode no faster
than one (measured, session 45: 40 JPEG 2000 lossless slices 1.04 s on one thread, 1.12 s on two). A
chest CT archived as JPEG 2000 lossless (about 32 ms a 512 x 512 slice) or JPEG-LS lossless (about 18 ms)
then spends seconds decoding on one core. :func:`decoded` hands such files to
:func:`~medforensics._threads.workers` worker processes instead (the datasets are pickled there, the stored
pixels come back), in order; uncompressed, RLE and deflated files, short runs of files, one allowed thread,
or a caller that is itself a worker process decode here as before. The pool is made on first use and kept
for the next series. A decoder that kills its process (a crash in C on a malformed codestream) makes the
file an :class:`~medforensics.errors.InputError`, and the scan goes on, where decoding in this process would
have ended it.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

from medforensics._pools import children_ignore_sigint
from medforensics.errors import InputError

#: Fewer files than this are decoded here: starting workers and pickling costs more than it saves.
MIN_FILES = 4

#: ``(ds_index, dataset, stored pixels)`` of one file (:func:`decoded`).
Decoded = tuple[int, Dataset, NDArray[Any]]

_POOL: dict[str, Any] = {}


def _pool(n: int) -> Executor:
    """The decoding processes (``n`` of them; made again when ``n`` changes or after a crash)."""
    if _POOL.get("n") != n:
        shutdown()
        # fork: the workers start at once with pydicom and its decoders imported. Not spawn or forkserver:
        # those run the caller's main script again in each worker, which a script without a
        # ``__main__`` guard cannot take (it would read its series again there); a decoding worker never
        # runs torch or any other OpenMP code, so the scanning process's OpenMP threads do not matter
        _POOL.update(n=n, ex=ProcessPoolExecutor(n, mp.get_context("fork")))
    return _POOL["ex"]


def shutdown() -> None:
    """End the decoding processes, if any (a later call makes them again)."""
    ex = _POOL.pop("ex", None)
    _POOL.pop("n", None)
    if ex is not None:
        ex.shutdown(wait=True, cancel_futures=True)


def _worth_it(ds: Dataset) -> bool:
    """Whether files encoded as ``ds`` decode slowly enough to send them to other processes."""
    from medforensics.io.dicom_pixels import _is_native, transfer_syntax

    ts = transfer_syntax(ds)
    return not _is_native(ts) and ts not in (RLELossless, DeflatedExplicitVRLittleEndian)


def _decode_remote(task: tuple[Dataset, Path]) -> NDArray[Any]:
    from medforensics.io.dicom_pixels import _decode

    return _decode(*task)  # the pickled dataset: the bytes this process read, not the file again


def decoded(
    files: Sequence[int],
    paths: Sequence[Path],
    open_ds: Callable[[int], Dataset],
    n: int | None = None,
) -> Iterator[Decoded]:
    """``(i, dataset, stored pixels)`` for each file index ``i`` of ``files`` (opened by ``open_ds(i)``),
    in order, decoded by :func:`~medforensics.io.dicom_pixels._decode`: on ``n`` (default
    :func:`~medforensics._threads.workers`) processes when the files are compressed with a codec worth it
    (see module docs), else here, one file at a time as it is asked for."""
    from medforensics._threads import workers
    from medforensics.io.dicom_pixels import _decode as decode

    n = workers() if n is None else n
    if not files:
        return
    first = open_ds(files[0])
    if n >= 2 and len(files) >= MIN_FILES and mp.parent_process() is None and _worth_it(first):
        # the rest are opened now too: compressed bytes, and a slab's files at most
        yield from _remote(files, paths, [first, *(open_ds(i) for i in files[1:])], n)
        return
    yield files[0], first, decode(first, paths[files[0]])
    for i in files[1:]:
        ds = open_ds(i)
        yield i, ds, decode(ds, paths[i])


def _remote(
    files: Sequence[int], paths: Sequence[Path], datasets: list[Dataset], n: int
) -> Iterator[Decoded]:
    with children_ignore_sigint():  # the first map starts the processes: Ctrl-C is the scan's, not theirs
        results = _pool(n).map(
            _decode_remote, [(ds, paths[i]) for i, ds in zip(files, datasets, strict=True)]
        )
    got = 0  # files yielded: the next one's result is the one being waited for
    try:
        for px in results:
            yield files[got], datasets[got], px
            got += 1
    except BrokenProcessPool:
        shutdown()
        raise InputError(
            "a pixel decoder crashed (its process died) on this file or one decoded beside it",
            path=paths[files[got]],
        ) from None
