"""The files of a ``forge dataset`` data set: scans with new UIDs, labels, manifest, splits, dataset.json.

Also the patient-level split (:func:`assign_splits`) and its check (:func:`check_no_leakage`).
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
from medforensics.errors import InputError
from medforensics.forge import dataset_sources as S
from medforensics.io.datasets.ctgan import CTGANLabel, write_ctgan_labels
from medforensics.io.volume import Volume

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
#: The manifest columns every reader of a data set needs (the realism report reads others as well).
MANIFEST_KEYS = ("uuid", "type", "method", "patient", "split")


def manifest_path(data: str | Path) -> Path:
    """``data``'s ``manifest.csv``; InputError when ``data`` is not a data set ``forge dataset`` wrote."""
    path = Path(data) / "manifest.csv"
    if not path.is_file():
        raise InputError("not a forge data set (no manifest.csv)", path=data)
    return path


def read_manifest(data: str | Path, columns: tuple[str, ...] = MANIFEST_KEYS) -> list[dict[str, str]]:
    """The rows of ``data``'s ``manifest.csv``; InputError naming the file when it is missing, unreadable
    or lacks one of ``columns``."""
    path = manifest_path(data)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            have = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"not a readable manifest ({type(err).__name__})", path=path) from None
    missing = [c for c in columns if c not in have]
    if missing:
        raise InputError(f"not a data-set manifest: no column {', '.join(missing)}", path=path)
    return rows


@dataclass
class DatasetConfig:
    """What to build. ``methods`` None means every registered attack. ``noise_plane``, ``noise_z``: how the
    attacks that match noise measure it and relate it between slices
    (:class:`~medforensics.forge.base.NoiseMatched`; ``noise_plane="volume"`` rebuilds the data sets made
    before session 41; ``noise_z="mixed"`` draws each sample's, see ``dataset.DATASET_NOISE_Z``); an
    ``attack_kwargs`` entry overrides them."""

    per_class: int = 20
    seed: int = 0
    methods: list[str] | None = None
    val_frac: float = 0.2
    test_frac: float = 0.2
    depth: int = 32
    crop: int = 256
    aug_prob: float = 0.75
    noise_plane: str = "slice"
    noise_z: str = "independent"
    round_trip_mm: float | None = None
    round_trip_share: float = 0.5
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


def new_uids(rng: np.random.Generator) -> dict[str, str]:
    """Deterministic new UIDs (2.25 root: UUID-derived, as DICOM PS3.5 B.2 allows)."""
    return {
        k: f"2.25.{uuidlib.UUID(bytes=rng.bytes(16), version=4).int}" for k in ("study", "series", "frame")
    }


def _crop_headers(vol: Volume, uids: dict[str, str]) -> list[Any] | None:
    """Source headers adapted to a sub-volume (size, position, instance number) carrying the new UIDs;
    None when the volume has no per-slice source headers (NIfTI sources, multi-frame files)."""
    import copy

    if not vol.datasets or len(vol.datasets) != vol.shape[0]:
        return None
    out = []
    for k, src in enumerate(vol.datasets):
        ds = copy.deepcopy(src)
        ds.Rows, ds.Columns = vol.shape[1], vol.shape[2]
        ds.ImagePositionPatient = [round(float(v), 6) for v in vol.index_to_patient([k, 0, 0])]
        ds.InstanceNumber = k + 1
        _set_uids(ds, uids, k)
        out.append(ds)
    return out


def _set_uids(ds: Any, uids: dict[str, str], k: int) -> None:
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.SOPInstanceUID = f"{uids['series']}.{k + 1}"


def write_scan(vol: Volume, folder: Path, uids: dict[str, str]) -> str:
    """``scans/<uuid>/``: a DICOM series with the given new UIDs (source headers kept where there are
    any, else the writer's minimal CT headers). Returns the format written."""

    from medforensics.io.dicom_write import write_dicom_series

    headers = _crop_headers(vol, uids)
    if headers is not None:
        write_dicom_series(vol, folder, datasets=headers)
        return "dicom"
    n = vol.shape[0]
    meta = {
        **vol.metadata,
        "study_uid": uids["study"],
        "series_uid": uids["series"],
        "frame_of_reference_uid": uids["frame"],
        "sop_instance_uids": [f"{uids['series']}.{k + 1}" for k in range(n)],
    }
    write_dicom_series(vol.with_array(vol.array, datasets=[], metadata=meta), folder)
    return "dicom"


def scan_path(data: str | Path, uuid: str) -> Path:
    """Where a data set keeps the scan of ``uuid`` (DICOM folder, or NIfTI file)."""
    folder = Path(data) / "scans" / uuid
    nii = folder.with_name(uuid + ".nii.gz")
    return nii if nii.is_file() and not folder.is_dir() else folder


def _csv(rows: list[list[Any]], header: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_index(
    out: Path,
    samples: list[Sample],
    srcs: list[S.Source],
    cfg: DatasetConfig,
    methods: dict[str, list[str]],
    skipped: list[str],
    failures: list[str],
) -> dict[str, Any]:
    split_of = assign_splits([s.patient for s in srcs], {s.patient for s in srcs if s.nodules}, cfg)
    live = [sp for sp, frac in (("val", cfg.val_frac), ("test", cfg.test_frac)) if frac > 0] + ["train"]
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
    # a TB crop that shows a real nodule wherever it is placed is written as TM, asked for or not
    shown = [c for c in CLASSES if c in cfg.classes or any(s.label == c for s in samples)]
    counts = {sp: dict.fromkeys(shown, 0) for sp in SPLITS}
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
        "warnings": [f"{len(split_of)} patient(s) for {len(live)} split(s): some splits are empty"]
        if len(split_of) < len(live)
        else [],
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
