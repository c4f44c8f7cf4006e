"""Augmentations of the seed study, TorchIO style: a random transform samples parameters, then calls a
deterministic transform that applies (and can replay) exactly those parameters.

Rotations of +-5 and +-10 degrees (in plane), brightness +-10 % and +-25 %, flips and Gaussian noise, on
2-D slices ``(H, W)`` and 3-D cubes ``(Z, Y, X)`` alike (the in-plane axes are always the last two).
Geometric transforms also move masks and points, so labels stay true after augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics.errors import ConfigError

#: The seed study's discrete choices.
ROTATIONS_DEG = (-10.0, -5.0, 5.0, 10.0)
BRIGHTNESS_FACTORS = (0.75, 0.9, 1.1, 1.25)
NOISE_STD = (0.01, 0.03)  # fraction of the intensity range (e.g. 14-42 HU over [-1000, 400])
KINDS = ("rotate", "brightness", "flip", "noise")
#: Air in HU: what CT brightness is scaled about.
CT_AIR_HU = -1000.0

Params = dict[str, Any]


def _check(image: NDArray[Any]) -> NDArray[np.float32]:
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim not in (2, 3):
        raise ConfigError(f"augmentations take 2-D or 3-D arrays, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------- deterministic transforms
def rotate(
    image: NDArray[Any], angle_deg: float, mask: NDArray[Any] | None = None
) -> tuple[NDArray[np.float32], NDArray[np.bool_] | None, Params]:
    """In-plane rotation about the array centre (linear for the image, nearest for the mask).

    The corners the rotation brings in from outside are filled by reflection: a constant or nearest-edge
    fill would be a noise-free region, exactly the trace an in-painting leaves, in an authentic sample.
    """
    arr = _check(image)
    axes = (arr.ndim - 1, arr.ndim - 2)
    out = ndimage.rotate(arr, angle_deg, axes=axes, reshape=False, order=1, mode="reflect")
    m = (
        None
        if mask is None
        else ndimage.rotate(
            np.asarray(mask).astype(np.uint8), angle_deg, axes=axes, reshape=False, order=0, mode="constant"
        ).astype(bool)
    )
    return out.astype(np.float32), m, {"kind": "rotate", "angle_deg": float(angle_deg)}


def scale_brightness(
    image: NDArray[Any], factor: float, reference: float = 0.0
) -> tuple[NDArray[np.float32], Params]:
    """``reference + factor * (image - reference)`` (for CT the reference is air, -1000 HU)."""
    arr = _check(image)
    out = reference + factor * (arr - reference)
    return out.astype(np.float32), {
        "kind": "brightness",
        "factor": float(factor),
        "reference": float(reference),
    }


def flip(
    image: NDArray[Any], axis: int, mask: NDArray[Any] | None = None
) -> tuple[NDArray[np.float32], NDArray[np.bool_] | None, Params]:
    """Flip along ``axis`` (-1: left-right, -2: up-down, -3: slice order for cubes)."""
    arr = _check(image)
    if not -arr.ndim <= axis < 0:
        raise ConfigError(f"flip axis {axis} invalid for a {arr.ndim}-D array (use -1, -2 or -3)")
    out = np.flip(arr, axis=axis).copy()
    m = None if mask is None else np.flip(np.asarray(mask), axis=axis).copy()
    return out, m, {"kind": "flip", "axis": int(axis)}


def add_noise(image: NDArray[Any], std: float, seed: int) -> tuple[NDArray[np.float32], Params]:
    """Add zero-mean Gaussian noise of ``std`` (image units) drawn from ``seed``."""
    arr = _check(image)
    noise = np.random.default_rng(seed).normal(0.0, std, size=arr.shape).astype(np.float32)
    return arr + noise, {"kind": "noise", "std": float(std), "seed": int(seed)}


def noise_copy(
    image: NDArray[Any], rng: np.random.Generator, intensity_range: float = 1400.0
) -> NDArray[np.float32]:
    """``image`` with the seed study's noise augmentation drawn from ``rng`` (:data:`NOISE_STD` of
    ``intensity_range``: 14-42 HU for CT's [-1000, 400] window)."""
    p = sample_params("noise", rng, ndim=image.ndim, intensity_range=intensity_range)
    return add_noise(image, p["std"], p["seed"])[0]


