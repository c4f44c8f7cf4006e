"""A MetaImage's voxels read a z-range at a time: :class:`MetaImagePixels`.

The data of a 3-D MetaImage are the voxels in x-fastest order, so slice ``k`` is one contiguous run of
bytes: raw data are read where they lie (``.raw``, or after the header of an ``.mha``); zlib-compressed
data (``.zraw``, ``CompressedData = True``) are inflated on from the last read, from the start when a read
goes back, as a ``.nii.gz`` is. Data split over several files (``LIST``, patterns) are not streamed.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from medforensics.errors import InputError
from medforensics.io.lazy import LazySlices

ELEMENT_TYPES = {
    "MET_CHAR": "i1",
    "MET_UCHAR": "u1",
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_INT": "i4",
    "MET_UINT": "u4",
    "MET_LONG_LONG": "i8",
    "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4",
    "MET_DOUBLE": "f8",
}
CHUNK = 1 << 20  # compressed bytes read at a time


def _true(fields: dict[str, str], *keys: str) -> bool:
    return any(fields.get(k, "").strip().lower() == "true" for k in keys)


class MetaImagePixels(LazySlices):
    """Float32 ``(z, y, x)`` voxels of one MetaImage data file (see module docs); build with
    :func:`metaimage_pixels`. A data file found short when read is an :class:`InputError` naming it."""

    def __init__(
        self, data: Path, offset: int, dtype: np.dtype, shape: tuple[int, int, int], compressed: bool
    ) -> None:
        super().__init__(shape)
        self.data, self.offset, self.element, self.compressed = data, offset, dtype, compressed
        self.slice_bytes = dtype.itemsize * shape[1] * shape[2]
        self._fh: BinaryIO | None = None
        self._inflate: zlib._Decompress | None = None
        self._pos = 0  # inflated bytes consumed so far
        self._pending = b""  # inflated bytes not yet consumed

    def _read(self, ks: Sequence[int]) -> NDArray[np.float32]:
        out = np.empty((len(ks), *self.shape[1:]), np.float32)
        for j, e in self.runs(ks):  # one read per run of consecutive slices
            start, size = ks[j] * self.slice_bytes, (e - j) * self.slice_bytes
            raw = self._inflated(start, size) if self.compressed else self._raw(start, size)
            out[j:e] = np.frombuffer(raw, self.element).reshape(e - j, *self.shape[1:])
        return out

    def _short(self, got: int, wanted: int) -> InputError:
        return InputError(f"MetaImage data end after {got} of {wanted} bytes (truncated?)", path=self.data)

    def _raw(self, start: int, size: int) -> bytes:
        with self.data.open("rb") as fh:
            fh.seek(self.offset + start)
            buf = fh.read(size)
        if len(buf) < size:
            raise self._short(start + len(buf), start + size)
        return buf

    def _inflated(self, start: int, size: int) -> bytes:
        if self._fh is None or start < self._pos:  # first read, or going back: inflate from the start
            self.close()
            self._fh = self.data.open("rb")
            self._fh.seek(self.offset)
            self._inflate, self._pos, self._pending = zlib.decompressobj(47), 0, b""  # zlib or gzip
        parts, need, skip = [], size, start - self._pos  # _pending starts at byte _pos
        while need:
            if not self._pending:
                self._pending = self._more(start + size)
            if skip >= len(self._pending):  # all before the wanted range
                skip -= len(self._pending)
                self._pos, self._pending = self._pos + len(self._pending), b""
                continue
            take = self._pending[skip : skip + need]
            parts.append(take)
            need -= len(take)
            self._pos += skip + len(take)
            self._pending, skip = self._pending[skip + len(take) :], 0
        return b"".join(parts)

    def _more(self, wanted: int) -> bytes:
        """The next inflated bytes (a new zlib stream is begun where one ends, as ITK may chunk them)."""
        assert self._fh is not None and self._inflate is not None
        while True:
            chunk = self._inflate.unconsumed_tail or self._fh.read(CHUNK)
            if not chunk:
                raise self._short(self._pos, wanted)
            try:
                out = self._inflate.decompress(chunk, CHUNK * 4)
                if self._inflate.eof and self._inflate.unused_data:
                    rest = self._inflate.unused_data
                    self._inflate = zlib.decompressobj(47)
                    out += self._inflate.decompress(rest, CHUNK * 4)
            except zlib.error as exc:
                raise InputError(f"corrupt compressed MetaImage data ({exc})", path=self.data) from exc
            if out:
                return out

    def close(self) -> None:
        """Close the file a compressed read keeps open (reopened on the next read)."""
        if self._fh is not None:
            self._fh.close()
        self._fh, self._inflate = None, None

    def __del__(self) -> None:
        self.close()

    def __copy__(self) -> MetaImagePixels:  # a flipped view gets its own stream position
        out = MetaImagePixels(self.data, self.offset, self.element, self.shape, self.compressed)
        out.flips = self.flips
        return out


def metaimage_pixels(path: Path, fields: dict[str, str], header_end: int) -> MetaImagePixels | None:
    """The lazy voxels of the 3-D, one-component MetaImage ``path`` with header ``fields`` (ending at byte
    ``header_end``), or None when its layout is not one this streams (several data files, an element type
    ITK names otherwise, a HeaderSize with compressed data). Raw data found short are an InputError."""
    dims = fields.get("DimSize", "").split()
    name = fields["ElementDataFile"]
    element = ELEMENT_TYPES.get(fields.get("ElementType", "").strip())
    channels = fields.get("ElementNumberOfChannels", "1").strip()
    if len(dims) != 3 or element is None or channels != "1" or name.upper().startswith("LIST") or "%" in name:
        return None
    nx, ny, nz = (int(d) for d in dims)
    msb = _true(fields, "BinaryDataByteOrderMSB", "ElementByteOrderMSB", "ByteOrderMSB")
    dtype = np.dtype(element).newbyteorder(">" if msb else "<")
    compressed = _true(fields, "CompressedData")
    local = name.upper() == "LOCAL"
    data = path if local else (Path(name) if Path(name).is_absolute() else path.parent / name)
    header_size = int(fields.get("HeaderSize", "0") or 0)
    nbytes = dtype.itemsize * nx * ny * nz
    if compressed and header_size:
        return None
    size = data.stat().st_size
    if local:
        offset = header_end
    elif header_size == -1:
        offset = size - nbytes
    else:
        offset = header_size
    if not compressed and size < offset + nbytes:
        held = max(0, size - offset)
        raise InputError(f"MetaImage data hold {held} of {nbytes} bytes (truncated?)", path=data)
    return MetaImagePixels(data, offset, dtype, (nz, ny, nx), compressed)
