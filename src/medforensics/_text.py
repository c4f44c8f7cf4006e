"""Text that came from file names UTF-8 cannot write.

Linux file names are bytes. Python decodes the bytes that are not UTF-8 (a Latin-1 name from an old share
or an exported CD, ``Thorax_\\xc4``) to lone surrogates (``surrogateescape``), which UTF-8 refuses to encode:
such a name ended a scan with an internal error when the JSON, the HTML report or the audit log was
written. Hashes take the name's own bytes (:func:`fs_bytes`); reports show each such byte as ``\\xNN``
(:func:`printable`), as Python's own repr does.
"""

from __future__ import annotations

from typing import Any


def fs_bytes(text: str) -> bytes:
    """The bytes ``text`` stands for: UTF-8, with each undecodable file-name byte as it was."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no file-name byte made
        return text.encode("utf-8", "surrogatepass")


def printable(text: str) -> str:
    """``text`` as valid UTF-8 text: each undecodable file-name byte written as ``\\xNN``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return fs_bytes(text).decode("utf-8", "backslashreplace")
    return text


def printable_tree(value: Any) -> Any:
    """:func:`printable` applied to every string (keys too) in nested dicts, lists and tuples."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_tree(k): printable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_tree(v) for v in value]
    return value
