"""The rich console the commands print tables to.

Text that comes from a path, a file or a user's registration is printed through :func:`text`, never as a
markup string: rich reads ``[...]`` in strings as markup, so a folder named ``CT [contrast]`` lost its
brackets in the scan summary and one named ``x[/]y`` ended the scan with a markup error after every series
was scanned. :func:`text` also writes a file name's bytes that are not UTF-8 as ``\\xNN``
(:func:`medforensics._text.printable`): a UTF-8 terminal cannot print them as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medforensics._text import printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

#: Width of a console that is not a terminal (a log file, a pipe, a cron job's mail): rich's own 80
#: columns cut the scan table's last columns (signature status, seconds) off.
LOG_WIDTH = 200


def console(stderr: bool = False) -> Console:
    """A console on stdout (or ``stderr``, when stdout carries data such as ``scan --json -``): the
    terminal's width, or :data:`LOG_WIDTH` when it is not a terminal."""
    from rich.console import Console

    out = Console(stderr=stderr)
    return out if out.is_terminal else Console(width=LOG_WIDTH, stderr=stderr)


def text(value: object, style: str = "") -> Text:
    """``value`` as rich text that prints as it is: no markup, undecodable file-name bytes as ``\\xNN``."""
    from rich.text import Text

    return Text(printable(str(value)), style=style)
