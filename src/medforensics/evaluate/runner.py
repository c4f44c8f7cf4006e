"""``medforensics evaluate``: a trained folder on a data set -> one JSON plus the figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medforensics._atomic import atomic_path, check_folder_output, check_writable
from medforensics.errors import ConfigError, InputError
from medforensics.evaluate import plots
from medforensics.evaluate.metrics import apply_platt, evaluate_predictions, fake_score, platt_logit
from medforensics.logging import get_logger
from medforensics.models.classical import FeatureModel
from medforensics.models.inference import predict_proba
from medforensics.train.data import (
    FAKE_CLASSES,
    TASK_CLASSES,
    TASK_MAP,
    Sample,
    SampleSource,
    left_out_line,
    task_samples,
)

EVALUATION = "evaluation.json"
log = get_logger("evaluate")


def _arrays(samples: list[Sample], task: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    mapping = TASK_MAP[task]
    x = np.stack([s.array for s in samples])
    return x, np.array([mapping[s.label] for s in samples], dtype=np.int64), [s.label for s in samples]


def evaluate_model(
    model_dir: str | Path,
    data: str | Path | SampleSource,
    out: str | Path,
    split: str = "test",
    protect_inputs: bool = True,
) -> dict[str, Any]:
    """Score ``split`` (``test`` or ``all``) of ``data`` with the model in ``model_dir``; write JSON + PNGs.

    Calibration and the 1 % FPR threshold are refitted on the data's ``val`` split when it has one (and
    ``split`` is ``test``); otherwise the ones stored at training time are used. The ``out`` folder is
    written whole (atomically); before any work it must be writable, new, empty or an earlier evaluation
    (holding ``evaluation.json``) and, with ``protect_inputs``, neither hold nor lie inside ``model_dir``
    or the data set folder.
    """
    from medforensics.train.build import input_size
    from medforensics.train.checkpoint import load_trained
    from medforensics.train.loop import make_source

    if split not in ("test", "all"):
        raise ConfigError(f"split must be 'test' or 'all', got {split!r}")
    model, cfg, train_metrics = load_trained(model_dir)
    out = Path(out)
    check_writable(out, folder=True)  # before the data is read
    inputs = [model_dir, *([data] if isinstance(data, (str, Path)) else [])] if protect_inputs else []
    check_folder_output(out, inputs, marker=EVALUATION)
    if isinstance(data, (str, Path)):
        from dataclasses import replace

        from medforensics.models.registry import model_info

        size = input_size(cfg, model_info(cfg.model))
        cfg = replace(cfg, data=replace(cfg.data, path=str(data), size=size))
        source = make_source(cfg)
    else:
        source = data
    samples = list(source)
    if not samples:
        raise ConfigError("the evaluation data set is empty (no readable samples)", path=str(data))
    anomaly = isinstance(model, FeatureModel) and model.family == "anomaly"
    task = "binary" if anomaly else cfg.data.task
    samples, left_out = task_samples(samples, task)  # as training left them out (SYN under attack)
    if left_out and not samples:
        raise ConfigError(f"{left_out_line(task, left_out)}: nothing to score", path=str(data))
    if left_out:
        log.warning("%s", left_out_line(task, left_out))
    classes, fakes = TASK_CLASSES[task], FAKE_CLASSES[task]
    chosen = samples if split == "all" else [s for s in samples if s.meta.get("split", "test") == "test"]
    if not chosen:
        raise ConfigError("no samples in the test split; use --split all", path=str(data))
    val = [] if split == "all" else [s for s in samples if s.meta.get("split") == "val"]
    x, y, labels = _arrays(chosen, task)

    def probs_of(arr: np.ndarray) -> np.ndarray:
        p = predict_proba(model, arr, cfg.batch_size, cfg.precision, cfg.channels_last)
        if not np.isfinite(p).all():  # NaN weights pass the loader: the scores say it (session 25 fuzz)
            raise InputError("the model gives non-finite probabilities (damaged weights?)", path=model_dir)
        return p

    p = probs_of(x)
    stored = train_metrics.get("operating_point", {})
    if val:
        vx, vy, _ = _arrays(val, task)
        result = evaluate_predictions(p, y, labels, classes, fakes, probs_of(vx), vy)
    else:  # the calibration and threshold stored at training time
        result = evaluate_predictions(
            p,
            y,
            labels,
            classes,
            fakes,
            threshold=stored.get("threshold"),
            platt=stored.get("calibration", {}).get("platt"),
        )
    platt = result["calibration"].get("platt")
    raw = fake_score(p, fakes)
    score = apply_platt(raw, platt) if platt else raw
    rank = platt_logit(raw, platt) if platt else raw
    data_name = str(data) if isinstance(data, (str, Path)) else "in-memory"
    result.update(
        model=cfg.model,
        model_dir=str(model_dir),
        data=data_name,
        split=split,
        n=len(chosen),
        n_val=len(val),
        left_out=left_out,
    )
    with atomic_path(out) as tmp:
        tmp.mkdir()
        _write(result, tmp, y, fakes, (score, rank), labels)
    return result


def _write(
    result: dict[str, Any],
    out: Path,
    y: np.ndarray,
    fakes: tuple[int, ...],
    scores: tuple[np.ndarray, np.ndarray],
    labels: list[str],
) -> None:
    """The figures and ``evaluation.json`` (with their names under ``figures``) into the folder ``out``.
    ``scores``: the calibrated score and its unsaturated order (:func:`platt_logit`) for the ROC."""
    score, rank = scores
    thr = result["operating_point"]["threshold"]
    yb = np.isin(y, fakes).astype(int)
    shown = "classes" if "classes" in result else "operating_point"  # the block confusion.png draws
    block = result[shown]
    result["confusion_png_shows"] = shown  # that block's decision_rule is the figure's title
    if shown == "classes":
        cm, names = block["confusion"], block["classes"]
    else:
        c = block["confusion"]
        cm, names = [[c["tn"], c["fp"]], [c["fn"], c["tp"]]], ["real", "fake"]
    result["figures"] = {
        "confusion": plots.confusion_png(
            cm, names, out / "confusion.png", rule=block["decision_rule"]["text"]
        ).name,
        "roc": plots.roc_png(yb, rank, out / "roc.png").name,
        "scores": plots.score_distributions_png(score, labels, out / "scores.png", thr).name,
        "reliability": plots.reliability_png(
            result["calibration"]["reliability"], result["calibration"]["ece"], out / "reliability.png"
        ).name,
    }
    (out / EVALUATION).write_text(json.dumps(result, indent=1), encoding="utf-8")
