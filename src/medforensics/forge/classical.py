"""Classical CT attacks: parametric ``blob-inject``, ``copy-move`` of a real nodule, ``inpaint-remove`` and
``clone-remove``."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics.errors import ConfigError
from medforensics.forge import cubes as C
from medforensics.forge.base import (
    AttackRecord,
    NoiseMatched,
    check_modality,
    finish,
    pose_params,
    register_attack,
)
from medforensics.forge.lung import check_center, choose_center
from medforensics.io.volume import Volume


def _unit_dirs(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def blob_nodule(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    center: tuple[float, float, float],
    diameter_mm: float,
    rng: np.random.Generator,
    lobulation: float = 0.12,
    spicules: int = 4,
    core_hu: float = 30.0,
    edge_mm: float = 0.6,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Opacity (0..1) and HU of a synthetic lobulated, spiculated nodule on a grid of ``shape``/``spacing``.

    Radius varies with direction (sum of random lobes), thin spicules radiate out, the edge is a partial
    volume ramp of ``edge_mm``; the HU inside is ``core_hu`` with smooth internal texture.
    """
    axes = [(np.arange(n) - c) * s for n, c, s in zip(shape, center, spacing, strict=True)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    r = np.sqrt(zz**2 + yy**2 + xx**2) + 1e-6
    u = np.stack([zz / r, yy / r, xx / r])
    r0 = diameter_mm / 2.0
    rad = np.full(r.shape, r0)
    for d in _unit_dirs(rng, 5):
        cosang = np.tensordot(d, u, axes=1)
        rad += (
            r0
            * lobulation
            * rng.uniform(0.3, 1.0)
            * np.cos(rng.integers(2, 5) * np.arccos(np.clip(cosang, -1, 1)))
        )
    for d in _unit_dirs(rng, spicules):
        cosang = np.clip(np.tensordot(d, u, axes=1), -1, 1)
        width = rng.uniform(0.05, 0.1)
        rad += r0 * rng.uniform(0.4, 1.0) * np.exp(-((1 - cosang) / (width**2)))
    alpha = 1.0 / (1.0 + np.exp(-(rad - r) / max(edge_mm, 1e-3)))
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), [1.2 / s for s in spacing])
    texture /= max(float(texture.std()), 1e-6)
    hu = core_hu + 25.0 * texture - 60.0 * np.clip(r / (r0 + 1e-6), 0, 1) ** 2
    return alpha.astype(np.float32), hu.astype(np.float32)


def _box(volume: Volume, center: tuple[int, int, int], radius_mm: float) -> tuple[slice, slice, slice]:
    out = []
    for c, s, n in zip(center, volume.spacing, volume.shape, strict=True):
        h = int(np.ceil(radius_mm / s)) + 1
        out.append(slice(max(0, c - h), min(n, c + h + 1)))
    return out[0], out[1], out[2]


class _Classical:
    name = ""
    kind = ""
    modalities: tuple[str, ...] = ("CT",)

    def _center(
        self, volume: Volume, rng: np.random.Generator, center: Any, radius: float
    ) -> tuple[int, int, int]:
        check_modality(self, volume)  # type: ignore[arg-type]
        if center is None:
            center = choose_center(volume, rng, self.kind, radius_mm=radius)
        return check_center(volume, center, min(radius, 6.0))


