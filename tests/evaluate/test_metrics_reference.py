"""The reported metrics against scikit-learn and brute force on crafted edge cases (session 26 audit)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from medforensics.evaluate import metrics as M


def brute_tpr_at_fpr(y: np.ndarray, s: np.ndarray, max_fpr: float = 0.01) -> float:
    """Highest TPR over every threshold ``score >= t`` whose FPR is <= ``max_fpr``."""
    best = 0.0
    for t in [*np.unique(s), np.inf]:
        pred = s >= t
        if (pred & (y == 0)).sum() <= max_fpr * (y == 0).sum():
            best = max(best, float((pred & (y == 1)).sum() / (y == 1).sum()))
    return best


_RNG = np.random.default_rng(0)
CASES = {
    "ties": ([0, 0, 1, 1, 0, 1], [0.5, 0.5, 0.5, 0.7, 0.2, 0.5]),
    "all_equal": ([0, 1, 0, 1], [0.3] * 4),
    "perfect": ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]),
    "inverted": ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]),
    # 3 negatives: 1 % FPR allows none, so the TPR counts positives above the highest negative (0.6)
    "tiny": ([0, 0, 0, 1, 1, 1], [0.1, 0.6, 0.3, 0.6, 0.7, 0.2]),
    "rounded": (
        np.r_[np.zeros(300), np.ones(200)],
        np.round(np.r_[_RNG.normal(0.3, 0.2, 300), _RNG.normal(0.6, 0.2, 200)], 1),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_binary_metrics_match_sklearn(case: str) -> None:
    y, s = (np.asarray(v, dtype=float) for v in CASES[case])
    y = y.astype(int)
    m = M.binary_metrics(y, s, threshold=0.5)
    pred = (s >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(sk.precision_score(y, pred, zero_division=0))
    assert m["recall"] == pytest.approx(sk.recall_score(y, pred, zero_division=0))
    assert m["f1"] == pytest.approx(sk.f1_score(y, pred, zero_division=0))
    assert list(m["confusion"].values()) == sk.confusion_matrix(y, pred, labels=[0, 1]).ravel().tolist()
    assert m["roc_auc"] == pytest.approx(sk.roc_auc_score(y, s))
    assert m["tpr_at_1pct_fpr"] == pytest.approx(brute_tpr_at_fpr(y, s))
    thr = M.threshold_at_fpr(y, s, 0.01)
    neg = s[y == 0]
    allowed = int(0.01 * len(neg))  # the lowest threshold leaving at most 1 % of the negatives above
    assert (neg >= thr).sum() <= allowed < (neg >= np.nextafter(thr, -np.inf)).sum()


def test_a_steep_platt_map_does_not_tie_the_ranked_scores() -> None:
    """A steep Platt map (slope 50: what the unsmoothed fit gave on a validation set the model separated,
    and what models trained before the smoothed fit store) maps 239 of these 600 scores to exactly 1.0 in
    float64; the reported AUC (0.85) and TPR at 1 % FPR (0.0) were those of the ties, not of the model's
    ranking (0.89, 0.28; the calibration is monotone and must not change them)."""
    rng = np.random.default_rng(1)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    ty = np.r_[np.zeros(300), np.ones(300)].astype(int)
    ts = sig(np.r_[rng.normal(-3, 4, 300), rng.normal(3, 4, 300)])
    ab = (50.0, -3.0)
    assert (M.apply_platt(ts, ab) == 1.0).sum() > 100  # the case this test is about
    two = lambda s: np.stack([1 - s, s], 1)  # noqa: E731
    r = M.evaluate_predictions(two(ts), ty, ["TB"] * 300 + ["FM"] * 300, ("real", "fake"), (1,), platt=ab)
    for key in ("operating_point", "at_0.5"):
        assert r[key]["roc_auc"] == pytest.approx(sk.roc_auc_score(ty, ts))
        assert r[key]["tpr_at_1pct_fpr"] == pytest.approx(brute_tpr_at_fpr(ty, ts))


def test_stored_platt_is_applied_named_and_compared_with_the_raw_score() -> None:
    """Without validation data the stored Platt map calibrates the score; the JSON names it and
    ``ece_uncalibrated`` is the raw score's (it was the calibrated one's, equal to ``ece``)."""
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    raw = np.array([0.30, 0.45, 0.50, 0.55, 0.60, 0.70, 0.52, 0.40])
    ab = (4.0, -0.2)
    r = M.evaluate_predictions(
        np.stack([1 - raw, raw], 1), y, ["TB"] * 8, ("real", "fake"), (1,), threshold=0.6, platt=ab
    )
    cal = M.apply_platt(raw, ab)
    assert r["calibration"]["method"] == "platt (stored)" and r["calibration"]["platt"] == list(ab)
    assert r["calibration"]["threshold_source"] == "stored"
    assert r["calibration"]["ece"] == pytest.approx(M.reliability(y, cal)[0])
    assert r["calibration"]["ece_uncalibrated"] == pytest.approx(M.reliability(y, raw)[0])
    assert r["operating_point"]["confusion"]["tp"] == int(((cal >= 0.6) & (y == 1)).sum())


def test_class_report_averages_and_confusion_order_match_sklearn() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 2, 0, 1])
    p = np.array([0, 1, 1, 1, 2, 0, 0, 0, 0])
    r = M.class_report(y, p, ("authentic", "injected", "removed"))
    for avg in ("macro", "weighted"):
        ref = sk.precision_recall_fscore_support(y, p, average=avg, zero_division=0)
        assert [r[f"{avg}_avg"][k] for k in ("precision", "recall", "f1")] == pytest.approx(ref[:3])
    assert r["confusion"] == sk.confusion_matrix(y, p).tolist()  # rows truth, columns prediction
    assert r["confusion"][2] == [2, 0, 1]  # 'removed' row: two called authentic, one right
    # a class never predicted nor present counts 0 in the macro mean
    absent = M.class_report(np.array([0, 0, 1]), np.array([0, 0, 0]), ("a", "b", "c"))
    assert absent["macro_avg"]["recall"] == pytest.approx(1 / 3)
    assert absent["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_ece_bins_match_sklearn_calibration_curve() -> None:
    """Bins are (low, high] as sklearn's: the observed frequency and mean confidence per bin agree."""
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(2)
    y, p = rng.integers(0, 2, 500), rng.random(500)
    p[:4] = [0.0, 0.1, 0.5, 1.0]  # on bin edges
    ece, bins = M.reliability(y, p, 10)
    freq, conf = calibration_curve(y, p, n_bins=10)
    assert [b["frequency"] for b in bins] == pytest.approx(freq)
    assert [b["confidence"] for b in bins] == pytest.approx(conf)
    counts = np.array([b["count"] for b in bins])
    assert ece == pytest.approx(float((counts / len(y) * np.abs(freq - conf)).sum()))
