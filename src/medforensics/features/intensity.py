"""Local intensity statistics: moments, percentiles, centre-versus-ring contrast, gradient energy."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

INTENSITY_NAMES = (
    "mean", "std", "skew", "kurtosis", "p05", "p50", "p95",
    "centre_minus_ring_mean", "centre_ring_log_std_ratio", "grad_mean", "centre_ring_log_grad_ratio",
)  # fmt: skip


def _centre_mask(h: int, w: int) -> NDArray[np.bool_]:
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot((yy - (h - 1) / 2) / h, (xx - (w - 1) / 2) / w)
    return np.asarray(r < 0.25)


def intensity_features(images: NDArray[np.floating]) -> NDArray[np.float32]:
    """``(N, len(INTENSITY_NAMES))`` statistics of ``(N, H, W)`` images."""
    x = np.asarray(images, dtype=np.float64)
    n, h, w = x.shape
    flat = x.reshape(n, -1)
    mean = flat.mean(1)
    c = flat - mean[:, None]
    var = (c**2).mean(1)
    std = np.sqrt(var)
    skew = (c**3).mean(1) / np.maximum(std**3, 1e-12)
    kurt = (c**4).mean(1) / np.maximum(var**2, 1e-12) - 3.0
    p05, p50, p95 = np.percentile(flat, [5, 50, 95], axis=1)
    mask = _centre_mask(h, w).ravel()
    inner, ring = flat[:, mask], flat[:, ~mask]
    gy, gx = np.gradient(x, axis=(1, 2))
    grad = np.hypot(gy, gx).reshape(n, -1)
    eps = 1e-6
    feats = [
        mean, std, skew, kurt, p05, p50, p95,
        inner.mean(1) - ring.mean(1),
        np.log((inner.std(1) + eps) / (ring.std(1) + eps)),
        grad.mean(1),
        np.log((grad[:, mask].mean(1) + eps) / (grad[:, ~mask].mean(1) + eps)),
    ]  # fmt: skip
    return np.stack(feats, 1).astype(np.float32)
