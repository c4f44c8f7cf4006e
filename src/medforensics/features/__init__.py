"""Hand-crafted forensic features: noise residuals, GLCM, LBP and local intensity statistics.

Inputs are images scaled to [0, 1] (CT: the data pipeline's HU window). :func:`extract_features` takes a
batch in any of the sample layouts: ``(N, H, W)``; ``(N, C, H, W)`` (2D / 2.5D: the centre channel is
used); ``(N, C, D, H, W)`` (3D cubes: the three orthogonal central planes, features concatenated).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medforensics.errors import InputError
from medforensics.features.intensity import INTENSITY_NAMES, intensity_features
from medforensics.features.residual import residual_feature_names, residual_features
from medforensics.features.texture import glcm_features, lbp_features, texture_feature_names

__all__ = ["extract_features", "feature_names", "planes", "sized_planes"]

MIN_SIZE = 16


def _features_2d(images: NDArray[np.floating]) -> NDArray[np.float32]:
    return np.concatenate(
        [residual_features(images), glcm_features(images), lbp_features(images), intensity_features(images)],
        1,
    )


def planes(batch: NDArray[np.floating]) -> list[NDArray[np.floating]]:
    """The 2D image stacks features are computed on (one stack per plane), each ``(N, H, W)``."""
    x = np.asarray(batch)
    if x.ndim == 3:
        return [x]
    if x.ndim == 4:
        return [x[:, x.shape[1] // 2]]
    if x.ndim == 5:
        v = x[:, x.shape[1] // 2]
        d, h, w = v.shape[1:]
        return [v[:, d // 2], v[:, :, h // 2], v[:, :, :, w // 2]]
    raise InputError(f"features need (N,H,W), (N,C,H,W) or (N,C,D,H,W) arrays, got shape {x.shape}")


def sized_planes(batch: NDArray[np.floating]) -> list[NDArray[np.floating]]:
    """:func:`planes`, InputError when they are under :data:`MIN_SIZE` px."""
    stacks = planes(batch)
    if min(min(s.shape[1:]) for s in stacks) < MIN_SIZE:
        raise InputError(f"features need images of at least {MIN_SIZE} px, got shape {np.shape(batch)}")
    return stacks


def extract_features(batch: NDArray[np.floating]) -> NDArray[np.float32]:
    """``(N, F)`` float32 feature matrix; deterministic; F depends only on the layout (2D or 3D)."""
    stacks = sized_planes(batch)
    if len(stacks[0]) == 0:
        return np.zeros((0, len(feature_names(len(stacks)))), dtype=np.float32)
    return np.concatenate([_features_2d(np.asarray(s, dtype=np.float32)) for s in stacks], 1)


def feature_names(n_planes: int = 1) -> list[str]:
    """Column names of :func:`extract_features` for 1 (2D) or 3 (3D) planes."""
    base = residual_feature_names() + texture_feature_names() + [f"intensity_{n}" for n in INTENSITY_NAMES]
    if n_planes == 1:
        return base
    return [f"{p}_{n}" for p in ("axial", "coronal", "sagittal")[:n_planes] for n in base]
