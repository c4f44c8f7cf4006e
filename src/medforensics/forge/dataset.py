"""``forge dataset``: a labelled TB/TM/FB/FM/SYN data set in the CT-GAN layout, split by patient.

Layout under ``DIR``::

    scans/<uuid>/        DICOM series of one sub-volume (``depth`` slices x ``crop`` px around a site)
    labels.csv           type,uuid,z,x,y  (CT-GAN format; TB and SYN rows carry 0,0,0)
    masks/<uuid>.nii.gz  attacked voxels (FM/FB/SYN), the readers' nodule outline (TM), empty (TB)
    records/<uuid>.json  AttackRecord (or null), source, crop, augmentation chain, candidate location
    manifest.csv         one row per scan: class, method, patient, split, location, candidate location,
                         source and new UIDs, augmentation
    splits.csv           uuid,patient,split   (a patient is in exactly one split)
    dataset.json         counts per class per split, seed, sources, methods, versions, policies

UID policy: an attacker keeps the source UIDs (``forge inject|remove`` does), but a data set holds many
derived copies (crops, augmentations, several attacks) of one source series, which would collide in UID
space. Every scan here (all classes alike, so UIDs carry no label) is written with new UIDs; the source
Study/Series UIDs are kept in ``manifest.csv`` for our own bookkeeping.

Balancing: every class gets ``per_class`` samples by cycling over its sites (and over the attack methods of
its kind, so each method is represented equally); every sample, whatever its class, is augmented with
probability ``aug_prob`` by one seed-study augmentation (so augmentation does not reveal the class).

TB means an unmodified scan without a nodule: a TB crop is placed (around its healthy site) where it shows
no annotated nodule of the patient; where no placement avoids them all, the sample is written as TM (it
shows a real nodule). Before session 15 a crop around a healthy site could show the patient's nodule beside
it: 15 of ds6's 38 TB test scans did, and a scan that found that nodule was counted wrong.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medforensics._atomic import atomic_path, check_folder_output
from medforensics._seed import check_seed
from medforensics.errors import ConfigError, InputError, MedforensicsError
from medforensics.forge import augment as A
from medforensics.forge import dataset_layout as L
from medforensics.forge import dataset_sources as S
from medforensics.forge.cubes import NOISE_Z, check_choice, check_noise_plane
from medforensics.forge.dataset_layout import (
    CLASSES,
    DatasetConfig,
    Sample,
    assign_splits,
    check_no_leakage,
    scan_path,
)
from medforensics.forge.dataset_writer import Draws, Rendered, Task, render_all
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("forge.dataset")

__all__ = [
    "CLASSES",
    "DATASET_NOISE_Z",
    "DatasetConfig",
    "Sample",
    "assign_splits",
    "build_dataset",
    "check_dataset_noise_z",
    "check_no_leakage",
    "scan_path",
]


def _methods(cfg: DatasetConfig) -> dict[str, list[str]]:
    from medforensics.forge.base import held_out_attacks, list_attacks

    out = {kind: list_attacks(kind) for kind in ("inject", "remove", "synthesize")}
    if cfg.methods is None:  # every attack but the held-out ones (named, they are used)
        held = set(held_out_attacks())
        return {k: [m for m in ms if m not in held] for k, ms in out.items()}
    known = {m for ms in out.values() for m in ms}
    unknown = sorted(set(cfg.methods) - known)
    if unknown:
        raise ConfigError(f"unknown attack method(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return {k: [m for m in ms if m in cfg.methods] for k, ms in out.items()}


#: A data set's ``noise_z``: one of :data:`~.cubes.NOISE_Z` for every sample, or ``mixed``: each sample's
#: touch-up drawn from them with equal odds (from a generator of its own, so that crops, sites and attack
#: parameters are those of the same data set built ``independent``).
DATASET_NOISE_Z = (*NOISE_Z, "mixed")


def check_dataset_noise_z(z: str) -> str:
    """``z`` if it is one of :data:`DATASET_NOISE_Z`, else :class:`ConfigError`."""
    return check_choice("noise_z", z, DATASET_NOISE_Z)


def _noise_z(cfg: DatasetConfig, start: tuple[int, ...], site: tuple[int, ...]) -> str:
    """The touch-up's ``noise_z`` for the sample cropped at ``start`` around ``site``."""
    if cfg.noise_z != "mixed":
        return cfg.noise_z
    return NOISE_Z[int(np.random.default_rng([cfg.seed, 42, *site, *start]).integers(len(NOISE_Z)))]


