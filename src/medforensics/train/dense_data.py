"""Data of the dense localiser: forge data-set scans on the model grid and their voxel classes (the
training patches drawn from them: :mod:`medforensics.train.dense_batches`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.errors import ConfigError, InputError
from medforensics.features.noise_map import SlabCallback
from medforensics.train.dense_config import HU_WINDOW, TARGET_MM, DenseConfig, config_values

#: Voxel class of each tampered label (0: authentic).
LABELS = {"FM": 1, "FB": 2}


@dataclass
class Item:
    """One scan on the model grid: windowed image, voxel classes, the data-set label and its patient."""

    image: NDArray[np.float32]  # (C, D, H, W): windowed HU (+ noise channel)
    target: NDArray[np.int64]
    label: str
    method: str
    patient: str
    uid: str
    spacing: tuple[float, float, float]
    #: Voxels (model grid) worth centring patches on: the attack, or the real nodule of a TM scan.
    focus: NDArray[np.int64] | None = None
    #: Authentic scans: where the current model's strongest false alarms are (hard negatives, mined).
    hard: NDArray[np.int64] | None = None
    #: The scan's own voxel size (mm, z, y, x) before the model grid (a thick copy's: its thick slices; a
    #: train-only coarse-pixel copy's: its source's, so it does not widen ``data_spacing``).
    source_spacing: tuple[float, float, float] | None = None


def grid_factors(
    spacing: tuple[float, float, float], target_mm: tuple[float, float, float]
) -> tuple[int, ...]:
    """Integer block-mean factors bringing ``spacing`` closest to ``target_mm`` (never below 1)."""
    return tuple(max(1, round(t / s)) for s, t in zip(spacing, target_mm, strict=True))


#: Relative spacing error left as is after the integer block means (no interpolation below it).
SPACING_TOLERANCE = 0.03


def _to_target(
    low: tuple[int, ...],
    factors: tuple[int, ...],
    spacing: tuple[float, float, float],
    target_mm: tuple[float, float, float],
) -> tuple[tuple[int, ...], tuple[float, float, float], tuple[float, float, float]]:
    """The shape block means of shape ``low`` are zoomed to for ``target_mm`` (``low`` itself when each axis
    is within :data:`SPACING_TOLERANCE`), the scale and the final spacing."""
    sp_b = [s * k for s, k in zip(spacing, factors, strict=True)]
    zoom = [
        1.0 if abs(s / t - 1) <= SPACING_TOLERANCE else s / t for s, t in zip(sp_b, target_mm, strict=True)
    ]
    shape = tuple(low)
    if any(z != 1.0 for z in zoom):
        shape = tuple(max(1, round(n * z)) for n, z in zip(low, zoom, strict=True))
        zoom = [m / n for m, n in zip(shape, low, strict=True)]
    scale = tuple(float(k / z) for k, z in zip(factors, zoom, strict=True))
    sp = tuple(float(s / z) for s, z in zip(sp_b, zoom, strict=True))
    return shape, scale, sp  # type: ignore[return-value]


def to_model_grid(
    array: NDArray[Any],
    spacing: tuple[float, float, float],
    target_mm: tuple[float, float, float] = TARGET_MM,
) -> tuple[NDArray[np.float32], tuple[float, float, float], tuple[float, float, float]]:
    """``array`` on the model grid: ``(image, scale, spacing)``.

    Integer block means first (slab-wise, so the full-resolution volume is never copied; they also
    anti-alias), then a linear zoom of the small result to ``target_mm`` when it is still more than
    :data:`SPACING_TOLERANCE` off (a 0.82 mm scan block-averaged to 1.64 mm is zoomed to 1.4 mm: the model
    always sees one pixel size). ``scale``: full-resolution voxels per model voxel along each axis, so model
    voxel ``i`` covers full-resolution coordinates ``(i + 0.5) * scale - 0.5`` at its centre.
    """
    g = model_input(array, spacing, target_mm)
    return g.hu, g.scale, g.spacing


@dataclass
class GridInput:
    """A volume on the model grid: HU (block means), the optional noise and inter-slice correlation
    channels, scale and spacing."""

    hu: NDArray[np.float32]
    noise: NDArray[np.float32] | None
    scale: tuple[float, float, float]
    spacing: tuple[float, float, float]
    zcorr: NDArray[np.float32] | None = None
    #: The series' median inter-slice noise correlation over aerated lung (with ``zcorr``; see
    #: :func:`~medforensics.features.noise_map.corr_channel`).
    slice_corr: float | None = None

    def channels(
        self, hu_window: tuple[float, float], box: tuple[slice, ...] = (), release: bool = False
    ) -> NDArray[np.float32]:
        """The network input ``(C, D, H, W)`` over ``box``: windowed HU, then the noise and correlation
        channels the model has. ``release``: the noise and correlation maps are dropped from this object as
        soon as their box is copied (a long series' maps are then not all held beside the input)."""
        n = 1 + sum(c is not None for c in (self.noise, self.zcorr))
        first = self.hu[box]
        img = np.empty((n, *first.shape), np.float32)
        img[0] = window(first, hu_window)
        k = 1
        if self.noise is not None:
            img[k], k = self.noise[box], k + 1
            if release:
                self.noise = None
        if self.zcorr is not None:
            img[k] = self.zcorr[box]
            if release:
                self.zcorr = None
        return img


def model_input(
    array: NDArray[Any],
    spacing: tuple[float, float, float],
    target_mm: tuple[float, float, float] = TARGET_MM,
    noise: bool = False,
    on_slab: SlabCallback | None = None,
    zcorr: bool = False,
) -> GridInput:
    """:func:`to_model_grid` of ``array`` plus, with ``noise``, its full-resolution noise energy on the same
    grid and, with ``zcorr``, the inter-slice correlation of the noise residual
    (:mod:`medforensics.features.noise_map`), both relative to the series' lung. ``on_slab``: see
    :func:`~medforensics.features.noise_map.grid_means`."""
    from medforensics.features import noise_map as nm

    f = grid_factors(spacing, target_mm)
    low = nm.grid_shape(array.shape, f)
    shape, scale, sp = _to_target(low, f, spacing, target_mm)
    # the zoom (linear interpolation, separable: the one trilinear zoom) runs slab by slab inside the pass,
    # in-plane and then along z, so neither the full-resolution-sized nor the unzoomed means are ever held;
    # the correlation is made in the pass too, from the moments as their slices are ready (one map, not two)
    gm = nm.grid_means(
        array,
        f,
        energy=noise,
        on_slab=on_slab,
        zpair=zcorr,
        inplane=(shape[1], shape[2]),
        depth=shape[0],
        corr_size=nm.corr_size(sp) if zcorr else None,
    )
    hu, energy = gm.means, gm.energy
    out = GridInput(hu, None, scale, sp)
    if gm.corr is not None:
        out.zcorr, out.slice_corr = nm.corr_channel(gm.corr, hu)
    if noise and energy is not None:  # after zcorr: the normalisation overwrites ``energy``
        out.noise = nm.normalised_log_energy(energy, hu, copy=False)
    return out


def window(hu: NDArray[Any], hu_window: tuple[float, float] = HU_WINDOW) -> NDArray[np.float32]:
    """Clip to the HU window, map to [0, 1]."""
    lo, hi = hu_window
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def noisy_copies(array: NDArray[Any], key: str, n: int, seed: int = 0) -> Iterator[NDArray[np.float32]]:
    """``n`` copies of a scan with the seed study's noise augmentation
    (:func:`~medforensics.forge.augment.noise_copy`, as ``forge dataset`` draws it), each from a generator of
    the scan's own (seed, scan ``key``, copy), so a data set's copies do not depend on which other scans it
    holds (training and :mod:`~medforensics.train.dense_calibration` draw the same ones)."""
    from medforensics.forge.augment import noise_copy, scan_rng

    for k in range(n):
        yield noise_copy(array, scan_rng(seed, key, k))


def thick_factor(thick_mm: float, volume: Any) -> int:
    """Slices of ``volume`` averaged into one for its copy ``thick_mm`` thick (0: no thick copy, when that
    is under 2 slices or more than it has)."""
    n = round(thick_mm / volume.spacing[0]) if thick_mm > 0 else 0
    return n if 2 <= n <= volume.shape[0] else 0


@dataclass
class Variant:
    """A scan as the network trains on it: the original, a noisy copy or a thick copy."""

    array: NDArray[Any]
    spacing: tuple[float, float, float]
    thick: int  # slices averaged into one (1: as stored)
    suffix: str  # appended to the scan's uid
    #: a self-blended copy's region (full resolution), trained as a removal (:func:`self_blended`)
    blend: NDArray[np.bool_] | None = None
    #: a coarse-pixel copy's source pixel size (y, x mm): its mask is resampled the same way
    pixels_from: tuple[float, float] | None = None


def _variants(
    cfg: DenseConfig, vol: Any, split: str, key: str, noisy: bool = False, site: Any = None
) -> Iterator[Variant]:
    """The scan as stored (uid suffix ``""``); in the train split its noisy copies (``"+noise<k>"``), its
    lower-dose copies (``"+dose<d>"``, config ``dose_copies``), its round-trip copies (``"+trip<mm>"``,
    config ``round_trip_copies_mm``) and,
    for an authentic scan (``site``: its nodule's centre or ``False``; ``None``: a tampered scan), its
    self-blended copies (``"+blend<k>"``, config ``self_blend``,
    :func:`~medforensics.forge.selfblend.blended_copies`); in the
    train and validation splits its thick copy (``"+thick<n>"``, :func:`thick_factor`), one at a time.
    With ``cfg.noise_only`` a scan stored without added noise (not ``noisy``) comes only as noisy copies,
    in every split (:func:`only_noisy`)."""
    from medforensics.forge.augment import lower_dose, resample_pixels, scan_rng, thick_volume
    from medforensics.forge.round_trip import scan_round_trip
    from medforensics.forge.selfblend import blended_copies

    if cfg.noise_only:
        for suffix, array in only_noisy(vol.array, key, noisy, cfg.noise_copies, cfg.seed):
            yield Variant(array, vol.spacing, 1, suffix)
        return
    yield Variant(vol.array, vol.spacing, 1, "")
    if split == "train":
        for k, array in enumerate(noisy_copies(vol.array, key, cfg.noise_copies, cfg.seed)):
            yield Variant(array, vol.spacing, 1, f"+noise{k}")
        if site is not None:
            at = site if site is not False else None
            blends = blended_copies(
                vol.array, vol.spacing, key, cfg.self_blend, cfg.seed, at, cfg.self_blend_noise
            )
            for k, (array, region) in enumerate(blends):
                yield Variant(array, vol.spacing, 1, f"+blend{k}", region)
        for k, dose in enumerate(cfg.dose_copies):
            rng = scan_rng(cfg.seed, key, 1000 + k)  # not any noisy copy's generator
            yield Variant(lower_dose(vol.array, dose, rng), vol.spacing, 1, f"+dose{dose:g}")
        for mm in cfg.round_trip_copies_mm:  # rounded to integers, as a DICOM series holds them
            array = np.round(scan_round_trip(vol.array, vol.spacing, mm))
            yield Variant(array, vol.spacing, 1, f"+trip{mm:g}")
        for mm in cfg.pixel_copies_mm:
            own = (float(vol.spacing[1]), float(vol.spacing[2]))
            if max(own) < mm * (1 - SPACING_TOLERANCE):
                array = resample_pixels(vol.array, own, mm)[0]
                yield Variant(array, (vol.spacing[0], mm, mm), 1, f"+px{mm:g}", pixels_from=own)
    n = thick_factor(cfg.thick_mm, vol)
    if split in ("train", "val") and n:
        thick = thick_volume(vol, n)
        yield Variant(thick.array, thick.spacing, n, f"+thick{n}")


def only_noisy(
    array: NDArray[Any], key: str, noisy: bool, copies: int, seed: int = 0
) -> Iterator[tuple[str, NDArray[Any]]]:
    """A noise specialist's view of a scan (config ``noise_only``): ``("", array)`` when it is stored
    ``noisy`` (noise added after reconstruction), else ``max(1, copies)`` noisy copies
    ``("+noise<k>", copy)``."""
    if noisy:
        yield "", array
        return
    for k, copy in enumerate(noisy_copies(array, key, max(1, copies), seed)):
        yield f"+noise{k}", copy


def noise_augmented(row: dict[str, str]) -> bool:
    """Whether a manifest row's scan had the seed study's noise added (its ``augmentation`` record)."""
    import json

    try:
        steps = json.loads(row.get("augmentation") or "[]")
    except ValueError:
        return False
    return any(isinstance(s, dict) and s.get("kind") == "noise" for s in steps)


def _grid(cfg: DenseConfig, v: Variant) -> GridInput:
    return model_input(v.array, v.spacing, cfg.target_mm, cfg.noise_channel, zcorr=cfg.zcorr_channel)


class ItemCache:
    """Items already made, by row, for several loads whose configs make items alike: the
    leave-one-attack-out models of one run differ in the method they leave out, not in how a scan becomes an
    item (:func:`~medforensics.evaluate.dense_benchmark.held_out_on` reads their data set once). A config
    that differs in anything else than :data:`CACHE_FREE` starts the cache afresh."""

    #: Config keys that do not change how a row becomes items (the rows a load takes are its own choice).
    CACHE_FREE = ("exclude_methods", "out", "resume", "init_from")

    def __init__(self) -> None:
        self.key: dict[str, Any] | None = None
        self.made: dict[tuple[str, str], list[Item]] = {}

    def use(self, cfg: DenseConfig) -> None:
        """Keep the items when ``cfg`` makes them as the last config did, else forget them."""
        key = config_values(cfg, self.CACHE_FREE)
        if key != self.key:
            self.key, self.made = key, {}


def _task_key(task: tuple[str, dict[str, str] | str]) -> tuple[str, str]:
    split, r = task
    return split, r if isinstance(r, str) else r["uuid"]


def load_items(cfg: DenseConfig, cache: ItemCache | None = None) -> dict[str, list[Item]]:
    """Every FM/FB/TB/TM scan of the data set on the model grid, grouped by split (+ extra authentic), with
    the noisy and thick copies :func:`_variants` adds. With ``cfg.load_workers`` > 0, that many forked
    processes read and prepare the scans (each item is made from its own row alone, so the items and their
    order are the same for any number). ``cache``: rows made by an earlier load through it are not made
    again (see :class:`ItemCache`); the items are then the same objects."""
    from medforensics.forge.dataset_layout import read_manifest

    rows = read_manifest(cfg.data)
    out: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    bad = sorted(set(cfg.splits.values()) - set(out))
    if bad:
        raise ConfigError(f"splits must map patients to train/val/test, got {bad}")
    tasks: list[tuple[str, dict[str, str] | str]] = []
    for r in rows:
        r["split"] = cfg.splits.get(r["patient"], r["split"])
        if r["type"] not in ("TB", "TM", "FB", "FM") or r["split"] not in out:
            continue
        if r["method"] in cfg.exclude_methods and r["split"] != "test":
            continue  # leave-one-attack-out: never trained or validated on it
        tasks.append((r["split"], r))
    extras = {"train": cfg.extra_authentic, "val": cfg.val_authentic, "test": cfg.test_authentic}
    tasks += [(split, path) for split, paths in extras.items() for path in paths]
    if cache is None:
        for (split, _), made in zip(tasks, _map_rows(cfg, tasks), strict=True):
            out[split].extend(made)
    else:
        cache.use(cfg)
        todo = [t for t in tasks if _task_key(t) not in cache.made]
        for t, made in zip(todo, _map_rows(cfg, todo), strict=True):
            cache.made[_task_key(t)] = made
        for t in tasks:
            out[t[0]].extend(cache.made[_task_key(t)])
    _check_split(out)
    return out


def _map_rows(cfg: DenseConfig, tasks: list[tuple[str, dict[str, str] | str]]) -> Iterator[list[Item]]:
    """:func:`_row_items` of every task, in order: here, or in ``cfg.load_workers`` forked processes (before
    any CUDA work, as :class:`BatchSource`; they run NumPy/SciPy and single-threaded torch). A loader that
    dies raises ``BrokenProcessPool`` (a ``multiprocessing.Pool`` would wait for its rows for ever); an
    error ends the loading without reading the rows not started."""
    if cfg.load_workers <= 0:
        yield from (_row_items(cfg, t) for t in tasks)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from medforensics.train.dense_batches import _init_worker

    # the batch workers' set-up, without scans to draw from
    pool = ProcessPoolExecutor(cfg.load_workers, mp.get_context("fork"), _init_worker, ([], cfg))
    try:
        from medforensics._pools import children_ignore_sigint

        with children_ignore_sigint():  # the workers start here: Ctrl-C is the trainer's, not theirs
            rows = pool.map(_load_task, tasks, chunksize=2)
        yield from rows
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _load_task(task: tuple[str, dict[str, str] | str]) -> list[Item]:
    from medforensics.train.dense_batches import _WORKER

    return _row_items(_WORKER["cfg"], task)


def _row_items(cfg: DenseConfig, task: tuple[str, dict[str, str] | str]) -> list[Item]:
    """The items of one task: a manifest row (its scan, mask and variants) or an extra authentic series."""
    from medforensics.forge.selfblend import mask_centre
    from medforensics.io.nifti import read_nifti
    from medforensics.io.reader import read_volume

    split, r = task
    if isinstance(r, str):  # an extra authentic series
        vol = read_volume(r)
        return [
            _item(cfg, v, None, "TB", "whole", "extra", r) for v in _variants(cfg, vol, split, r, site=False)
        ]
    root = Path(cfg.data)
    vol = read_volume(root / "scans" / r["uuid"])
    mask_path = root / "masks" / f"{r['uuid']}.nii.gz"
    mask = None
    if r["type"] in LABELS or (r["type"] == "TM" and mask_path.is_file()):
        mask = (read_nifti(mask_path).array > 0).astype(np.float32)
        if mask.shape != vol.shape:
            raise InputError(f"mask shape {mask.shape} != scan shape {vol.shape}", path=mask_path)
    site = mask_centre(mask) if r["type"] == "TM" else False if r["type"] == "TB" else None
    variants = _variants(cfg, vol, split, r["uuid"], noise_augmented(r), site)
    return [_item(cfg, v, mask, r["type"], r["method"], r["patient"], r["uuid"]) for v in variants]


def _item(
    cfg: DenseConfig,
    v: Variant,
    mask: NDArray[np.float32] | None,
    label: str,
    method: str,
    patient: str,
    uid: str,
) -> Item:
    """Variant ``v`` of a scan (data-set ``label`` and ``method``, attack or nodule ``mask`` at full
    resolution) on the model grid; a self-blended copy is an FB "self-blend" with its region as the mask."""
    from medforensics.forge.augment import resample_pixels, thicken_slices

    g = _grid(cfg, v)
    focus = low = None
    if v.blend is not None:
        label, method = "FB", "self-blend"
    if mask is not None or v.blend is not None:
        m = np.asarray(mask if v.blend is None else v.blend, np.float32)
        m = m if v.thick == 1 else thicken_slices(m, v.thick)
        if v.pixels_from is not None:  # a coarse-pixel copy: the mask sampled as its pixels were
            m = (resample_pixels(m, v.pixels_from, v.spacing[1], floor_hu=None)[0] >= 0.5).astype(np.float32)
        low = to_model_grid(m, v.spacing, cfg.target_mm)[0] >= 0.3
        focus = np.argwhere(low) if low.any() else None  # TM: the readers' outline, class authentic
    target = np.zeros(g.hu.shape, np.int64)
    if low is not None and label in LABELS:
        target[low] = LABELS[label]
    sp = (float(v.spacing[0]), float(v.spacing[1]), float(v.spacing[2]))
    if v.pixels_from is not None:
        sp = (sp[0], float(v.pixels_from[0]), float(v.pixels_from[1]))
    img = g.channels(cfg.hu_window)
    return Item(img, target, label, method, patient, uid + v.suffix, g.spacing, focus, source_spacing=sp)


def _check_split(items: dict[str, list[Item]]) -> None:
    seen: dict[str, str] = {}
    for split, lst in items.items():
        for it in lst:
            if it.patient != "extra" and seen.setdefault(it.patient, split) != split:
                raise ConfigError(f"patient {it.patient} is in two splits ({seen[it.patient]}, {split})")
    for split in ("train", "val"):
        labels = {it.label for it in items[split]}
        if not labels & {"FM", "FB"} or not labels & {"TB", "TM"}:
            raise ConfigError(f"the {split} split needs authentic and tampered scans (has {sorted(labels)})")


def _count(items: list[Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        key = f"{it.label}:{it.method}"
        out[key] = out.get(key, 0) + 1
    return out
