from __future__ import annotations

import numpy as np
import pytest

from medforensics.scan.aggregate import aggregate, nms_mm, noisy_or, series_threshold_at_fpr


def test_noisy_or_top_k() -> None:
    assert noisy_or([0.2, 0.9, 0.5]) == pytest.approx(0.9)
    assert noisy_or([0.2, 0.9, 0.5], k=2) == pytest.approx(1 - 0.1 * 0.5)
    assert noisy_or([]) == 0.0


def test_labels_from_type_and_nodules() -> None:
    pt_inj = [[0.1, 0.8, 0.1], [0.9, 0.05, 0.05]]
    a = aggregate([0.95, 0.1], pt_inj, threshold=0.9)
    assert (a.verdict, a.attack_type, a.label) == ("tampered", "injected", "FM")
    b = aggregate([0.95, 0.1], [[0.1, 0.2, 0.7], [0.9, 0.05, 0.05]], threshold=0.9)
    assert (b.verdict, b.label) == ("tampered", "FB")
    c = aggregate([0.3, 0.1], pt_inj, threshold=0.9, nodule_like=[False, True])
    assert (c.verdict, c.label, c.attack_type) == ("authentic", "TM", None)
    d = aggregate([0.3, 0.1], pt_inj, threshold=0.9, nodule_like=[False, False])
    assert d.label == "TB" and d.score == pytest.approx(0.3)


def test_nms_in_mm() -> None:
    centres = [[0, 0, 0], [3, 0, 0], [30, 0, 0], [0, 40, 0]]
    keep = nms_mm(centres, [0.9, 0.8, 0.7, 0.1], radius_mm=10, max_keep=5, min_score=0.5)
    assert keep == [0, 2]


def test_series_threshold_at_fpr() -> None:
    s = np.linspace(0, 1, 200)
    t = series_threshold_at_fpr(s, 0.01)
    assert np.mean(s >= t) <= 0.01 and np.mean(s >= t) > 0
