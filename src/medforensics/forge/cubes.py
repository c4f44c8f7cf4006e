"""Cube plumbing shared by every CT attack (CT-GAN, Mirsky et al. 2019).

* :func:`extract_cube`: a ``cube_mm`` cube (default 32 mm at 1 mm isotropic) around a centre, trilinear;
  parts beyond the volume (thin slabs) are mirrored and the count of mirrored cube voxels is recorded.
* :func:`paste_region`: resample an edited cube back onto the volume grid (trilinear) and blend it in with
  a soft spherical weight, so only the in-painted centre changes.
* :func:`to_unit` / :func:`from_unit`: CT-GAN's normalisation ([-1000, 400] HU -> [-1, 1]).
* :func:`match_context`: the histogram step: an affine intensity map fitted on the untouched context.
* :func:`noise_std` / :func:`noise_field` / :func:`top_up_noise`: noise touch-up matched to the local noise
  of the lung around, measured within slices (``noise_plane="slice"``, the attacks' default) or in 3-D
  (``"volume"``: every attack before session 41, which on thick slices counts anatomy as noise and reads a
  region in-painted slice by slice as noisy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics.errors import check_one_of

HU_MIN, HU_MAX = -1000.0, 400.0

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class CubeGrid:
    """Where a cube sits in a volume: cube voxel ``c`` maps to index ``center + (c - (n-1)/2) * step``."""

    center: tuple[float, float, float]
    n: int
    step: tuple[float, float, float]
    mirrored: tuple[int, int, int]  # cube voxels per axis that fell outside the volume (mirrored in)

    def to_dict(self) -> dict[str, Any]:
        return {
            "center": list(self.center),
            "n": self.n,
            "step": list(self.step),
            "mirrored": list(self.mirrored),
        }


def cube_grid(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    center: tuple[float, float, float],
    cube_mm: float = 32.0,
    iso_mm: float = 1.0,
) -> CubeGrid:
    """Geometry of a ``cube_mm`` cube at ``iso_mm`` around ``center`` (z, y, x) index."""
    n = round(cube_mm / iso_mm)
    step = tuple(iso_mm / float(s) for s in spacing)
    half = (n - 1) / 2.0
    mirrored = []
    for ax in range(3):
        pos = center[ax] + (np.arange(n) - half) * step[ax]
        mirrored.append(int(((pos < 0) | (pos > shape[ax] - 1)).sum()))
    return CubeGrid(tuple(float(c) for c in center), n, step, tuple(mirrored))  # type: ignore[arg-type]


def extract_cube(
    array: NDArray[Any],
    spacing: tuple[float, float, float],
    center: tuple[float, float, float],
    cube_mm: float = 32.0,
    iso_mm: float = 1.0,
) -> tuple[FloatArray, CubeGrid]:
    """Trilinear ``n^3`` cube (HU) around ``center`` at ``iso_mm``; outside parts mirrored."""
    grid = cube_grid(array.shape, spacing, center, cube_mm, iso_mm)
    half = (grid.n - 1) / 2.0
    axes = [grid.center[ax] + (np.arange(grid.n) - half) * grid.step[ax] for ax in range(3)]
    coords = np.stack(np.meshgrid(*axes, indexing="ij"))
    cube = ndimage.map_coordinates(np.asarray(array, np.float32), coords, order=1, mode="mirror")
    return cube.astype(np.float32), grid


def sphere(n: int, radius: float, center: float | None = None) -> FloatArray:
    """Distance (in cube voxels) from the cube centre, as an ``n^3`` float array (for masks and weights)."""
    c = (n - 1) / 2.0 if center is None else center
    g = np.arange(n, dtype=np.float32) - c
    d = np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
    return (d <= radius).astype(np.float32) if radius >= 0 else d


def distance_cube(n: int) -> FloatArray:
    """Distance of each cube voxel from the cube centre (cube voxels)."""
    return sphere(n, -1.0)


def blend_weight(n: int, radius: float, ramp: float = 2.0) -> FloatArray:
    """Soft sphere: 1 inside ``radius - ramp``, 0 beyond ``radius``, linear in between."""
    d = distance_cube(n)
    return np.clip((radius - d) / max(ramp, 1e-6), 0.0, 1.0).astype(np.float32)


def region_coords(
    shape: tuple[int, int, int], grid: CubeGrid, radius: float
) -> tuple[tuple[slice, slice, slice], FloatArray]:
    """Volume slices covering a sphere of ``radius`` cube voxels, and their cube coordinates (3, ...)."""
    half = (grid.n - 1) / 2.0
    sl = []
    for ax in range(3):
        ext = (radius + 1) * grid.step[ax]
        lo = max(0, int(np.floor(grid.center[ax] - ext)))
        hi = min(shape[ax], int(np.ceil(grid.center[ax] + ext)) + 1)
        sl.append(slice(lo, hi))
    axes = [(np.arange(s.start, s.stop) - grid.center[ax]) / grid.step[ax] + half for ax, s in enumerate(sl)]
    coords = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
    return (sl[0], sl[1], sl[2]), coords


def paste_region(
    array: NDArray[Any],
    grid: CubeGrid,
    cube: NDArray[Any],
    weight: NDArray[Any],
    radius: float,
    noise: NDArray[Any] | None = None,
) -> tuple[FloatArray, tuple[slice, slice, slice], FloatArray]:
    """Blend ``cube`` (HU, on ``grid``) into a copy of ``array`` with ``weight``; returns (new, slices, w).

    ``noise`` (volume-grid values over the returned slices) is added where the weight is positive.
    """
    out = np.array(array, dtype=np.float32, copy=True)
    sl, coords = region_coords(out.shape, grid, radius)
    vals = ndimage.map_coordinates(np.asarray(cube, np.float32), coords, order=1, mode="nearest")
    w = ndimage.map_coordinates(np.asarray(weight, np.float32), coords, order=1, mode="constant", cval=0.0)
    w = np.clip(w, 0.0, 1.0).astype(np.float32)
    if noise is not None:
        vals = vals + noise[: vals.shape[0], : vals.shape[1], : vals.shape[2]]
    out[sl] = (1.0 - w) * out[sl] + w * vals
    return out, sl, w


def to_unit(hu: NDArray[Any]) -> FloatArray:
    """CT-GAN normalisation: clip to [-1000, 400] HU and map to [-1, 1]."""
    x = (np.clip(np.asarray(hu, np.float32), HU_MIN, HU_MAX) - HU_MIN) / (HU_MAX - HU_MIN)
    return (x * 2.0 - 1.0).astype(np.float32)


def from_unit(x: NDArray[Any]) -> FloatArray:
    """Inverse of :func:`to_unit` (within the window)."""
    return ((np.asarray(x, np.float32) + 1.0) / 2.0 * (HU_MAX - HU_MIN) + HU_MIN).astype(np.float32)


def match_context(generated: NDArray[Any], original: NDArray[Any], context: NDArray[np.bool_]) -> FloatArray:
    """Histogram step: map ``generated`` so its context voxels match ``original``'s mean and spread.

    The map is affine with the gain clipped to [0.8, 1.25] (a robust moment match of the two histograms on
    the voxels the generator had to reproduce, applied to the whole cube).
    """
    g = np.asarray(generated, np.float32)
    if context.sum() < 16:
        return g
    gq = np.percentile(g[context], [10, 50, 90])
    oq = np.percentile(np.asarray(original, np.float32)[context], [10, 50, 90])
    gain = float(np.clip((oq[2] - oq[0]) / max(gq[2] - gq[0], 1e-3), 0.8, 1.25))
    return ((g - gq[1]) * gain + oq[1]).astype(np.float32)


def high_pass(x: NDArray[Any], sigma: float = 1.0, inplane: bool = False) -> FloatArray:
    """Residual of a Gaussian low-pass (voxels; over the last two axes only if ``inplane``), the noise
    estimate's input."""
    x = np.asarray(x, np.float32)
    sig = (0.0,) * (x.ndim - 2) + (sigma, sigma) if inplane else sigma
    return (x - ndimage.gaussian_filter(x, sig, mode="nearest")).astype(np.float32)


