"""``medforensics data list | show | register | unregister``: the catalogue of real sample images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from medforensics.cli._console import console, text
from medforensics.cli._errors import fail
from medforensics.errors import MedforensicsError

if TYPE_CHECKING:
    from medforensics.data.catalogue import Catalogue


def _dims(values: tuple[float, ...] | tuple[int, ...] | None, fmt: str, single_slice: bool) -> str:
    """``16×512×512`` / ``2.5×0.703×0.703``; a single slice shows only its in-plane values."""
    if not values:
        return "-"
    return "×".join(format(v, fmt) for v in (values[1:] if single_slice else values))


def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print the catalogue as JSON."),
) -> None:
    """List every real image available offline (installed samples, ../shared/data, registered folders).

    Exit status 0 when anything is listed (unreadable files are reported at the end), else 2.
    """
    from medforensics.data.catalogue import build_catalogue

    try:
        cat = build_catalogue()
    except MedforensicsError as err:
        raise fail(err) from err
    if as_json:
        payload = {
            "entries": [e.to_json() for e in cat.entries],
            "skipped": [{"path": s.path, "reason": s.reason} for s in cat.skipped],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        _print_table(cat)
    if not cat.entries:
        typer.echo("error: no sample images found", err=True)
        raise typer.Exit(code=2)


def _print_table(cat: Catalogue) -> None:
    from rich.table import Table

    out = console()
    table = Table(title=f"{len(cat.entries)} samples available offline", title_justify="left")
    for column, style in (("name", "bold"), ("mod.", ""), ("shape (z×y×x)", ""), ("spacing mm", "")):
        table.add_column(column, style=style, no_wrap=True)
    table.add_column("annotations")
    table.add_column("description")
    table.add_column("licence", style="dim")
    for e in cat.entries:
        single = bool(e.shape and e.shape[0] == 1)
        table.add_row(
            text(e.name),
            e.modality or ("labels" if e.kind == "annotations" else "?"),
            _dims(e.shape, "d", single),
            _dims(e.spacing, ".3g", single),
            text(e.annotations or "-"),
            text(e.description),
            text(e.licence),
        )
    out.print(table)
    if cat.skipped:
        out.print(f"[yellow]skipped {len(cat.skipped)}:[/yellow]")
        for s in cat.skipped:
            out.print(text(f"  {s.path}: {s.reason}"))


def show_command(
    name: str = typer.Argument(..., help="Sample name from `medforensics data list`."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
    slice_index: int | None = typer.Option(
        None, "--slice", help="Slice index (default: the first nodule's slice, else the middle)."
    ),
    window: str | None = typer.Option(
        None, "--window", help="lung, mediastinum, bone, brain, CENTER,WIDTH or auto (default: lung for CT)."
    ),
) -> None:
    """Render one slice of a sample with a display window and its nodule outlines."""
    from medforensics._atomic import check_not_input
    from medforensics.data.catalogue import build_catalogue, load_entry
    from medforensics.data.render import render_slice
    from medforensics.io.image2d import parse_window

    try:
        win = "default" if window is None else parse_window(window)
        entry = build_catalogue().get(name)
        sample = [entry.path, *entry.files, *([entry.annotation_file] if entry.annotation_file else [])]
        check_not_input(out, sample)  # the rendering never replaces the sample's own files
        volume, nodules = load_entry(entry)
        written = render_slice(volume, slice_index, win, nodules, out=out, title=entry.name)
    except MedforensicsError as err:
        raise fail(err) from err
    found = f", {len(nodules)} nodule(s)" if nodules else ""
    typer.echo(f"wrote {written} ({entry.name}, shape {'×'.join(map(str, volume.shape))}{found})")


def register_command(
    path: Path = typer.Argument(..., help="Folder of images (DICOM, NIfTI, MetaImage, NRRD, PNG/JPEG/TIFF)."),
    name: str | None = typer.Option(None, "--name", help="Catalogue name (default: the folder's name)."),
) -> None:
    """Add a folder to the catalogue (stored in $MEDFORENSICS_HOME/catalogue.json; files are not copied)."""
    from medforensics.data.catalogue import register_folder

    try:
        registered = register_folder(path, name)
    except MedforensicsError as err:
        raise fail(err) from err
    typer.echo(f"registered {path} as user:{registered}")


def unregister_command(name: str = typer.Argument(..., help="Name given at registration.")) -> None:
    """Remove a registered folder from the catalogue (its files are left alone)."""
    from medforensics.data.catalogue import unregister_folder

    try:
        folder = unregister_folder(name)
    except MedforensicsError as err:
        raise fail(err) from err
    typer.echo(f"unregistered {name} ({folder})")


def register(app: typer.Typer) -> None:
    """Attach the ``data`` command group."""
    data_app = typer.Typer(help="Real sample images available offline.", no_args_is_help=True)
    data_app.command("list")(list_command)
    data_app.command("show")(show_command)
    data_app.command("register")(register_command)
    data_app.command("unregister")(unregister_command)
    app.add_typer(data_app, name="data")
