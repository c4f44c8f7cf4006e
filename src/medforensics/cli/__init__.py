"""Command-line interface. Thin: parse, call one library function, print.

Each command group lives in its own module exposing ``register(app)``; this module assembles them and
turns :class:`~medforensics.errors.MedforensicsError` into one line on stderr with exit status 2.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

from medforensics import __version__
from medforensics.cli._errors import fail
from medforensics.errors import MedforensicsError
from medforensics.logging import configure

#: Command modules under ``medforensics.cli``, each with ``register(app: typer.Typer) -> None``.
COMMAND_MODULES: tuple[str, ...] = ("data", "provenance", "models", "forge", "scan")

app = typer.Typer(
    name="medforensics",
    help="Detect tampering and deepfakes in medical images (CT, MRI, X-ray).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medforensics {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
) -> None:
    """medforensics: forge, train, scan and sign medical images."""
    configure(logging.INFO if verbose else logging.WARNING)  # -v also shows pydicom's decoder detail


for _name in COMMAND_MODULES:
    importlib.import_module(f"medforensics.cli.{_name}").register(app)


def _names_as_bytes() -> None:
    """A file name's bytes that are not UTF-8 go to stdout as they are (as ``ls`` prints them): with a strict
    stdout (a UTF-8 locale other than C.UTF-8) printing such a name ended ``verify`` or ``sign`` with an
    internal error. stderr already writes them as ``\\xNN``."""
    import io

    if isinstance(sys.stdout, io.TextIOWrapper) and sys.stdout.errors == "strict":
        sys.stdout.reconfigure(errors="surrogateescape")


def main() -> None:
    """Console-script entry point: no tracebacks for user errors (set MEDFORENSICS_DEBUG=1 to see them)."""
    _names_as_bytes()
    try:
        app(standalone_mode=True)
    except MedforensicsError as err:
        sys.exit(fail(err).exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit as exc:  # typer turns Ctrl-C into a silent exit 130: say why the command stopped
        if exc.code == 130:
            typer.echo("interrupted", err=True)
        raise
    except Exception as err:  # last resort: one line, not a traceback
        if os.environ.get("MEDFORENSICS_DEBUG"):
            raise
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        typer.echo(f"error: internal error ({reason}); rerun with MEDFORENSICS_DEBUG=1 for details", err=True)
        sys.exit(1)