def noise_std(x: NDArray[Any], where: NDArray[np.bool_] | None = None, inplane: bool = False) -> float:
    """Robust std (MAD) of the high-pass residual of ``x`` over ``where`` (default: aerated lung voxels).

    The default residual is 3-D. Across thick slices (3-5 mm) it also holds anatomy that changes from slice
    to slice, which reads as noise (about twice the in-plane figure on 5 mm slices); ``inplane`` measures
    within slices only."""
    x = np.asarray(x, np.float32)
    hp = high_pass(x, inplane=inplane)
    sel = (x < -500) & (x > -1100) if where is None else where
    vals = hp[sel] if sel.sum() >= 32 else hp.ravel()
    return float(1.4826 * np.median(np.abs(vals - np.median(vals))))


#: In-plane correlation (Gaussian sigma, voxels) of the added noise: CT noise is not white, and white noise
#: shows as a grainy disc where the real image is smooth at the pixel scale.
NOISE_CORR = 0.8

#: std of the high-pass residual of the unit-variance correlated noise, per (shape, corr, inplane, zcorr):
#: measured once.
_HP_GAIN: dict[tuple[tuple[int, ...], float, bool, float], float] = {}


def _correlated(
    rng: np.random.Generator, shape: tuple[int, ...], corr: float, zcorr: float = 0.0
) -> FloatArray:
    """Unit-variance Gaussian noise smoothed in-plane by ``corr`` voxels; slices independent, or with lag-1
    correlation ``zcorr`` along axis 0 (a first-order autoregression: each slice keeps ``zcorr`` of the one
    before and adds fresh noise, so every slice keeps unit variance)."""
    z = rng.standard_normal(shape).astype(np.float32)
    if corr > 0:
        sig = (0.0,) * (len(shape) - 2) + (corr, corr)
        z = ndimage.gaussian_filter(z, sig, mode="wrap")
        z /= max(float(z.std()), 1e-6)
    if zcorr > 0 and len(shape) >= 3:
        fresh = np.float32(np.sqrt(1.0 - zcorr**2))
        for k in range(1, shape[0]):
            z[k] = np.float32(zcorr) * z[k - 1] + fresh * z[k]
    return z


