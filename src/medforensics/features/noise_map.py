"""Local noise energy of a CT at full resolution, block-averaged onto a coarser grid.

Edits leave their trace in the noise, not in the anatomy: an in-painted region is smoother than the
scanner's noise, a pasted one carries two noise fields, a generated one another texture. The coarse grid a
3-D network can afford (block means of 2 x 2 in-plane pixels and more) averages that noise away, so the
energy of the in-plane high-pass residual is measured *before* the block means and travels beside the
image as a second channel. The residual is the separable 3 x 3 "KV" kernel of the SRM family (second
differences along y and x: flat regions and linear ramps give zero, pixel noise of std s gives 1.5 s),
clipped so that anatomical edges do not swamp it.
"""

from __future__ import annotations

from collections.abc import Callable
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


def residual_energy(array: NDArray[Any], factors: tuple[int, ...], slab: int = 32) -> NDArray[np.float32]:
    """Block means (``factors``) of the squared, clipped in-plane KV residual of ``array`` (z, y, x)."""
    energy = grid_means(array, factors, slab, energy=True)[1]
    assert energy is not None
    return energy


def grid_means(
    array: NDArray[Any],
    factors: tuple[int, ...],
    slab: int = 32,
    energy: bool = False,
    on_slab: SlabCallback | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
    """Block means (``factors``, remainders dropped) of ``array`` and, with ``energy``, of its squared,
    clipped in-plane KV residual, in one pass.

    Computed ``slab`` coarse slices at a time with torch (multi-threaded, in place), so no full-size float
    copy of a long series exists. Fewer slices than the z factor give one coarse slice of all of them.
    ``on_slab(z0, block)`` sees each full-resolution float32 block (first slice ``z0``; read-only, not to
    be kept) as it passes: other per-slice statistics can share the one pass over a streamed series.
    """
    import torch
    import torch.nn.functional as F

    fz, fy, fx = factors
    nz = array.shape[0] // fz
    if nz == 0:
        fz, nz = array.shape[0], 1
    ny, nx = array.shape[1] // fy, array.shape[2] // fx
    means = np.empty((nz, max(ny, 1), max(nx, 1)), np.float32)
    out = np.empty_like(means) if energy else None
    k = (fz, fy, fx)
    with torch.no_grad():
        for z0 in range(0, nz, slab):
            z1 = min(nz, z0 + slab)
            x = torch.from_numpy(np.array(array[z0 * fz : z1 * fz], dtype=np.float32))
            if on_slab is not None:
                on_slab(z0 * fz, x.numpy())
            means[z0:z1] = F.avg_pool3d(x[None, None], k, stride=k)[0, 0].numpy()
            if out is None:
                continue
            d = x[:, :, :-2] - 2.0 * x[:, :, 1:-1] + x[:, :, 2:]  # second difference along x
            r = d[:, :-2] - 2.0 * d[:, 1:-1] + d[:, 2:]  # ... then along y
            del x, d
            r.mul_(0.25).clamp_(-RESIDUAL_CLIP_HU, RESIDUAL_CLIP_HU).square_()
            e = F.pad(r[None], (1, 1, 1, 1), mode="replicate")  # back to the input's in-plane size
            del r
            out[z0:z1] = F.avg_pool3d(e[None], k, stride=k)[0, 0].numpy()
    return means, out


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
