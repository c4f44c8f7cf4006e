"""Atomic output: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
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
