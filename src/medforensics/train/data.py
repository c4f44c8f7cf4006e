"""Training data: the :class:`SampleSource` interface, its two implementations and split handling.

A source yields :class:`Sample` (array, label, group, meta). ``array`` is one model input scaled to [0, 1]:
``(C, H, W)`` for 2D/2.5D or ``(1, D, H, W)`` for 3D cubes. ``label`` is a CT-GAN label (TB, TM, FB, FM,
SYN) or ``REAL``/``FAKE`` for 2D modalities; ``group`` is the patient (splits never cut a group);
``meta`` may carry ``split`` (train / val / test), ``uuid``, ``center_voxel`` and ``method``.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics._json import finite_numbers
from medforensics.errors import ConfigError, InputError, MedforensicsError
from medforensics.io.annotations import LABELS
from medforensics.logging import get_logger, short_hash

log = get_logger("train.data")

SPLITS = ("train", "val", "test")
SAMPLE_LABELS = (*LABELS, "REAL", "FAKE")
#: Class names per task, and the label -> class index map (labels absent from a map are invalid there).
TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "binary": ("real", "fake"),
    "attack": ("authentic", "injected", "removed"),
    "label": ("TB", "TM", "FB", "FM"),
}
TASK_MAP: dict[str, dict[str, int]] = {
    "binary": {"TB": 0, "TM": 0, "REAL": 0, "FB": 1, "FM": 1, "SYN": 1, "FAKE": 1},
    "attack": {"TB": 0, "TM": 0, "REAL": 0, "FM": 1, "FB": 2},
    "label": {"TB": 0, "TM": 1, "FB": 2, "FM": 3},
}
#: Classes whose probabilities add up to the "not authentic" score.
FAKE_CLASSES: dict[str, tuple[int, ...]] = {"binary": (1,), "attack": (1, 2), "label": (2, 3)}


@dataclass
class Sample:
    """One model input with its label, patient group and metadata."""

    array: NDArray[np.float32]
    label: str
    group: str
    meta: dict[str, Any] = field(default_factory=dict)


class SampleSource(Protocol):
    """Anything iterable over :class:`Sample` (read once per training run)."""

    def __iter__(self) -> Iterator[Sample]: ...


class ArraySource:
    """In-memory samples (tests, notebooks). ``splits`` optional: otherwise assigned by group."""

    def __init__(
        self,
        arrays: Sequence[NDArray[Any]] | NDArray[Any],
        labels: Sequence[str],
        groups: Sequence[str],
        splits: Sequence[str] | None = None,
    ) -> None:
        if not (len(arrays) == len(labels) == len(groups)) or (
            splits is not None and len(splits) != len(labels)
        ):
            raise ConfigError("ArraySource: arrays, labels, groups (and splits) must have the same length")
        self.samples = [
            Sample(
                np.asarray(a, dtype=np.float32),
                str(lab),
                str(g),
                {} if splits is None else {"split": splits[i]},
            )
            for i, (a, lab, g) in enumerate(zip(arrays, labels, groups, strict=True))
        ]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)


class ListSource:
    """A list of ready :class:`Sample` objects as a source (read once, reused across runs)."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.samples = list(samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)


# ---------------------------------------------------------------------------------------------- cutting
def window(hu: NDArray[Any], hu_window: Sequence[float]) -> NDArray[np.float32]:
    """Clip HU to ``[low, high]`` and scale to [0, 1]."""
    lo, hi = float(hu_window[0]), float(hu_window[1])
    return ((np.clip(np.asarray(hu, np.float32), lo, hi) - lo) / (hi - lo)).astype(np.float32)


