"""Local noise energy of a CT at full resolution, block-averaged onto a coarser grid.

Edits leave their trace in the noise, not in the anatomy: an in-painted region is smoother than the
scanner's noise, a pasted one carries two noise fields, a generated one another texture. The coarse grid a
3-D network can afford (block means of 2 x 2 in-plane pixels and more) averages that noise away, so the
energy of the in-plane high-pass residual is measured *before* the block means and travels beside the
image as a second channel. The residual is the separable 3 x 3 "KV" kernel of the SRM family (second
differences along y and x: flat regions and linear ramps give zero, pixel noise of std s gives 1.5 s),
clipped so that anatomical edges do not swamp it.

A third, optional channel is the *inter-slice* correlation of that residual. A scanner's noise is correlated
between neighbouring slices (helical interpolation, overlapping reconstruction: about 0.4 in the lung of the
LIDC series); an in-painter that works slice by slice, or adds fresh noise to hide its smoothness, leaves a
region whose residual is uncorrelated along z (CT-GAN removals measured 0.07-0.10 here) although its noise
*energy* matches the surroundings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: ``on_slab(z0, block)``: sees each full-resolution float32 block of a slab-by-slab pass (first slice z0).
SlabCallback = Callable[[int, NDArray[np.float32]], None]

#: |residual| (HU) above this is an edge, not noise: clipped before squaring.
RESIDUAL_CLIP_HU = 300.0
#: HU range of aerated lung on the coarse grid: the reference the energy is normalised to.
LUNG_HU = (-950.0, -500.0)
#: Scale of the normalised log energy (natural log units per channel unit) and its clip.
LOG_SCALE = 2.0
LOG_CLIP = 2.0


#: In-plane box (mm) the inter-slice correlation is measured over, on the model grid.
ZCORR_BOX_MM = 7.0
#: Residual energy (HU^2) added to the correlation's denominator: noise-free regions read 0, not 0/0.
ZCORR_EPS = 1.0
#: Scale of the correlation channel (correlation units per channel unit) and its clip.
ZCORR_SCALE = 0.25


@dataclass
class GridMeans:
    """:func:`grid_means`' block means: HU, and optionally the residual energy and inter-slice moments."""

    means: NDArray[np.float32]
    energy: NDArray[np.float32] | None = None
    #: block means of ``r_k * r_p`` and ``r_p ** 2``, ``p`` the slice paired with ``k`` (two arrays, so
    #: each can be freed on its own)
    zpair: list[NDArray[np.float32]] | None = None
    #: with ``corr_size``: the raw inter-slice correlation (:func:`raw_corr`), made in the pass instead of
    #: ``zpair``
    corr: NDArray[np.float32] | None = None


def residual_energy(array: NDArray[Any], factors: tuple[int, ...], slab: int = 32) -> NDArray[np.float32]:
    """Block means (``factors``) of the squared, clipped in-plane KV residual of ``array`` (z, y, x)."""
    energy = grid_means(array, factors, slab, energy=True).energy
    assert energy is not None
    return energy


def kv_residual(x: Any) -> Any:
    """Clipped in-plane KV residual of a (z, y, x) torch block, edge-padded back to its in-plane size (the
    pad is the outermost row and column on each side: ``[:, 1:-1, 1:-1]`` is the residual proper)."""
    import torch.nn.functional as F

    d = x[:, :, :-2] - 2.0 * x[:, :, 1:-1] + x[:, :, 2:]  # second difference along x
    r = d[:, :-2] - 2.0 * d[:, 1:-1] + d[:, 2:]  # ... then along y
    del d
    r.mul_(0.25).clamp_(-RESIDUAL_CLIP_HU, RESIDUAL_CLIP_HU)
    return F.pad(r[None], (1, 1, 1, 1), mode="replicate")[0]


