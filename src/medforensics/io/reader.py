"""Generic entry points: find every series under some paths, and load one into a :class:`Volume`.

``discover`` walks files and folders (recursively), splits DICOM by SeriesInstanceUID (DICOM is
recognised by content, so extension-less files work), and lists NIfTI, MetaImage, NRRD and 2-D images.
Whatever cannot be used is returned as :class:`Skipped` with a one-line reason. ``load`` dispatches a
:class:`SeriesRef` to the right reader; ``read_volume`` reads a path holding exactly one series.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from medforensics.errors import InputError, absent_reason, pixels_in_memory, special_file_reason
from medforensics.io.dicom import DicomHeader, discover_dicom_series, read_dicom_series
from medforensics.io.volume import Volume

__all__ = ["Discovery", "SeriesRef", "Skipped", "discover", "load", "read_volume"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
METAIMAGE_SUFFIXES = (".mhd", ".mha")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
RAW_SUFFIXES = (".raw", ".zraw")
KINDS = ("dicom", "nifti", "metaimage", "nrrd", "image")


@dataclass
class SeriesRef:
    """One loadable series: a DICOM series (its files) or one NIfTI / MetaImage / NRRD / 2-D image file.

    ``headers``: a discovered DICOM series' files as discovery parsed them (pixel data not read), handed to
    the first :func:`load` so that it need not parse them again; that load uses them up (drops them here),
    a later one reads the files anew."""

    path: Path
    kind: str  # "dicom" | "nifti" | "metaimage" | "nrrd" | "image"
    files: tuple[Path, ...]
    series_uid: str | None = None
    description: str = ""
    headers: dict[Path, DicomHeader] | None = field(default=None, repr=False, compare=False)


@dataclass
class Skipped:
    """A path that was not used, and why (one line)."""

    path: Path
    reason: str


@dataclass
class Discovery:
    """Result of :func:`discover`: series found and paths skipped, both in a deterministic order."""

    series: list[SeriesRef] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _suffix_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(METAIMAGE_SUFFIXES):
        return "metaimage"
    if name.endswith(NRRD_SUFFIXES):
        return "nrrd"
    if name.endswith(IMAGE_SUFFIXES):
        return "image"
    if name.endswith(RAW_SUFFIXES):
        return "raw"
    return None


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _walk(folder: Path, recursive: bool, skipped: list[Skipped]) -> list[Path]:
    """Non-hidden files under ``folder`` in sorted order; folders that cannot be listed go to ``skipped``."""
    out: list[Path] = []

    def unreadable(err: OSError) -> None:
        skipped.append(Skipped(Path(err.filename or folder), f"cannot be read ({err.strerror})"))

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not _hidden(d)) if recursive else []
        out.extend(Path(root) / f for f in sorted(files) if not _hidden(f))
    return out


def _resolved(p: Path, skipped: list[Skipped]) -> Path | None:
    """``p`` resolved, or None (reported in ``skipped``) for a symbolic link loop."""
    try:
        return p.resolve()
    except (RuntimeError, OSError):
        skipped.append(Skipped(p, "symbolic link loop"))
        return None


_DATA_FILE = re.compile(rb"^\s*ElementDataFile\s*=\s*(.+?)\s*$", re.MULTILINE)


def _mhd_data_file(mhd: Path) -> Path | None:
    """The data file a .mhd header names (None for LOCAL / LIST / unreadable headers)."""
    try:
        with mhd.open("rb") as fh:
            head = fh.read(65536)
    except OSError:
        return None
    m = _DATA_FILE.search(head)
    if not m:
        return None
    name = m.group(1).decode("utf-8", "replace")
    if name.upper() in ("LOCAL", "LIST") or "%" in name:
        return None
    return (mhd.parent / name).resolve()


def _data_file(kind: str | None, header: Path) -> Path | None:
    """The detached data file a .mhd or .nhdr header names (None for any other file)."""
    name = header.name.lower()
    if kind == "metaimage" and name.endswith(".mhd"):
        return _mhd_data_file(header)
    if kind == "nrrd" and name.endswith(".nhdr"):
        from medforensics.io.nrrd import nrrd_data_file

        return nrrd_data_file(header)
    return None


def _describe(kind: str, path: Path) -> str:
    return {"nifti": "NIfTI", "metaimage": "MetaImage", "nrrd": "NRRD", "image": "2-D image"}.get(kind, kind)


def discover(
    paths: Iterable[str | Path],
    recursive: bool = True,
    on_file: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> Discovery:
    """Every series under ``paths`` (files, series folders, folders of many studies); ``on_file(done,
    total)`` follows the reading of DICOM headers (:func:`~medforensics.io.dicom.discover_dicom_series`,
    on ``jobs`` processes for many files)."""
    files: dict[Path, Path] = {}  # resolved -> as given
    skipped: list[Skipped] = []
    folders: list[tuple[Path, list[Path]]] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            skipped.append(Skipped(p, "symbolic link loop" if p.is_symlink() else "does not exist"))
        elif p.is_dir():
            walked = [(f, _resolved(f, skipped)) for f in _walk(p, recursive, skipped)]
            found = [f for f, r in walked if r is not None]
            folders.append((p, found))
            for f, r in walked:
                if r is not None:
                    files.setdefault(r, f)
        elif (r := _resolved(p, skipped)) is not None:
            files.setdefault(r, p)

    series: list[SeriesRef] = []
    dicom_candidates: list[Path] = []
    sizes: dict[Path, int] = {}
    for resolved, f in files.items():  # in any order: what is skipped is sorted at the end
        try:
            st = f.stat()
        except OSError as exc:
            skipped.append(Skipped(f, f"cannot be read ({exc.strerror})"))
            continue
        if stat.S_ISREG(st.st_mode):
            sizes[resolved] = st.st_size
        else:  # opening a pipe waits for a writer, a device may never end: neither is read
            skipped.append(Skipped(f, special_file_reason(st.st_mode)))
    files = {r: f for r, f in files.items() if r in sizes}
    data_files = {d for f in files.values() if (d := _data_file(_suffix_kind(f), f))}
    for resolved, f in sorted(files.items(), key=lambda kv: str(kv[1])):
        kind = _suffix_kind(f)
        if resolved in data_files:  # read through its header
            continue
        if sizes[resolved] == 0:
            skipped.append(Skipped(f, "empty file (0 bytes)"))
        elif kind == "raw":
            skipped.append(Skipped(f, "raw data file without a .mhd or .nhdr header"))
        elif kind is not None:
            extra = (data_path,) if (data_path := _data_file(kind, f)) else ()
            series.append(SeriesRef(f, kind, (f, *extra), None, _describe(kind, f)))
        else:
            dicom_candidates.append(f)
    dicom_series, dicom_skipped = discover_dicom_series(dicom_candidates, on_file, jobs)
    series.extend(dicom_series)
    skipped.extend(dicom_skipped)

    used = {x.resolve() for s in series for x in s.files}
    for folder, found in folders:
        if not any(f.resolve() in used for f in found):
            skipped.append(Skipped(folder, "no images found"))
    series.sort(key=lambda r: (str(r.path), r.series_uid or ""))
    skipped.sort(key=lambda s: str(s.path))
    return Discovery(series, skipped)


def load(ref: SeriesRef, *, stream_above: int | None = None) -> Volume:
    """Read one discovered series into a :class:`Volume` (raises :class:`InputError` on bad input).

    ``stream_above`` (bytes): a DICOM series, NIfTI or MetaImage file whose voxels would take more gets a
    lazily read array (:func:`medforensics.io.dicom.read_dicom_series`,
    :func:`medforensics.io.nifti.read_nifti`, :func:`medforensics.io.metaimage.read_metaimage`); NRRD files
    and 2-D images are always read whole. Pixels that do not fit in memory are an InputError too
    (:func:`~medforensics.errors.pixels_in_memory`)."""
    with pixels_in_memory(ref.path):
        return _load(ref, stream_above)


def _load(ref: SeriesRef, stream_above: int | None) -> Volume:
    if ref.kind == "dicom":
        headers, ref.headers = ref.headers, None  # used up by this read (decoded and stripped)
        vol = read_dicom_series(
            list(ref.files) if ref.files else ref.path, stream_above=stream_above, headers=headers
        )
    elif ref.kind == "nifti":
        from medforensics.io.nifti import read_nifti

        vol = read_nifti(ref.path, stream_above=stream_above)
    elif ref.kind == "metaimage":
        from medforensics.io.metaimage import read_metaimage

        vol = read_metaimage(ref.path, stream_above=stream_above)
    elif ref.kind == "nrrd":
        from medforensics.io.nrrd import read_nrrd

        vol = read_nrrd(ref.path)
    elif ref.kind == "image":
        from medforensics.io.image2d import read_image2d

        vol = read_image2d(ref.path)
    else:
        raise InputError(f"unknown series kind {ref.kind!r} (expected {', '.join(KINDS)})", path=ref.path)
    if vol.source is None:
        vol.source = ref.path
    return vol


def read_volume(path: str | Path, whole: bool = False) -> Volume:
    """Read the one series a file or folder holds; a folder with several series is an error. ``whole``:
    a file of the folder that looks like one of its slices (empty, a DICOM name or DICOM content) but was
    skipped is an error too, not left out (a forgery must not lose a slice)."""
    p = Path(path)
    if not p.exists():
        raise InputError("does not exist", path=p)
    if not p.is_file() and not p.is_dir():
        raise InputError(absent_reason(p), path=p)
    if p.is_file():
        kind = _suffix_kind(p)
        if kind == "raw":
            raise InputError("raw data file: open its .mhd or .nhdr header instead", path=p)
        if kind is None:
            with pixels_in_memory(p):
                return read_dicom_series(p)
        return load(SeriesRef(p, kind, (p,), None, _describe(kind, p)))
    found = discover([p])
    if whole:
        for s in found.skipped:
            if s.path != p and _looks_like_a_slice(s.path):
                why = f"{s.path.name}: {s.reason} (not read: the series would lack this slice)"
                raise InputError(why, path=p)
    if not found.series:
        reasons = {s.reason for s in found.skipped if s.path != p}
        detail = f" ({len(found.skipped) - 1} file(s) skipped: {sorted(reasons)[0]}...)" if reasons else ""
        raise InputError(f"no images found{detail}", path=p)
    if len(found.series) > 1:
        raise InputError(f"holds {len(found.series)} series; pass one series folder", path=p)
    return load(found.series[0])


def _looks_like_a_slice(path: Path) -> bool:
    """An empty file, a DICOM file name, or DICOM content: a slice of the series, not a stray file."""
    from medforensics.io.dicom import is_dicom_file

    try:
        if path.stat().st_size == 0 or path.suffix.lower() in (".dcm", ".dicom", ".ima"):
            return True
    except OSError:
        return True
    return is_dicom_file(path)
