"""Annotation types shared by every data-set format (LIDC XML, LUNA16 csv, CT-GAN labels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: CT-GAN data-set labels: true benign (no nodule), true malignant (real nodule),
#: false benign (nodule removed), false malignant (nodule injected); SYN = fully synthetic.
LABELS = ("TB", "TM", "FB", "FM", "SYN")


@dataclass
class Nodule:
    """One physical finding located in a volume.

    ``center_voxel`` is (z, y, x) (fractional allowed); ``center_mm`` is patient LPS (x, y, z).
    ``contours`` maps a slice index to polygons of (row, col) pixel coordinates (may be empty).
    """

    center_voxel: tuple[float, float, float]
    center_mm: tuple[float, float, float]
    diameter_mm: float | None = None
    diameter_voxels: tuple[float, float, float] | None = None
    label: str | None = None
    malignancy: float | None = None
    source: str = ""
    nodule_id: str = ""
    contours: dict[int, list[Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
