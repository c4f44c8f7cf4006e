"""DICOM reading: one file (single- or multi-frame) or the files of one series -> :class:`Volume`.

Slices are sorted along the slice normal, pixels are converted to physical units with the rescale
slope/intercept of each slice (Hounsfield units for CT) and MONOCHROME1 is inverted so that brighter
always means denser. Compressed transfer syntaxes are decoded by pydicom's pixel plugins (pylibjpeg).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from medforensics.errors import InputError
from medforensics.io.dicom_frames import (
    BULK_KEYWORDS,
    FrameInfo,
    frame_count,
    frame_infos,
    strip_bulk,
)
from medforensics.io.dicom_pixels import DicomPixels, check_frames_fit, decode_slices, transfer_syntax
from medforensics.io.dicom_tags import series_modality, spacing_warning
from medforensics.io.volume import AXIAL_DIRECTION, Volume
from medforensics.logging import get_logger, short_hash

if TYPE_CHECKING:
    from medforensics.io.reader import SeriesRef, Skipped

__all__ = ["DicomHeader", "discover_dicom_series", "is_dicom_file", "read_dataset", "read_dicom_series"]

log = get_logger("io.dicom")

#: First groups an ACR-NEMA / preamble-less DICOM file may start with.
_HEADERLESS_GROUPS = (0x0000, 0x0002, 0x0008)
#: Positions closer than this (mm) along the normal are duplicates.
_DUPLICATE_MM = 1e-3
_ORIENTATION_TOL = 1e-3


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


@dataclass
class _Slice:
    ds_index: int
    info: FrameInfo
    key: float  # position along the normal (or fallback order)


def _check_consistent(slices: list[_Slice], datasets: list[Dataset], files: list[Path]) -> None:
    first = slices[0]
    shape0 = (int(datasets[first.ds_index].Rows), int(datasets[first.ds_index].Columns))
    for s in slices[1:]:
        ds = datasets[s.ds_index]
        shape = (int(ds.Rows), int(ds.Columns))
        if shape != shape0:
            raise InputError(
                f"image size {shape} differs from {shape0} in the same series", path=files[s.ds_index]
            )
        o0, o = first.info.orientation, s.info.orientation
        if (o0 is None) != (o is None) or (
            o is not None and o0 is not None and np.abs(o - o0).max() > _ORIENTATION_TOL
        ):
            raise InputError("image orientation differs within the series", path=files[s.ds_index])


def _geometry(
    slices: list[_Slice], warn: list[str]
) -> tuple[tuple[float, float, float], tuple[float, float, float], NDArray[np.float64]]:
    """Spacing, origin and direction of the sorted, de-duplicated slices."""
    info0 = slices[0].info
    sy, sx = info0.pixel_spacing or (1.0, 1.0)
    if info0.orientation is None or info0.position is None:
        sz = info0.thickness or 1.0
        if len(slices) > 1:
            warn.append("no slice positions/orientation: slices stacked in instance order, spacing assumed")
        return (sz, sy, sx), (0.0, 0.0, 0.0), AXIAL_DIRECTION.copy()
    row, col = info0.orientation[:3], info0.orientation[3:]
    normal = np.cross(row, col)
    direction = np.stack([normal, col, row], axis=1)
    keys = np.array([s.key for s in slices])
    if len(slices) == 1:
        sz = info0.thickness or 1.0
    else:
        gaps = np.diff(keys)
        sz = float(np.median(gaps))
        if gaps.max() - gaps.min() > max(0.01, 0.01 * sz):
            warn.append(
                f"irregular slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm "
                f"(median {sz:.3f} mm used)"
            )
        pos = np.stack([s.info.position for s in slices if s.info.position is not None])
        steps = np.diff(pos, axis=0)
        along = steps @ normal
        off_axis = np.linalg.norm(steps - along[:, None] * normal[None, :], axis=1)
        if off_axis.max() > 0.01 * max(sz, 1e-6) + 1e-3:
            warn.append(
                f"slices are not stacked along the normal (gantry tilt? up to {off_axis.max():.2f} mm)"
            )
    origin = tuple(float(v) for v in slices[0].info.position)  # type: ignore[union-attr]
    return (float(sz), float(sy), float(sx)), origin, direction  # type: ignore[return-value]


def _sort_and_dedup(slices: list[_Slice], files: list[Path], warn: list[str]) -> list[_Slice]:
    slices = sorted(slices, key=lambda s: s.key)  # stable: input order breaks ties
    kept: list[_Slice] = []
    for s in slices:
        if kept and abs(s.key - kept[-1].key) < _DUPLICATE_MM and s.info.position is not None:
            warn.append(
                f"duplicate slice position {s.key:.3f} mm in {files[s.ds_index].name}: "
                f"kept {files[kept[-1].ds_index].name}"
            )
            continue
        kept.append(s)
    return kept


def _metadata(ds0: Dataset, datasets: list[Dataset], slices: list[_Slice], ts: UID) -> dict[str, Any]:
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


@dataclass
class SeriesLayout:
    """Header-only facts of one series: frames in array order, geometry, warnings (no pixels decoded)."""

    datasets: list[Dataset]
    slices: list[_Slice]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: NDArray[np.float64]
    warnings: list[str]
    has_pixel_spacing: bool

    @property
    def shape(self) -> tuple[int, int, int]:
        """(frames, rows, columns)."""
        ds0 = self.datasets[self.slices[0].ds_index]
        return len(self.slices), int(ds0.Rows), int(ds0.Columns)


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


def _layout(datasets: list[Dataset], paths: list[Path]) -> SeriesLayout:
    """Sort frames along the slice normal, drop duplicates and derive the geometry (headers only)."""
    uids = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(uids) > 1:
        raise InputError(
            f"files of {len(uids)} series passed as one series; pass one series at a time",
            path=paths[0].parent if len(paths) > 1 else paths[0],
        )
    slices: list[_Slice] = []
    for i, ds in enumerate(datasets):
        if "Rows" not in ds or "Columns" not in ds:
            raise InputError("no Pixel Data (no Rows/Columns: not an image object)", path=paths[i])
        try:
            check_frames_fit(ds, paths[i])
            slices.extend(_Slice(i, info, 0.0) for info in frame_infos(ds))
        except (ValueError, TypeError) as exc:  # a malformed value (IS '1A', a DS that is not a number...)
            raise InputError(f"malformed geometry or frame tags ({exc})", path=paths[i]) from None
    _check_consistent(slices, datasets, paths)
    warn: list[str] = []
    info0 = slices[0].info
    if info0.orientation is not None and all(s.info.position is not None for s in slices):
        normal = np.cross(info0.orientation[:3], info0.orientation[3:])
        for s in slices:
            s.key = float(np.dot(s.info.position, normal))  # type: ignore[arg-type]
        slices = _sort_and_dedup(slices, paths, warn)
    else:
        if len(slices) > 1 and info0.orientation is not None:
            warn.append(
                "some slices lack ImagePositionPatient: sorted by instance number, default axial geometry"
            )
        for k, s in enumerate(slices):
            s.info.orientation = None
            s.key = float(s.info.instance_number if s.info.instance_number is not None else k)
        slices = sorted(slices, key=lambda s: s.key)
    spacing, origin, direction = _geometry(slices, warn)
    bad_spacing = None if info0.pixel_spacing else spacing_warning(datasets[slices[0].ds_index])
    warn.extend([bad_spacing] if bad_spacing else [])
    return SeriesLayout(datasets, slices, spacing, origin, direction, warn, info0.pixel_spacing is not None)


def read_dicom_header(files: Sequence[Path | str] | Path | str) -> SeriesLayout:
    """Like :func:`read_dicom_series` but reads headers only (fast; for listing and geometry)."""
    paths = _series_paths(files)
    return _layout([read_dataset(p, header_only=True) for p in paths], paths)


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
    layout = _layout(datasets, paths)
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


def discover_dicom_series(files: Sequence[Path | str]) -> tuple[list[SeriesRef], list[Skipped]]:
    """Group DICOM files by (folder, SeriesInstanceUID) reading headers only; bad files are skipped.

    A series is expected to live in one folder; copies of a series' files elsewhere (one slice kept as a
    template, say) are reported as a series of their own rather than silently merged. Each series carries
    the parsed headers of its files (``SeriesRef.headers``: pixel data not read) for its first ``load``.
    """
    from medforensics.io.reader import SeriesRef, Skipped

    groups: dict[tuple[Path, str], list[tuple[Path, Dataset, DicomHeader | None]]] = {}
    skipped: list[Skipped] = []
    kept = 0
    for f in sorted({Path(f) for f in files}):
        try:
            ds, header = _discovery_read(f, keep=kept < KEEP_HEADERS)
            kept += header is not None
        except InputError as exc:
            skipped.append(Skipped(f, exc.reason))
            continue
        if "DirectoryRecordSequence" in ds:
            skipped.append(Skipped(f, "DICOMDIR (a directory index, not an image)"))
            continue
        if "Rows" not in ds:
            sop = UID(str(ds.get("SOPClassUID", "")))
            skipped.append(Skipped(f, f"DICOM without an image ({sop.name or 'unknown SOP class'})"))
            continue
        uid = str(ds.get("SeriesInstanceUID", "")) or f"file:{f}"
        groups.setdefault((f.parent, uid), []).append((f, ds, header))
    series: list[SeriesRef] = []
    for (folder, uid), members in groups.items():
        paths = tuple(p for p, _, _ in members)
        ds0 = members[0][1]
        parts = (str(ds0.get("Modality", "")), f"{len(paths)} file(s)", str(ds0.get("SeriesDescription", "")))
        series.append(
            SeriesRef(
                paths[0] if len(paths) == 1 else folder,
                "dicom",
                paths,
                None if uid.startswith("file:") else uid,
                ", ".join(x for x in parts if x),
                headers={p: h for p, _, h in members if h is not None},
            )
        )
    series.sort(key=lambda r: (str(r.path), r.series_uid or ""))
    return series, skipped
