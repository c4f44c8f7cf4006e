"""Thread parallelism for the numpy / scipy stages of a scan.

The network runs on torch's intra-op threads; the stages around it (lung mask, noise-correlation boxes,
the blob search's Gaussian filters) are scipy.ndimage and numpy calls, which release the GIL but use one
core each. These helpers spread such calls over as many threads as torch is allowed
(``torch.get_num_threads()``, what ``--threads`` and the benchmarks set), so a 2-core machine uses both.
Results are exactly those of the serial calls: work is split only where the pieces are independent
(separate filters, or slabs of slices for an operation that acts slice by slice).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

T = TypeVar("T")
R = TypeVar("R")


def workers() -> int:
    """Threads to use: torch's intra-op thread count (1 when torch is not importable)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 1
    return max(1, int(torch.get_num_threads()))


def one_blas_thread() -> Any:
    """A context manager limiting numpy's and scipy's BLAS to one thread. A scan's stages call BLAS only for
    small products, many from :func:`thread_map`'s threads and right after torch's threads ran: a threaded
    BLAS there only makes the threads compete for the cores (the demo CT's scan: median 4.51 s with BLAS on
    2 threads, 4.17 s on one, 6 scans each alternated in one process, session 71)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def thread_map(fn: Callable[[T], R], items: Iterable[T], n: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, on up to ``n`` threads (default :func:`workers`), in order."""
    todo = list(items)
    n = min(n or workers(), len(todo))
    if n <= 1:
        return [fn(x) for x in todo]
    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(fn, todo))


def slabs(depth: int, n: int | None = None) -> list[tuple[int, int]]:
    """``n`` (default :func:`workers`) contiguous ``(start, stop)`` ranges covering ``range(depth)``."""
    n = max(1, min(n or workers(), depth))
    edges = np.linspace(0, depth, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def per_slice(
    fn: Callable[[NDArray[Any], NDArray[Any]], object],
    array: NDArray[Any],
    out: NDArray[Any],
    n: int | None = None,
) -> NDArray[Any]:
    """Run ``fn(src, dst)``, which writes into ``dst`` the result for ``src`` and acts on each slice (axis 0)
    alone (an in-plane filter, a flat structuring element), on slabs of slices of ``array`` and ``out`` in
    parallel; returns ``out``. ``fn`` writing into ``dst`` (``output=`` of scipy.ndimage) keeps memory as
    the serial call's: no slab results held beside ``out``."""
    if out.shape[0] != array.shape[0]:
        raise ValueError(f"out has {out.shape[0]} slices, array {array.shape[0]}")
    thread_map(lambda part: fn(array[part[0] : part[1]], out[part[0] : part[1]]), slabs(array.shape[0], n), n)
    return out