def crop_stack(
    array: NDArray[Any],
    spacing: Sequence[float],
    center: Sequence[float],
    size: int,
    slices: int = 1,
    spacing_mm: float | None = None,
) -> NDArray[np.float32]:
    """``(slices, size, size)`` in-plane crop around ``center`` (z, y, x): neighbouring native slices,
    in-plane pixels of ``spacing_mm`` (native when None), linear interpolation, mirrored at borders."""
    zc = round(center[0])
    zs = zc + np.arange(slices) - slices // 2
    steps = [1.0 if spacing_mm is None else spacing_mm / float(s) for s in spacing[1:]]
    half = (size - 1) / 2.0
    ys = center[1] + (np.arange(size) - half) * steps[0]
    xs = center[2] + (np.arange(size) - half) * steps[1]
    coords = np.stack(np.meshgrid(zs.astype(np.float64), ys, xs, indexing="ij"))
    out = ndimage.map_coordinates(np.asarray(array, np.float32), coords, order=1, mode="mirror")
    return out.astype(np.float32)


def cut_sample(
    array: NDArray[Any],
    spacing: Sequence[float],
    center: Sequence[float],
    kind: str,
    size: int,
    slices: int = 5,
    spacing_mm: float | None = None,
    cube_spacing_mm: float = 1.0,
) -> NDArray[np.float32]:
    """The model input (HU, not yet windowed) of ``kind`` 2d / 2.5d / 3d around ``center`` (z, y, x)."""
    if kind == "3d":
        from medforensics.forge.cubes import extract_cube

        cube, _ = extract_cube(array, tuple(spacing), tuple(center), size * cube_spacing_mm, cube_spacing_mm)  # type: ignore[arg-type]
        return cube[None]
    return crop_stack(array, spacing, center, size, 1 if kind == "2d" else slices, spacing_mm)


# ---------------------------------------------------------------------------------------------- forge layout
def read_splits(path: Path) -> dict[str, tuple[str, str]]:
    """``splits.csv`` (``uuid,patient,split``) as {uuid: (patient, split)}; InputError on a bad file."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read split file ({err})", path=path) from None
    out: dict[str, tuple[str, str]] = {}
    for i, row in enumerate(rows, start=2):
        uuid, patient, split = ((row.get(k) or "").strip() for k in ("uuid", "patient", "split"))
        if not uuid or not patient or split not in SPLITS:
            raise InputError(f"line {i}: need uuid, patient and split in {SPLITS}", path=path)
        out[uuid] = (patient, split)
    return out


AUTHENTIC_LABELS = ("TB", "TM", "REAL")
NO_METHOD = "none"


def method_of(label: str, record: dict[str, Any]) -> str | None:
    """The attack method of a sample: ``none`` for authentic labels, else the record's ``method``."""
    if label in AUTHENTIC_LABELS:
        return NO_METHOD
    m = record.get("method")
    return None if m in (None, "") else str(m)


def sample_methods(samples: Iterable[Sample]) -> list[str]:
    """Sorted attack methods of the tampered samples (``none`` and unknown left out)."""
    return sorted({str(s.meta["method"]) for s in samples if s.meta.get("method") not in (None, NO_METHOD)})


def leave_method_out(samples: Sequence[Sample], held_out: str) -> list[Sample]:
    """Leave-one-attack-out selection over samples that carry ``split`` and ``method`` in ``meta``.

    Train and val keep every sample except those of ``held_out``; test keeps the authentic samples and the
    tampered samples of ``held_out`` only. ConfigError when no test sample of ``held_out`` exists.
    """
    out = []
    for s in samples:
        m, split = s.meta.get("method"), s.meta.get("split")
        if split not in SPLITS:
            raise ConfigError("leave-one-attack-out needs a split on every sample (splits.csv)")
        if split != "test":
            if m != held_out:
                out.append(s)
        elif s.label in AUTHENTIC_LABELS or m == held_out:
            out.append(s)
    if not any(s.meta.get("method") == held_out and s.meta.get("split") == "test" for s in out):
        raise ConfigError(f"no test sample made by attack method {held_out!r}")
    return out


