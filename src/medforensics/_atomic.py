"""Atomic output: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from medforensics.errors import OutputError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "", private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it to ``target``.

    Works for a file or a folder written at the temporary path. On error the temporary is removed and
    ``target`` is left as it was. The result gets the permissions a plain ``open()``/``mkdir()`` gives
    (some writers, such as safetensors, create 0600 files), or owner-only ones when ``private`` (secrets).
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    except OSError as exc:
        raise _output_error(target, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        _set_mode(tmp, private)
        if target.is_dir() and not target.is_symlink() and tmp.is_dir():
            backup = target.with_name(f".{target.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            target.rename(backup)
            tmp.rename(target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            if target.is_dir() and not tmp.is_dir():
                raise OutputError("is a folder: a file cannot replace it", path=target)
            os.replace(tmp, target)
    except OSError as exc:  # the disk filled up, the folder turned read-only...: one line naming the output
        raise _output_error(target, exc) from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _output_error(target: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot be written ({exc.strerror or type(exc).__name__})", path=target)


def check_writable(target: str | os.PathLike[str], folder: bool = False) -> None:
    """Raise :class:`OutputError` now, before any work, when ``target`` (a file, or with ``folder`` a
    folder) cannot be written: the wrong kind of thing is there, or the nearest existing folder above it is
    not a writable folder."""
    target = Path(target)
    if target.exists() and target.is_dir() != folder:
        raise OutputError("is a folder, not a file" if not folder else "is a file, not a folder", path=target)
    above = target if folder and target.is_dir() else target.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise OutputError(f"cannot be written ({above} is a file, not a folder)", path=target)
    if not os.access(above, os.W_OK | os.X_OK):
        raise OutputError(f"cannot be written ({above} is not writable)", path=target)


def check_not_input(target: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]]) -> None:
    """Raise :class:`OutputError` when the output file ``target`` is one of the ``inputs``, or an existing
    DICOM file inside an input folder: writing it would overwrite what the user gave."""
    from medforensics.io.dicom import is_dicom_file

    t = _real(target)
    for raw in inputs:
        src = _real(raw)
        inside = src.is_dir() and src in t.parents and is_dicom_file(t)
        if t == src or inside:
            raise OutputError(f"is the input {raw}: writing it would overwrite the input", path=target)


def _real(path: str | os.PathLike[str]) -> Path:
    """The absolute path with symbolic links followed; a link loop stays as it is (``Path.resolve`` raises
    RuntimeError on one)."""
    return Path(os.path.realpath(path))


def check_folder_output(
    target: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]] = (), marker: str | None = None
) -> None:
    """Raise :class:`OutputError` before any work when writing the folder ``target`` whole (as
    :func:`atomic_path` does: what is there is replaced) would destroy data: it is, holds or lies inside one
    of ``inputs``, or it already holds files and not ``marker``, the file every earlier output of the same
    command holds (so a rerun may replace its own output, and nothing else)."""
    t = _real(target)
    for raw in inputs:
        src = _real(raw)
        if t == src or t in src.parents:
            raise OutputError(f"holds the input {raw}: writing it would replace the input", path=target)
        if src.is_dir() and src in t.parents:
            why = f"lies inside the input {raw}: writing there would change the input"
            raise OutputError(why, path=target)
    if t.exists() and not t.is_dir():
        raise OutputError("is a file, not a folder", path=target)
    if t.is_dir() and any(t.iterdir()) and not (marker and (t / marker).is_file()):
        raise OutputError(
            "already holds other files, which writing it would delete: choose a new or empty folder",
            path=target,
        )


def _set_mode(path: Path, private: bool) -> None:
    """Permissions of a finished temporary: umask-based like ``open()``/``mkdir()``, or owner-only."""
    umask = os.umask(0)
    os.umask(umask)
    if private:
        umask |= 0o077
    for p in [path, *path.rglob("*")] if path.is_dir() else [path] if path.exists() else []:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``target`` atomically."""
    return write_bytes_atomic(target, text.encode("utf-8"))
