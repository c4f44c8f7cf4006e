"""ZIP and tar archives of studies (a PACS web viewer's "download study", a CD, cloud or XNAT export) read as
folders.

:func:`expand_archives` takes what :func:`~medforensics.io.reader.discover` skipped, unpacks every ZIP
or tar archive among it into a scratch folder the caller owns and discovers the series there (archives inside
archives too, :data:`MAX_DEPTH` deep). The user's archive is only read. :class:`Shown` names a series found
inside an archive by the archive's path and the member's path in it (``study.zip/CT/IM0001``), so reports
never show the scratch folder. An archive that cannot be unpacked (damaged, encrypted, a compression
method Python lacks, larger than the free space) is skipped with the reason.

Files compressed one by one (``IM0001.dcm.gz``: gzip, bzip2 or xz, as some research archives and storage
back ends keep DICOM) are decompressed too, those of one folder into one scratch folder, so that a series
compressed file by file is read as one series; each is shown by its own path (:class:`Shown`).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from medforensics.errors import InputError
from medforensics.io.reader import Discovery, Skipped, discover

__all__ = ["MAX_DEPTH", "STREAMS", "Shown", "archive_kind", "expand_archives", "unpack", "unpack_streams"]

#: archives inside archives are unpacked this many levels deep (a study ZIP holding one ZIP per series)
MAX_DEPTH = 3
#: free space kept on the scratch disk after unpacking
RESERVE_BYTES = 64 * 1024 * 1024
#: members that are no image: macOS Finder's resource forks and folder settings
_JUNK = ("__MACOSX/",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: single-file compressed streams by their first bytes: (kind, the file name suffixes it takes)
STREAMS = {
    b"\x1f\x8b": ("gzip", (".gz", ".gzip")),
    b"BZh": ("bzip2", (".bz2",)),
    b"\xfd7zXZ\x00": ("xz", (".xz",)),
}
#: decompressed this much at a time (the free space is checked between)
_CHUNK = 1 << 20


def archive_kind(path: Path) -> str | None:
    """``"zip"`` for a ZIP archive (its first bytes are a ZIP entry, as every archive tool writes), ``"tar"``
    for a tar archive named so (``.tar``, ``.tar.gz``, ``.tgz``, ...; compressed or not), ``"gzip"``,
    ``"bzip2"`` or ``"xz"`` for one file compressed so (:data:`STREAMS`), else None."""
    if not path.is_file():  # a folder, or a pipe or device (opening one could wait forever)
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # a ZIP entry first; a cut one is still a (damaged) ZIP
        return "zip"
    if path.name.lower().endswith(TAR_SUFFIXES):
        try:
            if tarfile.is_tarfile(path):
                return "tar"
        except (OSError, EOFError, tarfile.TarError):
            pass
    return next((kind for magic, (kind, _) in STREAMS.items() if head.startswith(magic)), None)


def _junk(name: str) -> bool:
    return name.startswith(_JUNK) or PurePosixPath(name).name in (".DS_Store", "Thumbs.db")


def _check_space(need: int, into: Path, what: str, path: Path) -> None:
    free = shutil.disk_usage(into).free
    if need > free - RESERVE_BYTES:
        raise InputError(
            f"{what}: unpacking needs {need / 1e6:.0f} MB, {free / 1e6:.0f} MB free in {into} "
            "(set TMPDIR to a larger disk, or unpack it and scan the folder)",
            path=path,
        )


def _unpack_zip(path: Path, into: Path, made: list[Path]) -> None:
    if not zipfile.is_zipfile(path):
        why = "ZIP archive cut short: its central directory is missing (an interrupted download or copy?)"
        raise InputError(why, path=path)
    with zipfile.ZipFile(path) as zf:
        members = [m for m in zf.infolist() if not m.is_dir() and not _junk(m.filename)]
        if any(m.flag_bits & 0x1 for m in members):
            why = "encrypted ZIP archive: unpack it with its password, then scan the folder"
            raise InputError(why, path=path)
        _check_space(sum(m.file_size for m in members), into, "ZIP archive", path)
        made.append(Path(tempfile.mkdtemp(prefix="zip-", dir=into)))
        for m in members:  # zipfile drops absolute parts and ".." from member names
            zf.extract(m, made[0])


def _unpack_tar(path: Path, into: Path, made: list[Path]) -> None:
    with tarfile.open(path, "r:*") as tf:
        members = [m for m in tf.getmembers() if m.isfile() and not _junk(m.name)]  # no links or devices
        _check_space(sum(m.size for m in members), into, "tar archive", path)
        made.append(Path(tempfile.mkdtemp(prefix="tar-", dir=into)))
        for m in members:
            try:
                tf.extract(m, made[0], filter="data")
            except tarfile.FilterError:  # an absolute name or one that leaves the folder: left out
                continue


def unpack(path: Path, into: Path, kind: str | None = None) -> Path:
    """Extract the ZIP or tar archive ``path`` into a new folder under ``into`` and return that folder.

    Raises :class:`InputError` naming the archive when it is damaged, encrypted, uses a compression method
    Python cannot read, or would leave less than :data:`RESERVE_BYTES` free on ``into``'s disk; nothing
    is left under ``into`` then. No member is written outside the folder; links and devices are left out.
    ``kind``: :func:`archive_kind`'s answer when the caller has it (else it is asked here)."""
    kind = kind or archive_kind(path)
    what = "ZIP archive" if kind == "zip" else "tar archive"
    made: list[Path] = []
    try:
        (_unpack_zip if kind == "zip" else _unpack_tar)(path, into, made)
    except Exception as exc:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, InputError):
            raise
        if isinstance(exc, zipfile.BadZipFile | zlib.error | tarfile.TarError | EOFError):
            raise InputError(f"damaged {what} ({exc})", path=path) from exc  # a bad CRC, a cut stream
        if isinstance(exc, NotImplementedError):  # Deflate64 (Windows, for large archives)
            why = f"{what}: {exc}; unpack it with another tool, then scan the folder"
            raise InputError(why, path=path) from exc
        if isinstance(exc, OSError | RuntimeError | ValueError):
            raise InputError(f"{what} cannot be unpacked ({type(exc).__name__}: {exc})", path=path) from exc
        raise
    return made[0]


