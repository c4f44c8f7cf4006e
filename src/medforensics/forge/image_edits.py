"""Classical edits of 2-D images (radiographs, MR and CT slices), as a photo editor's clone stamp makes them.

``image-clone``: a disc of the image is copied pixel for pixel (turned by quarter turns or flipped, never
resampled, so its noise moves with it) over another place of the same image, levelled to it (its rim's
median moved to the target rim's) and blended over a thin edge. The donor is the most alike of 32 random
sites (mean and spread), as someone choosing tissue to paste over a lesion would. What was under it is hidden
(kind ``remove``, label FB). On a CT slice both discs lie within the patient's body. No bundled detector is
trained on it (``held_out``); the scan's duplicated-region check (:mod:`medforensics.scan.image_clones`) is
measured against it by ``benchmarks/image_clones.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medforensics.errors import ConfigError
from medforensics.forge.base import AttackRecord, check_modality, finish, pose_params, register_attack
from medforensics.forge.lung import body_mask
from medforensics.io.dicom_tags import PROJECTION_MODALITIES
from medforensics.io.volume import Volume

#: Disc radius: this range of fractions of the image's shorter side (its pixel size is often unknown or
#: nominal), and at least / at most these many pixels.
RADIUS_FRACTION, MIN_RADIUS_PX, MAX_RADIUS_PX = (1 / 80, 1 / 20), 12, 80
#: Width (pixels) of the blended edge.
EDGE_PX = 3.0
#: The two discs' centres lie at least this many radii apart.
MIN_SEPARATION = 2.5
#: Donor sites drawn; the one most like the target is copied (:func:`_donor`).
DONOR_CANDIDATES = 32


def _allowed(img: np.ndarray, modality: str | None) -> np.ndarray:
    """Where a disc may lie: pixels that are not clipped (the image's minimum or maximum), and on a CT slice
    within the patient's body (:func:`~medforensics.forge.lung.body_mask`)."""
    ok = (img > img.min()) & (img < img.max())
    return ok & body_mask(img) if modality == "CT" else ok


def _fits(ok: np.ndarray, y: int, x: int, r: int) -> bool:
    """Whether the disc box of radius ``r`` at (y, x) lies inside the image and on allowed pixels only
    (``ok``: :func:`_allowed`)."""
    if y - r < 0 or x - r < 0 or y + r > ok.shape[0] or x + r > ok.shape[1]:
        return False
    return bool(ok[y - r : y + r, x - r : x + r].all())


def _sites(
    ok: np.ndarray, rng: np.random.Generator, r: int, away: tuple[int, int] | None, n: int = 1
) -> list[tuple[int, int]]:
    """Up to ``n`` random disc centres that fit (:func:`_fits`), at least :data:`MIN_SEPARATION` radii from
    ``away``; :class:`ConfigError` when none does."""
    ny, nx = ok.shape
    out: list[tuple[int, int]] = []
    for _ in range(2000):
        y, x = int(rng.integers(r, ny - r + 1)), int(rng.integers(r, nx - r + 1))
        if away is not None and np.hypot(y - away[0], x - away[1]) < MIN_SEPARATION * r:
            continue
        if _fits(ok, y, x, r):
            out.append((y, x))
            if len(out) == n:
                break
    if not out:
        raise ConfigError("image-clone: no place for the disc in this image (unclipped; CT: in the body)")
    return out


def _stats(img: np.ndarray, y: int, x: int, r: int) -> tuple[float, float]:
    """Mean and standard deviation of the disc box at (y, x)."""
    box = img[y - r : y + r, x - r : x + r]
    return float(box.mean()), float(box.std())


def _donor(
    img: np.ndarray, ok: np.ndarray, rng: np.random.Generator, r: int, target: tuple[int, int]
) -> tuple[int, int]:
    """Of :data:`DONOR_CANDIDATES` random sites, the one whose disc box looks most like the target's (the
    least sum of the differences in mean and in standard deviation), as someone choosing tissue to paste
    over a lesion would."""
    mean, sd = _stats(img, *target, r)

    def unlike(site: tuple[int, int]) -> float:
        m, s = _stats(img, *site, r)
        return abs(m - mean) + abs(s - sd)

    return min(_sites(ok, rng, r, target, DONOR_CANDIDATES), key=unlike)


@register_attack("image-clone")
class ImageClone:
    """Hide part of a radiograph, an MR or CT slice under a disc of the same image copied pixel for pixel."""

    kind = "remove"
    modalities: tuple[str, ...] = (*sorted(PROJECTION_MODALITIES), "MR", "CT")
    held_out = True
    #: An edit of one image as it is: ``forge remove`` applies it to any of these inputs, a CT volume's
    #: slice included, with no axial view and no nodule placement.
    planar = True

    def sample_params(
        self, volume: Volume, rng: np.random.Generator, center: tuple[int, int, int] | None = None
    ) -> dict[str, Any]:
        check_modality(self, volume)  # type: ignore[arg-type]
        z = int(center[0]) if center is not None else int(rng.integers(volume.shape[0]))
        img = np.asarray(volume.array[z], np.float32)[
            : volume.image_shapes[z][0], : volume.image_shapes[z][1]
        ]
        lo, hi = (max(MIN_RADIUS_PX, round(f * min(img.shape))) for f in RADIUS_FRACTION)
        r = min(int(rng.integers(lo, hi + 1)), MAX_RADIUS_PX, min(img.shape) // 6)
        if r < MIN_RADIUS_PX:
            raise ConfigError(f"image-clone: image {img.shape[1]} x {img.shape[0]} is too small for a disc")
        ok = _allowed(img, volume.modality)
        target = (int(center[1]), int(center[2])) if center is not None else _sites(ok, rng, r, None)[0]
        if not _fits(ok, *target, r):
            where = "the body" if volume.modality == "CT" else "is clipped"
            raise ConfigError(f"image-clone: a disc of {r} pixels at {target} leaves the image or {where}")
        donor = _donor(img, ok, rng, r, target)
        pose = pose_params(rng)
        return {
            "center": [z, *target],
            "radius_px": r,
            "donor_center": [z, *donor],
            "rot90": pose["rot90"],
            "flip": pose["flip"],
        }

    def apply(
        self, volume: Volume, params: dict[str, Any], seed: int = 0
    ) -> tuple[Volume, np.ndarray, AttackRecord]:
        check_modality(self, volume)  # type: ignore[arg-type]
        z, ty, tx = (int(v) for v in params["center"])
        _, dy, dx = (int(v) for v in params["donor_center"])
        r = int(params["radius_px"])
        img = volume.array[z]
        for y, x in ((ty, tx), (dy, dx)):
            if y - r < 0 or x - r < 0 or y + r > img.shape[0] or x + r > img.shape[1]:
                raise ConfigError(f"image-clone: the disc at {(y, x)} leaves the image", path=volume.source)
        patch = np.rot90(
            np.asarray(img[dy - r : dy + r, dx - r : dx + r], np.float32), int(params["rot90"]) % 4
        )
        patch = patch[:, ::-1] if params.get("flip") else patch
        yy, xx = np.mgrid[-r:r, -r:r] + 0.5
        dist = np.hypot(yy, xx)
        w = np.clip((r - dist) / EDGE_PX, 0.0, 1.0).astype(np.float32)
        new = np.array(volume.array, np.float32)
        target = new[z, ty - r : ty + r, tx - r : tx + r]
        rim = (dist > r - EDGE_PX) & (dist <= r)  # levelled: the pasted rim meets the target's at one level
        patch = patch + float(np.median(target[rim]) - np.median(patch[rim]))
        new[z, ty - r : ty + r, tx - r : tx + r] = (1 - w) * target + w * patch
        return finish(self, volume, new, params, seed, (z, ty, tx))  # type: ignore[arg-type]