def _attack(
    method: str,
    src: S.Source,
    sources: list[S.Source],
    cfg: DatasetConfig,
    rng: np.random.Generator,
    cache: dict[Any, Any],
    noise_z: str = "independent",
) -> tuple[tuple[Any, ...], str | None]:
    """The key in ``cache`` of the attack instance for one sample (``noise_z``: its touch-up between slices,
    for the attacks that have one); donor-based attacks (copy-move) get a real nodule donor, from another
    patient when there is one. Returns (key, donor source name or None)."""
    import inspect

    from medforensics.forge.base import NoiseMatched, attack_class, create_attack

    kw = dict(cfg.attack_kwargs.get(method, {}))
    if issubclass(attack_class(method), NoiseMatched):
        kw.setdefault("noise_plane", cfg.noise_plane)
        kw.setdefault("noise_z", noise_z)
    name = (method, kw.get("noise_z"))
    if name not in cache:
        cache[name] = create_attack(method, **kw)
    if "donor" in inspect.signature(type(cache[name])).parameters and "donor" not in kw:
        donors = [d for d in sources if d.nodules and d.patient != src.patient]
        donors = donors or [d for d in sources if d.nodules]
        if not donors:
            raise ConfigError(f"{method} needs a source with annotated nodules as donor")
        d = donors[int(rng.integers(len(donors)))]
        key = (*name, d.name)
        if key not in cache:  # the donor's annotations give the copied nodules' sizes
            donor = d.volume.with_array(d.volume.array, metadata={**d.volume.metadata, "nodules": d.nodules})
            cache[key] = create_attack(method, donor=donor, donor_centers=S.nodule_sites(d), **kw)
        return key, d.name
    return name, None


#: One planned sample: (label, method, source index, site).
Planned = tuple[str, str, int, tuple[int, int, int]]


def _draw(
    src: S.Source,
    label: str,
    method: str,
    site: tuple[int, int, int],
    cfg: DatasetConfig,
    rng: np.random.Generator,
    sources: list[S.Source],
    cache: dict[Any, Any],
) -> Draws:
    """Every random draw of one sample, in the order the builder has always made them: crop, attack donor,
    parameters and seed (FM/FB/SYN), augmentation, UIDs."""
    start, shape = S.crop_box(src.volume, site, cfg.depth, cfg.crop, rng)
    held = S.nodules_in_box(src, start, shape) if label == "TB" else []
    if held:
        # a crop around a healthy site can still show a real nodule elsewhere: place it where it shows none
        # (its own generator: the data set's other samples stay as they were), else it is a TM scan
        alt = S.crop_avoiding_nodules(
            src, site, cfg.depth, cfg.crop, np.random.default_rng([cfg.seed, *site, *start])
        )
        if alt is not None:
            start, shape = alt
        else:
            label, site = "TM", tuple(round(v) for v in held[0].center_voxel)  # type: ignore[assignment]
            log.info("TB crop at %s shows a real nodule wherever placed: written as TM", list(site))
    source_uids = {
        "study": str(src.volume.metadata.get("study_uid") or ""),
        "series": str(src.volume.metadata.get("series_uid") or ""),
    }
    d = Draws(
        label=label,
        method=method,
        source=src.name,
        patient=src.patient,
        start=start,
        shape=shape,
        site=S.local(site, start),
        chain=[],
        uids={},
        uuid="",
        source_uids=source_uids,
    )
    if label in ("FM", "FB", "SYN"):
        sub = _crop(src, d)
        d.attack, d.donor = _attack(method, src, sources, cfg, rng, cache, _noise_z(cfg, start, site))
        d.params = cache[d.attack].sample_params(sub, rng, center=None if label == "SYN" else d.site)
        d.seed = int(rng.integers(2**31))
    if rng.random() < cfg.aug_prob:
        d.chain = A.ct_augmenter().sample(rng, 3)
    d.uids = L.new_uids(rng)
    d.uuid = str(uuidlib.UUID(bytes=rng.bytes(16), version=4))
    # a generator of its own, made only with the option: every other draw is as without it
    mm = cfg.round_trip_mm
    if (
        mm is not None
        and np.random.default_rng([cfg.seed, 49, *start, *d.site]).random() < cfg.round_trip_share
    ):
        d.round_trip_mm = float(mm)
    return d


