"""Noise-residual features: SRM-style high-pass filters and the statistics of their residuals.

In-painted or pasted regions carry noise unlike the scanner's: the residual's energy, tails and
spatial (in)consistency across a grid of cells separate them from authentic texture.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

#: High-pass kernels (Fridrich & Kodovsky's SRM family): 2nd order horizontal/vertical, 3x3 KV, 5x5 KV.
SRM_KERNELS: dict[str, NDArray[np.float64]] = {
    "h2": np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    / 2,
    "v2": np.array([[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, -2, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    / 2,
    "kv3": np.array(
        [[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]]
    )
    / 4,
    "kv5": np.array(
        [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]]
    )
    / 12,
}
STAT_NAMES = ("std", "mean_abs", "kurtosis", "cell_cv", "cell_max_ratio", "centre_ratio")
GRID = 4


def residual_maps(
    images: NDArray[np.floating], kernels: NDArray[np.floating] | None = None
) -> NDArray[np.float32]:
    """``(N, K, H-k+1, W-k+1)`` residuals of ``(N, H, W)`` images under ``K`` square ``k x k`` ``kernels``
    (default the :data:`SRM_KERNELS`, k = 5; valid cross-correlation)."""
    ks = np.stack(list(SRM_KERNELS.values())) if kernels is None else np.asarray(kernels)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    w = torch.from_numpy(ks.astype(np.float32))[:, None]
    with torch.no_grad():
        return F.conv2d(x, w).numpy()


def residual_features(images: NDArray[np.floating]) -> NDArray[np.float32]:
    """``(N, len(SRM_KERNELS) * len(STAT_NAMES))`` residual stats of ``(N, H, W)`` images."""
    r = residual_maps(images).astype(np.float64)
    n, k, h, w = r.shape
    flat = r.reshape(n, k, -1)
    std = flat.std(axis=2)
    mean_abs = np.abs(flat).mean(axis=2)
    centred = flat - flat.mean(axis=2, keepdims=True)
    var = (centred**2).mean(axis=2)
    kurt = (centred**4).mean(axis=2) / np.maximum(var**2, 1e-12) - 3.0
    # Cell-wise residual energy on a GRID x GRID partition: tampering makes it uneven.
    ch, cw = h // GRID, w // GRID
    cells = r[:, :, : ch * GRID, : cw * GRID].reshape(n, k, GRID, ch, GRID, cw)
    cell_std = cells.std(axis=(3, 5)).reshape(n, k, GRID * GRID) + 1e-8
    cell_mean = cell_std.mean(axis=2)
    cell_cv = cell_std.std(axis=2) / cell_mean
    cell_max_ratio = cell_std.max(axis=2) / np.median(cell_std, axis=2)
    inner = cell_std.reshape(n, k, GRID, GRID)[:, :, 1:-1, 1:-1].reshape(n, k, -1).mean(axis=2)
    centre_ratio = np.log(inner / cell_mean)
    stats = np.stack(
        [np.log(std + 1e-8), np.log(mean_abs + 1e-8), kurt, cell_cv, cell_max_ratio, centre_ratio], 2
    )
    return stats.reshape(n, -1).astype(np.float32)


def residual_feature_names() -> list[str]:
    """Names matching the columns of :func:`residual_features`."""
    return [f"residual_{k}_{s}" for k in SRM_KERNELS for s in STAT_NAMES]
