"""ZIP archives of studies (a PACS web viewer's "download study", a CD or cloud export) read as folders.

:func:`expand_archives` takes what :func:`~medforensics.io.reader.discover` skipped, unpacks every ZIP
archive among it into a scratch folder the caller owns and discovers the series there (archives inside
archives too, :data:`MAX_DEPTH` deep). The user's archive is only read. :class:`Shown` names a series found
inside an archive by the archive's path and the member's path in it (``study.zip/CT/IM0001``), so reports
never show the scratch folder. An archive that cannot be unpacked (damaged, encrypted, a compression
method Python's ``zipfile`` lacks, larger than the free space) is skipped with the reason.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from medforensics.errors import InputError
from medforensics.io.reader import Discovery, Skipped, discover

__all__ = ["MAX_DEPTH", "Shown", "expand_archives", "is_zip", "unpack"]

#: archives inside archives are unpacked this many levels deep (a study ZIP holding one ZIP per series)
MAX_DEPTH = 3
#: free space kept on the scratch disk after unpacking
RESERVE_BYTES = 64 * 1024 * 1024
#: members that are no image: macOS Finder's resource forks and folder settings
_JUNK = ("__MACOSX/",)


def is_zip(path: Path) -> bool:
    """Whether ``path`` is a ZIP archive (its first bytes are a ZIP entry, as every archive tool writes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head in (b"PK\x03\x04", b"PK\x05\x06") and zipfile.is_zipfile(path)


def _junk(name: str) -> bool:
    return name.startswith(_JUNK) or PurePosixPath(name).name in (".DS_Store", "Thumbs.db")


def unpack(path: Path, into: Path) -> Path:
    """Extract the ZIP archive ``path`` into a new folder under ``into`` and return that folder.

    Raises :class:`InputError` naming the archive when it is damaged, encrypted, uses a compression method
    ``zipfile`` cannot read, or would leave less than :data:`RESERVE_BYTES` free on ``into``'s disk.
    Member names are made safe by ``zipfile`` (no absolute paths, no ``..``)."""
    dest: Path | None = None
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir() and not _junk(m.filename)]
            if any(m.flag_bits & 0x1 for m in members):
                why = "encrypted ZIP archive: unpack it with its password, then scan the folder"
                raise InputError(why, path=path)
            need = sum(m.file_size for m in members)
            free = shutil.disk_usage(into).free
            if need > free - RESERVE_BYTES:
                raise InputError(
                    f"ZIP archive: unpacking needs {need / 1e6:.0f} MB, {free / 1e6:.0f} MB free in {into} "
                    "(set TMPDIR to a larger disk, or unpack it and scan the folder)",
                    path=path,
                )
            dest = Path(tempfile.mkdtemp(prefix="zip-", dir=into))
            for m in members:
                zf.extract(m, dest)
    except InputError:
        raise
    except (zipfile.BadZipFile, zlib.error) as exc:  # a bad CRC, a cut or corrupted compressed stream
        if dest is not None:
            shutil.rmtree(dest, ignore_errors=True)
        raise InputError(f"damaged ZIP archive ({exc})", path=path) from exc
    except NotImplementedError as exc:  # Deflate64 (Windows, for large archives), bzip2/lzma without libs
        why = f"ZIP archive: {exc}; unpack it with another tool, then scan the folder"
        raise InputError(why, path=path) from exc
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        if dest is not None:
            shutil.rmtree(dest, ignore_errors=True)
        raise InputError(f"ZIP archive cannot be unpacked ({type(exc).__name__}: {exc})", path=path) from exc
    return dest


@dataclass
class Shown:
    """How a path found inside an unpacked archive is shown: the archive's path, then the member's."""

    unpacked: dict[Path, str] = field(default_factory=dict)  # scratch folder -> the archive as shown

    def __call__(self, path: str | Path) -> str:
        p = Path(path)
        for folder, archive in self.unpacked.items():
            if p == folder or folder in p.parents:
                rel = p.relative_to(folder).as_posix()
                return archive if rel == "." else f"{archive}/{rel}"
        return str(path)


def expand_archives(found: Discovery, into: Path, depth: int = MAX_DEPTH) -> tuple[Discovery, Shown]:
    """``found`` with every ZIP archive it skipped unpacked under ``into`` and discovered.

    The archive's own "not DICOM" entry goes; what cannot be unpacked is skipped with its reason; a folder
    skipped as holding no images is kept out when an archive in it held some. Skipped paths come back as
    shown (inside an archive: ``archive/member``); series keep their scratch paths for loading."""
    shown = Shown()
    series, skipped = list(found.series), []
    todo = list(found.skipped)
    for level in range(depth + 1):
        nested: list[Skipped] = []
        for s in todo:
            if not is_zip(s.path):
                skipped.append(s)
                continue
            if level == depth:
                skipped.append(Skipped(s.path, f"ZIP archive nested more than {depth} deep: not unpacked"))
                continue
            try:
                folder = unpack(s.path, into)
            except InputError as err:
                skipped.append(Skipped(s.path, err.reason))
                continue
            shown.unpacked[folder] = shown(s.path)
            inner = discover([folder])
            series.extend(inner.series)
            nested.extend(inner.skipped)
        todo = nested
        if not todo:
            break
    with_images = {Path(shown(r.path)) for r in series}
    skipped = [
        s
        for s in skipped
        if s.reason != "no images found" or not any(s.path in p.parents for p in with_images)
    ]
    series.sort(key=lambda r: (shown(r.path), r.series_uid or ""))
    skipped = sorted((Skipped(Path(shown(s.path)), s.reason) for s in skipped), key=lambda s: str(s.path))
    return Discovery(series, skipped), shown
