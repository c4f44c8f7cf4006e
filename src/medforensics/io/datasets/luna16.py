"""LUNA16 ``annotations.csv``: ``seriesuid,coordX,coordY,coordZ,diameter_mm``.

The coordinates are ITK world millimetres of the LUNA16 .mhd scans, which is patient LPS (x, y, z), the
frame of :meth:`Volume.patient_to_index`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from medforensics.errors import InputError
from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume

LUNA16_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")

#: One annotation: (x_mm, y_mm, z_mm, diameter_mm), LPS.
Luna16Row = tuple[float, float, float, float]


def read_luna16_annotations(csv_path: str | Path) -> dict[str, list[Luna16Row]]:
    """Annotations per series UID (file order kept). A bad row raises InputError naming file and line."""
    path = Path(csv_path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    out: dict[str, list[Luna16Row]] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if header[: len(LUNA16_COLUMNS)] != list(LUNA16_COLUMNS):
                raise InputError(
                    f"header must start with {','.join(LUNA16_COLUMNS)}, got {','.join(header)!r}", path=path
                )
            for line_no, row in enumerate(reader, start=2):
                if not row or not any(cell.strip() for cell in row):
                    continue
                if len(row) < len(LUNA16_COLUMNS):
                    raise InputError(
                        f"line {line_no}: expected {len(LUNA16_COLUMNS)} columns, got {len(row)}", path=path
                    )
                uid = row[0].strip()
                try:
                    x, y, z, d = (float(v) for v in row[1:5])
                except ValueError as exc:
                    raise InputError(
                        f"line {line_no}: non-numeric coordinate or diameter", path=path
                    ) from exc
                if not uid or not all(np.isfinite([x, y, z, d])) or d < 0:
                    raise InputError(
                        f"line {line_no}: empty series UID, non-finite value or negative diameter", path=path
                    )
                out.setdefault(uid, []).append((x, y, z, d))
    except UnicodeDecodeError as exc:
        raise InputError("not a UTF-8 text CSV file", path=path) from exc
    return out


def luna16_nodules(volume: Volume, rows: Iterable[Luna16Row], inside_only: bool = True) -> list[Nodule]:
    """LUNA16 annotations of one series as :class:`Nodule` objects located in ``volume``.

    With ``inside_only`` (default) annotations whose centre falls outside the array are dropped.
    """
    nodules = []
    for i, (x, y, z, d) in enumerate(rows, start=1):
        centre = volume.patient_to_index((x, y, z))
        if inside_only and not volume.contains_index(np.round(centre)):
            continue
        nodules.append(
            Nodule(
                center_voxel=(float(centre[0]), float(centre[1]), float(centre[2])),
                center_mm=(float(x), float(y), float(z)),
                diameter_mm=float(d),
                diameter_voxels=tuple(float(d / s) for s in volume.spacing),  # type: ignore[arg-type]
                source="luna16",
                nodule_id=str(i),
            )
        )
    return nodules
