"""Evaluation figures (PNG, written atomically): confusion matrix, ROC, score distributions, reliability."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medforensics._atomic import atomic_path


def _figure(figsize: tuple[float, float] = (4.5, 4.0)) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, dpi=110)


def _save(fig: Any, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``fig`` as a PNG (``metadata``: its text chunks, e.g. ``Description``) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata=metadata)
    plt.close(fig)
    return Path(path)


def confusion_png(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path, *, rule: str
) -> Path:
    """Confusion matrix (rows = truth, columns = prediction) with counts in the cells; ``rule``, how the
    predictions were made (a threshold and where it came from, or the argmax), is its title and the PNG's
    ``Description``."""
    import textwrap

    m = np.asarray(matrix)
    fig, ax = _figure((4.5, 4.4))
    ax.set_title("\n".join(textwrap.wrap(f"prediction: {rule}", 48)), fontsize=8)
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                str(m[i, j]),
                ha="center",
                va="center",
                color="white" if m[i, j] > m.max() / 2 else "black",
            )
    return _save(fig, path, {"Description": f"confusion matrix (rows truth, columns prediction): {rule}"})


def roc_png(y: ArrayLike, score: ArrayLike, path: str | Path, max_fpr: float = 0.01) -> Path:
    """ROC curve with the AUC and the ``max_fpr`` line."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.asarray(y).ravel()
    fig, ax = _figure()
    if len(np.unique(y)) == 2:
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, score):.3f}")
        ax.axvline(max_fpr, color="grey", ls=":", label=f"FPR {max_fpr:g}")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "one class only: no ROC", ha="center")
    ax.plot([0, 1], [0, 1], color="lightgrey", lw=0.8)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    return _save(fig, path)


def score_distributions_png(
    score: ArrayLike, labels: Sequence[str], path: str | Path, threshold: float | None = None
) -> Path:
    """Histogram of scores per original label (TB/TM/FB/FM/...)."""
    s = np.asarray(score, dtype=float).ravel()
    labs = np.asarray(list(labels))
    fig, ax = _figure((5.5, 3.8))
    bins = np.linspace(0, 1, 26) if s.size and s.min() >= 0 and s.max() <= 1 else 25
    for lab in sorted(set(labels)):
        ax.hist(s[labs == lab], bins=bins, alpha=0.5, label=f"{lab} (n={int((labs == lab).sum())})")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label="threshold")
    ax.set_xlabel("score (not authentic)")
    ax.set_ylabel("count")
    ax.legend(fontsize=7)
    return _save(fig, path)


def reliability_png(bins: Sequence[dict[str, float]], ece: float, path: str | Path) -> Path:
    """Reliability diagram: observed frequency against mean confidence per bin."""
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], color="lightgrey", lw=0.8)
    if bins:
        centres = [(b["low"] + b["high"]) / 2 for b in bins]
        ax.bar(centres, [b["frequency"] for b in bins], width=0.09, alpha=0.6, label="observed")
        ax.plot(
            [b["confidence"] for b in bins], [b["frequency"] for b in bins], "o-", ms=3, label="mean conf."
        )
    ax.set_title(f"ECE {ece:.3f}")
    ax.set_xlabel("predicted probability (fake)")
    ax.set_ylabel("fraction fake")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)
