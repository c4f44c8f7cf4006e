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
"""

from __future__ import annotations

import csv
import io
import json
import uuid as uuidlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medforensics import __version__
from medforensics._atomic import write_text_atomic
from medforensics.errors import ConfigError, InputError, MedforensicsError
from medforensics.forge import augment as A
from medforensics.forge import dataset_sources as S
from medforensics.io.datasets.ctgan import CTGANLabel, write_ctgan_labels
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("forge.dataset")

CLASSES = ("TB", "TM", "FB", "FM", "SYN")
SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = (
    "uuid",
    "type",
    "method",
    "patient",
    "split",
    "source",
    "z",
    "y",
    "x",
    "cand_z",
    "cand_y",
    "cand_x",
    "augmentation",
    "source_study_uid",
    "source_series_uid",
    "new_study_uid",
    "new_series_uid",
)


@dataclass
class DatasetConfig:
    """What to build. ``methods`` None means every registered attack."""

    per_class: int = 20
    seed: int = 0
    methods: list[str] | None = None
    val_frac: float = 0.2
    test_frac: float = 0.2
    depth: int = 32
    crop: int = 256
    aug_prob: float = 0.75
    classes: tuple[str, ...] = CLASSES
    attack_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Sample:
    """One written scan."""

    uuid: str
    label: str
    method: str
    source: S.Source
    location: tuple[int, int, int] | None
    candidate: tuple[int, int, int] | None
    chain: list[dict[str, Any]]
    uids: dict[str, str]
    split: str = ""
    scan_format: str = ""


def _methods(cfg: DatasetConfig) -> dict[str, list[str]]:
    from medforensics.forge.base import list_attacks

    out = {kind: list_attacks(kind) for kind in ("inject", "remove", "synthesize")}
    if cfg.methods is not None:
        known = {m for ms in out.values() for m in ms}
        unknown = sorted(set(cfg.methods) - known)
        if unknown:
            raise ConfigError(
                f"unknown attack method(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        out = {k: [m for m in ms if m in cfg.methods] for k, ms in out.items()}
    return out


def assign_splits(patients: list[str], nodule_patients: set[str], cfg: DatasetConfig) -> dict[str, str]:
    """Patient -> split (a patient is never in two splits).

    Patients with nodules are dealt first, so that each split with a non-zero fraction gets at least one
    of them where there are enough (test, then val, then train); every further patient goes to the split
    furthest below its target share."""
    rng = np.random.default_rng(cfg.seed)
    target = {"test": cfg.test_frac, "val": cfg.val_frac, "train": 1.0 - cfg.test_frac - cfg.val_frac}
    live = [s for s in ("test", "val", "train") if target[s] > 0]
    counts = dict.fromkeys(live, 0)
    out: dict[str, str] = {}
    groups = [
        sorted(p for p in set(patients) if p in nodule_patients),
        sorted(set(patients) - nodule_patients),
    ]
    for group in groups:
        for p in [group[i] for i in rng.permutation(len(group))]:
            empty = [s for s in live if counts[s] == 0]
            if empty and len(set(patients)) >= len(live):
                split = empty[-1] if len(empty) == len(live) and "train" in empty else empty[0]
            else:
                n = len(out) + 1
                split = max(live, key=lambda s: (target[s] * n - counts[s], -live.index(s)))
            out[p] = split
            counts[split] += 1
    return out


def check_no_leakage(rows: list[dict[str, str]]) -> None:
    """Raise ValueError if one patient appears in two splits."""
    seen: dict[str, str] = {}
    for r in rows:
        if seen.setdefault(r["patient"], r["split"]) != r["split"]:
            raise ValueError(f"patient {r['patient']} is in splits {seen[r['patient']]} and {r['split']}")


def _uids(rng: np.random.Generator) -> dict[str, str]:
    """Deterministic new UIDs (2.25 root: UUID-derived, as DICOM PS3.5 B.2 allows)."""
    return {
        k: f"2.25.{uuidlib.UUID(bytes=rng.bytes(16), version=4).int}" for k in ("study", "series", "frame")
    }


def _write_scan(vol: Volume, folder: Path, uids: dict[str, str]) -> str:
    """``scans/<uuid>/`` DICOM series with the given new UIDs; NIfTI ``scans/<uuid>.nii.gz`` when the DICOM
    writer is not available. Returns the format written."""
    vol.metadata.update(
        {"study_uid": uids["study"], "series_uid": uids["series"], "frame_of_reference_uid": uids["frame"]}
    )
    try:
        from medforensics.io.dicom_write import write_dicom_series
    except ImportError:
        from medforensics.io.nifti import write_nifti

        write_nifti(vol, folder.with_name(folder.name + ".nii.gz"), dtype=np.int16)
        return "nifti"
    write_dicom_series(vol, folder, new_uids=False)
    return "dicom"


def scan_path(data: str | Path, uuid: str) -> Path:
    """Where a data set keeps the scan of ``uuid`` (DICOM folder, or NIfTI file)."""
    folder = Path(data) / "scans" / uuid
    nii = folder.with_name(uuid + ".nii.gz")
    return nii if nii.is_file() and not folder.is_dir() else folder


def _attack(
    method: str,
    src: S.Source,
    sources: list[S.Source],
    cfg: DatasetConfig,
    rng: np.random.Generator,
    cache: dict[Any, Any],
) -> tuple[Any, str | None]:
    """The attack instance for one sample; donor-based attacks (copy-move) get a real nodule donor, from
    another patient when there is one. Returns (attack, donor source name or None)."""
    import inspect

    from medforensics.forge.base import create_attack

    kw = dict(cfg.attack_kwargs.get(method, {}))
    if method not in cache:
        cache[method] = create_attack(method, **kw)
    if "donor" in inspect.signature(type(cache[method])).parameters and "donor" not in kw:
        donors = [d for d in sources if d.nodules and d.patient != src.patient]
        donors = donors or [d for d in sources if d.nodules]
        if not donors:
            raise ConfigError(f"{method} needs a source with annotated nodules as donor")
        d = donors[int(rng.integers(len(donors)))]
        key = (method, d.name)
        if key not in cache:
            cache[key] = create_attack(method, donor=d.volume, donor_centers=S.nodule_sites(d), **kw)
        return cache[key], d.name
    return cache[method], None


def _make_sample(
    src: S.Source,
    label: str,
    method: str,
    site: tuple[int, int, int],
    cfg: DatasetConfig,
    rng: np.random.Generator,
    sources: list[S.Source],
    cache: dict[Any, Any],
    out: Path | None,
) -> Sample:
    """Crop, attack (FM/FB/SYN), augment and write one sample (``out`` None: dry run, nothing written)."""
    start, shape = S.crop_box(src.volume, site, cfg.depth, cfg.crop, rng)
    sub = S.crop_volume(src.volume, start, shape)
    c = S.local(site, start)
    record: dict[str, Any] | None = None
    if label in ("FM", "FB", "SYN"):
        attack, donor = _attack(method, src, sources, cfg, rng, cache)
        params = attack.sample_params(sub, rng, center=None if label == "SYN" else c)
        seed = int(rng.integers(2**31))
        sub, mask, rec = attack.apply(sub, params, seed=seed)
        record = {**rec.to_dict(), "donor_source": donor}
        if rec.center_voxel is not None:
            c = tuple(int(v) for v in rec.center_voxel)  # type: ignore[assignment]
    elif label == "TM":
        from medforensics.io.datasets.lidc import nodule_mask

        nod = next(n for n in src.nodules if tuple(round(v) for v in n.center_voxel) == site)
        full = nodule_mask(nod, src.volume)
        mask = full[
            start[0] : start[0] + shape[0], start[1] : start[1] + shape[1], start[2] : start[2] + shape[2]
        ]
    else:
        mask = np.zeros(sub.shape, bool)
    chain: list[dict[str, Any]] = []
    arr = sub.array
    if rng.random() < cfg.aug_prob:
        chain = A.ct_augmenter().sample(rng, 3)
        arr, mask = A.apply_augmentations(arr, chain, mask)
        c = tuple(round(v) for v in A.transform_points(c, chain, sub.shape))  # type: ignore[assignment]
        arr = np.round(arr)
    c = tuple(int(np.clip(v, 0, n - 1)) for v, n in zip(c, sub.shape, strict=True))  # type: ignore[assignment]
    vol = sub.with_array(arr)
    vol.metadata = dict(vol.metadata)
    uids = _uids(rng)
    uid = str(uuidlib.UUID(bytes=rng.bytes(16), version=4))
    located = label in ("TM", "FM", "FB")
    sample = Sample(uid, label, method, src, c if located else None, None if located else c, chain, uids)
    source_uids = {
        "study": str(src.volume.metadata.get("study_uid") or ""),
        "series": str(src.volume.metadata.get("series_uid") or ""),
    }
    if out is None:
        return sample
    sample.scan_format = _write_scan(vol, out / "scans" / uid, uids)
    from medforensics.io.nifti import write_nifti

    write_nifti(vol.with_array(mask.astype(np.float32)), out / "masks" / f"{uid}.nii.gz", dtype=np.uint8)
    side = {
        "uuid": uid,
        "type": label,
        "method": method,
        "patient": src.patient,
        "source": src.name,
        "crop_start_zyx": list(start),
        "crop_shape_zyx": list(shape),
        "location_zyx": sample.location,
        "candidate_zyx": sample.candidate,
        "augmentation": chain,
        "attack": record,
        "source_uids": source_uids,
        "new_uids": uids,
    }
    write_text_atomic(out / "records" / f"{uid}.json", json.dumps(side, indent=1) + "\n")
    return sample


def _preflight(
    plan: list[tuple[str, str, int, tuple[int, int, int]]],
    srcs: list[S.Source],
    cfg: DatasetConfig,
    cache: dict[Any, Any],
) -> dict[str, str]:
    """Try each attack method once (dry run); returns {method: reason} for those that cannot run here
    (for example learned attacks whose weights are not trained yet)."""
    broken: dict[str, str] = {}
    tried: set[str] = set()
    for label, method, i, site in plan:
        if method in tried or label not in ("FM", "FB", "SYN"):
            continue
        tried.add(method)
        try:
            _make_sample(
                srcs[i], label, method, site, cfg, np.random.default_rng(cfg.seed), srcs, cache, None
            )
        except MedforensicsError as err:
            log.warning("attack %s unavailable: %s", method, err.one_line())
            broken[method] = err.one_line()
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
    out: str | Path, sources: list[str | Path | S.Source] | None = None, config: DatasetConfig | None = None
) -> dict[str, Any]:
    """Build the data set into ``out`` (must be empty or absent); returns the ``dataset.json`` content."""

    cfg = config or DatasetConfig()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError("output folder is not empty", path=out)
    skipped: list[str] = []
    if sources is None:
        srcs = S.auto_sources()
    else:
        srcs = []
        for s in sources:
            if isinstance(s, S.Source):
                srcs.append(s)
                continue
            try:
                srcs.append(S.load_source(s))
            except MedforensicsError as err:  # a batch goes on past a bad input
                log.warning("skipping source: %s", err.one_line())
                skipped.append(err.one_line())
    if not srcs:
        raise InputError("no usable CT source", path=str(out))
    methods = _methods(cfg)
    rng = np.random.default_rng(cfg.seed)
    plan = _plan(srcs, cfg, methods, rng)
    cache: dict[Any, Any] = {}
    broken = _preflight(plan, srcs, cfg, cache)
    if broken:
        skipped += [f"{m}: {why}" for m, why in broken.items()]
        methods = {k: [m for m in ms if m not in broken] for k, ms in methods.items()}
        plan = _plan(srcs, cfg, methods, rng)
    samples: list[Sample] = []
    failures: list[str] = []
    for label, method, i, site in plan:
        try:
            samples.append(_make_sample(srcs[i], label, method, site, cfg, rng, srcs, cache, out))
        except MedforensicsError as err:
            failures.append(f"{label}/{method}/{srcs[i].name}: {err.one_line()}")
            log.warning("sample failed: %s", failures[-1])
    return _write_index(out, samples, srcs, cfg, methods, skipped, failures)


def _csv(rows: list[list[Any]], header: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _write_index(
    out: Path,
    samples: list[Sample],
    srcs: list[S.Source],
    cfg: DatasetConfig,
    methods: dict[str, list[str]],
    skipped: list[str],
    failures: list[str],
) -> dict[str, Any]:
    split_of = assign_splits([s.patient for s in srcs], {s.patient for s in srcs if s.nodules}, cfg)
    for s in samples:
        s.split = split_of[s.source.patient]
    labels = [
        CTGANLabel(
            s.label, s.uuid, *((s.location[0], s.location[2], s.location[1]) if s.location else (0, 0, 0))
        )
        for s in samples
    ]
    write_ctgan_labels(labels, out / "labels.csv")
    rows = [{"uuid": s.uuid, "patient": s.source.patient, "split": s.split} for s in samples]
    check_no_leakage(rows)
    write_text_atomic(
        out / "splits.csv",
        _csv([[r["uuid"], r["patient"], r["split"]] for r in rows], ("uuid", "patient", "split")),
    )
    man = []
    for s in samples:
        loc = s.location or (0, 0, 0)
        cand = s.candidate or ("", "", "")
        man.append(
            [
                s.uuid,
                s.label,
                s.method,
                s.source.patient,
                s.split,
                s.source.name,
                *loc,
                *cand,
                json.dumps(s.chain, separators=(",", ":")),
                s.source.volume.metadata.get("study_uid", ""),
                s.source.volume.metadata.get("series_uid", ""),
                s.uids["study"],
                s.uids["series"],
            ]
        )
    write_text_atomic(out / "manifest.csv", _csv(man, MANIFEST_COLUMNS))
    counts = {sp: {c: 0 for c in cfg.classes} for sp in SPLITS}
    for s in samples:
        counts[s.split][s.label] += 1
    import pydicom
    import torch

    summary = {
        "tool": {"name": "medforensics", "version": __version__},
        "format": "ctgan-layout",
        "scan_format": sorted({s.scan_format for s in samples}),
        "counts": counts,
        "counts_total": dict(Counter(s.label for s in samples)),
        "counts_per_method": dict(Counter(f"{s.label}:{s.method}" for s in samples)),
        "augmented": dict(Counter(s.label for s in samples if s.chain)),
        "patients_per_split": {sp: sorted({p for p, v in split_of.items() if v == sp}) for sp in SPLITS},
        "seed": cfg.seed,
        "config": {k: v for k, v in asdict(cfg).items() if k != "attack_kwargs"},
        "sources": [s.describe() for s in srcs],
        "methods": methods,
        "skipped": skipped,
        "failures": failures,
        "versions": {
            "medforensics": __version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
            "pydicom": pydicom.__version__,
        },
        "policies": {
            "uids": "all scans get new UIDs (derived copies of one source would collide); "
            "source UIDs in manifest.csv",
            "subvolumes": f"{cfg.depth} slices (or the whole slab) x {cfg.crop} px around each site, "
            "random offset",
            "balancing": f"per_class={cfg.per_class} by cycling sites and methods; every sample augmented "
            f"with p={cfg.aug_prob} (one of rotate +-5/+-10 deg, brightness +-10/+-25 %, flip, noise)",
            "masks": "FM/FB/SYN: attacked voxels; TM: readers' outline; TB: empty",
        },
    }
    write_text_atomic(out / "dataset.json", json.dumps(summary, indent=1) + "\n")
    return summary
