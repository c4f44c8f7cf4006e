"""Texture features: grey-level co-occurrence (GLCM) properties and local binary pattern histograms."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

GLCM_LEVELS = 32
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation")
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
LBP_POINTS = 8
LBP_BINS = LBP_POINTS + 2  # "uniform" patterns + one bin for the rest


def quantise(images: NDArray[np.floating], levels: int = GLCM_LEVELS) -> NDArray[np.uint8]:
    """Images in [0, 1] (clipped) to integer grey levels ``0..levels-1``."""
    return np.clip(np.asarray(images) * levels, 0, levels - 1).astype(np.uint8)


def _centre(img: NDArray[np.generic]) -> NDArray[np.generic]:
    h, w = img.shape
    return img[h // 4 : h - h // 4, w // 4 : w - w // 4]


def glcm_features(images: NDArray[np.floating]) -> NDArray[np.float32]:
    """GLCM properties (distance 1, averaged over 4 angles) of the whole image and of its centre half."""
    q = quantise(images)
    out = np.empty((len(q), 2 * len(GLCM_PROPS)), dtype=np.float32)
    for i, img in enumerate(q):
        for j, part in enumerate((img, _centre(img))):
            m = graycomatrix(part, [1], GLCM_ANGLES, levels=GLCM_LEVELS, symmetric=True, normed=True)
            for p, prop in enumerate(GLCM_PROPS):
                # correlation is NaN on a flat region: treat as 1 (perfectly correlated)
                out[i, j * len(GLCM_PROPS) + p] = np.nan_to_num(graycoprops(m, prop).mean(), nan=1.0)
    return out


def lbp_features(images: NDArray[np.floating]) -> NDArray[np.float32]:
    """Normalised uniform-LBP histograms (P=8, R=1) of the whole image and of its centre half."""
    q = quantise(images, 256)
    out = np.empty((len(q), 2 * LBP_BINS), dtype=np.float32)
    for i, img in enumerate(q):
        codes = local_binary_pattern(img, LBP_POINTS, 1, method="uniform").astype(np.int64)
        for j, part in enumerate((codes, _centre(codes))):
            hist = np.bincount(part.ravel(), minlength=LBP_BINS)[:LBP_BINS]
            out[i, j * LBP_BINS : (j + 1) * LBP_BINS] = hist / max(1, part.size)
    return out


def texture_feature_names() -> list[str]:
    """Names matching ``glcm_features`` then ``lbp_features`` columns."""
    glcm = [f"glcm_{part}_{p}" for part in ("all", "centre") for p in GLCM_PROPS]
    lbp = [f"lbp_{part}_{b}" for part in ("all", "centre") for b in range(LBP_BINS)]
    return glcm + lbp