@register_attack("blob-inject")
class BlobInject(NoiseMatched, _Classical):
    """Parametric nodule: lobulated, spiculated, solid HU core, partial-volume edge, noise matched."""

    kind = "inject"

    def sample_params(
        self, volume: Volume, rng: np.random.Generator, center: tuple[int, int, int] | None = None
    ) -> dict[str, Any]:
        c = self._center(volume, rng, center, 12.0)
        return {
            "center": list(c),
            "diameter_mm": round(float(rng.uniform(6.0, 20.0)), 2),
            "lobulation": round(float(rng.uniform(0.03, 0.2)), 3),
            "spicules": int(rng.integers(0, 7)),
            "core_hu": round(float(rng.uniform(-40.0, 60.0)), 1),
            "edge_mm": round(float(rng.uniform(0.4, 0.9)), 2),
            "shape_seed": int(rng.integers(2**31)),
            "noise_scale": round(float(rng.uniform(0.9, 1.1)), 3),
            "noise_core": "interior",
            **self.noise_params(),
        }

    def blob(
        self, volume: Volume, params: dict[str, Any]
    ) -> tuple[tuple[slice, ...], tuple[int, int, int], np.ndarray, np.ndarray]:
        """(box, centre, opacity ``alpha``, HU) of the blob ``params`` describe in ``volume``."""
        d = float(params["diameter_mm"])
        center = check_center(volume, tuple(params["center"]), min(d / 2 + 1, 6.0))
        sl = _box(volume, center, d * 1.1)
        local_c = (
            float(center[0] - sl[0].start),
            float(center[1] - sl[1].start),
            float(center[2] - sl[2].start),
        )
        shape = (sl[0].stop - sl[0].start, sl[1].stop - sl[1].start, sl[2].stop - sl[2].start)
        alpha, hu = blob_nodule(
            shape,
            volume.spacing,
            local_c,
            d,
            np.random.default_rng(int(params["shape_seed"])),
            float(params["lobulation"]),
            int(params["spicules"]),
            float(params["core_hu"]),
            float(params["edge_mm"]),
        )
        alpha[alpha < 0.01] = 0.0
        return sl, center, alpha, hu

    def apply(
        self, volume: Volume, params: dict[str, Any], seed: int = 0
    ) -> tuple[Volume, np.ndarray, AttackRecord]:
        """Paste the blob; its present noise is measured in its interior (``noise_core``; recorded parameters
        without it measure it over ``alpha > 0.5``, edge included, as before session 42)."""
        check_modality(self, volume)
        sl, center, alpha, hu = self.blob(volume, params)
        new = volume.array.copy()
        new[sl] = (1 - alpha) * new[sl] + alpha * hu
        core = blob_interior(alpha) if params.get("noise_core") == "interior" else None
        self.touch_up(volume.array, new, sl, alpha, seed, params, core)
        return finish(self, volume, new, params, seed, center)


def blob_interior(
    alpha: NDArray[Any], solid_at: float = 0.9, margin: int = 2, least: int = 32
) -> NDArray[np.bool_] | None:
    """The blob's solid part (``alpha >= solid_at``) eroded in-plane by up to ``margin`` voxels while at
    least ``least`` voxels remain: where its noise is measured without its edge, which the high-pass residual
    reads as noise. None when even the solid part is smaller."""
    solid = alpha >= solid_at
    if solid.sum() < least:
        return None
    plane = np.zeros((1, 3, 3), bool)
    plane[0] = ndimage.generate_binary_structure(2, 1)
    for _ in range(margin):
        inner = ndimage.binary_erosion(solid, plane)
        if inner.sum() < least:
            break
        solid = inner
    return solid


def _nodule_list(volume: Volume) -> list[tuple[tuple[int, int, int], float | None]]:
    out = []
    for n in volume.metadata.get("nodules", []) or []:
        c = n.get("center_voxel") if isinstance(n, dict) else getattr(n, "center_voxel", None)
        dm = n.get("diameter_mm") if isinstance(n, dict) else getattr(n, "diameter_mm", None)
        if c is not None:
            out.append((tuple(round(float(v)) for v in c), None if dm is None else float(dm)))
    return out  # type: ignore[return-value]


#: Largest donor nodule (mm) copy-move takes.
MAX_COPY_MM = 24.0


