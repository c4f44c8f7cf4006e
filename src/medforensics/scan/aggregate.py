"""Study-level aggregation: candidate scores -> series score, verdict, attack type, CT-GAN label; NMS.

* Series score: noisy-OR of the top-``k`` calibrated candidate scores (``k = 1``: the maximum), so one
  confident cube decides and a few moderately suspicious ones add up.
* Verdict: ``tampered`` when the series score reaches the model's operating threshold.
* Type: injected vs removed from the attack-type probabilities of the top candidate.
* Label (CT-GAN data set): FM (injected), FB (removed), TM (an untouched nodule-like blob is present), TB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Class order of the 3-D detector (see :mod:`medforensics.models.cnn3d`).
TYPE_NAMES = ("authentic", "injected", "removed")


@dataclass
class SeriesScore:
    """Aggregated outcome of one series."""

    score: float
    verdict: str
    attack_type: str | None
    label: str


def noisy_or(p: ArrayLike, k: int = 1) -> float:
    """``1 - prod(1 - p_i)`` over the ``k`` highest scores (``k = 1``: the maximum)."""
    arr = np.sort(np.asarray(p, np.float64).ravel())[::-1][: max(1, k)]
    if arr.size == 0:
        return 0.0
    return float(1.0 - np.prod(1.0 - np.clip(arr, 0.0, 1.0)))


def attack_type(p_type: ArrayLike) -> str:
    """``injected`` or ``removed`` (the more probable of the two tampering classes)."""
    row = np.asarray(p_type, np.float64).ravel()
    if row.size < 3:
        return "injected"  # binary detectors do not tell the type
    return TYPE_NAMES[1 + int(np.argmax(row[1:3]))]


def aggregate(
    p_tamper: ArrayLike,
    p_type: ArrayLike,
    threshold: float,
    nodule_like: Sequence[bool] = (),
    top_k: int = 1,
) -> SeriesScore:
    """Series score, verdict, type and label from per-candidate scores (see module docs)."""
    p = np.asarray(p_tamper, np.float64).ravel()
    pt = np.asarray(p_type, np.float64).reshape(len(p), -1) if len(p) else np.zeros((0, 3))
    score = noisy_or(p, top_k)
    tampered = len(p) > 0 and score >= threshold
    kind = attack_type(pt[int(np.argmax(p))]) if tampered else None
    if kind == "injected":
        label = "FM"
    elif kind == "removed":
        label = "FB"
    else:
        untouched = [bool(n) and q < threshold for n, q in zip(nodule_like, p, strict=False)]
        label = "TM" if any(untouched) else "TB"
    return SeriesScore(score, "tampered" if tampered else "authentic", kind, label)


def nms_mm(
    centers_mm: ArrayLike, scores: ArrayLike, radius_mm: float, max_keep: int = 5, min_score: float = 0.0
) -> list[int]:
    """Indices of the highest scores, dropping any within ``radius_mm`` of one already kept."""
    c = np.asarray(centers_mm, np.float64).reshape(-1, 3)
    s = np.asarray(scores, np.float64).ravel()
    keep: list[int] = []
    for i in np.argsort(-s, kind="stable"):
        if s[i] < min_score or len(keep) >= max_keep:
            break
        if all(np.linalg.norm(c[i] - c[j]) > radius_mm for j in keep):
            keep.append(int(i))
    return keep


def series_threshold_at_fpr(authentic_scores: ArrayLike, max_fpr: float = 0.01) -> float:
    """Operating threshold on series scores of authentic validation series for <= ``max_fpr`` flagged.

    Write the result as ``series_threshold`` in the model's ``calibration.json``.
    """
    s: NDArray[np.float64] = np.sort(np.asarray(authentic_scores, np.float64).ravel())
    if s.size == 0:
        return 0.5
    allowed = int(np.floor(max_fpr * s.size))  # this many authentic series may score >= threshold
    return float(np.nextafter(s[s.size - 1 - allowed], np.inf)) if allowed < s.size else 0.0
