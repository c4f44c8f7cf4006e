"""A volume's pixels read on demand, a z-range at a time: :class:`LazySlices`.

A long series (a whole-body CT, a 1000-slice thin-slice study) need not be held whole: the scan walks it
slab by slab (:func:`medforensics.features.noise_map.grid_means`). A lazy array stands in for
``Volume.array``: indexing takes an int or a slice along z first (then anything NumPy takes for the other
axes) and returns a new float32 array read from the source; ``np.asarray(pixels)`` reads everything.
Subclasses say how slices are read (:meth:`LazySlices._read`): DICOM files
(:class:`~medforensics.io.dicom_pixels.DicomPixels`), a NIfTI file
(:class:`~medforensics.io.nifti.NiftiPixels`), a MetaImage data file
(:class:`~medforensics.io.metaimage_pixels.MetaImagePixels`).
Flips (what :meth:`Volume.reoriented_axial <medforensics.io.volume.Volume.reoriented_axial>` applies to
an axial volume stored feet-last or mirrored) stay lazy: :meth:`LazySlices.flipped`.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


class LazySlices:
    """Float32 ``(z, y, x)`` pixels read from their source at each access (see module docs)."""

    dtype = np.dtype(np.float32)
    ndim = 3
    is_lazy = True  # what :class:`~medforensics.io.volume.Volume` checks before taking it as its array

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.shape = shape
        self.flips = (False, False, False)

    def _read(self, ks: Sequence[int]) -> NDArray[np.float32]:
        """Source slices ``ks`` (unflipped z indices) as one ``(len(ks), y, x)`` float32 array."""
        raise NotImplementedError

    @staticmethod
    def runs(ks: Sequence[int]) -> Iterator[tuple[int, int]]:
        """``(j, e)`` for each run ``ks[j:e]`` of consecutive slices: what one read of a file can fetch."""
        j = 0
        while j < len(ks):
            e = j + 1
            while e < len(ks) and ks[e] == ks[e - 1] + 1:
                e += 1
            yield j, e
            j = e

    def read(self, ks: Sequence[int]) -> NDArray[np.float32]:
        """Slices ``ks`` (array indices along z) as one float32 array."""
        n = self.shape[0]
        out = self._read([n - 1 - k for k in ks] if self.flips[0] else list(ks))
        if self.flips[1] or self.flips[2]:
            out = np.ascontiguousarray(out[:, :: -1 if self.flips[1] else 1, :: -1 if self.flips[2] else 1])
        return out

    def flipped(self, flips: Sequence[bool]) -> LazySlices:
        """A lazy view with the axes in ``flips`` (z, y, x) reversed."""
        out = copy.copy(self)
        out.flips = tuple(a != bool(b) for a, b in zip(self.flips, flips, strict=True))  # type: ignore[assignment]
        return out

    def sample(self, n: int = 16) -> NDArray[np.float32]:
        """Up to ``n`` evenly spaced slices (what a modality guess looks at instead of the whole array)."""
        ks = np.unique(np.linspace(0, self.shape[0] - 1, min(n, self.shape[0])).round().astype(int))
        return self.read([int(k) for k in ks])

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        """Number of voxels."""
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """Bytes the whole array would take once read."""
        return 4 * self.size

    def __getitem__(self, key: Any) -> NDArray[np.float32]:
        key = key if isinstance(key, tuple) else (key,)
        z, rest = key[0], key[1:]
        if isinstance(z, slice):
            return self.read(range(*z.indices(self.shape[0])))[(slice(None), *rest)]
        name = type(self).__name__
        try:
            k = operator.index(z)
        except TypeError:
            raise TypeError(f"{name} takes an int or a slice along z, got {type(z).__name__}") from None
        if not -self.shape[0] <= k < self.shape[0]:
            raise IndexError(f"slice {k} outside a series of {self.shape[0]}")
        return self.read([k % self.shape[0]])[(0, *rest)]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        out = self.read(range(self.shape[0]))
        return out if dtype is None else out.astype(dtype, copy=False)