@register_attack("copy-move")
class CopyMove(NoiseMatched, _Classical):
    """Copy a real nodule (segmented, alpha-blended, background-levelled, noise matched) to a new place.

    The donor is ``donor`` (a Volume) with ``donor_centers`` (z, y, x) given by the caller, or, by default,
    the attacked volume itself with its annotated nodules (``volume.metadata['nodules']``). A donor
    centre's size is the donor's annotation there (its ``metadata['nodules']``), else measured, else a
    10 mm guess with a warning (``params.diameter_from`` says which).
    """

    kind = "inject"

    def __init__(
        self,
        donor: Volume | None = None,
        donor_centers: list[tuple[int, int, int]] | None = None,
        noise_plane: str = "slice",
        noise_z: str = "independent",
    ) -> None:
        super().__init__(noise_plane, noise_z)
        self.donor = donor
        self.donor_centers = [tuple(int(v) for v in c) for c in donor_centers] if donor_centers else None

    def _donors(self, volume: Volume) -> tuple[Volume, list[tuple[tuple[int, int, int], float | None]]]:
        src = self.donor if self.donor is not None else volume
        cands = [(c, None) for c in self.donor_centers] if self.donor_centers else _nodule_list(src)
        if not cands:
            raise ConfigError(
                "copy-move needs a donor nodule: annotations in the volume or donor + donor_centers",
                path=volume.source,
            )
        return src, cands  # type: ignore[return-value]

    def sample_params(
        self, volume: Volume, rng: np.random.Generator, center: tuple[int, int, int] | None = None
    ) -> dict[str, Any]:
        from medforensics.forge.ctgan.attack import nodule_diameter

        src, cands = self._donors(volume)
        i = int(rng.integers(len(cands)))
        dc, dm = cands[i]
        # a donor centre without a size: the donor's annotation there, else measured, else a 10 mm guess
        dm, origin = (
            (min(dm, MAX_COPY_MM), "annotation") if dm else nodule_diameter(src, dc, self.name, MAX_COPY_MM)
        )
        c = self._center(volume, rng, center, dm / 2 + 4)
        return {
            "center": list(c),
            "donor_index": i,
            "donor_center": list(dc),
            "donor_series_uid": src.series_uid,
            "diameter_mm": round(float(dm), 2),
            "diameter_from": origin,
            **pose_params(rng),
            **self.noise_params(),
        }

    def apply(
        self, volume: Volume, params: dict[str, Any], seed: int = 0
    ) -> tuple[Volume, np.ndarray, AttackRecord]:
        check_modality(self, volume)
        src, _ = self._donors(volume)
        d = float(params["diameter_mm"])
        radius = d / 2 + 3.0
        center = check_center(volume, tuple(params["center"]), min(radius, 6.0))
        n = 2 * int(np.ceil(radius)) + 4
        donor, _ = C.extract_cube(src.array, src.spacing, tuple(params["donor_center"]), n)
        target, grid = C.extract_cube(volume.array, volume.spacing, center, n)
        k = int(params.get("rot90", 0)) % 4
        donor = np.rot90(donor, k, axes=(1, 2))
        donor = np.ascontiguousarray(donor[:, :, ::-1] if params.get("flip") else donor)
        # opacity: the solid part of the donor that is connected to its centre, softened, inside the sphere
        solid = donor > -600
        lab, _ = ndimage.label(solid)
        mid = n // 2
        core = lab == lab[mid, mid, mid] if lab[mid, mid, mid] else solid
        alpha = ndimage.gaussian_filter(core.astype(np.float32), 0.8) * C.blend_weight(n, radius, ramp=2.0)
        ring = (C.distance_cube(n) > d / 2 + 1) & (donor < -500)
        bg_d = float(np.median(donor[ring])) if ring.any() else -850.0
        bg_t = (
            float(np.median(target[(C.distance_cube(n) > d / 2 + 1) & (target < -500)]))
            if (target < -500).any()
            else bg_d
        )
        levelled = donor + (bg_t - bg_d) * (1 - np.clip((donor + 500) / 500, 0, 1))
        new, sl, w = C.paste_region(volume.array, grid, levelled, alpha, radius)
        self.touch_up(volume.array, new, sl, w, seed, params)
        return finish(self, volume, new, params, seed, center)


def _hole(
    volume: Volume, params: dict[str, Any], pad_mm: float
) -> tuple[float, tuple[int, int, int], tuple[slice, slice, slice], NDArray[np.float64]]:
    """A removal's region: radius (the nodule's plus the margin, mm), checked centre, the box around it
    (``pad_mm`` wider) and each box voxel's distance (mm) from the centre."""
    radius = float(params["diameter_mm"]) / 2 + float(params["margin_mm"])
    center = check_center(volume, tuple(params["center"]), min(radius, 6.0))
    sl = _box(volume, center, radius + pad_mm)
    axes = [
        (np.arange(s.start, s.stop) - c) * sp for s, c, sp in zip(sl, center, volume.spacing, strict=True)
    ]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return radius, center, sl, np.sqrt(zz**2 + yy**2 + xx**2)