def block_sum(t: Any, k: tuple[int, int, int]) -> Any:
    """Sums over ``k`` blocks of a (z, y, x) torch tensor (remainders dropped), as strided adds: for the
    model grid's small factors (1 x 2 x 2 on a 0.7 mm CT) about 2x faster than ``avg_pool3d`` on the CPU."""
    n = [d // f for d, f in zip(t.shape, k, strict=True)]
    out = None
    for i in range(k[0]):
        for j in range(k[1]):
            for m in range(k[2]):
                part = t[i : n[0] * k[0] : k[0], j : n[1] * k[1] : k[1], m : n[2] * k[2] : k[2]]
                out = part.clone() if out is None else out.add_(part)
    return out


def grid_shape(shape: Sequence[int], factors: Sequence[int]) -> tuple[int, ...]:
    """The shape of :func:`grid_means`' block means of an array of ``shape`` (remainders dropped; an axis
    shorter than its factor gives one block of all of it)."""
    return tuple(max(1, n // f) for n, f in zip(shape, factors, strict=True))


class ZLinear:
    """Linear resampling along z to ``n_out`` slices of ``depth`` slices that arrive in order (torch's
    ``interpolate(..., align_corners=False)`` grid, as ``scipy.ndimage.zoom(order=1, grid_mode=True,
    mode="nearest")``). Each output slice goes to ``emit(j, row)`` as soon as the two input slices it needs
    have arrived, so the input is never held whole: only the slices still needed are kept."""

    def __init__(self, n_out: int, depth: int, emit: Callable[[int, NDArray[np.float32]], None]) -> None:
        self.n_out, self.emit = n_out, emit
        src = np.maximum((np.arange(n_out) + 0.5) * (depth / n_out) - 0.5, 0.0)
        self.i0 = np.minimum(np.floor(src).astype(np.int64), depth - 1)
        self.i1 = np.minimum(self.i0 + 1, depth - 1)
        self.w1 = (src - self.i0).astype(np.float32)
        self.w0 = (1.0 - self.w1).astype(np.float32)
        self.next = 0
        self.held: dict[int, NDArray[np.float32]] = {}

    def push(self, z0: int, block: NDArray[np.float32]) -> None:
        """Input slices ``z0, z0 + 1, ...`` (``block``, not modified afterwards by the caller)."""
        for k in range(len(block)):
            self.held[z0 + k] = block[k]
        while self.next < self.n_out and int(self.i1[self.next]) in self.held:
            j = self.next
            row = self.held[int(self.i0[j])] * self.w0[j]
            row += self.held[int(self.i1[j])] * self.w1[j]
            self.emit(j, row)
            self.next += 1
        # the slices before the next output's first are done with
        first = int(self.i0[self.next]) if self.next < self.n_out else z0 + len(block)
        for i in [i for i in self.held if i < first]:
            del self.held[i]


def grid_means(
    array: NDArray[Any],
    factors: tuple[int, ...],
    slab: int = 32,
    energy: bool = False,
    on_slab: SlabCallback | None = None,
    zpair: bool = False,
    inplane: tuple[int, int] | None = None,
    depth: int | None = None,
    corr_size: tuple[int, int, int] | None = None,
) -> GridMeans:
    """Block means (``factors``, remainders dropped) of ``array`` and, with ``energy``, of its squared,
    clipped in-plane KV residual ``r``; with ``zpair`` also of ``r_k * r_p`` and ``r_p ** 2``, where slice
    ``k`` is paired with the slice before it (slice 0 with slice 1). All in one pass. ``inplane``: every
    slab's block means are then resized to ``(ny, nx)`` (linear, on the grid of ``scipy.ndimage.zoom(order=1,
    grid_mode=True)``), so only the resized ones are ever held. ``depth``: the block means are resampled
    along z to that many slices (linear, the same grid; :class:`ZLinear`) as the pass goes, so the
    unresampled ones are never held whole either. ``corr_size`` (with ``zpair``): the raw inter-slice
    correlation (:func:`raw_corr` over in-plane boxes of that size, slice by slice) is made from the
    moments as their slices are ready, and only it is kept (``corr``): one map instead of two.

    Computed ``slab`` coarse slices at a time with torch (multi-threaded, in place), so no full-size float
    copy of a long series exists; the last residual slice of a slab is kept for the next one, so every slice
    is read once. Fewer slices than the z factor give one coarse slice of all of them.
    ``on_slab(z0, block)`` sees each full-resolution float32 block (first slice ``z0``; read-only, not to
    be kept) as it passes: other per-slice statistics can share the one pass over a streamed series.
    """
    import torch
    import torch.nn.functional as F

    fz, fy, fx = factors
    fz = min(fz, array.shape[0])
    nz, ny, nx = grid_shape(array.shape, factors)
    ny, nx = inplane or (ny, nx)
    n_out = depth or nz
    out = GridMeans(np.empty((n_out, ny, nx), np.float32))
    if energy or zpair:
        out.energy = np.empty_like(out.means)
    if zpair and corr_size is None:
        out.zpair = [np.empty_like(out.means) for _ in range(2)]
    if zpair and corr_size is not None:
        out.corr = np.empty_like(out.means)
    k = (fz, fy, fx)
    # the slices of map i (means, energy, r_k r_p, r_p^2) go into the map or, for the moments that make
    # ``corr``, into ``pending`` until the correlation of their slices is made
    maps: list[NDArray[np.float32] | None] = [out.means, out.energy, *(out.zpair or (None, None))]
    pending: list[dict[int, NDArray[np.float32]]] = [{}, {}]

    def sink(i: int) -> Callable[[int, NDArray[np.float32]], None]:
        dst = maps[i]
        if dst is not None:
            return lambda j, row: dst.__setitem__(j, row)
        return lambda j, row: pending[i - 2].__setitem__(j, row)

    used = [True, out.energy is not None, zpair, zpair]
    zoom = depth not in (None, nz)
    zlin = [ZLinear(n_out, nz, sink(i)) if zoom and used[i] else None for i in range(4)]

    def put(i: int, z0: int, z1: int, block: Any) -> None:
        z, dst = zlin[i], maps[i]
        if z is not None:
            z.push(z0, block)
        elif dst is not None:
            dst[z0:z1] = block
        else:
            for j in range(z1 - z0):
                pending[i - 2][z0 + j] = block[j]

    done = [0]  # slices of ``corr`` made

    def correlate() -> None:  # the slices whose energy and both moments are ready
        assert out.corr is not None and out.energy is not None and corr_size is not None
        j0 = done[0]  # the moments' pending slices run from j0 on
        j1 = j0 + min(len(p) for p in pending)
        if zlin[1] is not None:  # the energy's zoomed slices written so far
            j1 = min(j1, zlin[1].next)
        if j1 <= j0:
            return
        num, den = (np.stack([p.pop(j) for j in range(j0, j1)]) for p in pending)
        out.corr[j0:j1] = raw_corr(num, den, out.energy[j0:j1], corr_size)
        done[0] = j1

    def pool(t: Any) -> Any:
        m = block_sum(t, k).mul_(1.0 / (fz * fy * fx))
        if m.shape[1:] != (ny, nx):
            m = F.interpolate(m[None], size=(ny, nx), mode="bilinear", align_corners=False)[0]
        return m.numpy()

    prev = None
    with torch.no_grad():
        for z0 in range(0, nz, slab):
            z1 = min(nz, z0 + slab)
            block = array[z0 * fz : z1 * fz]
            # x is only read below: a writable float32 block is used as it is, not copied
            if not (isinstance(block, np.ndarray) and block.dtype == np.float32 and block.flags.writeable):
                block = np.array(block, dtype=np.float32)
            x = torch.from_numpy(np.ascontiguousarray(block))
            if on_slab is not None:
                on_slab(z0 * fz, x.numpy())
            put(0, z0, z1, pool(x))
            if out.energy is None:
                continue
            r = kv_residual(x)
            del x
            if zpair:
                first = prev if prev is not None else r[min(1, len(r) - 1)]
                p = torch.cat([first[None], r[:-1]])
                prev = r[-1].clone()
                put(2, z0, z1, pool(p * r))
                put(3, z0, z1, pool(p.square_()))
                del p
            put(1, z0, z1, pool(r.square_()))
            del r
            if out.corr is not None:
                correlate()
    return out


def corr_size(spacing: tuple[float, ...]) -> tuple[int, int, int]:
    """The in-plane box (voxels) of :data:`ZCORR_BOX_MM` on a grid of ``spacing``, as a filter size."""
    return (1, *(max(1, round(ZCORR_BOX_MM / s)) for s in spacing[1:]))  # type: ignore[return-value]


def raw_corr(
    num: NDArray[np.float32], den: NDArray[np.float32], energy: NDArray[Any], size: tuple[int, int, int]
) -> NDArray[np.float32]:
    """The raw inter-slice correlation of the noise residual from :func:`grid_means`' moments on the model
    grid: ``c = E[r_k r_p] / sqrt(E[r_k^2] E[r_p^2] + eps)`` with the moments summed over a
    :data:`ZCORR_BOX_MM` in-plane box (:func:`corr_size`), i.e.
    ``box(num) / sqrt(box(energy) box(den) + eps^2)``, boxes of ``size`` slice by slice, computed in
    ``num`` and ``den`` (float32 moments ``E[r_k r_p]`` and ``E[r_p^2]``, both overwritten; ``num`` is
    returned). Slices are independent, so any run of slices gives the same values as the whole."""
    from scipy import ndimage

    from medforensics._threads import per_slice

    def box(a: NDArray[np.float32]) -> None:  # in-plane box sums, in place (each line is read, then written)
        ndimage.uniform_filter(a, size, output=a, mode="nearest")

    def denominator(e: NDArray[Any], d: NDArray[np.float32]) -> None:  # one slab: d = sqrt(box(e) box(d))
        box(d)
        for z in range(0, len(d), 16):  # box(e) a few slices at a time: no temporary the size of the slab
            part = np.asarray(e[z : z + 16], np.float32)
            d[z : z + 16] *= ndimage.uniform_filter(part, size, mode="nearest")
        np.maximum(d, 0.0, out=d)
        d += ZCORR_EPS**2
        np.sqrt(d, out=d)

    def numerator(_: NDArray[Any], n: NDArray[np.float32]) -> None:
        box(n)

    per_slice(denominator, energy, den)  # slabs of slices on all threads
    per_slice(numerator, num, num)
    num /= den
    return num


def corr_channel(c: NDArray[np.float32], hu: NDArray[Any]) -> tuple[NDArray[np.float32], float]:
    """The inter-slice correlation channel from :func:`raw_corr` ``c``, in place, and the reference it is
    relative to: the series' median correlation over aerated lung (``hu`` on the same grid; scanners
    measured here 0.24-0.37; noise added to the whole series after reconstruction, or thick slices that do
    not overlap, bring it near 0). The channel is ``c`` minus that median (scanners differ in how correlated
    their slices are), scaled by :data:`ZCORR_SCALE` and clipped to +-2."""
    lung = (hu > LUNG_HU[0]) & (hu < LUNG_HU[1])
    ref = float(np.median(c[lung])) if lung.sum() >= 64 else float(np.median(c))
    del lung
    c -= ref
    c /= ZCORR_SCALE
    np.clip(c, -2.0, 2.0, out=c)
    return c, ref


def normalised_log_energy(energy: NDArray[Any], hu: NDArray[Any], copy: bool = True) -> NDArray[np.float32]:
    """``log`` energy relative to its median over aerated lung (``hu`` on the same grid), scaled and clipped.

    Normalising per series removes the scanner's dose and kernel level; what is left is where the noise is
    unlike the rest of that series' lung. ``copy=False`` overwrites a float32 ``energy`` (a long series'
    map is then not held twice).
    """
    out = (
        np.log1p(energy, out=energy)
        if not copy and energy.dtype == np.float32
        else np.log1p(energy, dtype=np.float32)
    )
    lung = (hu > LUNG_HU[0]) & (hu < LUNG_HU[1])
    ref = float(np.median(out[lung])) if lung.sum() >= 64 else float(np.median(out))
    del lung
    out -= ref
    out /= LOG_SCALE
    np.clip(out, -LOG_CLIP, LOG_CLIP, out=out)
    return out