def thicken_slices(array: NDArray[Any], n: int) -> NDArray[np.float32]:
    """Every ``n`` consecutive slices (axis 0) of ``array`` averaged into one: a thicker reconstruction of
    the same scan, ``n`` x its slice spacing (a remainder of fewer than ``n`` slices is dropped; the first
    thick slice lies at the mean position of the ``n`` it averages)."""
    if n < 1 or array.shape[0] < n:
        raise ConfigError(f"cannot average {n} slices of a volume with {array.shape[0]}")
    k = array.shape[0] // n * n
    return np.asarray(array[:k], np.float32).reshape(k // n, n, *array.shape[1:]).mean(axis=1)


def thick_volume(volume: Any, n: int) -> Any:
    """A :class:`~medforensics.io.volume.Volume` as its thicker reconstruction (:func:`thicken_slices`):
    ``n`` x the slice spacing, the first slice at the mean position of the ``n`` it averages; the source
    DICOM datasets and instance UIDs are dropped (they describe other slices)."""
    origin = volume.index_to_patient(((n - 1) / 2.0, 0.0, 0.0))
    meta = {k: v for k, v in volume.metadata.items() if k != "sop_instance_uids"}
    sp = (volume.spacing[0] * n, volume.spacing[1], volume.spacing[2])
    arr = thicken_slices(volume.array, n)
    return volume.with_array(
        arr, spacing=sp, origin=tuple(float(v) for v in origin), datasets=[], metadata=meta
    )


def area_weights(n: int, factor: float) -> tuple[NDArray[np.float64], float]:
    """Area-averaging resampling of an axis of ``n`` pixels to pixels ``factor`` times larger: the weights
    ``(floor(n / factor), n)`` and the input index of output pixel 0's centre. Output pixel ``i`` covers input
    index interval ``[i f - 0.5, (i + 1) f - 0.5)`` (input pixel ``j``: ``[j - 0.5, j + 0.5)``) and is the
    overlap-weighted mean of the pixels it covers; a partial last one is dropped. Integer factors give block
    means."""
    if factor < 1.0 or n < factor:
        raise ConfigError(f"cannot average pixels by a factor of {factor} along an axis of {n}")
    m = int(np.floor(n / factor + 1e-9))
    lo = np.arange(m)[:, None] * factor - 0.5
    j = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(lo + factor, j + 0.5) - np.maximum(lo, j - 0.5), 0.0, None)
    return overlap / factor, (factor - 1) / 2.0


def sinc_weights(n: int, factor: float) -> tuple[NDArray[np.float64], float]:
    """Band-limited point sampling of an axis of ``n`` pixels every ``factor`` pixels: the weights ``(m, n)``
    of the periodic sinc (Dirichlet) interpolant at input positions ``t0 + i f`` (``m`` samples inside
    ``[0, n - 1]``, centred), and ``t0``. The samples of the continuous image the pixels stand for, as a
    reconstruction onto a coarser pixel grid with the same kernel takes them: the noise keeps its
    variance and stays stationary (area means lower it, and unevenly at fractional factors)."""
    if factor < 1.0 or n < factor:
        raise ConfigError(f"cannot sample pixels every {factor} along an axis of {n}")
    m = int(np.floor((n - 1) / factor + 1e-9)) + 1
    t = ((n - 1) - (m - 1) * factor) / 2.0 + np.arange(m) * factor
    k = np.fft.fftfreq(n) * n
    basis = np.exp(2j * np.pi * np.outer(t, k) / n) / n  # inverse DFT at the sample positions
    return np.real(basis @ np.fft.fft(np.eye(n), axis=0)), float(t[0])


#: :func:`coarse_pixels`' sampling models.
PIXEL_SAMPLING = {"point": sinc_weights, "area": area_weights}


