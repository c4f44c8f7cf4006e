"""Candidate cube centres in a CT: nodule-like blobs in the lung plus a regular grid over the lung.

Everything runs on a low-resolution copy (~2 mm in-plane, block means computed slab by slab while the
full-resolution volume is read once), so memory stays bounded on long series: the lung mask
(:func:`medforensics.forge.lung.lung_mask`), multi-scale Laplacian-of-Gaussian blobs of 3-30 mm inside it,
and a grid of centres with a stride of half a cube covering it, so that removals (which leave no blob) are
scored too. Each blob also gets a Hessian "nodule-likeness" test (compact and bright, not a tube) that the
study label (TM vs TB) uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics._threads import thread_map
from medforensics.forge.lung import lung_mask
from medforensics.io.volume import Volume

#: LoG scales (mm); a sphere of diameter d responds best at sigma = d / (2 sqrt 3): about 5 to 30 mm.
BLOB_SIGMAS_MM = (1.5, 2.5, 4.0, 6.0, 8.5)
#: Minimum scale-normalised LoG response (HU) of a blob.
BLOB_MIN_RESPONSE = 80.0
#: Blobs must be at least this dense at the centre (smoothed HU).
BLOB_MIN_HU = -600.0
#: Share of aerated lung (< -400 HU) a blob needs in the shell around it (1.2 to 2 radii): rejects the
#: chest wall, mediastinum and bone at the lung border while keeping juxtapleural nodules.
BLOB_MIN_SHELL_AIR = 0.35


@dataclass
class Candidate:
    """A cube centre to score: ``center`` (z, y, x) full-resolution index (fractional)."""

    center: tuple[float, float, float]
    kind: str  # "blob" | "grid" | "refine"
    diameter_mm: float = 0.0
    response: float = 0.0
    nodule_like: bool = False
    blobness: float = 0.0  # Hessian |lambda_min| / |lambda_max| at the centre (1: a sphere)
    hu: float = 0.0  # smoothed HU at the centre


@dataclass
class LowRes:
    """A block-mean copy of a volume: ``array[i]`` averages full-res voxels ``i*f .. i*f+f-1`` per axis."""

    array: NDArray[np.float32]
    factors: tuple[int, int, int]
    spacing: tuple[float, float, float]
    lung: NDArray[np.bool_]

    def to_full(self, idx: Any) -> NDArray[np.float64]:
        """Full-resolution (z, y, x) index of low-res indices (block centres)."""
        f = np.asarray(self.factors, np.float64)
        return np.asarray(idx, np.float64) * f + (f - 1) / 2.0

    def to_low(self, idx: Any) -> NDArray[np.float64]:
        """Low-res index of full-resolution indices."""
        f = np.asarray(self.factors, np.float64)
        return (np.asarray(idx, np.float64) - (f - 1) / 2.0) / f


def block_mean(array: NDArray[Any], factors: tuple[int, int, int], slab: int = 32) -> NDArray[np.float32]:
    """Block means (float32), computed ``slab`` low-res slices at a time (no full-size temporaries)."""
    from medforensics.features.noise_map import grid_means

    return grid_means(array, factors, slab).means


def low_resolution(volume: Volume, target_mm: float = 2.0) -> LowRes:
    """Block-mean the volume to about ``target_mm`` voxels and compute the lung mask there."""
    factors = tuple(max(1, round(target_mm / s)) if s < target_mm else 1 for s in volume.spacing)
    arr = block_mean(volume.array, factors)  # type: ignore[arg-type]
    spacing = tuple(s * f for s, f in zip(volume.spacing, factors, strict=True))
    lung = lung_mask(arr, spacing)  # type: ignore[arg-type]
    return LowRes(arr, factors, spacing, lung)  # type: ignore[arg-type]


def mask_box(mask: NDArray[np.bool_], pad: tuple[int, ...]) -> tuple[slice, ...] | None:
    """The bounding box of ``mask`` widened by ``pad`` voxels per axis (clipped to the array); None when it
    is empty."""
    if not mask.any():
        return None
    out = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        nz = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(0, int(nz[0]) - pad[ax]), min(mask.shape[ax], int(nz[-1]) + 1 + pad[ax])))
    return tuple(out)


def _blobness(
    patch: NDArray[np.float32], sigma_vox: NDArray[np.float64], spacing: NDArray[np.float64]
) -> float:
    """|lambda_min| / |lambda_max| of the Hessian at the patch centre if all eigenvalues < 0, else 0."""
    c = tuple(s // 2 for s in patch.shape)
    h = np.zeros((3, 3))
    for i in range(3):
        for j in range(i, 3):
            order = [0, 0, 0]
            order[i] += 1
            order[j] += 1
            d = ndimage.gaussian_filter(patch, sigma_vox, order=order, mode="nearest")[c]
            h[i, j] = h[j, i] = d / (spacing[i] * spacing[j])
    ev = np.linalg.eigvalsh(h)
    if ev.max() >= 0:
        return 0.0
    mags = np.sort(np.abs(ev))
    return float(mags[0] / max(mags[-1], 1e-9))


def window_sq_distances(
    shape: tuple[int, ...],
    centre: Any,
    spacing: Any,
    reach_mm: float,
    pad: tuple[int, ...] = (0, 0, 0),
) -> tuple[tuple[slice, ...], NDArray[np.float64]]:
    """The box of an array of ``shape`` that holds every voxel within ``reach_mm`` of voxel ``centre``
    (widened by ``pad`` voxels per axis, clipped to the array), and each box voxel's squared distance
    (mm^2) from ``centre``."""
    c = np.asarray(centre, np.int64)
    sp = np.asarray(spacing, np.float64)
    r = np.ceil(reach_mm / sp).astype(int) + np.asarray(pad)
    lo = np.maximum(c - r, 0)
    hi = np.minimum(c + r + 1, shape)
    g = np.ogrid[tuple(slice(int(a - k), int(b - k)) for a, b, k in zip(lo, hi, c, strict=True))]
    d2 = sum((gi * s) ** 2 for gi, s in zip(g, sp, strict=True))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True)), np.asarray(d2, np.float64)


def _shell_fraction(
    aerated: NDArray[np.bool_], p: NDArray[np.int64], radius_mm: float, sp: NDArray[np.float64]
) -> float:
    """Share of aerated voxels in the shell 1.2-2 radii around ``p`` (inside the array)."""
    box, d2 = window_sq_distances(aerated.shape, p, sp, 2 * radius_mm)
    win = aerated[box]
    d = np.sqrt(d2)
    ring = (d >= 1.2 * radius_mm) & (d <= 2.0 * radius_mm)
    n = int(ring.sum())
    return float(win[ring].mean()) if n else 0.0


#: Scales of at least this many voxels in-plane are computed on an in-plane 2x block mean.
PYRAMID_MIN_VOXELS = 2.5


def _log(arr: NDArray[np.float32], s_mm: float, sv: NDArray[np.float64], unit: tuple[float, ...]) -> Any:
    """Scale-normalised LoG ``-s^2 sum_i d2/dx_i^2 (G * arr)``, second derivatives in full-resolution voxel
    units (``unit``: full-resolution voxels per voxel of ``arr``, per axis).

    The separable passes of ``gaussian_filter(arr, sv, order=...)`` for the three second derivatives, in
    its axis order (z, y, x) and float32 between passes, so the result is bit-identical to three such calls;
    the y and x derivatives share their first pass (the Gaussian along z): 8 one-dimensional passes, not 9.
    """

    def g(a: NDArray[np.float32], ax: int, order: int, out: NDArray[np.float32]) -> NDArray[np.float32]:
        ndimage.gaussian_filter1d(a, sv[ax], axis=ax, order=order, output=out, mode="nearest")
        return out

    acc = np.empty(arr.shape, np.float32)
    tmp = np.empty(arr.shape, np.float32)  # in place: three volumes per scale (scales run side by side)
    smooth_z = np.empty(arr.shape, np.float32)
    g(g(g(arr, 0, 2, acc), 1, 0, tmp), 2, 0, acc)  # d2/dz2
    acc /= np.float32(unit[0] ** 2)
    g(arr, 0, 0, smooth_z)
    g(g(smooth_z, 1, 2, tmp), 2, 0, tmp)  # d2/dy2 (in place along x: scipy buffers each line)
    tmp /= np.float32(unit[1] ** 2)
    acc += tmp
    g(g(smooth_z, 1, 0, tmp), 2, 2, tmp)  # d2/dx2
    del smooth_z
    tmp /= np.float32(unit[2] ** 2)
    acc += tmp
    del tmp
    acc *= -(s_mm**2)
    return acc


def _upsample2(a: NDArray[np.float32], axis: int) -> NDArray[np.float32]:
    """Linear 2x upsampling along ``axis`` of block means (each output voxel 3/4 its own block, 1/4 the
    neighbouring one; edges repeated): ``ndimage.zoom(order=1, grid_mode=True)`` at a fraction of its cost."""
    a = np.moveaxis(a, axis, 0)
    prev = np.concatenate([a[:1], a[:-1]])
    nxt = np.concatenate([a[1:], a[-1:]])
    out = np.empty((2 * a.shape[0], *a.shape[1:]), np.float32)
    out[0::2] = 0.75 * a + 0.25 * prev
    out[1::2] = 0.75 * a + 0.25 * nxt
    return np.moveaxis(out, 0, axis)


def _keep_max(
    best: NDArray[np.float32], scale: NDArray[np.uint8], resp: NDArray[np.float32], k: NDArray[np.uint8] | int
) -> None:
    """Where ``resp`` beats ``best``, take it and its scale index ``k`` (in place)."""
    better = np.greater(resp, best)
    np.copyto(scale, k, where=better, casting="unsafe")
    np.fmax(best, resp, out=best)  # NaN in resp loses, as with the comparison


def _log_max(
    sub: NDArray[np.float32], sigmas: list[float], sp: NDArray[np.float64]
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Per voxel the strongest scale-normalised LoG response over ``sigmas`` (mm) and the scale's index.

    Scales of :data:`PYRAMID_MIN_VOXELS` in-plane voxels or more run on an in-plane 2x block mean (a
    quarter of the voxels, half-length kernels: about 3x faster in all) and are interpolated back. One scale
    per thread (scipy's filters release the GIL), fine and coarse scales in one pool (five scales on two
    threads: the fifth does not run alone); kept in scale order as a serial loop."""
    best = np.full(sub.shape, -np.inf, np.float32)
    scale = np.zeros(sub.shape, np.uint8)
    coarse = [k for k, s in enumerate(sigmas) if s / max(sp[1], sp[2]) >= PYRAMID_MIN_VOXELS]
    if min(sub.shape[1:]) < 16:
        coarse = []
    fine = [k for k in range(len(sigmas)) if k not in coarse]
    ny, nx = sub.shape[1:]
    half = sub
    if coarse:
        even = np.pad(sub, [(0, 0), (0, ny % 2), (0, nx % 2)], mode="edge")
        half = block_mean(even, (1, 2, 2))
    sp2 = sp * np.array([1.0, 2.0, 2.0])
    tasks = [(sub, sp, (1.0, 1.0, 1.0), k) for k in fine] + [(half, sp2, (1.0, 2.0, 2.0), k) for k in coarse]
    resps = thread_map(lambda t: _log(t[0], sigmas[t[3]], sigmas[t[3]] / t[1], t[2]), tasks)
    for k, resp in zip(fine, resps[: len(fine)], strict=True):
        _keep_max(best, scale, resp, k)
    if coarse:
        hb = np.full(half.shape, -np.inf, np.float32)
        hk = np.zeros(half.shape, np.uint8)
        for k, resp in zip(coarse, resps[len(fine) :], strict=True):
            _keep_max(hb, hk, resp, k)
        del resps
        up = _upsample2(_upsample2(hb, 1), 2)[:, :ny, :nx]
        _keep_max(best, scale, up, np.repeat(np.repeat(hk, 2, axis=1), 2, axis=2)[:, :ny, :nx])
    return best, scale


