"""Denoising residual of a linear pixel predictor learned on authentic images, and its noise-deficit stats.

Each pixel is predicted from its ``(2r+1)^2 - 1`` in-plane neighbours by least squares fitted on authentic
images only; what the prediction misses is mostly the scanner's noise. In-painted, synthesised or
smoothed regions carry less of it than the same scanner's tissue around them: the residual's local
energy (median absolute value and standard deviation per block) drops in the centre of a crop centred on
a candidate, or everywhere in a fully synthetic image. :func:`deficit_features` reports those energies
relative to the crop's own surround (centre versus ring, the centre's quietest and strongest blocks) and
in absolute terms (the crop's median block), log scale.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from medforensics.errors import InputError
from medforensics.features.residual import residual_maps

#: Names of the columns of :func:`deficit_features` (one set per plane).
DEFICIT_NAMES = (
    "mad_centre_vs_ring", "mad_centre_min", "mad_centre_max", "mad_median",
    "std_centre_vs_ring", "std_centre_max", "std_median",
)  # fmt: skip
BLOCK = 6
MAX_FIT_PIXELS = 400_000


def _images(images: NDArray[np.floating], radius: int) -> NDArray[np.float32]:
    """``images`` as float32; InputError unless ``(N, H, W)`` with room for a ``2r+1`` window."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 3 or min(x.shape[1:]) < 2 * radius + 2:
        size = 2 * radius + 1
        raise InputError(f"the pixel predictor needs (N, H, W) images over {size} px, got {x.shape}")
    return x


def _neighbourhoods(
    images: NDArray[np.floating], radius: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``(N, H-2r, W-2r, K)`` neighbours (centre left out) and ``(N, H-2r, W-2r)`` centre pixels."""
    win = sliding_window_view(_images(images, radius), (2 * radius + 1, 2 * radius + 1), axis=(1, 2))
    flat = win.reshape(*win.shape[:3], -1)
    mid = flat.shape[-1] // 2
    return np.delete(flat, mid, axis=-1), flat[..., mid]


def fit_predictor(
    images: NDArray[np.floating], radius: int = 2, seed: int = 0, ridge: float = 1e-6
) -> NDArray[np.float64]:
    """Least-squares weights (neighbours, then bias) predicting a pixel of ``images`` from its neighbours.

    At most :data:`MAX_FIT_PIXELS` pixels, drawn with ``seed``, enter the fit; ``ridge`` keeps it defined
    on flat images.
    """
    nb, centre = _neighbourhoods(images, radius)
    a = nb.reshape(-1, nb.shape[-1]).astype(np.float64)
    b = centre.reshape(-1).astype(np.float64)
    if len(b) > MAX_FIT_PIXELS:
        keep = np.random.default_rng(seed).choice(len(b), MAX_FIT_PIXELS, replace=False)
        a, b = a[keep], b[keep]
    a = np.c_[a, np.ones(len(a))]
    return np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ b)


def prediction_residual(images: NDArray[np.floating], weights: NDArray[np.floating]) -> NDArray[np.float32]:
    """``(N, H-2r, W-2r)`` pixel minus its prediction by ``weights`` (from :func:`fit_predictor`)."""
    k = len(weights) - 1
    radius = round((float(np.sqrt(k + 1)) - 1) / 2)
    if (2 * radius + 1) ** 2 - 1 != k:
        raise InputError(f"predictor weights must be (2r+1)^2 neighbours and a bias, got {len(weights)}")
    # one convolution, no copy of every neighbourhood: the pixel (weight 1) minus its neighbours' weighted sum
    side = 2 * radius + 1
    kernel = np.insert(-np.asarray(weights[:-1], dtype=np.float64), side * side // 2, 1.0)
    maps = residual_maps(_images(images, radius), kernel.reshape(1, side, side))
    return maps[:, 0] - np.float32(weights[-1])


def deficit_features(residual: NDArray[np.floating], block: int = BLOCK) -> NDArray[np.float32]:
    """``(N, len(DEFICIT_NAMES))`` log block energies of ``(N, H, W)`` residuals (see module doc)."""
    r = np.asarray(residual, dtype=np.float64)
    n, h, w = r.shape
    gy, gx = h // block, w // block
    if min(gy, gx) < 3:
        raise InputError(f"noise-deficit features need residuals of >= {3 * block} px, got {r.shape}")
    cells = r[:, : gy * block, : gx * block].reshape(n, gy, block, gx, block).transpose(0, 1, 3, 2, 4)
    cells = cells.reshape(n, gy, gx, block * block)
    yy, xx = np.mgrid[:gy, :gx]
    rad = np.hypot((yy - (gy - 1) / 2) / gy, (xx - (gx - 1) / 2) / gx)
    centre, ring = rad <= 0.22, rad > 0.35
    out = []
    for name, energy in (("mad", np.median(np.abs(cells), -1)), ("std", cells.std(-1))):
        e = np.log(energy + 1e-5)
        median = np.median(e.reshape(n, -1), 1)
        out += [e[:, centre].mean(1) - np.median(e[:, ring], 1)]
        if name == "mad":  # the quietest centre block: a flat paste's inside, whatever its edges
            out += [e[:, centre].min(1) - median]
        out += [e[:, centre].max(1) - median, median]
    return np.stack(out, 1).astype(np.float32)
