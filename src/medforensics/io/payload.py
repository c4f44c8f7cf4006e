"""Does a volume file hold the voxels its header promises? Checked from the header and the file size alone,
before any voxel buffer is allocated.

A corrupt or hostile header (a NIfTI, MetaImage or NRRD file of a few kilobytes whose dimensions say 30000
x 30000 x 30000) otherwise reaches the allocation of a slab of its slices, and the scan's reason was
"MemoryError: Unable to allocate 53.6 GiB", which blames the machine instead of the file (or, where the
allocation fits, the read fails later, slice by slice). Uncompressed data must be at least as long as the
header's dimensions and element type need; deflate (gzip, zlib) packs at most :data:`MAX_DEFLATE_RATIO` to
one, so compressed data shorter than that fraction cannot hold them either.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medforensics.errors import InputError

#: Deflate's largest possible compression ratio (a stream of one repeated byte: 258-byte matches in about
#: two bits each), for gzip and zlib data alike.
MAX_DEFLATE_RATIO = 1032


def size_text(n: int) -> str:
    """``n`` bytes in the largest unit that keeps it at least 1."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_payload(
    path: Path,
    shape: Sequence[int],
    itemsize: int,
    held: int,
    compressed: bool,
    fmt: str,
    data: Path | None = None,
) -> None:
    """Raise :class:`InputError` naming ``path`` when ``held`` bytes of voxel data (deflate-compressed when
    ``compressed``) cannot hold ``shape`` elements of ``itemsize`` bytes each, as a ``fmt`` header says.
    ``data``: the file the voxels are in, when not ``path`` itself (named in the reason)."""
    need = itemsize
    for n in shape:
        need *= int(n)
    dims = " x ".join(str(int(n)) for n in shape)
    where = f"data file {str(data)!r}" if data is not None and data != path else "the file"
    held = max(held, 0)
    if compressed and need > MAX_DEFLATE_RATIO * held:
        raise InputError(
            f"corrupt {fmt} header: its {dims} voxels need {size_text(need)}, more than the "
            f"{size_text(held)} of compressed data in {where} can hold (deflate packs at most "
            f"{MAX_DEFLATE_RATIO}:1)",
            path=path,
        )
    if not compressed and held < need:
        raise InputError(
            f"truncated {fmt} data: its {dims} voxels need {size_text(need)}, {where} holds "
            f"{size_text(held)}",
            path=path,
        )