@register_attack("inpaint-remove")
class InpaintRemove(NoiseMatched, _Classical):
    """Remove the nodule at the centre: biharmonic in-painting slice by slice, then noise matching."""

    kind = "remove"

    def sample_params(
        self, volume: Volume, rng: np.random.Generator, center: tuple[int, int, int] | None = None
    ) -> dict[str, Any]:
        from medforensics.forge.ctgan.attack import nodule_diameter

        c = self._center(volume, rng, center, 8.0)
        d, origin = nodule_diameter(volume, c, self.name)
        return {
            "center": list(c),
            "diameter_mm": round(d, 2),
            "diameter_from": origin,
            "margin_mm": round(float(rng.uniform(2.0, 4.0)), 2),
            "noise_scale": round(float(rng.uniform(0.9, 1.1)), 3),
            **self.noise_params(),
        }

    def apply(
        self, volume: Volume, params: dict[str, Any], seed: int = 0
    ) -> tuple[Volume, np.ndarray, AttackRecord]:
        from skimage.restoration import inpaint_biharmonic

        check_modality(self, volume)
        radius, center, sl, dist = _hole(volume, params, 3.0)
        hole = dist <= radius
        sub = volume.array[sl].copy()
        for k in range(sub.shape[0]):
            if hole[k].any():
                sub[k] = inpaint_biharmonic(sub[k], hole[k])
        w = np.clip((radius + 1.0 - dist) / 2.0, 0, 1).astype(np.float32)
        new = volume.array.copy()
        new[sl] = (1 - w) * new[sl] + w * sub
        self.touch_up(volume.array, new, sl, w, seed, params)
        return finish(self, volume, new, params, seed, center)


def _donor_site(
    volume: Volume,
    rng: np.random.Generator,
    center: tuple[int, int, int],
    box: tuple[slice, slice, slice],
    radius_mm: float,
    tries: int = 80,
) -> tuple[int, int, int]:
    """A healthy-lung centre whose box (``box``'s offsets around ``center``) fits the volume, at least
    ``2 * radius_mm + 5`` mm from ``center``: the first of ``tries`` lung voxels whose sphere is >= 90 %
    aerated lung, else the most aerated one."""
    from medforensics.forge.lung import lung_mask

    lo = [c - s.start for c, s in zip(center, box, strict=True)]
    hi = [s.stop - c for c, s in zip(center, box, strict=True)]
    lm = lung_mask(volume)
    inner = np.zeros_like(lm)
    core = tuple(slice(a, max(a, n - b + 1)) for a, b, n in zip(lo, hi, volume.shape, strict=True))
    inner[core] = lm[core]
    sp = np.asarray(volume.spacing)
    cand = np.argwhere(inner)
    cand = cand[np.linalg.norm((cand - np.asarray(center)) * sp, axis=1) >= 2 * radius_mm + 5.0]
    if len(cand) == 0:
        raise ConfigError(
            f"clone-remove: no healthy lung {2 * radius_mm + 5:.0f} mm from the nodule to copy from",
            path=volume.source,
        )
    axes = [(np.arange(-a, b)) * s for a, b, s in zip(lo, hi, sp, strict=True)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    sphere = np.sqrt(zz**2 + yy**2 + xx**2) <= radius_mm
    best: tuple[float, tuple[int, int, int]] = (-1.0, tuple(int(v) for v in cand[0]))  # type: ignore[assignment]
    for _ in range(tries):
        d = tuple(int(v) for v in cand[int(rng.integers(len(cand)))])
        sl = tuple(slice(c - a, c + b) for c, a, b in zip(d, lo, hi, strict=True))
        aerated = float(((volume.array[sl] < -500) & lm[sl])[sphere].mean())
        if aerated > best[0]:
            best = (aerated, d)  # type: ignore[assignment]
        if aerated >= 0.9:
            break
    return best[1]


def _lung_side(volume: Volume, sl: tuple[slice, slice, slice], radius_mm: float) -> NDArray[np.float32]:
    """Soft (0..1) weight of the lung side of the pleura over ``sl``: the lung mask closed slice by slice
    with a disk of ``radius_mm`` (so a nodule against the chest wall counts as lung, the wall does not)."""
    from medforensics.forge.lung import lung_mask

    pad = [0] + [int(np.ceil(radius_mm / s)) + 1 for s in volume.spacing[1:]]
    big = tuple(
        slice(max(0, s.start - p), min(n, s.stop + p)) for s, p, n in zip(sl, pad, volume.shape, strict=True)
    )
    lm = lung_mask(volume)[big]
    ry, rx = (radius_mm / s for s in volume.spacing[1:])
    gy, gx = np.ogrid[-pad[1] : pad[1] + 1, -pad[2] : pad[2] + 1]
    disk = (gy / max(ry, 1e-6)) ** 2 + (gx / max(rx, 1e-6)) ** 2 <= 1.0
    closed = np.stack([ndimage.binary_closing(m, disk, border_value=1) | m for m in lm])
    soft = ndimage.gaussian_filter(
        closed.astype(np.float32), [0.0, 1.0 / volume.spacing[1], 1.0 / volume.spacing[2]]
    )
    inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sl, big, strict=True))
    return np.clip(soft[inner] * 2.0 - 0.5, 0.0, 1.0).astype(np.float32)