def _crop(src: S.Source, d: Draws) -> Volume:
    """The drawn crop of ``src`` (a removal's: with the readers' nodules in it, as forge remove
    --annotations)."""
    sub = S.crop_volume(src.volume, d.start, d.shape)
    if d.label == "FB":
        sub.metadata = {**sub.metadata, "nodules": S.local_nodules(src, d.start, d.shape)}
    return sub


def _task(src: S.Source, d: Draws, shown: dict[tuple[str, int], Any]) -> Task:
    """What :func:`~.dataset_writer.render` needs for ``d``: the crop and, for a TM scan, its nodule's mask
    (the readers' outline; ``shown`` keeps each nodule's whole-volume mask, made once). An attacked sample's
    crop was cut once already for its draws; it is cut again here rather than kept, because every draw of a
    round is made before the first render and keeping the crops would hold the whole round in memory."""
    mask = None
    if d.label == "TM":
        from medforensics.io.datasets.lidc import nodule_mask

        at = tuple(s + c for s, c in zip(d.start, d.site, strict=True))
        k = next(k for k, n in enumerate(src.nodules) if tuple(round(v) for v in n.center_voxel) == at)
        if (src.name, k) not in shown:
            shown[src.name, k] = nodule_mask(src.nodules[k], src.volume)
        z, y, x = d.start
        dz, dy, dx = d.shape
        mask = shown[src.name, k][z : z + dz, y : y + dy, x : x + dx].copy()
    return d, _crop(src, d), mask


def _sample(src: S.Source, d: Draws, made: Rendered) -> Sample:
    c = made.location
    return Sample(
        d.uuid,
        d.label,
        d.method,
        src,
        c if d.located else None,
        None if d.located else c,
        d.chain,
        d.uids,
        scan_format=made.scan_format,
    )


def _preflight(
    plan: list[Planned], srcs: list[S.Source], cfg: DatasetConfig, cache: dict[Any, Any]
) -> dict[str, str]:
    """Try each attack method once (its draws and its attack, nothing written); returns {method: reason} for
    those that cannot run here (for example learned attacks whose weights are not trained yet)."""
    from medforensics.forge.base import attack_class

    broken: dict[str, str] = {}
    tried: set[str] = set()
    for label, method, i, site in plan:
        if method in tried or label not in ("FM", "FB", "SYN"):
            continue
        tried.add(method)
        if getattr(attack_class(method), "planar", False) and cfg.depth > 1:
            reason = (
                f"{method} edits one image: a crop of {cfg.depth} slices would keep the nodule on the "
                "others (clone-remove is the clone stamp across slices)"
            )
            log.warning("attack %s unavailable: %s", method, reason)
            broken[method] = reason
            continue
        try:
            d = _draw(srcs[i], label, method, site, cfg, np.random.default_rng(cfg.seed), srcs, cache)
            if d.attack is not None:
                cache[d.attack].apply(_crop(srcs[i], d), d.params, seed=d.seed)
        except MedforensicsError as err:
            log.warning("attack %s unavailable: %s", method, err.reason)
            broken[method] = err.reason
    return broken


