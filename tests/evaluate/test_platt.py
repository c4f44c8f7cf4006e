"""Platt scaling (metrics.fit_platt) as Platt (1999) and Lin, Lin & Weng (2007) define it: smoothed targets,
a finite slope on separable data, and the maximum-likelihood fit scikit-learn gives on the same targets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from medforensics.evaluate import metrics as M


def _sig(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _separable() -> tuple[np.ndarray, np.ndarray]:
    """60 validation scores a detector separates (every tampered score above every authentic one)."""
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(30), np.ones(30)].astype(int)
    s = _sig(np.r_[rng.normal(-3, 2, 30), rng.normal(3, 2, 30)])
    assert s[y == 1].min() > s[y == 0].max()
    return s, y


def _sklearn_on_soft_targets(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Unpenalised logistic regression of Platt's smoothed targets: each score twice, as a positive of
    weight t and a negative of weight 1 - t (the same likelihood Platt's method maximises)."""
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    f = np.log(s / (1 - s))
    lr = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000)
    lr.fit(np.r_[f, f][:, None], np.r_[np.ones_like(y), np.zeros_like(y)], sample_weight=np.r_[t, 1 - t])
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def test_the_targets_are_platts_smoothed_ones_by_hand() -> None:
    """Two distinct scores have a fit through their targets: t+ = (N+ + 1) / (N+ + 2), t- = 1 / (N- + 2).
    The old fit (C = 1e4 logistic regression on 0/1 labels) gave a slope of 7 and probabilities 4e-4, 1."""
    l3 = np.log(3.0)  # logit(0.75) = -logit(0.25)
    a, b = M.fit_platt([0.25, 0.75], [0, 1])  # N+ = N- = 1: targets 1/3 and 2/3
    assert (a, b) == pytest.approx((np.log(2) / l3, 0.0), abs=1e-6)
    assert M.apply_platt([0.25, 0.75], (a, b)) == pytest.approx([1 / 3, 2 / 3], abs=1e-6)
    a, b = M.fit_platt([0.25, 0.75, 0.75], [0, 1, 1])  # N+ = 2: targets 1/3 and 3/4
    # a * l3 + b = logit(3/4) = l3, -a * l3 + b = logit(1/3) = -log 2
    assert (a, b) == pytest.approx(((l3 + np.log(2)) / (2 * l3), (l3 - np.log(2)) / 2), abs=1e-6)
    # one score for all: the smoothed base rate (3 * 4/5 + 2 * 1/4) / 5, not the raw 3/5
    ab = M.fit_platt(np.full(5, 0.3), [0, 1, 0, 1, 1])
    assert M.apply_platt([0.3], ab) == pytest.approx([0.58], abs=1e-6)


def test_separable_validation_data_gives_a_finite_slope_and_probabilities_inside_0_1() -> None:
    """The old fit's slope ran to 53 here: 29 of the 60 probabilities were exactly 1.0 and 29 below 1e-6."""
    s, y = _separable()
    a, b = M.fit_platt(s, y)
    assert 0.0 < a < 5.0 and np.isfinite(b)
    p = M.apply_platt(s, (a, b))
    assert ((p > 0.0) & (p < 1.0)).all() and p.min() > 1e-6 and p.max() < 1 - 1e-6
    assert (a, b) == pytest.approx(_sklearn_on_soft_targets(s, y), abs=1e-5)
    # a detector that saturates (every score 1e-9 or 1 - 1e-9): the fit lands on the targets themselves
    raw = np.r_[np.full(20, 1e-9), np.full(10, 1 - 1e-9)]
    ab = M.fit_platt(raw, np.r_[np.zeros(20), np.ones(10)])
    assert M.apply_platt([1e-9, 1 - 1e-9], ab) == pytest.approx([1 / 22, 11 / 12], abs=1e-6)
    with pytest.raises(ValueError, match="NaN"):  # as scikit-learn's fit did: no silent constant map
        M.fit_platt([0.2, np.nan, 0.9], [0, 1, 1])


def test_a_large_well_specified_sample_recovers_the_true_map_as_sklearn_does() -> None:
    """20000 labels drawn from sigmoid(1.7 * logit(score) - 0.6): the targets are nearly 0/1, so the fit
    agrees with an unpenalised logistic regression of the 0/1 labels and is near the true map."""
    rng = np.random.default_rng(7)
    f = rng.normal(0.0, 2.0, 20_000)
    y = (rng.random(len(f)) < _sig(1.7 * f - 0.6)).astype(int)
    a, b = M.fit_platt(_sig(f), y)
    lr = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(f[:, None], y)
    assert (a, b) == pytest.approx((lr.coef_[0, 0], lr.intercept_[0]), abs=2e-3)
    assert (a, b) == pytest.approx((1.7, -0.6), abs=0.06)
    assert (a, b) == pytest.approx(_sklearn_on_soft_targets(_sig(f), y), abs=1e-5)
