"""``medforensics models list``, ``train``, ``evaluate`` and ``benchmark``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from medforensics.cli._errors import fail
from medforensics.cli._options import MAX_PIXEL_MM, MAX_SLICE_MM
from medforensics.errors import ConfigError, InputError, MedforensicsError


def register(app: typer.Typer) -> None:
    """Attach the ``models`` group and the ``train`` / ``evaluate`` / ``benchmark`` commands."""
    models_app = typer.Typer(help="The detector zoo.", no_args_is_help=True)

    @models_app.command("list")
    def list_cmd(
        pattern: str = typer.Argument("*", help="Glob on model names."),
        tests: bool = typer.Option(False, "--tests", help="Include the tiny test_* variants."),
        details: bool = typer.Option(False, "--details", help="Add input kind, size and family columns."),
    ) -> None:
        """Print registered model names, one per line."""
        from medforensics.models import list_models, model_info

        for name in list_models(pattern, include_test=tests):
            if details:
                i = model_info(name)
                typer.echo(f"{name}\t{i.input_kind}\t{i.input_size}\t{i.family}")
            else:
                typer.echo(name)

    app.add_typer(models_app, name="models")

    @app.command("train")
    def train_cmd(
        config: Path = typer.Option(..., "--config", "-c", help="Training config (.json or .toml)."),
        out: str = typer.Option(None, "--out", help="Override the config's output folder."),
        resume: str = typer.Option(None, "--resume", help="Resume from this training folder's last/ state."),
    ) -> None:
        """Train a model from a config; writes model.safetensors, config, metrics and a model card."""
        from medforensics.train import load_config, train
        from medforensics.train.card import fmt_number
        from medforensics.train.dense import is_dense_config, load_dense_config, train_dense

        if is_dense_config(config):
            try:
                metrics = train_dense(
                    load_dense_config(config, out=out, resume=resume),
                    progress=lambda msg: typer.echo(msg, err=True),
                )
            except ConfigError as err:  # a bad value of the config: name the config file
                raise fail(err if err.path else ConfigError(err.reason, path=config)) from None
            except MedforensicsError as err:
                raise fail(err) from None
            typer.echo(
                f"{out or metrics['out']}: {metrics['train_seconds']:.1f} s, "
                f"best step {metrics['best_step']}, "
                f"val scan AUC {fmt_number(metrics['val'].get('auc'))}, "
                f"test scan AUC {fmt_number(metrics['test'].get('auc'))}"
            )
            return
        try:
            cfg = load_config(config, out=out, resume=resume)
            result = train(cfg)
        except MedforensicsError as err:
            raise fail(err) from None
        op = result.metrics.get("test", result.metrics.get("val", {})).get("operating_point", {})
        typer.echo(
            f"{result.out}: epochs {result.epochs_run} (best {result.best_epoch}), "
            f"AUC {fmt_number(op.get('roc_auc'))}, "
            f"{result.seconds:.1f} s"
        )

    @app.command("evaluate")
    def evaluate_cmd(
        model: Path | None = typer.Option(
            None,
            "--model",
            "-m",
            help="Training folder (from `train`); a dense localiser's folder, or none for the bundled CT "
            "detector, is scored at scan level (each data-set scan scanned as `scan` does).",
        ),
        data: Path = typer.Option(
            ..., "--data", "-d", help="Data set folder (labels.csv, scans/, splits.csv)."
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for evaluation.json and the PNG figures."),
        split: str = typer.Option(
            "test",
            "--split",
            help="'test' (a zoo model recalibrates on val) or 'all' samples (scans at scan level).",
        ),
        max_slice_mm: float | None = MAX_SLICE_MM,
        max_pixel_mm: float | None = MAX_PIXEL_MM,
        jobs: int = typer.Option(
            1,
            "--jobs",
            min=1,
            max=64,
            help="At scan level: scans scanned at a time, in worker processes sharing the cores (as "
            "`scan --jobs`; the same results).",
        ),
    ) -> None:
        """Score a data set: metrics JSON, confusion/ROC/score/reliability PNGs."""
        from medforensics.evaluate.runner import EVALUATION, evaluate_model
        from medforensics.evaluate.scan_level import evaluate_scans, is_scan_level
        from medforensics.train.card import fmt_number

        try:
            if is_scan_level(model):
                from medforensics.cli._progress import Bar

                with Bar("scanning") as bar:
                    limits = (max_slice_mm, max_pixel_mm)
                    res = evaluate_scans(model, data, out, split, progress=bar, limits=limits, jobs=jobs)
            elif max_slice_mm is not None or max_pixel_mm is not None or jobs != 1:
                raise ConfigError(
                    "--max-slice-mm, --max-pixel-mm and --jobs apply at scan level only (a dense model)"
                )
            else:
                res = evaluate_model(model, data, out, split)  # type: ignore[arg-type]
        except MedforensicsError as err:
            raise fail(err) from None
        op = res["operating_point"]
        if res.get("level") == "scan":
            loc, lab = res["localisation"], res["labels"]
            typer.echo(
                f"{out / EVALUATION}: {res['n']} scans ({res['n_errors']} errors) AUC "
                f"{fmt_number(op['roc_auc'])} accuracy {fmt_number(op['accuracy'])} "
                f"TB/TM/FB/FM labels {fmt_number(lab['tb_tm_fb_fm']['accuracy'])} "
                f"({lab['tb_tm_fb_fm']['right']}/{lab['tb_tm_fb_fm']['n']}) top finding within "
                f"{loc['within_mm']:g} mm {fmt_number(loc['top_finding_within'])}{_syn_words(res)}"
            )
            return
        typer.echo(
            f"{out / EVALUATION}: n={res['n']} AUC {fmt_number(op['roc_auc'])} "
            f"accuracy {fmt_number(op['accuracy'])} "
            f"threshold {op['threshold']:.4f}"
        )

    @app.command("benchmark")
    def benchmark_cmd(
        data: Path = typer.Option(
            ..., "--data", "-d", help="Forge data set folder (labels.csv, scans/, ...)."
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for the leaderboard and per-model runs."),
        models: str = typer.Option("all", "--models", help="'all' or comma-separated model names."),
        loao_models: str = typer.Option(
            "all", "--loao-models", help="Models that also run leave-one-attack-out ('all' or a list)."
        ),
        preset: str = typer.Option("cpu-fast", "--preset", help="Training preset (cpu-fast, seed-study)."),
        seed: int = typer.Option(0, "--seed", help="Seed of every run."),
        protocols: str = typer.Option("in-dist,loao", "--protocols", help="in-dist and/or loao."),
        epochs: int = typer.Option(None, "--epochs", min=1, help="Override the preset's epochs."),
        patience: int = typer.Option(None, "--patience", min=1, help="Override early-stopping patience."),
        batch_size: int = typer.Option(None, "--batch-size", min=1, help="Override the batch size."),
        size_2d: int = typer.Option(96, "--size-2d", min=8, help="Crop edge of 2-D/2.5-D CNN inputs (px)."),
        threads: int = typer.Option(None, "--threads", min=1, help="PyTorch CPU threads."),
        device: str = typer.Option("cpu", "--device", help="Where CNNs run: cpu, cuda, auto."),
        resume: bool = typer.Option(
            False,
            "--resume",
            help="Take the training runs an earlier, interrupted run of the same samples and settings "
            "finished in --out (each is kept as it ends) instead of running them again.",
        ),
        monitor: str = typer.Option(
            "val_auc", "--monitor", help="Keep each CNN's epoch with the best val_auc (default) or val_loss."
        ),
    ) -> None:
        """Train and evaluate every model on one patient-level split (+ leave-one-attack-out)."""
        from medforensics.evaluate.benchmark import PROTOCOLS, BenchmarkConfig, run_benchmark

        def names(value: str, option: str) -> list[str] | None:
            """A comma-separated list; only the literal 'all' means all (an empty list was all once)."""
            items = [v.strip() for v in value.split(",") if v.strip()]
            if not items:
                raise fail(ConfigError(f"{option} names nothing: give names, or 'all'"))
            return None if items == ["all"] else items

        if not data.is_dir():
            raise fail(InputError("data set folder does not exist", path=data))
        cfg = BenchmarkConfig(
            out=out,
            models=names(models, "--models"),
            loao_models=names(loao_models, "--loao-models"),
            protocols=tuple(names(protocols, "--protocols") or PROTOCOLS),
            preset=preset,
            seed=seed,
            epochs=epochs,
            patience=patience,
            batch_size=batch_size,
            size_2d=size_2d,
            threads=threads,
            device=device,
            monitor=monitor,
        )
        try:
            res = run_benchmark(data, cfg, progress=lambda msg: typer.echo(msg, err=True), resume=resume)
        except MedforensicsError as err:
            raise fail(err) from None
        except KeyboardInterrupt:
            from medforensics.evaluate.benchmark_runs import RUN_FILE

            kept = len(list(out.glob(f"models/*/**/{RUN_FILE}")))
            typer.echo(f"{kept} finished training run(s) kept in {out}: --resume goes on from them", err=True)
            raise
        n_reused = len(res["reused_runs"])
        reused = f"; {n_reused} run(s) taken from the earlier run" if n_reused else ""
        typer.echo(
            f"{out / 'leaderboard.md'}: {len(res['rows'])} model(s), {res['wall_s']:.0f} s{reused}; "
            f"recommended {res['recommended']} (CT, 3-D context: {res['recommended_ct']})"
        )


def _syn_words(res: dict[str, Any]) -> str:
    """`` SYN labelled SYN a/b`` when the evaluated scans hold fully synthetic ones, else ``""``."""
    syn = res.get("per_label", {}).get("SYN")
    if not syn or not syn.get("n"):
        return ""
    return f" SYN labelled SYN {round(syn['label_accuracy'] * syn['n'])}/{syn['n']}"
