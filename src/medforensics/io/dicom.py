"""DICOM reading: one file (single- or multi-frame) or the files of one series -> :class:`Volume`.

Slices are sorted along the slice normal, pixels are converted to physical units with the rescale
slope/intercept of each slice (Hounsfield units for CT) and MONOCHROME1 is inverted so that brighter
always means denser. Compressed transfer syntaxes are decoded by pydicom's pixel plugins (pylibjpeg).
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from medforensics.errors import InputError
from medforensics.io.dicom_frames import (
    BULK_KEYWORDS,
    frame_count,
    strip_bulk,
)
from medforensics.io.dicom_layout import SeriesLayout, SliceRef, series_layout
from medforensics.io.dicom_pixels import DicomPixels, decode_slices, transfer_syntax
from medforensics.io.dicom_split import StackSlice
from medforensics.io.dicom_tags import series_modality
from medforensics.io.volume import Volume
from medforensics.logging import get_logger, short_hash

if TYPE_CHECKING:
    from medforensics.io.reader import SeriesRef, Skipped

__all__ = ["DicomHeader", "discover_dicom_series", "is_dicom_file", "read_dataset", "read_dicom_series"]

log = get_logger("io.dicom")

#: First groups an ACR-NEMA / preamble-less DICOM file may start with.
_HEADERLESS_GROUPS = (0x0000, 0x0002, 0x0008)


def _headerless_candidate(head: bytes) -> bool:
    if len(head) < 8:
        return False
    group = int.from_bytes(head[0:2], "little")
    return group in _HEADERLESS_GROUPS


def _looks_like_dataset(ds: Dataset) -> bool:
    return any(k in ds for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality", "Rows"))


def is_dicom_file(path: str | Path) -> bool:
    """True for a DICOM file: 'DICM' at byte 128, or a parseable dataset without the preamble."""
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size == 0:
            return False
        with p.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    if not _headerless_candidate(head):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
        return _looks_like_dataset(ds)
    except Exception:
        return False


def _check_truncated(ds: Dataset, size: int, path: Path) -> None:
    """Raise if the last element read is shorter than declared or a partial element trails it."""
    keys = list(ds.keys())
    if not keys:
        raise InputError("corrupt or truncated DICOM: no data elements could be read", path=path)
    last = ds.get_item(keys[-1], keep_deferred=True)
    value_tell = getattr(last, "value_tell", None)
    declared = int(getattr(last, "length", 0))
    if value_tell is None or declared == 0xFFFFFFFF:  # encapsulated: a short fragment fails in the decoder
        return
    if last.value is None and declared:  # deferred (not read yet): what the file holds of it
        if transfer_syntax(ds).is_deflated:  # offsets count inflated bytes, not the file's: checked once read
            return
        got = max(0, min(declared, size - int(value_tell)))
    elif isinstance(last.value, bytes | bytearray):
        got = len(last.value)
    else:
        return
    if got < declared:
        raise InputError(f"truncated DICOM file: element {last.tag} has {got} of {declared} bytes", path=path)
    if 0 < size - (value_tell + got) < 12:
        raise InputError("truncated DICOM file: ends inside an element header", path=path)


#: With ``defer_bulk``, values longer than this (pixel data) are read from the file only when used.
DEFER_SIZE = 64 * 1024


def read_dataset(path: str | Path, *, header_only: bool = False, defer_bulk: bool = False) -> Dataset:
    """Read one DICOM file; any problem becomes a one-line :class:`InputError` naming the file.

    ``defer_bulk`` leaves values over :data:`DEFER_SIZE` bytes (the pixel data) in the file until they are
    accessed (a series then never holds every file's pixel bytes at once); they are still checked for
    truncation against the file size."""
    return _parse(Path(path), header_only=header_only, defer_bulk=defer_bulk)[0]


def _parse(
    p: Path, *, header_only: bool = False, defer_bulk: bool = False, check_bulk: bool = True
) -> tuple[Dataset, os.stat_result]:
    """:func:`read_dataset`, also returning the file's stat taken before it was read. ``check_bulk=False``
    skips the truncation check of the (deferred) pixel data; :func:`_reuse` does it when the pixels are
    wanted."""
    if not p.exists():
        raise InputError("does not exist", path=p)
    if not p.is_file():
        raise InputError("not a file", path=p)
    st = p.stat()
    if st.st_size == 0:
        raise InputError("empty file (0 bytes)", path=p)
    try:
        with p.open("rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror})", path=p) from None
    preamble = len(head) == 132 and head[128:132] == b"DICM"
    if not preamble and not _headerless_candidate(head):
        raise InputError("not DICOM (no 'DICM' marker and no DICOM data elements)", path=p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(
                p,
                stop_before_pixels=header_only,
                force=not preamble,
                defer_size=DEFER_SIZE if defer_bulk and not header_only else None,
            )
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"corrupt or truncated DICOM ({type(exc).__name__}: {msg[:160]})", path=p) from exc
    if not preamble and not _looks_like_dataset(ds):
        raise InputError("not DICOM (no recognisable data elements)", path=p)
    if not header_only and check_bulk:
        _check_truncated(ds, st.st_size, p)
    return ds, st


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class DicomHeader:
    """One file as :func:`discover_dicom_series` parsed it (pixel data deferred: not read) and its stat
    then, so that :func:`read_dicom_series` need not parse it again while the file is unchanged."""

    dataset: Dataset
    stamp: tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns


def _reuse(p: Path, header: DicomHeader | None) -> Dataset:
    """``read_dataset(p, defer_bulk=True)``, taking the dataset discovery parsed when the file is unchanged
    (same device, inode, size and modification time); a changed or vanished file is read (or refused) anew."""
    if header is not None:
        try:
            st = p.stat()
        except OSError:
            st = None
        if st is not None and _stamp(st) == header.stamp:
            _check_truncated(header.dataset, st.st_size, p)
            return header.dataset
    return read_dataset(p, defer_bulk=True)


def _metadata(ds0: Dataset, datasets: list[Dataset], slices: list[SliceRef], ts: UID) -> dict[str, Any]:
    info0 = slices[0].info
    pid = ds0.get("PatientID")
    meta: dict[str, Any] = {
        "source_format": "dicom",
        "series_uid": str(ds0.get("SeriesInstanceUID", "")) or None,
        "study_uid": str(ds0.get("StudyInstanceUID", "")) or None,
        "frame_of_reference_uid": str(ds0.get("FrameOfReferenceUID", "")) or None,
        "sop_class_uid": str(ds0.get("SOPClassUID", "")) or None,
        "sop_instance_uids": [s.info.sop_instance_uid for s in slices],
        "instance_numbers": [s.info.instance_number for s in slices],
        "slice_positions": [float(s.key) for s in slices],
        "frame_sources": [(s.ds_index, s.info.frame) for s in slices],
        "multiframe": any(frame_count(d) > 1 for d in datasets),
        "patient_hash": short_hash(pid) if pid else None,
        "manufacturer": str(ds0.get("Manufacturer", "")) or None,
        "model": str(ds0.get("ManufacturerModelName", "")) or None,
        "series_description": str(ds0.get("SeriesDescription", "")) or None,
        "transfer_syntax": str(ts),
        "transfer_syntax_name": ts.name,
        "photometric": str(ds0.get("PhotometricInterpretation", "")) or None,
        "bits_stored": int(ds0.get("BitsStored") or ds0.get("BitsAllocated") or 0) or None,
        "rescale": (info0.slope, info0.intercept),
        "rescale_varies": len({(s.info.slope, s.info.intercept) for s in slices}) > 1,
    }
    if info0.window is not None:
        meta["window_center"], meta["window_width"] = info0.window
    if int(ds0.get("SamplesPerPixel") or 1) > 1 or meta["photometric"] == "PALETTE COLOR":
        meta["color_converted"] = "colour converted to grayscale luminance (0.299 R + 0.587 G + 0.114 B)"
    return meta


def _series_paths(files: Sequence[Path | str] | Path | str) -> list[Path]:
    if isinstance(files, str | Path) and Path(files).is_dir():
        folder = Path(files)
        paths = sorted(p for p in folder.iterdir() if p.is_file() and is_dicom_file(p))
        if not paths:
            raise InputError("no DICOM files in this folder", path=folder)
        return paths
    paths = [Path(files)] if isinstance(files, str | Path) else sorted(Path(f) for f in files)
    if not paths:
        raise InputError("no DICOM files given")
    return paths


def read_dicom_header(files: Sequence[Path | str] | Path | str) -> SeriesLayout:
    """Like :func:`read_dicom_series` but reads headers only (fast; for listing and geometry)."""
    paths = _series_paths(files)
    return series_layout([read_dataset(p, header_only=True) for p in paths], paths)


def read_dicom_series(
    files: Sequence[Path | str] | Path | str,
    *,
    stream_above: int | None = None,
    headers: Mapping[Path, DicomHeader] | None = None,
) -> Volume:
    """Read one DICOM file, the files of ONE series, or a folder holding one series (non-recursive; other
    files such as reader XML are ignored) into a :class:`Volume` (see module docs).

    ``headers``: files already parsed by :func:`discover_dicom_series` (``SeriesRef.headers``); those still
    unchanged on disk are not parsed again (their datasets are used up: pixels decoded and stripped).

    ``stream_above``: when the float32 pixels would take more bytes than this, the volume's ``array`` is a
    :class:`~medforensics.io.dicom_pixels.DicomPixels` that decodes the slices asked for on each access
    (headers are read and checked now, pixels when used) instead of an array in memory."""
    paths = _series_paths(files)
    datasets = [_reuse(p, headers.get(p) if headers else None) for p in paths]
    layout = series_layout(datasets, paths)
    slices, warn = layout.slices, layout.warnings
    array: Any = DicomPixels(paths, slices, layout.shape)  # decoded a z-range at a time when used
    if stream_above is None or array.nbytes <= stream_above:
        # Decode file by file into one preallocated float32 array, freeing each file's pixel bytes once
        # decoded: peak memory is about the volume plus one file.
        array = np.empty(layout.shape, dtype=np.float32)
        decode_slices(array, range(len(slices)), slices, paths, datasets.__getitem__, strip_bulk)
    ds0 = datasets[slices[0].ds_index]
    modality = series_modality(ds0, warn)
    ts = transfer_syntax(ds0)
    meta = _metadata(ds0, datasets, slices, ts)
    meta["warnings"] = warn
    meta["files"] = [str(p) for p in paths]
    if layout.image_shapes:
        meta["image_shapes"] = [list(rc) for rc in layout.image_shapes]
    if meta["multiframe"]:
        stripped = [strip_bulk(ds) for ds in datasets]
    else:
        stripped = [strip_bulk(datasets[s.ds_index]) for s in slices]
        meta["frame_sources"] = [(k, 0) for k in range(len(slices))]
    for w in warn:
        log.warning("series %s: %s", meta["series_uid"], w)
    return Volume(
        array=array,
        spacing=layout.spacing,
        origin=layout.origin,
        direction=layout.direction,
        modality=modality,
        source=paths[0] if len(paths) == 1 else paths[0].parent,
        datasets=stripped,
        metadata=meta,
    )


#: Files whose parsed header discovery keeps for the reader (about 17 KB each for a CT slice: 70 MB at
#: most). Past it, files are parsed header-only as before and read again by the reader, so discovering a
#: folder of many studies stays bounded in memory.
KEEP_HEADERS = 4096


def _discovery_read(f: Path, keep: bool = True) -> tuple[Dataset, DicomHeader | None]:
    """The whole file parsed with its pixel data left in the file (kept for the reader: a discovery of many
    series holds no pixels), or, when that fails or ``keep`` is false, the header alone (what discovery
    needs; the reader then reads the file again and reports any problem)."""
    if not keep:
        return read_dataset(f, header_only=True), None
    try:
        ds, st = _parse(f, defer_bulk=True, check_bulk=False)
    except InputError:
        return read_dataset(f, header_only=True), None
    for kw in BULK_KEYWORDS:  # pixel data under DEFER_SIZE was read: leave it in the file too
        raw = ds.get_item(kw, keep_deferred=True) if kw in ds else None
        if isinstance(raw, RawDataElement) and raw.value is not None and raw.length:
            ds[kw] = raw._replace(value=None)
    return ds, DicomHeader(ds, _stamp(st))


class _Member(NamedTuple):
    """A discovered file, as grouping and joining (:func:`~medforensics.io.dicom_split.join_split_series`
    reads ``stack``, the second field) and naming its series need it."""

    path: Path
    stack: StackSlice | None
    header: DicomHeader | None  # kept for the reader (the first KEEP_HEADERS files), else None
    modality: str
    description: str


#: Files between two calls of discovery's ``on_file`` (a call per file would cost more than it tells).
PROGRESS_EVERY = 256
#: With ``jobs`` > 1, discovery reads headers on worker processes from this many files on (fewer: starting
#: the processes, about 1 s, costs more than it saves), sent to them this many at a time.
PARALLEL_FILES = 2000
PARALLEL_CHUNK = 256


def _probe(f: Path, keep: bool) -> str | tuple[str, _Member]:
    """What discovery needs of file ``f``: why it is skipped, or its series key (the UID, else ``file:``
    and its path) and :class:`_Member` (``keep``: with its parsed header for the reader)."""
    from medforensics.io.dicom_split import stack_slice

    try:
        ds, header = _discovery_read(f, keep=keep)
    except InputError as exc:
        return exc.reason
    if "DirectoryRecordSequence" in ds:
        return "DICOMDIR (a directory index, not an image)"
    if "Rows" not in ds:
        sop = UID(str(ds.get("SOPClassUID", "")))
        return f"DICOM without an image ({sop.name or 'unknown SOP class'})"
    uid = str(ds.get("SeriesInstanceUID", "")) or f"file:{f}"
    names = (str(ds.get("Modality", "")), str(ds.get("SeriesDescription", "")))
    return uid, _Member(f, stack_slice(ds), header, *names)


def _probed(todo: list[Path], jobs: int) -> Generator[str | tuple[str, _Member], None, None]:
    """:func:`_probe` of each file, in order: here, keeping the first :data:`KEEP_HEADERS` headers for the
    reader; or, with ``jobs`` > 1 and at least :data:`PARALLEL_FILES` files, on ``jobs`` spawned processes
    (no header kept: the reader parses each file again, as past KEEP_HEADERS). Closed early (an interrupt),
    the processes are stopped at once; a worker that dies (out of memory) leaves the rest to this process."""
    given = 0
    if jobs > 1 and len(todo) >= PARALLEL_FILES and mp.parent_process() is None:
        from medforensics._pools import children_ignore_sigint, stop_pool

        ex = ProcessPoolExecutor(jobs, mp.get_context("spawn"))
        done = False
        try:
            with children_ignore_sigint():  # map submits every chunk now: the workers start here
                results = ex.map(functools.partial(_probe, keep=False), todo, chunksize=PARALLEL_CHUNK)
            for got in results:
                yield got
                given += 1
            done = True
        except BrokenProcessPool:
            log.warning("a discovery worker died after %d of %d files: the rest read here", given, len(todo))
        finally:
            if done:
                ex.shutdown(wait=True)
            else:
                stop_pool(ex)
        if done:
            return
    kept = 0
    for f in todo[given:]:
        got = _probe(f, keep=kept < KEEP_HEADERS)
        kept += not isinstance(got, str) and got[1].header is not None
        yield got


def discover_dicom_series(
    files: Sequence[Path | str], on_file: Callable[[int, int], None] | None = None, jobs: int = 1
) -> tuple[list[SeriesRef], list[Skipped]]:
    """Group DICOM files by (folder, SeriesInstanceUID) reading headers only; bad files are skipped.

    A series is expected to live in one folder; copies of a series' files elsewhere (one slice kept as a
    template, say) are reported as a series of their own rather than silently merged. A series that an
    export split over folders is joined again when its parts are one regular stack together
    (:func:`~medforensics.io.dicom_split.join_split_series`). Each series carries the parsed headers of its
    files (``SeriesRef.headers``: pixel data not read) for its first ``load``. ``on_file(done, total)`` is
    called every :data:`PROGRESS_EVERY` files and at the end (an archive's headers take minutes to read).
    ``jobs`` > 1: the headers of many files are read on that many processes (:func:`_probed`).
    """
    from medforensics.io.dicom_split import join_split_series
    from medforensics.io.reader import SeriesRef, Skipped

    # per file only what grouping, joining and naming need: its header is dropped (or kept for the reader,
    # up to KEEP_HEADERS files), so discovering a large archive holds no header per file
    groups: dict[tuple[Path, str], list[_Member]] = {}
    skipped: list[Skipped] = []
    todo = sorted({Path(f) for f in files})
    with contextlib.closing(_probed(todo, jobs)) as probes:  # an interrupt stops the workers at once
        for i, (f, got) in enumerate(zip(todo, probes, strict=True)):
            if on_file is not None and i % PROGRESS_EVERY == 0:
                on_file(i, len(todo))
            if isinstance(got, str):
                skipped.append(Skipped(f, got))
            else:
                uid, member = got
                groups.setdefault((f.parent, uid), []).append(member)
    if on_file is not None:
        on_file(len(todo), len(todo))
    series: list[SeriesRef] = []
    for (folder, uid), members in join_split_series(groups).items():
        paths = tuple(m.path for m in members)
        parts = (members[0].modality, f"{len(paths)} file(s)", members[0].description)
        series.append(
            SeriesRef(
                paths[0] if len(paths) == 1 else folder,
                "dicom",
                paths,
                None if uid.startswith("file:") else uid,
                ", ".join(x for x in parts if x),
                headers={m.path: m.header for m in members if m.header is not None},
            )
        )
    series.sort(key=lambda r: (str(r.path), r.series_uid or ""))
    return series, skipped