def _hp_gain(shape: tuple[int, ...], corr: float, inplane: bool = False, zcorr: float = 0.0) -> float:
    key = (tuple(max(min(s, 24), 8) for s in shape), corr, inplane, round(zcorr, 2))
    if key not in _HP_GAIN:
        field = _correlated(np.random.default_rng(0), key[0], corr, key[3])
        _HP_GAIN[key] = float(np.std(high_pass(field, inplane=inplane)))
    return _HP_GAIN[key]


def slice_correlation(x: NDArray[Any], where: NDArray[np.bool_] | None = None) -> float:
    """Lag-1 correlation along axis 0 of the in-plane high-pass of ``x`` over ``where`` (default: aerated
    lung) in both slices, in [0, 0.9]: how much of the scanner's noise neighbouring slices share (overlapping
    reconstructions share some). Residuals beyond 3 noise SDs (vessel edges, which continue across slices)
    are left out; under 32 voxel pairs: 0."""
    x = np.asarray(x, np.float32)
    sel = (x < -500) & (x > -1100) if where is None else where
    hp = high_pass(x, inplane=True)
    sd = noise_std(x, sel, inplane=True)
    a, b = hp[:-1], hp[1:]
    m = sel[:-1] & sel[1:] & (np.abs(a) < 3 * sd) & (np.abs(b) < 3 * sd)
    if m.sum() < 32:
        return 0.0
    r = float(np.sum(a[m] * b[m]) / max(np.sqrt(np.sum(a[m] ** 2) * np.sum(b[m] ** 2)), 1e-6))
    return float(np.clip(r, 0.0, 0.9))


def noise_field(
    shape: tuple[int, ...],
    target_std: float,
    present_std: float,
    rng: np.random.Generator,
    scale: float = 1.0,
    corr: float = NOISE_CORR,
    inplane: bool = False,
    zcorr: float = 0.0,
) -> FloatArray:
    """Correlated Gaussian noise whose high-pass std (in-plane only if ``inplane``, as :func:`noise_std`)
    tops ``present_std`` up to ``scale * target_std``; ``zcorr``: its lag-1 correlation between slices."""
    need = max((scale * target_std) ** 2 - present_std**2, 0.0) ** 0.5
    if need == 0.0:
        return np.zeros(shape, np.float32)
    sigma = need / max(_hp_gain(shape, corr, inplane, zcorr), 1e-6)
    return (_correlated(rng, shape, corr, zcorr) * sigma).astype(np.float32)


#: Where the touch-up measures noise: ``slice`` (in-plane high-pass) or ``volume`` (3-D high-pass).
NOISE_PLANES = ("slice", "volume")
#: The plane of parameters recorded without one (forged before session 41): they replay bit for bit.
LEGACY_NOISE_PLANE = "volume"


#: How the touch-up's noise relates between slices: ``independent`` (every attack's default) or ``matched``
#: to the scanner's lag-1 correlation there (:func:`slice_correlation`): a stronger attacker that
#: leaves no inter-slice trace of the added noise.
NOISE_Z = ("independent", "matched")


def check_choice(key: str, value: str, known: tuple[str, ...]) -> str:
    """``value`` if it is one of ``known``, else :class:`ConfigError` naming ``key`` and the choices."""
    check_one_of(key, value, known)
    return value


def check_noise_plane(plane: str) -> str:
    """``plane`` if it is one of :data:`NOISE_PLANES`, else :class:`ConfigError`."""
    return check_choice("noise_plane", plane, NOISE_PLANES)


def check_noise_z(z: str) -> str:
    """``z`` if it is one of :data:`NOISE_Z`, else :class:`ConfigError`."""
    return check_choice("noise_z", z, NOISE_Z)


def top_up_noise(
    original: NDArray[Any],
    new: NDArray[Any],
    ring: NDArray[np.bool_],
    core: NDArray[np.bool_],
    rng: np.random.Generator,
    scale: float = 1.0,
    corr: float = NOISE_CORR,
    plane: str = LEGACY_NOISE_PLANE,
    z: str = "independent",
) -> FloatArray:
    """Noise that tops ``new``'s level over ``core`` up to ``scale`` times ``original``'s over ``ring`` (under
    32 ring voxels: ``original``'s aerated lung), both measured in ``plane`` (:data:`NOISE_PLANES`); ``z``
    (:data:`NOISE_Z`) ``matched`` gives it the lag-1 inter-slice correlation of ``original``'s there."""
    inplane = check_noise_plane(plane) == "slice"
    where = ring if ring.sum() >= 32 else None
    target = noise_std(original, where, inplane)
    present = noise_std(new, core, inplane)
    zcorr = slice_correlation(original, where) if check_noise_z(z) == "matched" else 0.0
    return noise_field(core.shape, target, present, rng, scale, corr, inplane, zcorr)
