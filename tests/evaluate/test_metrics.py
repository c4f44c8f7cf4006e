"""Metrics against hand-computed values and scikit-learn; calibration; the evaluate runner and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from medforensics.evaluate import metrics as M

Y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
S = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.35, 0.6, 0.7, 0.9, 0.95])


def test_binary_metrics_against_hand_values_and_sklearn() -> None:
    m = M.binary_metrics(Y, S, threshold=0.5)
    # predictions at 0.5: negatives 0.8 -> FP; positives 0.35 -> FN
    assert m["confusion"] == {"tn": 4, "fp": 1, "fn": 1, "tp": 4}
    assert m["accuracy"] == pytest.approx(0.8)
    pred = (S >= 0.5).astype(int)
    assert m["precision"] == pytest.approx(precision_score(Y, pred)) == pytest.approx(0.8)
    assert m["recall"] == pytest.approx(recall_score(Y, pred))
    assert m["f1"] == pytest.approx(f1_score(Y, pred))
    assert m["fpr"] == pytest.approx(0.2)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(Y, S)) == pytest.approx(0.84)
    # at 0 % FPR only positives above 0.8 count: 0.9, 0.95 -> TPR 0.4
    assert m["tpr_at_1pct_fpr"] == pytest.approx(0.4)


def test_tpr_at_fpr_and_threshold_with_many_negatives() -> None:
    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 1000), rng.normal(2, 1, 500)
    y, s = np.r_[np.zeros(1000), np.ones(500)], np.r_[neg, pos]
    thr = M.threshold_at_fpr(y, s, 0.01)
    assert (neg >= thr).sum() == 10  # exactly 1 % of the negatives at or above the threshold
    tpr = M.tpr_at_fpr(y, s, 0.01)
    assert tpr == pytest.approx((pos >= thr).mean())
    assert M.tpr_at_fpr(np.zeros(4), np.arange(4)) is None and M.roc_auc(np.ones(3), np.arange(3)) is None


def test_ece_by_hand() -> None:
    ece, bins = M.reliability([0, 1, 1, 1], [0.05, 0.95, 0.95, 0.45], n_bins=10)
    # bins: 0.05 (freq 0), 0.45 (freq 1), 0.95 x2 (freq 1)
    assert ece == pytest.approx((0.05 + 0.55 + 2 * 0.05) / 4)
    assert [b["count"] for b in bins] == [1, 1, 2]


def test_temperature_and_platt_recover_known_maps() -> None:
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, (4000, 3))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    t = M.fit_temperature(true_logits * 3.0, y)  # over-confident by 3x
    assert t == pytest.approx(3.0, rel=0.15)
    z = rng.normal(0, 2, 4000)
    yb = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(int)
    raw = 1 / (1 + np.exp(-(z - 1) / 2))  # raw score = sigmoid((z - 1) / 2)
    a, b = M.fit_platt(raw, yb)
    assert a == pytest.approx(2.0, rel=0.15) and b == pytest.approx(1.0, abs=0.2)
    assert M.reliability(yb, M.apply_platt(raw, (a, b)))[0] < M.reliability(yb, raw)[0]


def test_evaluate_predictions_report() -> None:
    probs = np.stack([1 - S, S], 1)
    labels = ["TB", "TM", "TB", "TM", "TB", "FM", "FB", "FM", "FB", "FM"]
    r = M.evaluate_predictions(probs, Y, labels, ("real", "fake"), (1,), probs, Y)
    assert r["calibration"]["threshold_source"] == "validation"
    assert r["operating_point"]["fpr"] <= 0.01
    assert set(r["per_label"]) == {"TB", "TM", "FB", "FM"} and r["per_label"]["FB"]["truth"] == "fake"
    assert r["operating_point"]["roc_auc"] == pytest.approx(0.84)  # Platt is monotone
    json.dumps(r)


def test_every_confusion_records_its_decision_rule() -> None:
    """Beside each confusion matrix: the threshold and where it came from, or the argmax (the PNG's title)."""
    probs = np.stack([1 - S, S], 1)
    labels = ["TB"] * 5 + ["FM"] * 5
    val = M.evaluate_predictions(probs, Y, labels, ("real", "fake"), (1,), probs, Y)
    rule = val["operating_point"]["decision_rule"]
    assert rule["kind"] == "threshold" and rule["source"] == "validation"
    assert rule["threshold"] == val["operating_point"]["threshold"]
    assert rule["text"].startswith(f"calibrated fake score >= {rule['threshold']:.4g} ")
    assert "1% FPR on the validation split" in rule["text"]
    assert val["at_0.5"]["decision_rule"]["source"] == "fixed" and "classes" not in val
    stored = M.evaluate_predictions(probs, Y, labels, ("real", "fake"), (1,), threshold=0.6)
    assert stored["operating_point"]["decision_rule"] == {
        "kind": "threshold",
        "threshold": 0.6,
        "source": "stored",
        "text": "fake score >= 0.6 (threshold stored with the model at training time)",
    }
    default = M.evaluate_predictions(probs, Y, labels, ("real", "fake"), (1,))
    assert default["operating_point"]["decision_rule"]["source"] == "default"
    assert "no validation split, none stored" in default["operating_point"]["decision_rule"]["text"]
    p3 = np.stack([1 - S, S / 2, S / 2], 1)
    three = M.evaluate_predictions(p3, Y, labels, ("authentic", "injected", "removed"), (1, 2), p3, Y)
    assert three["classes"]["decision_rule"] == {"kind": "argmax", "text": M.ARGMAX_RULE}
    assert three["operating_point"]["decision_rule"]["kind"] == "threshold"  # its own matrix, its own rule
    json.dumps([val, stored, default, three])


@pytest.mark.parametrize("classes", [("real", "fake"), ("authentic", "injected", "removed")])
def test_confusion_png_is_written_with_its_rule(tmp_path: Path, classes: tuple[str, ...]) -> None:
    from PIL import Image

    from medforensics.evaluate.runner import EVALUATION, _write

    n = len(classes)
    probs = np.stack([1 - S] + [S / (n - 1)] * (n - 1), 1)
    y = Y if n == 2 else np.array([0, 0, 0, 0, 0, 1, 2, 1, 2, 1])
    labels = ["TB"] * 5 + ["FM", "FB", "FM", "FB", "FM"]
    fakes = tuple(range(1, n))
    result = M.evaluate_predictions(probs, y, labels, classes, fakes, probs, y)
    _write(result, tmp_path, y, fakes, (S, S), labels)
    saved = json.loads((tmp_path / EVALUATION).read_text())
    shown = "classes" if n > 2 else "operating_point"
    assert saved["confusion_png_shows"] == shown and saved["figures"]["confusion"] == "confusion.png"
    rule = saved[shown]["decision_rule"]["text"]
    assert rule == (M.ARGMAX_RULE if n > 2 else result["operating_point"]["decision_rule"]["text"])
    with Image.open(tmp_path / "confusion.png") as png:
        assert png.format == "PNG" and png.size[0] > 100
        assert png.text["Description"].endswith(rule)  # type: ignore[attr-defined]


def test_evaluate_runner_and_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medforensics.cli import app
    from medforensics.evaluate.runner import evaluate_model
    from medforensics.train import ArraySource, config_from_dict, train
    from tests.train.test_loop import tiny_source

    src = tiny_source(40, labels=("TB", "FM", "TM", "FB"))
    cfg = config_from_dict(
        {"model": "test_cnn", "out": str(tmp_path / "m"), "epochs": 3, "batch_size": 8, "data": {"size": 32}}
    )
    train(cfg, src)
    splits = ["val" if i % 5 == 0 else "test" for i in range(40)]
    ev_src = ArraySource(
        [s.array for s in src.samples], [s.label for s in src.samples], [s.group for s in src.samples], splits
    )
    res = evaluate_model(tmp_path / "m", ev_src, tmp_path / "ev")
    assert res["n"] == 32 and res["n_val"] == 8
    for name in ("evaluation.json", "confusion.png", "roc.png", "scores.png", "reliability.png"):
        assert (tmp_path / "ev" / name).stat().st_size > 0
    assert (tmp_path / "ev" / "roc.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert saved["confusion_png_shows"] == "operating_point"  # a binary model: the threshold's matrix
    assert saved["operating_point"]["decision_rule"]["source"] == "validation"
    assert saved["operating_point"]["decision_rule"]["threshold"] == saved["operating_point"]["threshold"]
    all_res = evaluate_model(tmp_path / "m", ev_src, tmp_path / "ev2", split="all")
    assert all_res["n"] == 40 and all_res["calibration"].get("threshold_source") == "stored"
    assert all_res["operating_point"]["decision_rule"]["source"] == "stored"
    # the stored Platt map is applied and named; the 4 classes' confusion is the argmax one
    assert all_res["calibration"]["method"] == "platt (stored)" and len(all_res["calibration"]["platt"]) == 2
    assert all_res["task_classes"] == list(res["task_classes"])

    runner = CliRunner()
    out = runner.invoke(app, ["models", "list"])
    assert out.exit_code == 0 and "resnet18" in out.output.splitlines() and "test_cnn" not in out.output
    bad = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(tmp_path / "nope"),
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert bad.exit_code == 2 and "not a training folder" in bad.output