def resample_pixels(
    array: NDArray[Any],
    spacing_yx: tuple[float, float],
    pixel_mm: float,
    sampling: str = "point",
    floor_hu: float | None = -1024.0,
) -> tuple[NDArray[np.float32], tuple[float, float], tuple[float, float]]:
    """Every slice of ``array`` (``(Z, Y, X)``, pixels ``spacing_yx`` mm) on square pixels of ``pixel_mm``:
    ``sampling`` ``point`` (:func:`sinc_weights`) or ``area`` (:func:`area_weights`); values below
    ``floor_hu`` (the padding outside a scanner's field of view; None: none) are raised to it first, so the
    sinc does not ring at that edge. Returns the array, the factors ``f`` and offsets ``t0`` per in-plane
    axis: input index ``c`` is output index ``(c - t0) / f``."""
    if sampling not in PIXEL_SAMPLING:
        raise ConfigError(f"unknown pixel sampling {sampling!r} (one of {', '.join(PIXEL_SAMPLING)})")
    fy, fx = (pixel_mm / s for s in spacing_yx)
    weights = PIXEL_SAMPLING[sampling]
    (wy, ty), (wx, tx) = weights(array.shape[1], fy), weights(array.shape[2], fx)
    wy32, wx32 = wy.astype(np.float32), wx.astype(np.float32)
    arr = np.asarray(array, np.float32)
    if floor_hu is not None:
        arr = np.maximum(arr, np.float32(floor_hu))
    return np.stack([wy32 @ sl @ wx32.T for sl in arr]), (fy, fx), (ty, tx)


def coarse_pixels(
    volume: Any, pixel_mm: float, sampling: str = "point", floor_hu: float | None = -1024.0
) -> tuple[Any, tuple[float, float, float], tuple[float, float, float]]:
    """A :class:`~medforensics.io.volume.Volume` as its reconstruction on coarser square in-plane pixels of
    ``pixel_mm`` over the same field of view (:func:`resample_pixels`; ``point`` sampling, the default, is
    what a scanner's coarser grid with the same kernel takes). The source DICOM datasets and instance UIDs
    are dropped. Returns the volume, the factors ``f`` and the offsets ``t0`` per axis (z, y, x): input
    index ``c`` is output index ``(c - t0) / f``."""
    out, (fy, fx), (ty, tx) = resample_pixels(
        volume.array, (volume.spacing[1], volume.spacing[2]), pixel_mm, sampling, floor_hu
    )
    origin = volume.index_to_patient((0.0, ty, tx))
    meta = {k: v for k, v in volume.metadata.items() if k != "sop_instance_uids"}
    sp = (volume.spacing[0], pixel_mm, pixel_mm)
    orig = tuple(float(v) for v in origin)
    vol = volume.with_array(out, spacing=sp, origin=orig, datasets=[], metadata=meta)
    return vol, (1.0, fy, fx), (0.0, ty, tx)


def scan_rng(seed: int, key: str, *copy: int) -> np.random.Generator:
    """The generator of one training copy of a scan: from the run's ``seed``, the scan's ``key`` (its uid,
    hashed) and the copy's numbers, so a data set's copies do not depend on which other scans it holds."""
    import zlib

    return np.random.default_rng([seed, zlib.crc32(key.encode()), *copy])


def lower_dose(
    array: NDArray[Any], dose: float, rng: np.random.Generator, corr: float | None = None
) -> NDArray[np.float32]:
    """``array`` (z, y, x; HU) as a scan at ``dose`` x its own dose would look (0 < dose < 1): Gaussian noise
    added so that the in-plane noise of the aerated lung grows by ``1 / sqrt(dose)`` (quantum noise), smoothed
    in-plane by ``corr`` pixels (default: the forge's noise model; 0: white) and with the series' own
    lag-1 correlation between slices, so the copy still has scanner-like noise
    (:func:`~medforensics.forge.cubes.noise_field`). Rounded to whole HU. Session 51: at half dose, authentic
    series of LIDC-0003 are flagged by the bundled detector (``benchmarks/scan_accuracy/kernels/``)."""
    from medforensics.features.noise_map import LUNG_HU
    from medforensics.forge.cubes import NOISE_CORR, noise_field, noise_std, slice_correlation

    if not 0.0 < dose < 1.0:
        raise ConfigError(f"a lower dose is a fraction of the scan's own, between 0 and 1; got {dose}")
    a = np.asarray(array, np.float32)
    lung = (a > LUNG_HU[0]) & (a < LUNG_HU[1])
    present = noise_std(a, lung, inplane=True)
    field = noise_field(
        a.shape,
        present / float(np.sqrt(dose)),
        present,
        rng,
        corr=NOISE_CORR if corr is None else corr,
        inplane=True,
        zcorr=slice_correlation(a, lung),
    )
    return np.round(a + field).astype(np.float32)