def blob_candidates(
    low: LowRes, max_count: int = 200, min_mm: float = 3.0, max_mm: float = 30.0
) -> list[Candidate]:
    """Local maxima of the scale-normalised LoG of bright blobs (3-30 mm) inside the lung."""
    sp = np.asarray(low.spacing)
    pad = tuple(int(np.ceil(3 * max(BLOB_SIGMAS_MM) / s)) for s in sp)
    box = mask_box(low.lung, pad)
    if box is None:
        return []
    sub = np.clip(low.array[box], -1000.0, 400.0)
    lung = low.lung[box]
    sigmas = [
        s for s in BLOB_SIGMAS_MM if min_mm <= 2 * np.sqrt(3) * s <= max_mm * 1.05 or s == BLOB_SIGMAS_MM[0]
    ]
    best, scale = _log_max(sub, sigmas, sp)
    smooth = ndimage.gaussian_filter(sub, 1.0 / sp * 1.5, mode="nearest")
    peaks = (
        (best == ndimage.maximum_filter(best, size=3))
        & lung
        & (best > BLOB_MIN_RESPONSE)
        & (smooth > BLOB_MIN_HU)
    )
    pts = np.argwhere(peaks)
    if len(pts) == 0:
        return []
    pts = pts[np.argsort(-best[tuple(pts.T)])][: 20 * max_count]
    off = np.array([b.start for b in box])
    aerated = sub < -400.0
    out: list[Candidate] = []
    for p in pts:
        s_mm = sigmas[int(scale[tuple(p)])]
        radius = np.sqrt(3) * s_mm
        shell = _shell_fraction(aerated, p, radius, sp)
        if shell < BLOB_MIN_SHELL_AIR:
            continue
        sv = s_mm / sp
        r = np.ceil(3 * sv).astype(int)
        lo = np.maximum(p - r, 0)
        patch = sub[lo[0] : p[0] + r[0] + 1, lo[1] : p[1] + r[1] + 1, lo[2] : p[2] + r[2] + 1]
        # re-centre the patch on p when it was clipped at the border
        fill = [(int(r[i] - (p[i] - lo[i])), 0) for i in range(3)]
        blobness = _blobness(np.pad(patch, fill, mode="edge"), sv, sp)
        hu = float(smooth[tuple(p)])
        nodule = blobness >= 0.35 and hu > -300.0 and 2 * radius >= min_mm
        full = low.to_full(p + off)
        center = (float(full[0]), float(full[1]), float(full[2]))
        response = float(best[tuple(p)])
        out.append(Candidate(center, "blob", float(2 * radius), response, bool(nodule), blobness, hu))
        if len(out) >= max_count:
            break
    return out


