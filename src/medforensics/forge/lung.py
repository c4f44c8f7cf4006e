"""Lung mask, nodule size measurement and automatic choice of an attack centre.

Works on thin slabs (11-16 slices) and whole chest CTs: only the in-plane borders count as "outside" (a
slab's first and last slices cut through the lungs), and large slices are downsampled in-plane first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics._threads import per_slice, thread_map
from medforensics.errors import ConfigError, InputError
from medforensics.io.volume import Volume

#: HU below which a voxel counts as air or aerated lung.
LUNG_HU = -400.0
#: A part of the air touching the image border is outside air when its mean or median HU is below this (air
#: reads about -1000; aerated lung, emphysematous or not, well above: about -900 to -700). The median: on an
#: abdominal CT resampled to 3 mm the outside air, couch and blanket included, averaged -944 to -959 HU
#: (median -987 to -995) and was taken for lung cut open by the field of view (session 18).
OUTSIDE_AIR_HU = -950.0
#: HU above which a voxel counts as solid (nodule, vessel, wall) when sizing a nodule: about halfway between
#: aerated lung (-850) and soft tissue (+40), so a blurred edge is cut near its middle.
SOLID_HU = -400.0
#: Sizing a nodule: how far (mm) from the centre it may reach (a 30 mm nodule and a click 5 mm off centre),
#: the disc (mm) whose closing of the aerated lung puts a nodule on the pleura back inside it (nodules up to
#: 30 mm across), the disc (mm) whose opening cuts vessels up to 4 mm thick off it, how far (mm) from the
#: centre its nearest solid voxel may be, and the smallest diameter (mm) taken for a nodule (LIDC's 3 mm).
NODULE_REACH_MM, NODULE_CLOSE_MM, NODULE_OPEN_MM, NODULE_SEED_MM, NODULE_MIN_MM = 20.0, 15.0, 2.0, 3.0, 3.0
#: HU above which a pixel of a CT slice is solid enough to be the patient (fat reads about -100, the air
#: around and aerated lung -1000 to -700): :func:`body_mask`.
BODY_HU = -500.0
#: A part of a slice below :data:`BODY_HU` that reaches the image's border is the air around the patient,
#: unless its border pixels' median reads over this (aerated lung cut open by a crop): :func:`body_mask`.
CUT_LUNG_HU = -900.0


#: 3-D structure connecting in-plane neighbours only (a slice-by-slice labelling in one call).
_IN_PLANE = np.zeros((3, 3, 3), bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def _touches_border(labels: NDArray[Any], n: int) -> NDArray[np.bool_]:
    """Lookup (index: label) of the parts of a slice-wise labelling that reach an in-plane border."""
    edge = np.concatenate(
        [labels[:, 0, :].ravel(), labels[:, -1, :].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]
    )
    out = np.zeros(n + 1, bool)
    out[edge] = True
    out[0] = False
    return out


#: Slices labelled at once by the in-plane steps of :func:`_lung_mask`.
_CHUNK = 16


def _drop_outside(air: NDArray[np.bool_], hu: NDArray[Any], cut_lung: bool) -> int:
    """Clear (in place) the in-plane parts of ``air`` that reach the image border and are outside air
    (with ``cut_lung``: only those whose mean HU is air's, not aerated lung's); returns the voxel count of
    the lung-like border parts."""
    flat, n_flat = ndimage.label(air, structure=_IN_PLANE)
    outside = _touches_border(flat, n_flat)
    edge = np.flatnonzero(outside)
    cut_voxels = 0
    if len(edge):
        # statistics over the border parts' voxels alone (the same sums and medians: the per-label work of
        # ndimage sorts or bins every voxel it is given)
        sel = outside[flat]
        sub_hu, sub_flat = hu[sel], flat[sel]
        lung_like = edge[np.asarray(ndimage.mean(sub_hu, sub_flat, index=edge), np.float64) > OUTSIDE_AIR_HU]
        if len(lung_like):  # its median too: a couch or blanket lifts the mean of outside air, not its median
            keep = np.isin(sub_flat, lung_like)
            med = ndimage.median(sub_hu[keep], sub_flat[keep], index=lung_like)
            lung_like = lung_like[np.asarray(med) > OUTSIDE_AIR_HU]
        del sel, sub_hu, sub_flat
        if len(lung_like):  # none on a whole chest CT: no extra pass over the label image there
            cut_voxels = int(np.bincount(flat.ravel(), minlength=n_flat + 1)[lung_like].sum())
            if cut_lung:
                outside[lung_like] = False
    air &= ~outside[flat]
    return cut_voxels


def _disc(radius: int) -> NDArray[np.bool_]:
    """A flat disc of ``radius`` voxels as a 3-D structure (1, 2r+1, 2r+1): in-plane morphology, slice by
    slice."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return ((yy**2 + xx**2) <= radius**2)[None]