def apply_augmentation(
    image: NDArray[Any], params: Params, mask: NDArray[Any] | None = None
) -> tuple[NDArray[np.float32], NDArray[np.bool_] | None]:
    """Replay one recorded augmentation exactly (the deterministic half)."""
    kind = params.get("kind")
    m = None if mask is None else np.asarray(mask, dtype=bool)
    if kind == "rotate":
        out, m, _ = rotate(image, params["angle_deg"], m)
    elif kind == "brightness":
        out, _ = scale_brightness(image, params["factor"], params.get("reference", 0.0))
    elif kind == "flip":
        out, m, _ = flip(image, params["axis"], m)
    elif kind == "noise":
        out, _ = add_noise(image, params["std"], params["seed"])
    elif kind == "identity":
        out = _check(image).copy()
    else:
        raise ConfigError(f"unknown augmentation kind {kind!r}")
    return out, m


def apply_augmentations(
    image: NDArray[Any], chain: Sequence[Params], mask: NDArray[Any] | None = None
) -> tuple[NDArray[np.float32], NDArray[np.bool_] | None]:
    """Replay a recorded chain in order."""
    out = _check(image)
    m = None if mask is None else np.asarray(mask, dtype=bool)
    for params in chain:
        out, m = apply_augmentation(out, params, m)
    return out, m


def transform_point(point: Sequence[float], params: Params, shape: Sequence[int]) -> tuple[float, ...]:
    """Where an index point (same order as ``shape``) lands after one geometric augmentation."""
    p = np.asarray(point, dtype=np.float64).copy()
    kind = params.get("kind")
    if kind == "flip":
        ax = params["axis"] % len(shape)
        p[ax] = shape[ax] - 1 - p[ax]
    elif kind == "rotate":
        # ndimage.rotate(axes=(x, y)) maps output o to input R(o - c) + c; invert for a point.
        a = -np.deg2rad(params["angle_deg"])
        cy, cx = (shape[-2] - 1) / 2.0, (shape[-1] - 1) / 2.0
        dy, dx = p[-2] - cy, p[-1] - cx
        p[-1] = cx + np.cos(a) * dx - np.sin(a) * dy
        p[-2] = cy + np.sin(a) * dx + np.cos(a) * dy
    return tuple(float(v) for v in p)


def transform_points(
    point: Sequence[float], chain: Sequence[Params], shape: Sequence[int]
) -> tuple[float, ...]:
    """:func:`transform_point` through a chain."""
    p = tuple(point)
    for params in chain:
        p = transform_point(p, params, shape)
    return p


# --------------------------------------------------------------------------- random transforms
def flip_axes(ndim: int) -> list[int]:
    """The axes the seed study flips: the in-plane ones of a 2-D image, the slice order too of a cube."""
    return [-1, -2] if ndim == 2 else [-1, -2, -3]


def sample_params(
    kind: str,
    rng: np.random.Generator,
    *,
    ndim: int = 2,
    intensity_range: float = 1.0,
    reference: float = 0.0,
) -> Params:
    """Draw the parameters of one augmentation of ``kind`` (the random half; nothing is applied)."""
    if kind == "rotate":
        return {"kind": "rotate", "angle_deg": float(rng.choice(ROTATIONS_DEG))}
    if kind == "brightness":
        return {"kind": "brightness", "factor": float(rng.choice(BRIGHTNESS_FACTORS)), "reference": reference}
    if kind == "flip":
        return {"kind": "flip", "axis": int(rng.choice(flip_axes(ndim)))}
    if kind == "noise":
        std = float(rng.uniform(*NOISE_STD)) * intensity_range
        return {"kind": "noise", "std": round(std, 4), "seed": int(rng.integers(2**31))}
    raise ConfigError(f"unknown augmentation kind {kind!r}: choose from {', '.join(KINDS)}")


