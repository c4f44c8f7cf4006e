"""Calibration (numpy and SciPy only, so a scan applies it without importing scikit-learn): reliability,
temperature scaling of class logits, and Platt scaling of a binary score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

EPS = 1e-7


def flat(x: ArrayLike, dtype: Any = np.float64) -> NDArray[Any]:
    """``x`` as a 1-D array of ``dtype``."""
    return np.asarray(x, dtype=dtype).ravel()


def reliability(y: ArrayLike, prob: ArrayLike, n_bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error of positive-class probabilities and the reliability-diagram bins."""
    y, p = flat(y), np.clip(flat(prob), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        sel = idx == b
        if not sel.any():
            continue
        conf, freq = float(p[sel].mean()), float(y[sel].mean())
        ece += sel.mean() * abs(conf - freq)
        bins.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(sel.sum()),
                "confidence": conf,
                "frequency": freq,
            }
        )
    return float(ece), bins


def _log_softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def fit_temperature(logits: ArrayLike, y: ArrayLike) -> float:
    """Temperature ``T`` minimising the NLL of ``softmax(logits / T)`` (bounded to [0.05, 20])."""
    from scipy.optimize import minimize_scalar  # (on first use: 0.2 s of a scan's start)

    z, t = np.asarray(logits, np.float64), flat(y, np.int64)
    if len(t) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        return float(-_log_softmax(z / np.exp(log_t))[np.arange(len(t)), t].mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def apply_temperature(logits: ArrayLike, temperature: float) -> NDArray[np.float64]:
    """Class probabilities ``softmax(logits / T)``."""
    return np.exp(_log_softmax(np.asarray(logits, np.float64) / temperature))


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _platt_loss(f: NDArray[np.float64], target: NDArray[np.float64], ab: NDArray[np.float64]) -> float:
    """Cross-entropy of ``sigmoid(a * f + b)`` against the soft ``target``: sum of softplus(z) - t z."""
    z = ab[0] * f + ab[1]
    return float(np.sum(np.logaddexp(0.0, z) - target * z))


def fit_platt(score: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """Platt scaling ``sigmoid(a * logit(score) + b)`` fitted on (score, y); identity for one class.

    Platt's method as Lin, Lin & Weng (2007, "A note on Platt's probabilistic outputs") give it: the targets
    are smoothed to ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``, so a validation set the score separates
    still gives a finite slope (a nearly unregularised fit's slope runs away and every probability becomes
    0 or 1); Newton steps with a backtracking line search from ``a = 0``, ``b = log((N+ + 1) / (N- + 1))``.
    ValueError for a NaN score, as scikit-learn's fit gave before.
    """
    s, t = flat(score), flat(y, np.int64)
    if len(np.unique(t)) < 2:
        return 1.0, 0.0
    if np.isnan(s).any():
        raise ValueError("Platt scaling needs scores that are numbers (NaN given)")
    f = _logit(s)
    pos = t == t.max()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    target = np.where(pos, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    ab = np.array([0.0, np.log((n_pos + 1.0) / (n_neg + 1.0))])
    loss = _platt_loss(f, target, ab)
    for _ in range(100):
        z = ab[0] * f + ab[1]
        p = expit(z)
        w = p * expit(-z)
        grad = np.array([np.dot(f, p - target), np.sum(p - target)])
        if np.abs(grad).max() < 1e-5:
            break
        # the 1e-12 ridge keeps the Hessian invertible when every score is the same
        hess = np.array([[np.dot(f * f, w), np.dot(f, w)], [np.dot(f, w), np.sum(w)]]) + 1e-12 * np.eye(2)
        step_dir = -np.linalg.solve(hess, grad)
        slope, step = float(grad @ step_dir), 1.0
        while step >= 1e-10:  # backtracking (Armijo) line search
            new = ab + step * step_dir
            new_loss = _platt_loss(f, target, new)
            if new_loss < loss + 1e-4 * step * slope:
                ab, loss = new, new_loss
                break
            step /= 2
        else:  # no step lowers the loss: at the optimum within float precision
            break
    return float(ab[0]), float(ab[1])


def platt_logit(score: ArrayLike, ab: Sequence[float]) -> NDArray[np.float64]:
    """``a * logit(score) + b``: the Platt-calibrated score before its sigmoid, in the same order as
    :func:`apply_platt` but not saturated (a steep map, such as a stored one from the unsmoothed fit of
    earlier versions, sends many scores to exactly 1.0 in float64)."""
    return ab[0] * _logit(flat(score)) + ab[1]


def apply_platt(score: ArrayLike, ab: Sequence[float]) -> NDArray[np.float64]:
    """Calibrated probabilities from raw scores with Platt parameters ``(a, b)``."""
    return 1.0 / (1.0 + np.exp(-np.clip(platt_logit(score, ab), -50, 50)))


def invert_platt(calibrated: float, ab: Sequence[float]) -> float:
    """The raw score :func:`apply_platt` maps to ``calibrated`` (``a`` > 0; ends clipped as there)."""
    if ab[0] <= 0:
        raise ValueError(f"Platt slope must be positive to invert, not {ab[0]}")
    z = float(_logit(np.asarray([calibrated], np.float64))[0])
    return float(1.0 / (1.0 + np.exp(-(z - ab[1]) / ab[0])))
