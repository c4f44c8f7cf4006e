"""``medforensics models list``, ``medforensics train``, ``medforensics evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer

from medforensics.errors import MedforensicsError


def _fail(err: MedforensicsError) -> typer.Exit:
    from medforensics.cli import fail  # the package's one-line error printer (imported late: no cycle)

    return fail(err)


def register(app: typer.Typer) -> None:
    """Attach the ``models`` group and the ``train`` / ``evaluate`` commands."""
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

        try:
            cfg = load_config(config, out=out, resume=resume)
            result = train(cfg)
        except MedforensicsError as err:
            raise _fail(err) from None
        op = result.metrics.get("test", result.metrics.get("val", {})).get("operating_point", {})
        typer.echo(
            f"{result.out}: epochs {result.epochs_run} (best {result.best_epoch}), AUC {op.get('roc_auc')}, "
            f"{result.seconds:.1f} s"
        )

    @app.command("evaluate")
    def evaluate_cmd(
        model: Path = typer.Option(..., "--model", "-m", help="Training folder (from `train`)."),
        data: Path = typer.Option(
            ..., "--data", "-d", help="Data set folder (labels.csv, scans/, splits.csv)."
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for evaluation.json and the PNG figures."),
        split: str = typer.Option("test", "--split", help="'test' (calibrate on val) or 'all' samples."),
    ) -> None:
        """Score a data set: metrics JSON, confusion/ROC/score/reliability PNGs."""
        from medforensics.evaluate.runner import EVALUATION, evaluate_model

        try:
            res = evaluate_model(model, data, out, split)
        except MedforensicsError as err:
            raise _fail(err) from None
        op = res["operating_point"]
        typer.echo(
            f"{out / EVALUATION}: n={res['n']} AUC {op['roc_auc']} accuracy {op['accuracy']:.4f} "
            f"threshold {op['threshold']:.4f}"
        )