def _stream_name(path: Path, kind: str) -> str:
    """The name of ``path`` decompressed: without its compression suffix (``IM0001.dcm.gz`` ->
    ``IM0001.dcm``), or as it is when it has none."""
    suffixes = next(s for k, s in STREAMS.values() if k == kind)
    low = path.name.lower()
    cut = next((len(x) for x in suffixes if low.endswith(x) and len(path.name) > len(x)), 0)
    return path.name[: len(path.name) - cut] if cut else path.name


def _open_stream(path: Path, kind: str) -> io.BufferedIOBase:
    """The decompressed bytes of the ``kind`` stream ``path``."""
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bzip2":
        return bz2.open(path, "rb")
    return lzma.open(path, "rb")


def _decompress(path: Path, kind: str, dst: Path, room: int) -> None:
    """Decompress the ``kind`` stream ``path`` into ``dst``, refusing past ``room`` bytes (the free space)."""
    written = 0
    with _open_stream(path, kind) as src, open(dst, "xb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > room:
                why = (
                    f"{kind}-compressed file: decompressed, it needs more than the {room / 1e6:.0f} MB free "
                    f"in {dst.parent.parent} (set TMPDIR to a larger disk, or decompress it and scan that)"
                )
                raise InputError(why, path=path)
            out.write(chunk)


def unpack_streams(
    files: list[tuple[Path, str]], into: Path
) -> tuple[Path | None, dict[Path, Path], list[Skipped]]:
    """Decompress ``files`` (``(path, kind)``, one folder's files compressed one by one) into one new
    folder under ``into``: that folder (None when none could be decompressed), each decompressed file's
    source, and the files skipped with their reason (a damaged stream, too large for the free space)."""
    folder = Path(tempfile.mkdtemp(prefix="stream-", dir=into))
    made: dict[Path, Path] = {}
    skipped: list[Skipped] = []
    used: set[str] = set()
    for i, path_kind in enumerate(files):
        path, kind = path_kind
        # IM1.gz beside IM1.bz2: the second keeps its own name (unique in its folder), or is numbered
        name = next(n for n in (_stream_name(path, kind), path.name, f"{i}-{path.name}") if n not in used)
        used.add(name)
        dst = folder / name
        room = shutil.disk_usage(into).free - RESERVE_BYTES
        try:
            _decompress(path, kind, dst, room)
        except InputError as err:
            dst.unlink(missing_ok=True)
            skipped.append(Skipped(path, err.reason))
        except (OSError, EOFError, ValueError, lzma.LZMAError) as exc:  # a bad CRC, a cut stream
            dst.unlink(missing_ok=True)
            skipped.append(Skipped(path, f"damaged {kind} stream ({type(exc).__name__}: {exc})"))
        else:
            made[dst] = path
    if not made:
        shutil.rmtree(folder, ignore_errors=True)
        return None, made, skipped
    return folder, made, skipped


@dataclass
class Shown:
    """How a path found inside an unpacked archive is shown: the archive's path, then the member's; a file
    decompressed on its own by its own path."""

    unpacked: dict[Path, str] = field(default_factory=dict)  # scratch folder -> the archive as shown
    files: dict[Path, str] = field(default_factory=dict)  # decompressed file -> the source as shown

    def __call__(self, path: str | Path) -> str:
        p = Path(path)
        if p in self.files:
            return self.files[p]
        for folder, archive in self.unpacked.items():
            if p == folder or folder in p.parents:
                rel = p.relative_to(folder).as_posix()
                return archive if rel == "." else f"{archive}/{rel}"
        return str(path)


def expand_archives(found: Discovery, into: Path, depth: int = MAX_DEPTH) -> tuple[Discovery, Shown]:
    """``found`` with every ZIP or tar archive it skipped unpacked under ``into`` and discovered.

    The archive's own "not DICOM" entry goes; what cannot be unpacked is skipped with its reason; a folder
    skipped as holding no images is kept out when an archive in it held some. Skipped paths come back as
    shown (inside an archive: ``archive/member``); series keep their scratch paths for loading."""
    shown = Shown()
    series, skipped = list(found.series), []
    todo = list(found.skipped)
    for level in range(depth + 1):
        nested: list[Skipped] = []
        streams: dict[Path, list[tuple[Path, str]]] = {}  # by folder: one series compressed file by file
        for s in todo:
            kind = archive_kind(s.path)
            if kind is None:
                skipped.append(s)
                continue
            if level == depth:
                skipped.append(Skipped(s.path, f"archive nested more than {depth} deep: not unpacked"))
                continue
            if kind not in ("zip", "tar"):
                streams.setdefault(s.path.parent, []).append((s.path, kind))
                continue
            try:
                folder = unpack(s.path, into, kind)
            except InputError as err:
                skipped.append(Skipped(s.path, err.reason))
                continue
            shown.unpacked[folder] = shown(s.path)
            inner = discover([folder])
            series.extend(inner.series)
            nested.extend(inner.skipped)
        for parent, group in streams.items():
            unpacked, sources, bad = unpack_streams(group, into)
            skipped.extend(bad)
            if unpacked is None:
                continue
            shown.unpacked[unpacked] = shown(parent)
            shown.files.update({dst: shown(src) for dst, src in sources.items()})
            inner = discover([unpacked])
            series.extend(inner.series)
            nested.extend(inner.skipped)
        todo = nested
        if not todo:
            break
    with_images = {Path(shown(r.path)) for r in series}
    skipped = [
        s
        for s in skipped
        if s.reason != "no images found" or not any(s.path == p or s.path in p.parents for p in with_images)
    ]
    series.sort(key=lambda r: (shown(r.path), r.series_uid or ""))
    skipped = sorted((Skipped(Path(shown(s.path)), s.reason) for s in skipped), key=lambda s: str(s.path))
    return Discovery(series, skipped), shown