def _plan(
    sources: list[S.Source], cfg: DatasetConfig, methods: dict[str, list[str]], rng: np.random.Generator
) -> list[tuple[str, str, int, tuple[int, int, int]]]:
    """(label, method, source index, site) for every sample to make."""
    nod = [(i, s) for i, src in enumerate(sources) for s in S.nodule_sites(src)]
    need_healthy = -(-cfg.per_class * 3 // max(1, len(sources)))
    per_source = [S.healthy_sites(src, need_healthy, rng) for src in sources]
    # round-robin over sources, so that no class is tied to one patient
    healthy = [
        (i, ps[k]) for k in range(max(map(len, per_source))) for i, ps in enumerate(per_source) if k < len(ps)
    ]
    if not healthy:
        raise InputError("no healthy lung site found in any source", path="sources")
    by_kind = {
        "TB": ["none"],
        "TM": ["none"],
        "FB": methods["remove"],
        "FM": methods["inject"],
        "SYN": methods["synthesize"],
    }
    plan = []
    for label in cfg.classes:
        sites = nod if label in ("TM", "FB") else healthy
        ms = by_kind[label]
        if not ms or not sites:
            log.warning("class %s skipped: %s", label, "no method" if not ms else "no annotated nodule")
            continue
        offset = {"TB": 0, "FM": 1, "SYN": 2}.get(label, 0) * len(sites) // 3
        for k in range(cfg.per_class):
            i, site = sites[(offset + k // len(ms)) % len(sites)]
            plan.append((label, ms[k % len(ms)], i, site))
    return plan


def build_dataset(
    out: str | Path,
    sources: list[str | Path | S.Source] | None = None,
    config: DatasetConfig | None = None,
    jobs: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Build the data set into ``out`` (must be empty or absent); returns the ``dataset.json`` content.
    ``jobs`` > 1: the samples are attacked, augmented and written by that many worker processes
    (:mod:`.dataset_writer`; the same data set, faster). ``progress(done, total, label)`` after each
    sample (a retried sample adds one to the total)."""

    cfg = config or DatasetConfig()
    check_seed(cfg.seed, "--seed")
    if not 1 <= jobs <= 256:
        raise ConfigError(f"jobs must be 1-256, got {jobs}")
    check_noise_plane(cfg.noise_plane)
    check_dataset_noise_z(cfg.noise_z)
    if cfg.round_trip_mm is not None and not cfg.round_trip_mm > 0:
        raise ConfigError(f"round_trip_mm must be positive, got {cfg.round_trip_mm}")
    if not 0.0 <= cfg.round_trip_share <= 1.0:
        raise ConfigError(f"round_trip_share must be between 0 and 1, got {cfg.round_trip_share}")
    out = Path(out)
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError("output folder is not empty", path=out)
    # before any work: not a file, not a source (nor inside or above one), a folder that can be written
    paths = [s for s in (["auto"] if sources is None else sources) if not isinstance(s, S.Source)]
    check_folder_output(out, [p for p in paths if str(p) != "auto"], marker="dataset.json")
    skipped: list[str] = []
    srcs: list[S.Source] = []
    for s in ["auto"] if sources is None else sources:
        if isinstance(s, S.Source):
            srcs.append(s)
            continue
        try:
            srcs.extend(S.auto_sources() if str(s) == "auto" else [S.load_source(s)])
        except MedforensicsError as err:  # a batch goes on past a bad input
            log.warning("skipping source: %s", err.one_line())
            skipped.append(f"source {S.short_hash(str(s), 8)}: {err.reason}")
    if not srcs:
        raise InputError("no usable CT source", path=str(out))
    S.unify_same_scans(srcs)  # one scan under two names is one patient: never in two splits
    methods = _methods(cfg)
    rng = np.random.default_rng(cfg.seed)
    plan = _plan(srcs, cfg, methods, rng)
    cache: dict[Any, Any] = {}
    broken = _preflight(plan, srcs, cfg, cache)
    if broken:
        skipped += [f"{m}: {why}" for m, why in broken.items()]
        methods = {k: [m for m in ms if m not in broken] for k, ms in methods.items()}
        plan = _plan(srcs, cfg, methods, rng)
    with atomic_path(out) as tmp:  # built beside ``out``, renamed into place when complete
        tmp.mkdir()
        b = _Build(tmp, jobs, srcs, cfg, rng, cache, progress, total=len(plan))
        samples, failures = _make_all(b, plan)
        summary: dict[str, Any] = L.write_index(tmp, samples, srcs, cfg, methods, skipped, failures)
    return summary


@dataclass
class _Build:
    """What every sample of one build shares: the folder written, the rendering processes, the sources,
    the config, the one generator every draw comes from, the attacks made so far and the progress callback
    with its counts."""

    out: Path
    jobs: int
    srcs: list[S.Source]
    cfg: DatasetConfig
    rng: np.random.Generator
    cache: dict[Any, Any]
    progress: Callable[[int, int, str], None] | None = None
    done: int = 0  # samples made or failed so far
    total: int = 0  # samples to make (the plan, then its retries)


def _make_all(b: _Build, plan: list[Planned]) -> tuple[list[Sample], list[str]]:
    """Make every planned sample; a failed one is retried at a site where its method worked. Every draw is
    made first, in plan order (then the retries'), so ``b.jobs`` processes can render them."""
    samples: list[Sample] = []
    failures: list[str] = []
    worked: dict[tuple[str, str], list[tuple[int, tuple[int, int, int]]]] = {}
    retry: list[tuple[str, str]] = []
    for label, method, i, site, made in _make_round(b, plan):
        if isinstance(made, Sample):
            samples.append(made)
            worked.setdefault((label, method), []).append((i, site))
        else:  # reason only: paths may name the patient's folder
            failures.append(f"{label}/{method}/{b.srcs[i].name} at {list(site)}: {made.reason}")
            log.warning("sample failed: %s", failures[-1])
            retry.append((label, method))
    again: list[Planned] = []
    for k, (label, method) in enumerate(retry):  # keep the class balanced: reuse a site that worked
        pool = sorted(set(worked.get((label, method), [])))
        if pool:
            i, site = pool[k % len(pool)]
            again.append((label, method, i, site))
    b.total += len(again)
    for label, method, i, site, made in _make_round(b, again):
        if isinstance(made, Sample):
            samples.append(made)
        else:
            failures.append(f"{label}/{method}/{b.srcs[i].name} at {list(site)} (retry): {made.reason}")
    return samples, failures


def _make_round(
    b: _Build, plan: list[Planned]
) -> Iterator[tuple[str, str, int, tuple[int, int, int], Sample | MedforensicsError]]:
    """Draw every planned sample here, in order, then render them (``b.jobs`` processes); yields each plan
    entry with its sample or the reason it failed."""
    srcs = b.srcs
    drawn: list[Draws | MedforensicsError] = []
    for label, method, i, site in plan:
        try:
            drawn.append(_draw(srcs[i], label, method, site, b.cfg, b.rng, srcs, b.cache))
        except MedforensicsError as err:
            drawn.append(err)
    ok = [(p, d) for p, d in zip(plan, drawn, strict=True) if isinstance(d, Draws)]
    shown: dict[tuple[str, int], Any] = {}
    tasks = (_task(srcs[p[2]], d, shown) for p, d in ok)
    with closing(render_all(b.out, tasks, b.cache, b.jobs)) as rendered:  # in ``ok``'s order, as they come
        for (label, method, i, site), d in zip(plan, drawn, strict=True):
            if isinstance(d, MedforensicsError):
                result: Sample | MedforensicsError = d
            else:
                made = next(rendered)
                result = _sample(srcs[i], d, made) if isinstance(made, Rendered) else made
            b.done += 1
            if b.progress is not None:
                b.progress(b.done, b.total, f"{label} {method}")
            yield label, method, i, site, result
