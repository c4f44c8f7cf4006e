"""The CLI's one error printer (its own module so command modules can import it without a cycle)."""

from __future__ import annotations

import typer

from medforensics.errors import MedforensicsError


def fail(err: MedforensicsError) -> typer.Exit:
    """Print ``error: <path>: <reason>`` on stderr and return the exit (status 2) to raise."""
    typer.echo(f"error: {err.one_line()}", err=True)
    return typer.Exit(code=2)