def _blend_noise(
    original: NDArray[np.float32], patch: NDArray[np.float32], w: NDArray[np.float32], seed: int
) -> NDArray[np.float32]:
    """The noise a blend of ``original`` and ``patch`` with weights ``1 - w`` and ``w`` lost, and no more.

    Their independent noises mix to ``sqrt(w^2 + (1 - w)^2)`` of one alone, so the edge gets
    ``sqrt(2 w (1 - w))`` of their mean level back (each measured in-plane over lung: the original outside
    the blend, the patch inside it) and the copy's core, which carries real noise, gets none."""
    ring = (w == 0) & (original < -500)
    core = (w == 1) & (patch < -500)
    levels = [
        C.noise_std(x, m if m.sum() >= 32 else None, inplane=True)
        for x, m in ((original, ring), (patch, core))
    ]
    level = float(np.sqrt(np.mean(np.square(levels))))
    field = C.noise_field(w.shape, level, 0.0, np.random.default_rng(seed), inplane=True)
    return (np.sqrt(2.0 * w * (1.0 - w)) * field).astype(np.float32)


@register_attack("clone-remove")
class CloneRemove(_Classical):
    """Remove the nodule at the centre with a clone stamp: healthy lung from elsewhere in the same series is
    copied voxel for voxel (no resampling, so its real noise moves with it) over the nodule, turned in-plane,
    levelled to the surrounding lung and blended over a 2 mm edge, where the noise the blend lost is put back
    (:func:`_blend_noise`; the core keeps the donor's own noise)."""

    kind = "remove"
    #: No bundled detector is trained on it: data sets use it only when named (``held_out_attacks``).
    held_out = True

    def sample_params(
        self, volume: Volume, rng: np.random.Generator, center: tuple[int, int, int] | None = None
    ) -> dict[str, Any]:
        from medforensics.forge.ctgan.attack import nodule_diameter

        c = self._center(volume, rng, center, 8.0)
        d, origin = nodule_diameter(volume, c, self.name)
        margin = round(float(rng.uniform(2.0, 4.0)), 2)
        donor = _donor_site(volume, rng, c, _box(volume, c, d / 2 + margin + 2), d / 2 + margin)
        return {
            "center": list(c),
            "diameter_mm": round(d, 2),
            "diameter_from": origin,
            "margin_mm": margin,
            "donor_center": list(donor),
            **pose_params(rng),
        }

    def apply(
        self, volume: Volume, params: dict[str, Any], seed: int = 0
    ) -> tuple[Volume, np.ndarray, AttackRecord]:
        check_modality(self, volume)
        radius, center, sl, dist = _hole(volume, params, 2.0)
        donor = tuple(int(v) for v in params["donor_center"])
        dsl = tuple(
            slice(d - (c - s.start), d + (s.stop - c)) for d, c, s in zip(donor, center, sl, strict=True)
        )
        if any(s.start < 0 or s.stop > n for s, n in zip(dsl, volume.shape, strict=True)):
            raise ConfigError(f"clone-remove: donor box {donor} leaves the volume", path=volume.source)
        patch = volume.array[dsl].astype(np.float32)
        k = int(params.get("rot90", 0)) % 4
        if patch.shape[1] != patch.shape[2]:
            k = k // 2 * 2  # a quarter turn would not fit a non-square box
        patch = np.rot90(patch, k, axes=(1, 2))
        patch = np.ascontiguousarray(patch[:, :, ::-1] if params.get("flip") else patch)
        w = np.clip((radius - dist) / 2.0, 0, 1).astype(np.float32) * _lung_side(volume, sl, radius)
        target = volume.array[sl]
        ring = (w == 0) & (target < -500)
        donor_lung = (w > 0) & (patch < -500)
        if ring.sum() >= 16 and donor_lung.sum() >= 16:  # level the lung, not the vessels
            shift = float(np.median(target[ring]) - np.median(patch[donor_lung]))
            patch = (patch + shift * (1 - np.clip((patch + 500) / 500, 0, 1))).astype(np.float32)
        new = volume.array.copy()
        new[sl] = (1 - w) * target + w * patch + _blend_noise(target, patch, w, seed)
        return finish(self, volume, new, params, seed, center)
