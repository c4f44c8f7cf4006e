"""Error types. Every error a user can cause is a :class:`MedforensicsError`.

The CLI turns one into a single line ``error: <path>: <reason>`` on stderr and exit status 2; batch
commands catch it per item, report the item as skipped and go on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike


class MedforensicsError(Exception):
    """An error caused by the input or the configuration, reported without a traceback."""

    def __init__(self, reason: str, path: str | PathLike[str] | None = None) -> None:
        self.reason = " ".join(str(reason).split())  # always one line
        self.path = None if path is None else str(path)
        super().__init__(self.one_line())

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        # pickled (from a worker process) as reason and path, not as the one line made of them
        return (type(self), (self.reason, self.path))

    def one_line(self) -> str:
        """``path: reason`` (or just the reason) on one line."""
        return f"{self.path}: {self.reason}" if self.path else self.reason


class InputError(MedforensicsError):
    """A file or folder that cannot be read as a medical image (or is the wrong kind of image)."""


class OutputError(MedforensicsError):
    """An output file or folder that cannot be written (read-only, full, a folder where a file goes...)."""


class ConfigError(MedforensicsError):
    """A bad configuration, parameter or command-line value."""


def check_one_of(key: str, value: object, choices: tuple[str, ...]) -> None:
    """ConfigError (one line) naming ``key`` and the choices when ``value`` is not one of them."""
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


class MissingDependencyError(MedforensicsError):
    """An optional dependency needed for this input is not installed."""


@contextmanager
def pixels_in_memory(path: str | PathLike[str]) -> Iterator[None]:
    """Turn a :class:`MemoryError` raised inside the block into an :class:`InputError` naming ``path`` with
    :func:`out_of_memory`'s reason (the readers' callers then report it as any other bad input)."""
    try:
        yield
    except MemoryError as err:
        raise InputError(out_of_memory(err), path=path) from None


def out_of_memory(err: MemoryError) -> str:
    """The reason for a series or file whose pixels did not fit in memory: input-driven as often as not (a
    header whose image size is a lie makes the reader allocate it), so it is not called an internal error."""
    return (
        f"out of memory for its pixels ({' '.join(str(err).split())[:200]}): a corrupt image size in its "
        "header, or a series too large for this machine's memory"
    )


def special_file_reason(mode: int) -> str:
    """Why a path of ``mode`` (``os.stat``'s ``st_mode``) that is neither a regular file nor a folder is not
    read: opening a named pipe waits for a writer, and a device may never end."""
    kind = (
        "a named pipe"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a special file"
    )
    return f"{kind}, not a regular file"


def absent_reason(path: str | PathLike[str]) -> str:
    """Why an input that is neither a file nor a folder cannot be read (missing, or a pipe or device)."""
    try:
        return special_file_reason(os.stat(path).st_mode)
    except OSError:
        return "no such file or folder"