def body_mask(img: NDArray[Any]) -> NDArray[np.bool_]:
    """The patient's body on one CT slice (y, x; HU): the largest connected part above :data:`BODY_HU`,
    with what it encloses (lungs, airways) filled in. The couch and a head holder, separate parts, and the
    air around are left out. A part of the rest that reaches the border but reads as aerated lung there, not
    air (the median of its border pixels over :data:`CUT_LUNG_HU`), is lung that a crop cut open: body."""
    hu = np.asarray(img)
    labels, n = ndimage.label(hu > BODY_HU)
    if n:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        rest, m = ndimage.label(labels != sizes.argmax())  # holes: parts of the rest not reaching the border
    else:
        rest, m = np.ones(hu.shape, np.int32), 1
    on_border = np.r_[rest[0], rest[-1], rest[:, 0], rest[:, -1]]
    border_hu = np.r_[hu[0], hu[-1], hu[:, 0], hu[:, -1]]
    outside = np.zeros(m + 1, bool)
    for p in np.unique(on_border[on_border > 0]):
        outside[p] = float(np.median(border_hu[on_border == p])) <= CUT_LUNG_HU
    return np.asarray(~outside[rest])  # as binary_fill_holes, in half its time


def _factor(spacing_yx: float, target_mm: float = 1.4) -> int:
    return max(1, int(target_mm // max(spacing_yx, 1e-3)))


def lung_mask(
    volume: Volume | NDArray[Any], spacing: tuple[float, float, float] | None = None
) -> NDArray[np.bool_]:
    """Bool (z, y, x) mask of the lungs: HU < -400, minus outside air, two largest parts, holes filled.

    When the border parts whose mean HU is that of aerated lung rather than air (``OUTSIDE_AIR_HU``) outweigh
    what is found that way (a crop or a narrow field of view cuts the lungs open, so they reach the image
    border too), the mask is made again keeping those parts. A whole chest CT has none: nothing changes.
    """
    arr = volume.array if isinstance(volume, Volume) else np.asarray(volume, dtype=np.float32)
    sp = volume.spacing if isinstance(volume, Volume) else (spacing or (1.0, 1.0, 1.0))
    if arr.ndim == 2:
        arr = arr[None]
    mask, cut_voxels = _lung_mask(arr, sp, cut_lung=False)
    if cut_voxels > int(mask.sum()):
        mask = _lung_mask(arr, sp, cut_lung=True)[0]
    return mask


def _lung_mask(
    arr: NDArray[Any], sp: tuple[float, float, float], cut_lung: bool
) -> tuple[NDArray[np.bool_], int]:
    """The mask and the number of (full-resolution) voxels in lung-like parts that reach the border."""
    f = _factor(min(sp[1], sp[2]))
    small = arr[:, ::f, ::f]
    air = small < LUNG_HU
    # outside air, slice by slice: 2-D parts touching the in-plane border (a lung cut by the field of view in
    # one slice is lost there only, not in every slice); with ``cut_lung`` only those whose mean is air, not
    # aerated lung (a crop or a narrow field of view cuts the lung open, so it touches the border too).
    # In-plane parts do not cross slices: done a few slices at a time, so the label image stays small.
    # disjoint slabs (views), cleared in place, one per thread
    parts = [(air[z0 : z0 + _CHUNK], small[z0 : z0 + _CHUNK]) for z0 in range(0, air.shape[0], _CHUNK)]
    cut_voxels = sum(thread_map(lambda p: _drop_outside(p[0], p[1], cut_lung), parts)) * f * f
    del parts
    # labelled on the box around what is left (the lungs, airways, bowel gas), in 16 bits when the parts
    # fit: the int32 labels of a whole 600-slice model grid are 300 MB
    found = ndimage.find_objects(air.view(np.uint8))  # the bool mask read as 0/1 bytes: no copy
    if not found or found[0] is None:
        return np.zeros(arr.shape, bool), cut_voxels
    air_box = found[0]
    try:
        labels, n = ndimage.label(air[air_box], output=np.uint16)
    except RuntimeError:  # scipy: "insufficient bit-depth" (more than 65535 parts)
        labels, n = ndimage.label(air[air_box])
    flat = labels.ravel()  # counted in chunks: bincount of the whole would copy it to int64
    step = 1 << 22
    sizes = np.zeros(n + 1, np.int64)
    for i in range(0, flat.size, step):
        sizes += np.bincount(flat[i : i + step], minlength=n + 1)
    del flat
    sizes[0] = 0
    voxel_ml = sp[0] * sp[1] * sp[2] * f * f / 1000.0
    order = np.argsort(sizes)[::-1][:2]
    keep = [
        int(i)
        for i in order
        if sizes[i] > 0 and sizes[i] * voxel_ml >= max(2.0, 0.1 * sizes[order[0]] * voxel_ml)
    ]
    lut = np.zeros(n + 1, bool)
    lut[keep] = True
    del air
    mask: NDArray[np.bool_] = np.zeros(small.shape, bool)
    mask[air_box] = lut[labels]
    del labels
    if not mask.any():
        return np.zeros(arr.shape, bool), cut_voxels
    # close small gaps and fill vessels/nodules inside the lung, slice by slice (slabs are thin in z): a flat
    # disc as the 3-D structure, on the box around the mask (what lies outside it cannot change)
    radius = max(1, round(3.0 / (sp[1] * f)))
    disc = _disc(radius)
    rows, cols = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
    box = (
        slice(None),
        slice(max(0, rows[0] - radius - 1), rows[-1] + radius + 2),
        slice(max(0, cols[0] - radius - 1), cols[-1] + radius + 2),
    )
    src = mask[box]
    sub = per_slice(
        lambda m, d: ndimage.binary_closing(m, structure=disc, border_value=0, output=d),
        src,
        np.empty(src.shape, bool),
    )

    def fill_holes(z0: int) -> None:  # background not reaching the box's border, in place
        part = sub[z0 : z0 + _CHUNK]
        bg, n_bg = ndimage.label(~part, structure=_IN_PLANE)
        holes = ~_touches_border(bg, n_bg)
        holes[0] = False
        part |= holes[bg]

    thread_map(fill_holes, range(0, sub.shape[0], _CHUNK))
    mask[box] = sub
    if f > 1:
        mask = np.repeat(np.repeat(mask, f, axis=1), f, axis=2)[:, : arr.shape[1], : arr.shape[2]]
        if mask.shape != arr.shape:  # pad when the shape was not a multiple of f
            full = np.zeros(arr.shape, bool)
            full[:, : mask.shape[1], : mask.shape[2]] = mask
            mask = full
    return mask, cut_voxels


def fill_indentations(
    mask: NDArray[np.bool_], spacing: tuple[float, float, float], radius_mm: float
) -> NDArray[np.bool_]:
    """``mask`` plus the indentations a disc of ``radius_mm`` rolled along it cannot enter, slice by slice
    (a morphological closing, the "rolling ball" of lung CAD): a nodule attached to the pleura or the
    mediastinum dents the lung mask and is put back inside. Computed at half the in-plane resolution when
    the disc is large enough (a search region, not an outline)."""
    found = ndimage.find_objects(mask.astype(np.uint8))
    if not found:
        return mask.copy()
    f = 2 if radius_mm >= 6 * max(spacing[1], spacing[2]) else 1
    box = (slice(None), *found[0][1:])  # the closing cannot reach beyond the mask's in-plane box
    small = mask[box][:, ::f, ::f]
    r = max(1, round(radius_mm / (max(spacing[1], spacing[2]) * f)))
    disc = _disc(r)

    def close(m: NDArray[np.bool_], dst: NDArray[np.bool_]) -> None:  # padded: the border does not close
        padded = ndimage.binary_closing(np.pad(m, ((0, 0), (r + 1, r + 1), (r + 1, r + 1))), structure=disc)
        dst[...] = padded[:, r + 1 : -(r + 1), r + 1 : -(r + 1)]

    closed = per_slice(close, small, np.empty(small.shape, bool))
    out = mask.copy()
    sub = out[box]
    if f > 1:
        closed = np.repeat(np.repeat(closed, f, axis=1), f, axis=2)[:, : sub.shape[1], : sub.shape[2]]
    sub |= closed
    return out


#: Along z an attack region may be cut by the first/last slice (thin slabs): only this share of its radius
#: must fit inside the volume there.
Z_FRACTION = 0.5
#: ... and at most this many slices (LIDC slabs have 11-16 slices, nodules near their ends).
Z_MAX_SLICES = 2


def margin_voxels(volume: Volume, radius_mm: float, z_fraction: float = Z_FRACTION) -> tuple[int, int, int]:
    """Voxels per axis needed between a centre and the border for a sphere of ``radius_mm``.

    In-plane the whole radius; along z only ``z_fraction`` of it and at most ``Z_MAX_SLICES`` slices (thin
    slabs: the edited region may be cut by the slab's first/last slice, as the cube is mirrored there).
    """
    sz, sy, sx = volume.spacing
    return (
        min(int(np.ceil(z_fraction * radius_mm / sz - 1e-6)), Z_MAX_SLICES, (volume.shape[0] - 1) // 2),
        int(np.ceil(radius_mm / sy - 1e-6)),
        int(np.ceil(radius_mm / sx - 1e-6)),
    )


def check_center(volume: Volume, center: tuple[int, int, int], radius_mm: float) -> tuple[int, int, int]:
    """Validate ``center`` (z, y, x): inside, ``radius_mm`` from the borders (z: :func:`margin_voxels`)."""
    if len(center) != 3:
        raise ConfigError(f"centre must be three integers z,y,x, got {center!r}")
    c = tuple(round(float(v)) for v in center)
    names = ("z", "y", "x")
    for ax in range(3):
        if not 0 <= c[ax] < volume.shape[ax]:
            raise InputError(
                f"centre {c} is outside the volume of shape {volume.shape} (axis {names[ax]})",
                path=volume.source,
            )
    need = margin_voxels(volume, radius_mm)
    for ax in range(3):
        if volume.shape[ax] == 1:
            raise InputError("volume has a single slice; CT attacks need a 3-D volume", path=volume.source)
        lo, hi = c[ax], volume.shape[ax] - 1 - c[ax]
        if min(lo, hi) < need[ax]:
            mm = need[ax] * volume.spacing[ax]
            raise InputError(
                f"centre {c} is too close to the border along axis {names[ax]}: needs {need[ax]} voxels "
                f"({mm:.1f} mm) on each side, has {min(lo, hi)}",
                path=volume.source,
            )
    return c  # type: ignore[return-value]


def _closed_in_plane(
    mask: NDArray[np.bool_], spacing: tuple[float, float, float], radius_mm: float
) -> NDArray[np.bool_]:
    """``mask`` closed slice by slice with a disc of ``radius_mm``, exactly (two distance transforms, full
    resolution, unlike :func:`fill_indentations`); beyond the array counts as outside the mask."""
    pad = int(np.ceil(radius_mm / min(spacing[1], spacing[2]))) + 1
    m = np.pad(mask, ((0, 0), (pad, pad), (pad, pad)))
    in_plane = (1e6 * max(spacing), spacing[1], spacing[2])  # no distance across slices
    grown = ndimage.distance_transform_edt(~m, sampling=in_plane) <= radius_mm
    closed = ndimage.distance_transform_edt(grown, sampling=in_plane) > radius_mm
    return closed[:, pad:-pad, pad:-pad] | mask


def measure_nodule_mm(volume: Volume, center: tuple[int, int, int], max_mm: float = 30.0) -> float | None:
    """Equivalent-sphere diameter (mm, at most ``max_mm``) of the solid nodule at ``center``, or None when
    nothing solid of :data:`NODULE_MIN_MM` or more is there (a ground-glass nodule, a vessel, aerated lung).

    The solid part (> :data:`SOLID_HU` after a 0.5 mm in-plane blur) within :data:`NODULE_REACH_MM` of the
    centre, on the lung's side: the chest wall and mediastinum are cut off by keeping only what the in-plane
    closing of the aerated lung (:data:`NODULE_CLOSE_MM`) covers, so a nodule on the pleura stays and the
    wall goes. The part connected to the centre (or to the nearest solid voxel within
    :data:`NODULE_SEED_MM`) after an in-plane opening (:data:`NODULE_OPEN_MM`, cuts attached vessels),
    regrown by the opening's radius within the solid part (its own rim back), gives the volume.
    """
    sp = np.asarray(volume.spacing, dtype=np.float64)
    half = [int(np.ceil(NODULE_REACH_MM / s)) for s in sp]
    box = tuple(
        slice(max(0, c - h), min(n, c + h + 1)) for c, h, n in zip(center, half, volume.shape, strict=True)
    )
    sub = ndimage.gaussian_filter(np.asarray(volume.array[box], np.float32), (0.0, 0.5 / sp[1], 0.5 / sp[2]))
    grid = np.ogrid[tuple(slice(0, n) for n in sub.shape)]
    dist = np.sqrt(
        sum(((g - (c - b.start)) * s) ** 2 for g, c, b, s in zip(grid, center, box, sp, strict=True))
    )
    solid = sub > SOLID_HU
    cand = solid & _closed_in_plane(~solid, volume.spacing, NODULE_CLOSE_MM) & (dist <= NODULE_REACH_MM)
    near = cand & (dist <= NODULE_SEED_MM)
    if not near.any():
        return None
    seed = tuple(int(v) for v in np.argwhere(near)[int(np.argmin(dist[near]))])
    r = max(1, round(NODULE_OPEN_MM / min(sp[1], sp[2])))
    disc = _disc(r)
    opened = ndimage.binary_opening(cand, structure=disc)
    labels, _ = ndimage.label(opened if opened[seed] else cand)
    comp = labels == labels[seed]
    if opened[seed]:  # the rim the opening took (and the caps of the top and bottom slices) back
        comp = ndimage.binary_dilation(comp, structure=np.concatenate([disc] * 3)) & cand
    d = float((6.0 * float(comp.sum()) * float(np.prod(sp)) / np.pi) ** (1.0 / 3.0))
    return None if d < NODULE_MIN_MM else min(d, max_mm)


def _nodule_centers(volume: Volume) -> list[tuple[int, int, int]]:
    """Integer (z, y, x) centres of annotated nodules in ``volume.metadata['nodules']`` (Nodule or dict)."""
    out = []
    for n in volume.metadata.get("nodules", []) or []:
        c = n.get("center_voxel") if isinstance(n, dict) else getattr(n, "center_voxel", None)
        if c is not None:
            out.append(tuple(round(float(v)) for v in c))
    return out  # type: ignore[return-value]


def inject_candidates(volume: Volume, mask: NDArray[np.bool_], radius_mm: float) -> NDArray[np.intp]:
    """Flat indices (C order) of the lung voxels of ``mask`` at least ``radius_mm`` from the array borders:
    where :func:`choose_center` draws an injection's centre (computed once, passed to many draws)."""
    need = margin_voxels(volume, radius_mm)
    inner = np.zeros_like(mask)
    core = tuple(slice(n, max(n, s - n)) for n, s in zip(need, volume.shape, strict=True))
    inner[core] = mask[core]
    return np.flatnonzero(inner)


def choose_center(
    volume: Volume,
    rng: np.random.Generator,
    kind: str,
    cube_mm: float = 32.0,
    radius_mm: float | None = None,
    mask: NDArray[np.bool_] | None = None,
    tries: int = 400,
    candidates: NDArray[np.intp] | None = None,
) -> tuple[int, int, int]:
    """A (z, y, x) centre for an attack.

    ``inject``: a random point inside the lung, ``radius_mm`` (default a quarter cube: the in-painted
    region) from the array borders and at least 5 mm inside the lung, on aerated parenchyma (no vessel or
    nodule there). ``remove``: a random annotated nodule from ``volume.metadata['nodules']``; without
    annotations there is nothing to remove, which raises :class:`ConfigError`. ``candidates``: this
    volume's :func:`inject_candidates` for ``mask`` and the radius, when the caller draws many centres.
    """
    radius = cube_mm / 4.0 if radius_mm is None else radius_mm
    if kind == "remove":
        centres = [
            c for c in _nodule_centers(volume) if volume.contains_index(c, margin_voxels(volume, radius))
        ]
        if not centres:
            raise ConfigError(
                "automatic centre for removal needs nodule annotations (none usable in this volume); "
                "give --center z,y,x",
                path=volume.source,
            )
        return centres[int(rng.integers(len(centres)))]
    if kind != "inject":
        raise ConfigError(f"choose_center: kind must be 'inject' or 'remove', got {kind!r}")
    lm = lung_mask(volume) if mask is None else mask
    cand = inject_candidates(volume, lm, radius) if candidates is None else candidates
    if len(cand) == 0:
        raise InputError(
            f"no lung found at least {radius:.0f} mm from the borders to place a {cube_mm:.0f} mm cube",
            path=volume.source,
        )
    smooth_sigma = [2.0 / s for s in volume.spacing]
    best: tuple[float, tuple[int, int, int]] | None = None
    rz, ry, rx = margin_voxels(volume, 4.0, 1.0)
    dz, dy, dx = margin_voxels(volume, 5.0, 1.0)
    for _ in range(tries):
        c = tuple(int(v) for v in np.unravel_index(cand[int(rng.integers(len(cand)))], lm.shape))
        box = lm[max(0, c[0] - dz) : c[0] + dz + 1, c[1] - dy : c[1] + dy + 1, c[2] - dx : c[2] + dx + 1]
        inside = float(box.mean())
        win = volume.array[c[0] - rz : c[0] + rz + 1, c[1] - ry : c[1] + ry + 1, c[2] - rx : c[2] + rx + 1]
        local = float(ndimage.gaussian_filter(win, smooth_sigma, mode="nearest")[rz, ry, rx])
        solid = float((win > -300).mean())
        score = solid + max(0.0, local + 700.0) / 1000.0 + (1.0 - inside)
        if best is None or score < best[0]:
            best = (score, c)  # type: ignore[assignment]
        if solid < 0.02 and local < -700 and inside > 0.98:
            return c  # type: ignore[return-value]
    assert best is not None
    return best[1]
