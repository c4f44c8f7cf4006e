"""The CT-GAN tamper data set layout (Mirsky et al., USENIX Security 2019).

A root folder holds one scan per uuid (a folder ``<uuid>/`` of DICOM files, or ``<uuid>.mhd`` /
``.mha`` / ``.nii(.gz)``), directly or in sub-folders (for example one per experiment, ``EXP1_blind/``), and
label files ``labels_exp*.csv`` (or ``labels.csv``) with header ``type,uuid,z,x,y``: type TB (true benign,
no nodule), TM (true malignant), FB (false benign: cancer removed), FM (false malignant: cancer injected),
plus SYN (fully synthetic) for data sets made by ``medforensics forge``; z = slice index, x = column,
y = row. Rows with 0,0,0 (TB) carry no location.

CT-GAN orders slices by ascending ImagePositionPatient z; :meth:`Sample.locate` converts that index to
the volume's slice order.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medforensics._atomic import write_text_atomic
from medforensics.errors import InputError
from medforensics.io.annotations import LABELS, Nodule
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("io.datasets.ctgan")

CTGAN_COLUMNS = ("type", "uuid", "z", "x", "y")
SCAN_SUFFIXES = (".mhd", ".mha", ".nii.gz", ".nii")
#: Folders of per-uuid sidecars in a ``medforensics forge dataset`` (tamper masks, attack records): their
#: ``<uuid>.nii.gz`` files are not scans.
SIDECAR_DIRS = frozenset({"masks", "records"})
_NAN3 = (float("nan"), float("nan"), float("nan"))


@dataclass(frozen=True)
class CTGANLabel:
    """One row of a CT-GAN label file (``line`` is its line number in the file, 0 when built in code)."""

    type: str
    uuid: str
    z: int = 0
    x: int = 0
    y: int = 0
    line: int = field(default=0, compare=False)

    @property
    def has_location(self) -> bool:
        """False for rows with 0,0,0 (TB rows: no location)."""
        return (self.z, self.x, self.y) != (0, 0, 0)

    def validate(self) -> None:
        """Raise ValueError when the row cannot be written or used."""
        if self.type not in LABELS:
            raise ValueError(f"type {self.type!r} is not one of {', '.join(LABELS)}")
        if not self.uuid or any(c in self.uuid for c in ',\n\r"/\\'):
            raise ValueError(f"uuid {self.uuid!r} is empty or holds a comma, quote, newline or slash")
        if min(self.z, self.x, self.y) < 0:
            raise ValueError("z, x, y must be >= 0")


@dataclass
class Sample:
    """One labelled location (or a TB scan) of the data set.

    ``location`` has ``center_voxel`` (z, y, x) in CT-GAN's slice order and NaN ``center_mm`` until
    :meth:`locate` places it in a loaded volume.
    """

    uuid: str
    label: str
    series_path: Path
    location: Nodule | None
    experiment: str
    row: CTGANLabel

    def load(self) -> Volume:
        """Read the scan (DICOM folder, MetaImage or NIfTI)."""
        from medforensics.io.reader import read_volume

        return read_volume(self.series_path)

    def locate(self, volume: Volume) -> Nodule | None:
        """The location in ``volume``'s index order with ``center_mm``; InputError if outside the volume."""
        if self.location is None:
            return None
        z, y, x = self.location.center_voxel
        if volume.direction[2, 0] < 0:  # CT-GAN sorts by ascending z; this volume runs the other way
            z = volume.shape[0] - 1 - z
        if not volume.contains_index((z, y, x)):
            raise InputError(
                f"label z={self.row.z} x={self.row.x} y={self.row.y} lies outside the scan {volume.shape}",
                path=self.series_path,
            )
        centre = (float(z), float(y), float(x))
        mm = volume.index_to_patient(centre)
        return Nodule(
            center_voxel=centre,
            center_mm=(float(mm[0]), float(mm[1]), float(mm[2])),
            label=self.label,
            source=self.location.source,
            nodule_id=self.location.nodule_id,
        )


@dataclass
class MissingScan:
    """A label whose scan was not found."""

    uuid: str
    experiment: str
    reason: str


