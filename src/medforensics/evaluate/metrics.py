"""Detection metrics, calibration and the operating point.

Scores are "probability not authentic" (higher = more likely tampered/synthetic). The operating threshold is
chosen on validation data for a false-positive rate of at most ``max_fpr`` (1 %); calibration (temperature
scaling for class probabilities, Platt scaling for the binary score) is fitted on validation data too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from medforensics.evaluate.calibration import (
    EPS,
    apply_platt,
    apply_temperature,
    fit_platt,
    fit_temperature,
    flat,
    platt_logit,
    reliability,
)


def roc_auc(y: ArrayLike, score: ArrayLike) -> float | None:
    """ROC-AUC, or None when ``y`` holds one class only."""
    y = flat(y, np.int64)
    return float(roc_auc_score(y, flat(score))) if len(np.unique(y)) == 2 else None


def auc_se(auc: float | None, n_pos: int, n_neg: int) -> float | None:
    """Standard error of a ROC-AUC from its value and the class counts (Hanley & McNeil 1982: from
    Q1 = A / (2 - A), Q2 = 2A^2 / (1 + A)). None without an AUC or with an empty class. Needs no scores, so
    it applies to stored results too."""
    if auc is None or n_pos < 1 or n_neg < 1:
        return None
    a = float(auc)
    q1, q2 = a / (2.0 - a), 2.0 * a * a / (1.0 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def normal_ci95(value: float, se: float) -> tuple[float, float]:
    """``value`` +- 1.96 ``se``, clipped to [0, 1]."""
    half = 1.959964 * se
    return max(0.0, value - half), min(1.0, value + half)


def auc_ci95(auc: float | None, n_pos: int, n_neg: int) -> tuple[float, float] | None:
    """Approximate 95 % interval of a ROC-AUC: :func:`auc_se`'s normal interval clipped to [0, 1] (None
    without an AUC or with an empty class)."""
    se = auc_se(auc, n_pos, n_neg)
    return None if auc is None or se is None else normal_ci95(float(auc), se)


def tpr_at_fpr(y: ArrayLike, score: ArrayLike, max_fpr: float = 0.01) -> float | None:
    """Highest true-positive rate among thresholds whose false-positive rate is <= ``max_fpr`` (the
    TPR at the lowest such threshold; positive when ``score >= t``). With fewer than ``1 / max_fpr``
    negatives that means no false positive at all: the share of positives scored above every negative.
    None when ``y`` holds one class only."""
    y = flat(y, np.int64)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, flat(score))
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max())


def threshold_at_fpr(y: ArrayLike, score: ArrayLike, max_fpr: float = 0.01) -> float:
    """Lowest threshold ``t`` (positive when ``score >= t``) with FPR <= ``max_fpr`` on (``y``, ``score``).

    With no negatives the threshold is the lowest score; with no threshold meeting the target, just above
    the highest negative score.
    """
    y, s = flat(y, np.int64), flat(score)
    neg = np.sort(s[y == 0])
    if len(neg) == 0:
        return float(s.min()) if len(s) else 0.5
    allowed = int(np.floor(max_fpr * len(neg) + 1e-9))  # negatives allowed at or above the threshold
    # threshold just above the (allowed+1)-th highest negative
    k = len(neg) - allowed - 1
    return float(np.nextafter(neg[k], np.inf))


def binary_metrics(
    y: ArrayLike,
    score: ArrayLike,
    threshold: float = 0.5,
    max_fpr: float = 0.01,
    rank_score: ArrayLike | None = None,
) -> dict[str, Any]:
    """Accuracy, precision, recall (TPR), specificity, FPR, F1, ROC-AUC, TPR at ``max_fpr``, confusion.

    The threshold metrics call ``score >= threshold`` positive; ROC-AUC and TPR at ``max_fpr`` rank
    ``rank_score`` when given: a score in the same order as ``score`` that float rounding has not
    flattened (:func:`platt_logit` for a Platt-calibrated score, whose sigmoid can saturate to 1.0).
    """
    y, s = flat(y, np.int64), flat(score)
    r = s if rank_score is None else flat(rank_score)
    pred = (s >= threshold).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "n": len(y),
        "n_positive": int(y.sum()),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y, pred)) if len(y) else None,
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "specificity": float(tn / (tn + fp)) if tn + fp else None,
        "fpr": float(fp / (tn + fp)) if tn + fp else None,
        "f1": float(f1_score(y, pred, zero_division=0)),
        "roc_auc": (auc := roc_auc(y, r)),
        "roc_auc_ci95": auc_ci95(auc, int(y.sum()), int(len(y) - y.sum())),
        f"tpr_at_{max_fpr * 100:g}pct_fpr": tpr_at_fpr(y, r, max_fpr),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def per_label_metrics(
    labels: Sequence[str], score: ArrayLike, threshold: float, fake_labels: Sequence[str]
) -> dict[str, Any]:
    """Per original label (TB/TM/FB/FM/...): count, accuracy of the real/fake call, mean and median score."""
    s = flat(score)
    labs = np.asarray(list(labels))
    out: dict[str, Any] = {}
    for lab in sorted(set(labels)):
        sel = labs == lab
        truth = lab in fake_labels
        out[lab] = {
            "n": int(sel.sum()),
            "truth": "fake" if truth else "real",
            "accuracy": float(((s[sel] >= threshold) == truth).mean()),
            "mean_score": float(s[sel].mean()),
            "median_score": float(np.median(s[sel])),
        }
    return out


def class_report(y: ArrayLike, pred: ArrayLike, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, their macro (unweighted mean over every class,
    absent ones counting 0) and support-weighted averages, and the confusion matrix (rows = truth,
    columns = prediction, both in ``class_names`` order)."""
    y, p = flat(y, np.int64), flat(pred, np.int64)
    labels = list(range(len(class_names)))
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)

    def avg(average: str) -> dict[str, float]:
        got = precision_recall_fscore_support(y, p, labels=labels, average=average, zero_division=0)
        return {k: float(v) for k, v in zip(("precision", "recall", "f1"), got[:3], strict=True)}

    return {
        "accuracy": float(accuracy_score(y, p)) if len(y) else None,
        "macro_avg": avg("macro"),
        "weighted_avg": avg("weighted"),
        "per_class": {
            name: {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(sup[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion": confusion_matrix(y, p, labels=labels).tolist(),
        "classes": list(class_names),
    }


# ---------------------------------------------------------------------------------------------- calibration
def fake_score(probs: ArrayLike, fake_classes: Sequence[int]) -> NDArray[np.float64]:
    """ "Not authentic" score: the summed probability of the fake classes."""
    return np.asarray(probs, np.float64)[:, list(fake_classes)].sum(1)


#: Decision rule of the multi-class confusion (``classes``).
ARGMAX_RULE = "argmax of the class probabilities"


def threshold_rule(threshold: float, source: str, max_fpr: float, calibrated: bool) -> dict[str, Any]:
    """The decision rule of a real/fake confusion: ``threshold``, its ``source`` (``validation``: fitted for
    ``max_fpr`` on the validation split; ``stored``: stored with the model at training time; ``default``:
    neither, 0.5; ``fixed``: asked for) and the same in words (``text``, the confusion figure's title)."""
    why = {
        "validation": f"for at most {max_fpr * 100:g}% FPR on the validation split",
        "stored": "stored with the model at training time",
        "default": "by default: no validation split, none stored",
        "fixed": "fixed",
    }[source]
    score = "calibrated fake score" if calibrated else "fake score"
    return {
        "kind": "threshold",
        "threshold": float(threshold),
        "source": source,
        "text": f"{score} >= {threshold:.4g} (threshold {why})",
    }


def evaluate_predictions(
    probs: ArrayLike,
    y: ArrayLike,
    labels: Sequence[str],
    class_names: Sequence[str],
    fake_classes: Sequence[int],
    val_probs: ArrayLike | None = None,
    val_y: ArrayLike | None = None,
    max_fpr: float = 0.01,
    threshold: float | None = None,
    platt: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Everything ``evaluate`` reports, as one JSON-ready dict.

    Calibration and the operating threshold come from the validation predictions when given (else the
    stored ``platt`` map and ``threshold``, else no calibration and 0.5). ROC-AUC and TPR at ``max_fpr``
    rank the calibrated score (:func:`platt_logit`, so a steep Platt map does not tie scores at 1.0);
    ``classes`` (more than two classes) is the argmax confusion, not the operating point's; each confusion
    has its ``decision_rule`` beside it (:func:`threshold_rule`, or ``kind`` argmax).
    """
    p, t = np.asarray(probs, np.float64), flat(y, np.int64)
    fake_set = set(fake_classes)
    yb = np.isin(t, list(fake_set)).astype(np.int64)
    raw = fake_score(p, fake_classes)
    calib: dict[str, Any] = {"method": None}
    score, rank = raw, raw
    if val_probs is not None and val_y is not None and len(flat(val_y)) > 0:
        vp, vy = np.asarray(val_probs, np.float64), flat(val_y, np.int64)
        vyb = np.isin(vy, list(fake_set)).astype(np.int64)
        temp = fit_temperature(np.log(vp + EPS), vy)
        platt = fit_platt(fake_score(vp, fake_classes), vyb)
        val_score = apply_platt(fake_score(vp, fake_classes), platt)
        threshold = threshold_at_fpr(vyb, val_score, max_fpr)
        p = apply_temperature(np.log(p + EPS), temp)
        calib = {
            "method": "platt (binary score) + temperature (classes)",
            "platt": list(platt),
            "temperature": temp,
            "threshold_source": "validation",
        }
    elif platt is not None:
        calib = {"method": "platt (stored)", "platt": [float(v) for v in platt]}
    if platt is not None:
        score, rank = apply_platt(raw, platt), platt_logit(raw, platt)
    if threshold is not None and "threshold_source" not in calib:
        calib["threshold_source"] = "stored"
    thr = 0.5 if threshold is None else float(threshold)
    ece_raw, _ = reliability(yb, raw)
    ece, bins = reliability(yb, score)
    fake_labels = [lab for lab in set(labels) if lab in ("FB", "FM", "SYN", "FAKE")]
    out: dict[str, Any] = {
        "task_classes": list(class_names),
        "max_fpr": max_fpr,
        "operating_point": binary_metrics(yb, score, thr, max_fpr, rank),
        "at_0.5": binary_metrics(yb, score, 0.5, max_fpr, rank),
        "per_label": per_label_metrics(labels, score, thr, fake_labels),
        "real_fake": class_report(yb, (score >= thr).astype(np.int64), ("real", "fake"))["per_class"],
        "calibration": {**calib, "ece_uncalibrated": ece_raw, "ece": ece, "reliability": bins},
    }
    source = calib.get("threshold_source", "default")
    out["operating_point"]["decision_rule"] = threshold_rule(thr, source, max_fpr, platt is not None)
    out["at_0.5"]["decision_rule"] = threshold_rule(0.5, "fixed", max_fpr, platt is not None)
    if len(class_names) > 2:
        out["classes"] = class_report(t, p.argmax(1), class_names)
        out["classes"]["decision_rule"] = {"kind": "argmax", "text": ARGMAX_RULE}
    return out