def _check_zyx(value: Any, key: str, path: Path) -> None:
    """InputError naming the record unless ``value`` is three finite numbers (z, y, x voxel indices)."""
    if not isinstance(value, list) or finite_numbers(value, 3) is None:
        raise InputError(f"{key} must be three finite numbers (z, y, x), got {value!r}", path=path)


class ForgeDatasetSource:
    """Samples cut from a forge data set: ``labels.csv``, ``scans/<uuid>/``, ``masks/``, ``splits.csv``.

    Each label row gives one sample around its location (z, x, y as CT-GAN writes them). Per-scan records
    come from ``records/<uuid>.json`` (written by ``medforensics forge dataset``: ``method``,
    ``candidate_zyx``, ``location_zyx``) and/or ``sidecars/<uuid>.json`` (``method``, ``center_voxel``);
    both are read and merged, the sidecar winning. Rows without a location (TB, SYN) use the record's
    ``center_voxel`` / ``candidate_zyx`` (z, y, x) when present, else the volume centre. ``methods``, when
    given, keeps only samples whose attack method is listed (authentic rows have method ``none``). Scans
    that cannot be read are skipped and listed in ``skipped``.
    """

    def __init__(
        self,
        root: str | Path,
        kind: str,
        size: int,
        slices: int = 5,
        spacing_mm: float | None = None,
        cube_spacing_mm: float = 1.0,
        hu_window: Sequence[float] = (-1000.0, 400.0),
        methods: Iterable[str] | None = None,
    ) -> None:
        from medforensics.io.datasets.ctgan import CTGANDataset

        self.root = Path(root)
        labels = self.root / "labels.csv"
        if (self.root / "scans").is_dir() and labels.is_file():
            # look for scans in scans/ only: masks/<uuid>.nii.gz are named like the scans
            self.dataset = CTGANDataset(self.root / "scans", label_files=[labels])
        else:
            self.dataset = CTGANDataset(self.root)
        split_file = self.root / "splits.csv"
        if split_file.exists() and not split_file.is_file():  # was ignored: every sample scored as test
            raise InputError("is not a file (the split file must be a CSV)", path=split_file)
        self.splits = read_splits(split_file) if split_file.is_file() else {}
        self.kind, self.size, self.slices = kind, size, slices
        self.spacing_mm, self.cube_spacing_mm, self.hu_window = spacing_mm, cube_spacing_mm, hu_window
        self.methods = None if methods is None else frozenset(methods)
        self.skipped: list[str] = []

    def _sidecar(self, uuid: str) -> dict[str, Any]:
        """``records/<uuid>.json`` merged with ``sidecars/<uuid>.json`` (either may be absent)."""
        out: dict[str, Any] = {}
        for folder in ("records", "sidecars"):
            path = self.root / folder / f"{uuid}.json"
            if not path.is_file():
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise InputError(f"bad record JSON ({err})", path=path) from None
            if isinstance(data, dict):
                for key in ("center_voxel", "candidate_zyx"):
                    if key in data and not (key == "candidate_zyx" and data[key] is None):
                        _check_zyx(data[key], key, path)
                out.update(data)
        if out.get("method") is None and isinstance(out.get("attack"), dict):
            out["method"] = out["attack"].get("method")
        if "center_voxel" not in out and out.get("candidate_zyx") is not None:
            out["center_voxel"] = out["candidate_zyx"]
        return out

    def _scans(self) -> list[tuple[str, list[Any]]]:
        """(uuid, label rows) per scan, without the scans whose method the filter drops."""
        scans = [(uuid, rows) for (_, uuid), rows in sorted(self.dataset.scans().items())]
        if self.methods is None:
            return scans
        return [(u, r) for u, r in scans if method_of(r[0].label, self._sidecar(u)) in self.methods]

    def __iter__(self) -> Iterator[Sample]:
        for uuid, rows in self._scans():
            try:
                volume = rows[0].load()
            except MedforensicsError as err:
                self.skipped.append(err.one_line())
                log.warning("skipped scan %s: %s", short_hash(uuid), err.reason)
                continue
            patient, split = self.splits.get(uuid, (uuid, ""))
            side = self._sidecar(uuid)
            for row in rows:
                try:
                    nodule = row.locate(volume)
                except InputError as err:
                    self.skipped.append(err.one_line())
                    log.warning("skipped a %s row of scan %s: %s", row.label, short_hash(uuid), err.reason)
                    continue
                if nodule is not None:
                    centre = tuple(nodule.center_voxel)
                elif "center_voxel" in side:
                    centre = tuple(float(c) for c in side["center_voxel"])
                    if not all(0 <= c <= n - 1 for c, n in zip(centre, volume.shape, strict=True)):
                        why = f"record centre {list(centre)} lies outside the scan {list(volume.shape)}"
                        self.skipped.append(f"{uuid}: {why}")
                        log.warning("skipped a %s row of scan %s: %s", row.label, short_hash(uuid), why)
                        continue
                else:
                    centre = tuple((s - 1) / 2.0 for s in volume.shape)
                hu = cut_sample(
                    volume.array,
                    volume.spacing,
                    centre,
                    self.kind,
                    self.size,
                    self.slices,
                    self.spacing_mm,
                    self.cube_spacing_mm,
                )
                meta = {"uuid": uuid, "center_voxel": list(centre), "method": method_of(row.label, side)}
                if split:
                    meta["split"] = split
                yield Sample(window(hu, self.hu_window), row.label, patient, meta)


