"""``medforensics forge inject|remove|list|train-gan`` (+ the data commands of :mod:`.forge_data`).

Thin: parse, call one library function, print.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medforensics._seed import SEED_LIMIT
from medforensics.cli._errors import fail
from medforensics.errors import MedforensicsError


def _tamper(
    kind: str,
    input_: Path,
    center: str,
    method: str | None,
    seed: int,
    out: Path,
    xml: Path | None,
    noise_z: str,
    round_trip_mm: float | None,
) -> None:
    from medforensics.forge.tamper import parse_center, tamper_series

    try:
        side = tamper_series(
            input_, out, kind, parse_center(center), method, seed, xml, noise_z, round_trip_mm
        )
    except MedforensicsError as err:
        raise fail(err) from None
    typer.echo(
        f"{side['method']}: centre {side['center_voxel']} (voxels z,y,x) = {side['center_mm']} mm, "
        f"{side['changed_voxels']} voxels changed -> {out}"
        + (f" (then every voxel zoomed through {round_trip_mm:g} mm and back)" if round_trip_mm else "")
    )
    note = (side.get("transfer_syntax") or {}).get("note")
    if note:
        typer.echo(note)


def register(app: typer.Typer) -> None:
    """Attach the ``forge`` command group."""
    forge_app = typer.Typer(
        help="Forgery lab: tamper CT series, train the attack GANs.", no_args_is_help=True
    )
    app.add_typer(forge_app, name="forge")

    center_help = "Centre z,y,x (voxels) or 'auto' (inject: in the lung; remove: an annotated nodule)."
    noise_z_help = (
        "Touch-up noise between slices: independent, or matched to the scanner's inter-slice correlation "
        "(a stronger attacker; noise-matched attacks only)."
    )
    trip_help = (
        "Then zoom the whole series to voxels of this size (mm) and back, as the released CT-GAN tool "
        "handles every scan it edits (1 = the tool's; CT series only)."
    )

    @forge_app.command("inject")
    def inject_cmd(
        input_: Path = typer.Option(..., "--input", help="CT series folder, DICOM file or NIfTI file."),
        out: Path = typer.Option(..., "--out", help="Output folder (series/, forgery.json, mask.nii.gz)."),
        center: str = typer.Option("auto", "--center", help=center_help),
        method: str | None = typer.Option(
            None, "--method", help="Attack (see `forge list`); default ctgan-inject."
        ),
        seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same forgery)."),
        annotations: Path | None = typer.Option(
            None, "--annotations", help="LIDC XML (donor nodules for copy-move)."
        ),
        noise_z: str = typer.Option("independent", "--noise-z", help=noise_z_help),
        round_trip_mm: float | None = typer.Option(None, "--round-trip-mm", min=0.1, help=trip_help),
    ) -> None:
        """Inject a nodule into a CT series, as an attacker would (same UIDs, only pixels changed)."""
        _tamper("inject", input_, center, method, seed, out, annotations, noise_z, round_trip_mm)

    @forge_app.command("remove")
    def remove_cmd(
        input_: Path = typer.Option(..., "--input", help="CT series folder, DICOM file or NIfTI file."),
        out: Path = typer.Option(..., "--out", help="Output folder (series/, forgery.json, mask.nii.gz)."),
        center: str = typer.Option("auto", "--center", help=center_help),
        method: str | None = typer.Option(
            None, "--method", help="Attack (see `forge list`); default ctgan-remove."
        ),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        annotations: Path | None = typer.Option(
            None, "--annotations", help="LIDC XML (nodules for --center auto)."
        ),
        noise_z: str = typer.Option("independent", "--noise-z", help=noise_z_help),
        round_trip_mm: float | None = typer.Option(None, "--round-trip-mm", min=0.1, help=trip_help),
    ) -> None:
        """Remove the nodule at the centre of a CT series, as an attacker would (--method image-clone: hide
        part of a radiograph, an MR or CT image or a picture under a copy of the same image)."""
        _tamper("remove", input_, center, method, seed, out, annotations, noise_z, round_trip_mm)

    @forge_app.command("list")
    def list_cmd(
        kind: str | None = typer.Option(None, "--kind", help="inject, remove or synthesize."),
    ) -> None:
        """The registered attacks, by kind."""
        from medforensics.forge.base import KIND_LABELS, held_out_attacks, list_attacks

        try:
            kinds = [kind] if kind else list(KIND_LABELS)
            held = set(held_out_attacks())
            for k in kinds:
                names = [f"{n} (held out)" if n in held else n for n in list_attacks(k)]
                typer.echo(f"{k} ({KIND_LABELS.get(k, '?')}): {', '.join(names) or '-'}")
            if held:
                typer.echo("held out: not in a data set unless named (forge dataset --methods)")
        except MedforensicsError as err:
            raise fail(err) from None

    @forge_app.command("train-gan")
    def train_gan_cmd(
        kind: str = typer.Option(..., "--kind", help="inject (nodule in-painter) or remove (healthy lung)."),
        out: Path = typer.Option(
            ..., "--out", help="Output .safetensors; the training record goes beside (.json)."
        ),
        epochs: int = typer.Option(30, "--epochs", min=1, help="Epochs of 100 augmented batches."),
        seed: int = typer.Option(0, "--seed", min=0, max=SEED_LIMIT - 1),
        data_root: Path | None = typer.Option(
            None, "--data-root", help="LIDC slabs folder (series + reader XML)."
        ),
        max_minutes: float | None = typer.Option(None, "--max-minutes", help="Stop after this much time."),
        tiny: bool = typer.Option(False, "--tiny", help="A tiny model for smoke tests."),
        init: Path | None = typer.Option(None, "--init", help="Continue from these generator weights."),
    ) -> None:
        """Train a CT-GAN in-painter on CPU (L1 + 3-D PatchGAN)."""
        import torch

        from medforensics.forge.ctgan.train import train_gan

        torch.set_num_threads(1)
        try:
            rec = train_gan(
                kind,
                epochs=epochs,
                seed=seed,
                out=out,
                data_root=data_root,
                tiny=tiny,
                max_seconds=None if max_minutes is None else max_minutes * 60,
                init=init,
            )
        except MedforensicsError as err:
            raise fail(err) from None
        typer.echo(json.dumps({k: rec[k] for k in ("model", "epochs_run", "cubes_seen", "seconds")}))
        typer.echo(f"weights: {out}  record: {out.with_suffix('.json')}")

    from medforensics.cli.forge_data import add_commands

    add_commands(forge_app)
