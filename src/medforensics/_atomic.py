"""Atomic output: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from medforensics.errors import OutputError

#: Bytes of the target's name kept in a temporary's name (a name may take 255 bytes, the temporary more).
_NAME_BYTES = 100


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "", private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it to ``target``.

    Works for a file or a folder written at the temporary path. On error the temporary is removed and
    ``target`` is left as it was. The result gets the permissions a plain ``open()``/``mkdir()`` gives
    (some writers, such as safetensors, create 0600 files), or owner-only ones when ``private`` (secrets).

    A symbolic link to an existing file is written through, as the shell's ``>`` does: the file it points to
    is replaced (atomically) and the link stays. A character device or FIFO (``/dev/null``, ``/dev/stdout``)
    gets the finished file's bytes written into it (no rename can be atomic there); a block device or a
    socket is refused.
    """
    target = Path(target)
    special = _special_kind(target)
    if special is None and target.is_symlink() and os.path.isfile(target):
        target = _real(target)  # write through the link: replacing it would leave its file as it was
    name = os.fsdecode(os.fsencode(target.name)[:_NAME_BYTES])  # NAME_MAX is 255 bytes
    try:
        if special is None:
            target.parent.mkdir(parents=True, exist_ok=True)
        where = None if special else target.parent  # not in /dev: the system's temporary folder
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix + ".tmp", dir=where)
    except OSError as exc:
        raise _output_error(target, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if special is not None:
            _write_into(target, tmp)
            return
        _set_mode(tmp, private)
        if target.is_dir() and not target.is_symlink() and tmp.is_dir():
            backup = target.with_name(f".{name}.old")
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


def _special_kind(target: Path) -> str | None:
    """``"stream"`` when ``target`` (links followed) is a character device or FIFO, which :func:`atomic_path`
    writes into; None for a regular file, a folder or nothing; :class:`OutputError` for anything else."""
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return "stream"
    raise OutputError("is not a regular file (a block device or a socket): it cannot be written", path=target)


def _write_into(target: Path, tmp: Path) -> None:
    """Copy the finished temporary's bytes into the device or FIFO ``target`` (opened, not replaced)."""
    if tmp.is_dir():
        raise OutputError("is not a regular file: a folder cannot be written into it", path=target)
    with tmp.open("rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst)


def _output_error(target: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot be written ({exc.strerror or type(exc).__name__})", path=target)


def check_writable(target: str | os.PathLike[str], folder: bool = False) -> None:
    """Raise :class:`OutputError` now, before any work, when ``target`` (a file, or with ``folder`` a
    folder) cannot be written: the wrong kind of thing is there, or the nearest existing folder above it is
    not a writable folder."""
    target = Path(target)
    if target.exists() and target.is_dir() != folder:
        raise OutputError("is a folder, not a file" if not folder else "is a file, not a folder", path=target)
    if not folder:
        _special_kind(target)  # a block device or a socket: refused
    above = target if folder and target.is_dir() else target.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise OutputError(f"cannot be written ({above} is a file, not a folder)", path=target)
    if not os.access(above, os.W_OK | os.X_OK):
        raise OutputError(f"cannot be written ({above} is not writable)", path=target)


def check_weights_out(out: str | os.PathLike[str]) -> Path:
    """Raise :class:`OutputError` before a training run when its weights file ``out`` or the ``.json``
    record written beside it cannot be written, or they would be one file (``out`` ending in .json: the
    record would overwrite the weights); returns the record's path."""
    out = Path(out)
    if out.suffix.lower() == ".json":
        why = "must not end in .json: the weights' record is written beside them as .json"
        raise OutputError(why, path=out)
    record = out.with_suffix(".json")
    check_writable(out)
    check_writable(record)
    return record


def check_not_input(
    target: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]], folder: bool = False
) -> None:
    """Raise :class:`OutputError` when the output file ``target`` is one of the ``inputs``, or an existing
    file inside an input folder (a slice, an annotation, a NIfTI the scan read): writing it would overwrite
    what the user gave. A new file inside an input folder is allowed.

    With ``folder``, ``target`` is a folder new files are written into: it must not be an input folder or
    lie inside one (the files would join the input, and the next scan would read them)."""
    t = _real(target)
    for raw in inputs:
        src = _real(raw)
        if t == src:
            verb = "writing there would change" if folder else "writing it would overwrite"
            raise OutputError(f"is the input {raw}: {verb} the input", path=target)
        if src.is_dir() and src in t.parents and (folder or t.exists()):
            why = (
                f"lies inside the input {raw}: writing there would change the input"
                if folder
                else f"is a file of the input {raw}: writing it would overwrite the input"
            )
            raise OutputError(why, path=target)


def check_distinct_outputs(
    files: Mapping[str, str | os.PathLike[str] | None], folders: Mapping[str, str | os.PathLike[str] | None]
) -> None:
    """Raise :class:`OutputError` before any work when two output files (``files``: option name to path,
    None when not asked for) are the same file, or an output file is, or lies inside, one of the output
    ``folders`` (which several options may share): one output would overwrite or join another."""
    seen: dict[Path, str] = {}
    for option, path in files.items():
        if path is None:
            continue
        t = _real(path)
        if t in seen:
            why = f"is both the {seen[t]} and the {option} output: one would overwrite the other"
            raise OutputError(why, path=path)
        seen[t] = option
        for folder_option, folder in folders.items():
            if folder is None:
                continue
            f = _real(folder)
            if t == f or f in t.parents:
                where = "is" if t == f else "lies inside"
                why = f"{where} the {folder_option} folder: the {option} output needs a path of its own"
                raise OutputError(why, path=path)


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
    command holds (so a rerun may replace its own output, and nothing else), or it cannot be written
    (:func:`check_writable`)."""
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
    check_writable(target, folder=True)


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
    """Write UTF-8 ``text`` to ``target`` atomically (undecodable file-name bytes in it as ``\\xNN``:
    :func:`medforensics._text.printable`)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        from medforensics._text import printable

        data = printable(text).encode("utf-8")
    return write_bytes_atomic(target, data)
