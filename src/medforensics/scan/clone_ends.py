"""Two ends of a duplicated-region candidate compared voxel for voxel (:mod:`medforensics.scan.clones`):
the in-plane turn or flip and shift that maps one onto the other, the area where their noise residuals agree,
and the HU of each end's edge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

#: The residual is the image less its Gaussian low-pass of this sigma (pixels).
RESIDUAL_SIGMA = 1.0

#: Local residual correlation at which two mapped voxels count as the same region.
AGREE_CORRELATION = 0.9


def residual(img: NDArray[np.float32], truncate: float = 4.0) -> NDArray[np.float32]:
    """The slice less its Gaussian low-pass (:data:`RESIDUAL_SIGMA`; kernel cut at ``truncate`` sigma)."""
    return img - ndimage.gaussian_filter(img, RESIDUAL_SIGMA, mode="nearest", truncate=truncate)


def _residual_box(img: NDArray[np.float32], ys: tuple[int, int], xs: tuple[int, int]) -> NDArray[np.float32]:
    """:func:`residual` of ``img`` over rows ``ys`` and columns ``xs`` (end exclusive), the same values as the
    whole slice's there: made over the box plus the kernel's reach (or the slice's edge)."""
    reach = int(np.ceil(4.0 * RESIDUAL_SIGMA)) + 1
    y0, x0 = max(0, ys[0] - reach), max(0, xs[0] - reach)
    y1, x1 = min(img.shape[0], ys[1] + reach), min(img.shape[1], xs[1] + reach)
    r = residual(np.ascontiguousarray(img[y0:y1, x0:x1]))
    return r[ys[0] - y0 : ys[1] - y0, xs[0] - x0 : xs[1] - x0]


#: The eight in-plane turns and flips as integer matrices acting on (y, x).
_D4 = [
    np.array(m, np.int64)
    for m in (
        [[1, 0], [0, 1]],
        [[0, -1], [1, 0]],
        [[-1, 0], [0, -1]],
        [[0, 1], [-1, 0]],
        [[1, 0], [0, -1]],
        [[-1, 0], [0, 1]],
        [[0, 1], [1, 0]],
        [[0, -1], [-1, 0]],
    )
]


def _fit_transform(
    a: NDArray[np.float64], b: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The in-plane turn/flip ``m`` and integer shift ``t`` (z, y, x) with ``b ~ (a_z, m a_yx) + t``."""
    best = None
    for m in _D4:
        ma = a[:, 1:] @ m.T
        t = np.round(np.median(b[:, 1:] - ma, axis=0))
        err = float(np.sum((b[:, 1:] - ma - t) ** 2))
        if best is None or err < best[0]:
            best = (err, m, t)
    assert best is not None
    tz = np.round(np.median(b[:, 0] - a[:, 0]))
    return best[1], np.r_[tz, best[2]].astype(np.int64)


@dataclass(frozen=True)
class Agreement:
    """How two ends of a match group compare voxel for voxel once one is mapped onto the other."""

    copy_edge_hu: float  #: median HU of end ``b`` where the two only partly agree (see :func:`compare_ends`)
    source_edge_hu: float  #: the same for end ``a`` mapped onto ``b``
    agreeing: int  #: voxels whose residuals agree (local correlation at least :data:`AGREE_CORRELATION`)
    #: mean squared band-pass (Gaussian 1 less Gaussian 3 pixels) of end ``b`` where the two only partly
    #: agree, and of end ``a`` mapped there: a pasted copy's edge cuts the anatomy around it (a seam), the
    #: source's edge continues into its own
    copy_edge_seam: float = 0.0
    source_edge_seam: float = 0.0


def compare_ends(
    get_slice: Callable[[int], NDArray[np.floating]],
    shape: tuple[int, ...],
    a: NDArray[np.float64],
    b: NDArray[np.float64],
) -> Agreement:
    """Map end ``a`` of a match group onto end ``b`` voxel for voxel and compare their residuals' local
    correlation: where it is high the two are one region (a copy: hundreds of voxels; anatomy that merely
    looks alike: a few around each keypoint); where it is partial (0.3-0.85) is the edge of a pasted copy,
    blended into what it covers. A copy hides a nodule and is levelled to the lung around it, which is
    denser there than the source's, so the copy's edge reads higher."""
    m, t = _fit_transform(a, b)
    pad = 12
    lo = np.maximum(b.min(0).astype(int) - np.array([0, pad, pad]), 0)
    hi = np.minimum(b.max(0).astype(int) + np.array([1, pad + 1, pad + 1]), shape)
    yy, xx = np.mgrid[lo[1] : hi[1], lo[2] : hi[2]]
    src = (np.stack([yy.ravel() - t[1], xx.ravel() - t[2]]).T @ m).astype(np.int64)  # m^-1 = m^T
    ok = (src[:, 0] >= 0) & (src[:, 0] < shape[1]) & (src[:, 1] >= 0) & (src[:, 1] < shape[2])
    # end a's pixels that map onto the box (its residual is made over them only, not the whole slice)
    a_lo = src[ok].min(0) if ok.any() else np.zeros(2, np.int64)
    a_hi = src[ok].max(0) + 1 if ok.any() else np.ones(2, np.int64)
    hb, ha, agreeing = [], [], 0
    eb, ea = [], []
    for z in range(int(lo[0]), int(hi[0])):
        za = z - int(t[0])
        if not 0 <= za < shape[0]:
            continue
        img_b = np.asarray(get_slice(z), np.float32)
        img_a = np.asarray(get_slice(za), np.float32)
        rb = _residual_box(img_b, (lo[1], hi[1]), (lo[2], hi[2]))
        ra_box = _residual_box(img_a, (a_lo[0], a_hi[0]), (a_lo[1], a_hi[1]))
        ra_flat = np.zeros(rb.size, np.float32)
        ra_flat[ok] = ra_box[src[ok, 0] - a_lo[0], src[ok, 1] - a_lo[1]]
        ra = ra_flat.reshape(rb.shape)
        ia = np.zeros(rb.size, np.float32)
        ia[ok] = img_a[src[ok, 0], src[ok, 1]]
        sab = ndimage.gaussian_filter(ra * rb, 1.5)
        saa, sbb = ndimage.gaussian_filter(ra * ra, 1.5), ndimage.gaussian_filter(rb * rb, 1.5)
        c = sab / np.sqrt(np.maximum(saa * sbb, 1e-6))
        inside = ok.reshape(rb.shape)
        agreeing += int(((c >= AGREE_CORRELATION) & inside).sum())
        zone = (c > 0.3) & (c < 0.85) & inside
        crop_b, crop_a = img_b[lo[1] : hi[1], lo[2] : hi[2]], ia.reshape(rb.shape)
        hb.append(crop_b[zone])
        ha.append(crop_a[zone])
        bb = ndimage.gaussian_filter(crop_b, 1.0) - ndimage.gaussian_filter(crop_b, 3.0)
        ba = ndimage.gaussian_filter(crop_a, 1.0) - ndimage.gaussian_filter(crop_a, 3.0)
        eb.append(np.square(bb[zone]))
        ea.append(np.square(ba[zone]))
    if not hb or sum(len(v) for v in hb) < 32:
        return Agreement(0.0, 0.0, agreeing)
    return Agreement(
        float(np.median(np.concatenate(hb))),
        float(np.median(np.concatenate(ha))),
        agreeing,
        float(np.mean(np.concatenate(eb))),
        float(np.mean(np.concatenate(ea))),
    )
