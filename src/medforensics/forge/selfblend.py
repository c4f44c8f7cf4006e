"""Self-blended edits: generic local re-synthesis of a scan's own lung, a training augmentation.

A detector trained only on the attacks it is shown learns their particular traces (a model trained on
biharmonic in-painting misses CT-GAN removals: leave-one-attack-out AUC 0.27-0.31). Self-blended images
(Shiohara & Yamasaki, CVPR 2022) teach the general trace instead: a region of a real scan is blended with a
re-synthesised version of itself, so the only evidence is the inconsistency between the region and the rest
of the same scan. Here the re-synthesis is what every in-painting tool does in some way: smooth the region
(structure and noise go), pull it towards the surrounding lung level, then add noise again, with a random
noise level, in-plane grain and inter-slice correlation. Nothing else (no GAN, no other patient) is used.

:func:`self_blend` samples the parameters (returned, as the ground truth) and :func:`apply_blend` applies
them deterministically, as the attacks in :mod:`medforensics.forge.base` do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics.forge import cubes as C

#: Aerated lung (HU) where a blend may be centred when no site is given.
LUNG_HU = (-950.0, -500.0)
#: How the re-synthesised region is re-noised. ``mixed``: 0.3-1.2 x the missing noise level, half the time
#: correlated between slices (most such regions end up *more* correlated along z than the scan's own
#: noise). ``fresh``: 0.8-1.2 x, i.i.d. between slices (less correlated, as in-painting leaves it): session
#: 22 measured both, ``benchmarks/leaderboard/README.md``.
NOISE_KINDS = ("mixed", "fresh")


def _lung_site(array: NDArray[Any], rng: np.random.Generator) -> tuple[int, int, int]:
    """A random voxel of aerated lung (strided search; the volume's centre when there is none)."""
    step = (1, 4, 4)
    sub = np.asarray(array[:, :: step[1], :: step[2]], np.float32)
    cand = np.argwhere((sub > LUNG_HU[0]) & (sub < LUNG_HU[1]))
    if not len(cand):
        return tuple(int(n // 2) for n in array.shape)  # type: ignore[return-value]
    c = cand[int(rng.integers(len(cand)))] * np.asarray(step)
    return (int(c[0]), int(c[1]), int(c[2]))


def self_blend(
    array: NDArray[Any],
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    centre: tuple[int, int, int] | None = None,
    noise: str = "mixed",
) -> tuple[NDArray[np.float32], NDArray[np.bool_], dict[str, Any]]:
    """A copy of ``array`` (HU) with one self-blended region at ``centre`` (default: random aerated lung),
    the mask of the region (blend weight >= 0.5) and the sampled parameters; ``noise``: one of
    :data:`NOISE_KINDS`."""
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
    fresh = noise == "fresh"
    params = {
        "centre": centre or _lung_site(array, rng),
        "radius_mm": [float(rng.uniform(5.0, 14.0)) for _ in range(3)],
        "edge": float(rng.uniform(0.2, 0.6)),
        "smooth_mm": float(rng.uniform(1.0, 4.0)),
        "flatten": float(rng.uniform(0.0, 1.0)) if rng.random() < 0.5 else 0.0,
        "noise_scale": float(rng.uniform(0.8, 1.2) if fresh else rng.uniform(0.3, 1.2)),
        "grain": float(rng.uniform(0.0, 1.5)),
        "z_corr": 0.0 if fresh else (float(rng.uniform(0.5, 1.5)) if rng.random() < 0.5 else 0.0),
        "seed": int(rng.integers(2**31)),
    }
    out, mask = apply_blend(array, spacing, params)
    return out, mask, params


def apply_blend(
    array: NDArray[Any], spacing: tuple[float, float, float], params: dict[str, Any]
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Apply the blend ``params`` (from :func:`self_blend`) to a copy of ``array``."""
    a = np.asarray(array, np.float32)
    sp = np.asarray(spacing, np.float64)
    radius = np.asarray(params["radius_mm"], np.float64)
    reach = np.ceil(radius * 1.2 / sp).astype(int) + 1
    c = np.asarray(params["centre"], int)
    lo = np.maximum(c - reach, 0)
    hi = np.minimum(c + reach + 1, a.shape)
    box = tuple(slice(int(x), int(y)) for x, y in zip(lo, hi, strict=True))
    sub = a[box]
    grids = np.ogrid[tuple(slice(int(x), int(y)) for x, y in zip(lo, hi, strict=True))]
    d = np.sqrt(sum((((g - ci) * s) / r) ** 2 for g, ci, s, r in zip(grids, c, sp, radius, strict=True)))
    w = np.clip((1.0 - d) / params["edge"], 0.0, 1.0).astype(np.float32)
    ring = (d > 1.0) & (d <= 1.2)
    ring = ring & (sub > -1100.0) & (sub < -300.0)
    sigma = [params["smooth_mm"] / s for s in sp]
    new = ndimage.gaussian_filter(sub, sigma, mode="nearest")
    if params["flatten"] > 0:
        level = float(np.median(sub[ring])) if ring.sum() >= 32 else float(np.median(sub))
        new = new + params["flatten"] * (level - new)
    rng = np.random.default_rng(params["seed"])
    noise = C.top_up_noise(sub, new, ring, w > 0.5, rng, params["noise_scale"], params["grain"])
    if params["z_corr"] > 0 and noise.std() > 0:
        sd = float(noise.std())
        noise = ndimage.gaussian_filter1d(noise, params["z_corr"], axis=0, mode="wrap")
        noise *= sd / max(float(noise.std()), 1e-6)
    out = a.copy()
    out[box] = sub + w * (new + noise - sub)
    mask = np.zeros(a.shape, bool)
    mask[box] = w >= 0.5
    return out, mask


def blended_copies(
    array: NDArray[Any],
    spacing: Any,
    key: str,
    n: int,
    seed: int = 0,
    site: Any = None,
    noise: str = "mixed",
) -> Iterator[tuple[NDArray[np.float32], NDArray[np.bool_]]]:
    """``n`` self-blended copies of an authentic scan (:func:`self_blend`, re-noised as ``noise`` says)
    with their regions, each from a generator of the scan's own (seed, ``key``, copy); every other copy is
    centred on ``site`` (a real nodule) when given, else on random aerated lung."""
    from medforensics.forge.augment import scan_rng

    for k in range(n):
        rng = scan_rng(seed, key, k, 1)
        centre = site if site is not None and k % 2 == 0 else None
        out, mask, _ = self_blend(array, spacing, rng, centre, noise)
        yield out, mask


def mask_centre(mask: NDArray[Any] | None) -> tuple[int, int, int] | bool:
    """The centre of an annotated nodule's mask (full resolution), ``False`` without one."""
    if mask is None or not mask.any():
        return False
    c = np.argwhere(mask > 0).mean(axis=0)
    return (round(float(c[0])), round(float(c[1])), round(float(c[2])))