# ---------------------------------------------------------------------------------------------- splits
@dataclass
class SplitArrays:
    """One split as arrays: inputs ``x``, class indices ``y``, original labels and groups."""

    x: NDArray[np.float32]
    y: NDArray[np.int64]
    labels: list[str]
    groups: list[str]
    meta: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)


def _assign_splits(
    groups: Iterable[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """Patient-level random split: whole groups go to test, then val, the rest to train."""
    uniq = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(uniq))
    n_test = round(test_fraction * len(uniq))
    n_val = round(val_fraction * len(uniq))
    if val_fraction > 0 and n_val == 0 and len(uniq) - n_test >= 2:
        n_val = 1
    out = {}
    for rank, i in enumerate(order):
        out[uniq[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out


def ensure_splits(
    samples: Sequence[Sample], val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0
) -> list[Sample]:
    """The samples with ``meta["split"]`` set on every one: explicit splits are kept, the other patients
    are assigned by :func:`_assign_splits` (whole patients). The inputs are not modified."""
    split_of = _group_splits(samples, val_fraction, test_fraction, seed)
    return [
        s
        if s.meta.get("split")
        else Sample(s.array, s.label, s.group, {**s.meta, "split": split_of[s.group]})
        for s in samples
    ]


def _group_splits(
    samples: Sequence[Sample], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """Each patient's split: the one its samples name (``meta["split"]``), else :func:`_assign_splits`'s."""
    explicit = {s.group: s.meta["split"] for s in samples if s.meta.get("split")}
    auto = _assign_splits(
        [s.group for s in samples if s.group not in explicit], val_fraction, test_fraction, seed
    )
    return {**auto, **explicit}


def task_samples(samples: Sequence[Sample], task: str) -> tuple[list[Sample], dict[str, int]]:
    """The samples ``task`` has a class for, and the number per label of those it has none for, which are
    left out: a data set ``forge dataset`` made holds SYN scans, which the ``attack`` task (authentic /
    injected / removed) cannot place, and the ``label`` task takes neither SYN nor 2-D REAL/FAKE images.
    A label that is no sample label at all (:data:`SAMPLE_LABELS`) is a ConfigError."""
    mapping = TASK_MAP[task]
    unknown = sorted({s.label for s in samples} - set(SAMPLE_LABELS))
    if unknown:
        raise ConfigError(f"unknown label(s) {unknown}; a label is one of {', '.join(SAMPLE_LABELS)}")
    left = Counter(s.label for s in samples if s.label not in mapping)
    return [s for s in samples if s.label in mapping], dict(sorted(left.items()))


def left_out_line(task: str, left: dict[str, int]) -> str:
    """One line saying which samples ``task`` left out (:func:`task_samples`)."""
    return f"task {task!r} has no class for {', '.join(left)}: {_counts(left)} left out"


def _counts(left: dict[str, int]) -> str:
    return ", ".join(f"{n} {label} sample{'s' if n != 1 else ''}" for label, n in left.items())


def split_samples(
    samples: Sequence[Sample],
    task: str,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    exclude_types: Sequence[str] = (),
    require_val: bool = True,
) -> dict[str, list[Sample]]:
    """The samples per split (train / val / test), checked as :func:`collect_splits` says, without
    stacking any array (the benchmark checks its data set once with it, before training anything)."""
    if task not in TASK_MAP:
        raise ConfigError(f"unknown task {task!r}; expected one of {', '.join(TASK_MAP)}")
    if not samples:
        raise ConfigError("the data set is empty (no readable samples)")
    shapes = {s.array.shape for s in samples}
    if len(shapes) > 1:
        raise ConfigError(f"samples have different shapes {sorted(shapes)[:3]}; cut them to one size")
    mapping = TASK_MAP[task]
    samples, left = task_samples(samples, task)
    if left:
        log.warning("%s", left_out_line(task, left))
    if not samples:
        raise ConfigError(f"{left_out_line(task, left)}: no sample left; it takes {', '.join(mapping)}")
    seen: dict[str, set[str]] = {}
    for s in samples:
        if s.meta.get("split"):
            if s.meta["split"] not in SPLITS:
                raise ConfigError(f"split must be one of {SPLITS}, got {s.meta['split']!r}")
            seen.setdefault(s.group, set()).add(s.meta["split"])
    leaks = {g: v for g, v in seen.items() if len(v) > 1}
    if leaks:
        g, v = next(iter(sorted(leaks.items())))
        raise ConfigError(
            f"split leaks a patient: group {short_hash(g)} is in {' and '.join(sorted(v))} "
            f"({len(leaks)} such patient(s))"
        )
    split_of = _group_splits(samples, val_fraction, test_fraction, seed)
    parts: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    for s in samples:
        split = split_of[s.group]
        if split != "test" and s.label in exclude_types:
            continue
        parts[split].append(s)
    train_classes = {mapping[s.label] for s in parts["train"]}
    if len(train_classes) < 2:
        raise ConfigError(
            f"the training split has {len(parts['train'])} sample(s) of one class; need two or more"
        )
    if require_val and not parts["val"]:
        raise ConfigError("no validation samples: raise data.val_fraction or add val rows to splits.csv")
    return parts


def collect_splits(
    source: SampleSource,
    task: str,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    exclude_types: Sequence[str] = (),
    require_val: bool = True,
) -> dict[str, SplitArrays]:
    """Read every sample, map labels to the task's classes, split by patient and check the result.

    Samples the task has no class for are left out with a warning (:func:`task_samples`). ConfigError
    (before any training) for: an empty data set, unknown labels, no sample the task can use, a patient in
    two splits, a training split with one class, no validation samples (when ``require_val``).
    """
    if task not in TASK_MAP:  # before the samples are read
        raise ConfigError(f"unknown task {task!r}; expected one of {', '.join(TASK_MAP)}")
    samples = list(source)
    parts = split_samples(samples, task, val_fraction, test_fraction, seed, exclude_types, require_val)
    mapping, shape = TASK_MAP[task], samples[0].array.shape
    return {
        k: SplitArrays(
            np.stack([s.array for s in v]) if v else np.zeros((0, *shape), np.float32),
            np.array([mapping[s.label] for s in v], dtype=np.int64),
            [s.label for s in v],
            [s.group for s in v],
            [s.meta for s in v],
        )
        for k, v in parts.items()
    }