def _open_text(path: Path) -> str:
    if not path.is_file():
        raise InputError("no such file", path=path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("not a UTF-8 text CSV file", path=path) from exc


def read_ctgan_labels(csv_path: str | Path) -> list[CTGANLabel]:
    """All rows of a CT-GAN label file; a bad header or row raises InputError naming file and line."""
    path = Path(csv_path)
    reader = csv.reader(io.StringIO(_open_text(path)))
    header = [h.strip().lower() for h in next(reader, [])]
    if header != list(CTGAN_COLUMNS):
        raise InputError(f"header must be {','.join(CTGAN_COLUMNS)}, got {','.join(header)!r}", path=path)
    rows = []
    for line_no, cells in enumerate(reader, start=2):
        if not cells or not any(c.strip() for c in cells):
            continue
        if len(cells) != len(CTGAN_COLUMNS):
            raise InputError(f"line {line_no}: expected 5 columns, got {len(cells)}", path=path)
        kind, uuid = cells[0].strip().upper(), cells[1].strip()
        try:
            z, x, y = (int(c.strip()) for c in cells[2:])
        except ValueError as exc:
            raise InputError(f"line {line_no}: z, x, y must be integers", path=path) from exc
        label = CTGANLabel(kind, uuid, z, x, y, line=line_no)
        try:
            label.validate()
        except ValueError as exc:
            raise InputError(f"line {line_no}: {exc}", path=path) from exc
        rows.append(label)
    return rows


def write_ctgan_labels(rows: Iterable[CTGANLabel], csv_path: str | Path) -> Path:
    """Write rows as a CT-GAN label file (``type,uuid,z,x,y``), atomically. ValueError on a bad row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CTGAN_COLUMNS)
    for row in rows:
        row.validate()
        writer.writerow([row.type, row.uuid, int(row.z), int(row.x), int(row.y)])
    return write_text_atomic(csv_path, buf.getvalue())


def experiment_name(label_file: Path) -> str:
    """``labels_exp1.csv`` -> ``exp1``; ``labels.csv`` -> ``""``."""
    stem = label_file.name[: -len(".csv")] if label_file.name.lower().endswith(".csv") else label_file.stem
    return stem[len("labels") :].lstrip("_-") if stem.lower().startswith("labels") else stem


def _norm(text: str) -> str:
    """Lower case, letters and digits only; ``experiment`` spelled ``exp``."""
    return re.sub(r"[^a-z0-9]", "", text.lower()).replace("experiment", "exp")


def _scan_name(entry: os.DirEntry[str]) -> str | None:
    """The uuid a directory entry stands for (folder name or file name without a scan suffix)."""
    if entry.is_dir():
        return entry.name
    lower = entry.name.lower()
    for suffix in SCAN_SUFFIXES:
        if lower.endswith(suffix):
            return entry.name[: -len(suffix)]
    return None


def index_scans(root: Path, uuids: set[str], max_depth: int = 3) -> dict[str, list[Path]]:
    """Every path under ``root`` (folders up to ``max_depth`` deep) named like one of ``uuids``."""
    found: dict[str, list[Path]] = {}
    pending = [(root, 0)]
    while pending:
        folder, depth = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir() and entry.name in SIDECAR_DIRS:
                continue
            name = _scan_name(entry)
            if name in uuids:
                found.setdefault(name, []).append(Path(entry.path))
            elif entry.is_dir() and depth < max_depth and not entry.name.startswith("."):
                pending.append((Path(entry.path), depth + 1))
    return found


def _pick(candidates: list[Path], root: Path, experiment: str) -> Path:
    """The candidate whose folder names the experiment, else the first (sorted)."""
    if len(candidates) > 1 and experiment:
        tag = _norm(experiment)
        named = [p for p in candidates if any(tag in _norm(part) for part in p.relative_to(root).parts[:-1])]
        if named:
            return sorted(named)[0]
    return sorted(candidates)[0]


class CTGANDataset:
    """Labelled samples of a CT-GAN-layout folder; scans not found are listed in ``missing``.

    ``label_files`` defaults to ``root/labels_exp*.csv`` plus ``root/labels.csv``. Identical rows repeated
    within a label file are kept once (``duplicates`` counts them).
    """

    def __init__(self, root: str | Path, label_files: Iterable[str | Path] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError("not a folder", path=self.root)
        files = (
            [Path(p) for p in label_files]
            if label_files is not None
            else sorted(self.root.glob("labels_exp*.csv")) + sorted(self.root.glob("labels.csv"))
        )
        if not files:
            raise InputError("no CT-GAN label file (labels_exp*.csv or labels.csv)", path=self.root)
        self.label_files = files
        self.samples: list[Sample] = []
        self.missing: list[MissingScan] = []
        self.duplicates = 0
        per_file = [(f, experiment_name(f), read_ctgan_labels(f)) for f in files]
        scans = index_scans(self.root, {r.uuid for _, _, rows in per_file for r in rows})
        for f, exp, rows in per_file:
            seen: set[CTGANLabel] = set()
            for row in rows:
                if row in seen:
                    self.duplicates += 1
                    continue
                seen.add(row)
                if row.uuid not in scans:
                    self.missing.append(
                        MissingScan(row.uuid, exp, "no folder or image file named after the uuid")
                    )
                    continue
                location = None
                if row.has_location:
                    location = Nodule(
                        center_voxel=(float(row.z), float(row.y), float(row.x)),
                        center_mm=_NAN3,
                        label=row.type,
                        source=f"ctgan:{f.name}:{row.line}",
                        nodule_id=f"{row.uuid}:{row.z}:{row.y}:{row.x}",
                    )
                series = _pick(scans[row.uuid], self.root, exp)
                self.samples.append(Sample(row.uuid, row.type, series, location, exp, row))
        if self.missing:
            log.warning("%d labelled location(s) without a scan under %s", len(self.missing), self.root)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def counts(self) -> dict[str, dict[str, int]]:
        """{experiment: {label: number of samples}} (found scans only)."""
        out: dict[str, Counter[str]] = {}
        for s in self.samples:
            out.setdefault(s.experiment, Counter())[s.label] += 1
        return {exp: dict(sorted(c.items())) for exp, c in sorted(out.items())}

    def scans(self) -> dict[tuple[str, str], list[Sample]]:
        """Samples grouped by (experiment, uuid): one entry per labelled scan."""
        out: dict[tuple[str, str], list[Sample]] = {}
        for s in self.samples:
            out.setdefault((s.experiment, s.uuid), []).append(s)
        return out
