"""NRRD (.nrrd, or a detached .nhdr header with its data file) reading with SimpleITK.

NRRD is 3D Slicer's and pyradiomics' volume format. SimpleITK converts any ``space`` (RAS or LPS) to LPS,
so the volume is built exactly as a MetaImage is (:func:`medforensics.io.metaimage.sitk_volume`). NRRD data
are usually gzip-compressed as one stream, so the voxels are read whole (no streaming above a size).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from medforensics.errors import InputError
from medforensics.io.metaimage import sitk_info, sitk_volume, sitk_voxels
from medforensics.io.payload import check_payload
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("io.nrrd")

NRRD_SUFFIXES = (".nrrd", ".nhdr")
_DATA_FILE = re.compile(rb"^data ?file:\s*(.+?)\s*$", re.MULTILINE)


def is_nrrd_path(path: str | Path) -> bool:
    """True if the file name ends in .nrrd or .nhdr."""
    return str(path).lower().endswith(NRRD_SUFFIXES)


def _head(path: Path) -> bytes:
    """The header of an NRRD file (up to the blank line that ends it; at most 64 KiB)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", path=path) from exc
    return head.split(b"\n\n", 1)[0]


def nrrd_data_file(nhdr: Path) -> Path | None:
    """The data file a detached header names (None for an attached header, a list or a pattern)."""
    try:
        m = _DATA_FILE.search(_head(nhdr))
    except InputError:
        return None
    if not m:
        return None
    name = m.group(1).decode("utf-8", "replace")
    if name.upper().startswith("LIST") or "%" in name or " " in name:
        return None
    return (nhdr.parent / name).resolve()


_ENCODING = re.compile(rb"^encoding:\s*(\S+)\s*$", re.MULTILINE)
_DEFLATED, _RAW = ("gzip", "gz"), ("raw",)


def _check_nrrd_payload(path: Path, head: bytes, data: Path | None, info: Any) -> None:
    """InputError when raw or gzip data cannot hold the voxels the header's sizes and type need
    (:func:`~medforensics.io.payload.check_payload`; other encodings, lists and patterns are not checked)."""
    import SimpleITK as sitk

    m = _ENCODING.search(head)
    encoding = m.group(1).decode("latin-1").lower() if m else ""
    itemsize = {
        sitk.sitkInt8: 1, sitk.sitkUInt8: 1, sitk.sitkInt16: 2, sitk.sitkUInt16: 2, sitk.sitkInt32: 4,
        sitk.sitkUInt32: 4, sitk.sitkInt64: 8, sitk.sitkUInt64: 8, sitk.sitkFloat32: 4, sitk.sitkFloat64: 8,
    }.get(info.GetPixelID())  # fmt: skip
    if encoding not in _DEFLATED + _RAW or itemsize is None:
        return
    if _DATA_FILE.search(head) is None:  # attached: the data follow the blank line that ends the header
        data, offset = path, len(head) + 2
    elif data is None:
        return
    else:
        offset = 0
    held = data.stat().st_size - offset
    check_payload(path, info.GetSize(), itemsize, held, encoding in _DEFLATED, "NRRD", data=data)


def read_nrrd(path: str | Path, modality: str | None = None) -> Volume:
    """Read a .nrrd (or .nhdr and its data file) into an axial :class:`Volume`.

    ``modality`` overrides the guess of :func:`~medforensics.io.nifti.infer_modality` (NRRD does not record
    it). Raises :class:`InputError` for missing, empty, malformed or truncated files, a missing detached data
    file, vector pixels and images that are not 2-D or 3-D.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path=path)
    head = _head(path)
    if not head.startswith(b"NRRD000"):
        raise InputError("not an NRRD file (no NRRD000x magic)", path=path)
    data = nrrd_data_file(path)
    if data is not None and not data.is_file():
        raise InputError(f"data file {data.name!r} named in the header is missing", path=path)
    info = sitk_info(path, "NRRD")
    _check_nrrd_payload(path, head, data, info)
    volume = sitk_volume(info, sitk_voxels(info, path), path, modality, "nrrd")
    log.debug("read NRRD %s shape=%s modality=%s", path.name, volume.shape, volume.modality)
    return volume