def every_augmentation(
    kinds: Sequence[str] = ("rotate", "brightness", "flip"), ndim: int = 3, reference: float = 0.0
) -> list[Params]:
    """Every discrete choice of the seed study's deterministic augmentations once (the rotations of
    :data:`ROTATIONS_DEG`, the brightness factors of :data:`BRIGHTNESS_FACTORS` about ``reference`` and the
    flips of an ``ndim`` array), in that order: what :func:`sample_params` draws from, enumerated. Noise is
    random, so it is not among ``kinds``."""
    unknown = set(kinds) - {"rotate", "brightness", "flip"}
    if unknown:
        raise ConfigError(f"every_augmentation enumerates rotate, brightness and flip, not {sorted(unknown)}")
    out: list[Params] = []
    if "rotate" in kinds:
        out += [{"kind": "rotate", "angle_deg": a} for a in ROTATIONS_DEG]
    if "brightness" in kinds:
        out += [{"kind": "brightness", "factor": f, "reference": reference} for f in BRIGHTNESS_FACTORS]
    if "flip" in kinds:
        out += [{"kind": "flip", "axis": a} for a in flip_axes(ndim)]
    return out


def every_ct_copy(array: NDArray[Any]) -> list[tuple[str, NDArray[np.float32]]]:
    """A CT array in HU under each of :func:`every_augmentation` (brightness about air, as
    :func:`ct_augmenter`), with its :func:`augmentation_name`."""
    return [
        (augmentation_name(p), apply_augmentation(array, p)[0])
        for p in every_augmentation(ndim=np.ndim(array), reference=CT_AIR_HU)
    ]


def augmentation_name(params: Params) -> str:
    """A short name for one augmentation's parameters: ``rotate-5``, ``brightness0.75``, ``flip-1``."""
    value = {"rotate": "angle_deg", "brightness": "factor", "flip": "axis"}.get(str(params.get("kind")))
    return f"{params.get('kind')}{params[value]:g}" if value else str(params.get("kind"))


class RandomAugment:
    """Pick ``n_ops`` distinct kinds at random, sample their parameters and apply them.

    ``__call__(image, rng, mask=None)`` returns ``(image, mask, chain)``; ``chain`` replays the result
    exactly with :func:`apply_augmentations`.
    """

    def __init__(
        self,
        kinds: Sequence[str] = KINDS,
        n_ops: int = 1,
        intensity_range: float = 1.0,
        reference: float = 0.0,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise ConfigError(f"unknown augmentation kinds {sorted(unknown)}: choose from {', '.join(KINDS)}")
        self.kinds = tuple(kinds)
        self.n_ops = max(1, min(n_ops, len(self.kinds)))
        self.intensity_range = intensity_range
        self.reference = reference

    def sample(self, rng: np.random.Generator, ndim: int) -> list[Params]:
        """Parameters only."""
        picked = rng.choice(len(self.kinds), size=self.n_ops, replace=False)
        return [
            sample_params(
                self.kinds[int(i)],
                rng,
                ndim=ndim,
                intensity_range=self.intensity_range,
                reference=self.reference,
            )
            for i in sorted(picked)
        ]

    def __call__(
        self, image: NDArray[Any], rng: np.random.Generator, mask: NDArray[Any] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_] | None, list[Params]]:
        arr = _check(image)
        chain = self.sample(rng, arr.ndim)
        out, m = apply_augmentations(arr, chain, mask)
        return out, m, chain


#: CT preset: intensities in HU, brightness about air, noise relative to the [-1000, 400] window.
def ct_augmenter(n_ops: int = 1) -> RandomAugment:
    """The seed study's augmentations for CT in HU."""
    return RandomAugment(KINDS, n_ops=n_ops, intensity_range=1400.0, reference=CT_AIR_HU)
