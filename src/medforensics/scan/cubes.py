"""Fast cube extraction for scanning many candidates.

:func:`medforensics.forge.cubes.extract_cube` (``scipy.ndimage.map_coordinates``, trilinear, mirrored
borders) defines what a detector sees; it costs milliseconds per cube. A scan scores hundreds to thousands
of cubes, so here the same trilinear resampling is done separably (the volume grid is axis-aligned with the
cube grid): gather the block of source voxels the cube touches, then contract one axis at a time with a
sparse interpolation matrix. The result equals ``extract_cube`` (tested to 1e-3 HU), about 10x faster
(BLAS kept single-threaded: the products are tiny).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.forge.cubes import cube_grid


def _mirror(idx: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    """``scipy.ndimage`` 'mirror' boundary (reflect about the edge voxel centre: d c b | a b c d | c b a)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    m = np.mod(idx, period)
    return np.where(m >= n, period - m, m)


def _axis_weights(pos: NDArray[np.float64], n: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Source indices (unique, sorted) and the (len(pos), len(indices)) linear-interpolation matrix."""
    i0 = np.floor(pos).astype(np.int64)
    w1 = (pos - i0).astype(np.float32)
    a, b = _mirror(i0, n), _mirror(i0 + 1, n)
    uniq, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    mat = np.zeros((len(pos), len(uniq)), np.float32)
    rows = np.arange(len(pos))
    np.add.at(mat, (rows, inv[: len(pos)]), 1.0 - w1)
    np.add.at(mat, (rows, inv[len(pos) :]), w1)
    return uniq, mat


def extract_cube_fast(
    array: NDArray[Any],
    spacing: Sequence[float],
    center: Sequence[float],
    cube_mm: float = 32.0,
    iso_mm: float = 1.0,
) -> NDArray[np.float32]:
    """Same cube as :func:`medforensics.forge.cubes.extract_cube` (values only), computed separably."""
    grid = cube_grid(array.shape, tuple(spacing), tuple(float(c) for c in center), cube_mm, iso_mm)  # type: ignore[arg-type]
    half = (grid.n - 1) / 2.0
    idx: list[NDArray[np.int64]] = []
    mats: list[NDArray[np.float32]] = []
    for ax in range(3):
        pos = (grid.center[ax] + (np.arange(grid.n) - half) * grid.step[ax]).astype(np.float64)
        u, m = _axis_weights(pos, array.shape[ax])
        idx.append(u)
        mats.append(m)
    block = np.asarray(array[np.ix_(idx[0], idx[1], idx[2])], dtype=np.float32)
    out = np.tensordot(block, mats[2], axes=([2], [1]))  # (mz, my, n)
    out = np.tensordot(mats[1], out, axes=([1], [1]))  # (n, mz, n)
    out = np.tensordot(mats[0], out, axes=([1], [1]))  # (n, n, n)
    return np.ascontiguousarray(out, dtype=np.float32)


def iter_cube_batches(
    array: NDArray[Any],
    spacing: Sequence[float],
    centers: Sequence[Sequence[float]],
    cube_mm: float,
    iso_mm: float,
    batch: int = 128,
) -> Iterator[tuple[int, NDArray[np.float32]]]:
    """``(start index, cubes (B, n, n, n))`` over ``centers`` in batches (memory stays bounded)."""
    from medforensics._threads import one_blas_thread

    for s in range(0, len(centers), batch):
        with one_blas_thread():  # tiny products: threaded BLAS only adds overhead
            cubes = [extract_cube_fast(array, spacing, c, cube_mm, iso_mm) for c in centers[s : s + batch]]
        yield s, np.stack(cubes)