def grid_candidates(
    low: LowRes,
    full_shape: tuple[int, int, int],
    full_spacing: tuple[float, float, float],
    stride_mm: float,
    min_lung: float = 0.2,
    max_count: int = 2000,
) -> list[Candidate]:
    """A regular grid (``stride_mm``) of centres whose neighbourhood is at least ``min_lung`` lung."""
    frac = ndimage.uniform_filter(
        low.lung.astype(np.float32), size=[max(1, round(stride_mm / s)) for s in low.spacing], mode="constant"
    )
    box = mask_box(low.lung, (0, 0, 0))
    if box is None:
        return []
    while True:
        axes = []
        for ax in range(3):
            f = low.factors[ax]
            lo = box[ax].start * f + (f - 1) / 2.0
            hi = (box[ax].stop - 1) * f + (f - 1) / 2.0
            step = stride_mm / full_spacing[ax]
            n = max(1, int(np.floor((hi - lo) / step)) + 1)
            start = (lo + hi) / 2 - (n - 1) * step / 2  # centred on the lung
            axes.append(np.clip(start + np.arange(n) * step, 0, full_shape[ax] - 1))
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        li = np.clip(np.round(low.to_low(pts)).astype(int), 0, np.asarray(low.lung.shape) - 1)
        keep = pts[frac[tuple(li.T)] >= min_lung]
        if len(keep) <= max_count:
            break
        stride_mm *= (len(keep) / max_count) ** (1 / 3) * 1.02
    return [Candidate((float(p[0]), float(p[1]), float(p[2])), "grid") for p in keep]


def ct_candidates(
    volume: Volume,
    cube_mm: float = 32.0,
    stride_mm: float | None = None,
    max_blobs: int = 200,
    max_grid: int = 2000,
    low: LowRes | None = None,
) -> tuple[list[Candidate], LowRes]:
    """Blob and grid candidates of a CT volume (blobs first), and the low-res copy with its lung mask."""
    low = low_resolution(volume) if low is None else low
    blobs = blob_candidates(low, max_blobs)
    grid = grid_candidates(low, volume.shape, volume.spacing, stride_mm or cube_mm / 2.0, max_count=max_grid)
    return blobs + grid, low


def refine_offsets(spacing: tuple[float, float, float], step_mm: float) -> NDArray[np.float64]:
    """The 26 neighbours of a 3x3x3 lattice with ``step_mm`` spacing, in full-resolution index units."""
    g = np.stack(np.meshgrid(*[np.array([-1.0, 0.0, 1.0])] * 3, indexing="ij"), -1).reshape(-1, 3)
    g = g[np.any(g != 0, axis=1)]
    return g * step_mm / np.asarray(spacing)[None, :]
