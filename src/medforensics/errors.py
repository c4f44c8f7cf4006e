"""Error types. Every error a user can cause is a :class:`MedforensicsError`.

The CLI turns one into a single line ``error: <path>: <reason>`` on stderr and exit status 2; batch
commands catch it per item, report the item as skipped and go on.
"""

from __future__ import annotations

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
