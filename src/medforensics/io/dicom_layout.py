"""The header-only layout of one DICOM series: its frames sorted along the slice normal (duplicates
dropped), the geometry they imply, the warnings on the way, and the images' sizes (:class:`SeriesLayout`).

Images of one series must share size and orientation, except the images of a projection radiograph series
(:data:`~medforensics.io.dicom_tags.PROJECTION_MODALITIES`): a PA and a lateral view may differ in size, and
their sizes are recorded (:attr:`SeriesLayout.image_shapes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medforensics.errors import InputError
from medforensics.io.dicom_frames import FrameInfo, frame_infos
from medforensics.io.dicom_pixels import check_frames_fit
from medforensics.io.dicom_tags import PROJECTION_MODALITIES, series_modality, spacing_warning
from medforensics.io.volume import AXIAL_DIRECTION

#: Positions closer than this (mm) along the normal are duplicates.
_DUPLICATE_MM = 1e-3
_ORIENTATION_TOL = 1e-3


@dataclass
class SliceRef:
    ds_index: int
    info: FrameInfo
    key: float  # position along the normal (or fallback order)


def _check_consistent(slices: list[SliceRef], datasets: list[Dataset], files: list[Path]) -> bool:
    """Refuse images of another size or orientation in one series, except images of different sizes in a
    series of projection radiographs (:data:`PROJECTION_MODALITIES`); True when such sizes differ."""
    first = slices[0]
    shape0 = (int(datasets[first.ds_index].Rows), int(datasets[first.ds_index].Columns))
    projection = series_modality(datasets[first.ds_index], []) in PROJECTION_MODALITIES
    varied = False
    for s in slices[1:]:
        ds = datasets[s.ds_index]
        shape = (int(ds.Rows), int(ds.Columns))
        if shape != shape0 and not projection:
            raise InputError(
                f"image size {shape} differs from {shape0} in the same series", path=files[s.ds_index]
            )
        varied = varied or shape != shape0
        o0, o = first.info.orientation, s.info.orientation
        if (o0 is None) != (o is None) or (
            o is not None and o0 is not None and np.abs(o - o0).max() > _ORIENTATION_TOL
        ):
            raise InputError("image orientation differs within the series", path=files[s.ds_index])
    return varied


def _geometry(
    slices: list[SliceRef], warn: list[str]
) -> tuple[tuple[float, float, float], tuple[float, float, float], NDArray[np.float64]]:
    """Spacing, origin and direction of the sorted, de-duplicated slices."""
    info0 = slices[0].info
    sy, sx = info0.pixel_spacing or (1.0, 1.0)
    if info0.orientation is None or info0.position is None:
        sz = info0.thickness or 1.0
        if len(slices) > 1:
            warn.append("no slice positions/orientation: slices stacked in instance order, spacing assumed")
        return (sz, sy, sx), (0.0, 0.0, 0.0), AXIAL_DIRECTION.copy()
    row, col = info0.orientation[:3], info0.orientation[3:]
    normal = np.cross(row, col)
    direction = np.stack([normal, col, row], axis=1)
    keys = np.array([s.key for s in slices])
    if len(slices) == 1:
        sz = info0.thickness or 1.0
    else:
        gaps = np.diff(keys)
        sz = float(np.median(gaps))
        if gaps.max() - gaps.min() > max(0.01, 0.01 * sz):
            warn.append(
                f"irregular slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm "
                f"(median {sz:.3f} mm used)"
            )
        pos = np.stack([s.info.position for s in slices if s.info.position is not None])
        steps = np.diff(pos, axis=0)
        along = steps @ normal
        off_axis = np.linalg.norm(steps - along[:, None] * normal[None, :], axis=1)
        if off_axis.max() > 0.01 * max(sz, 1e-6) + 1e-3:
            warn.append(
                f"slices are not stacked along the normal (gantry tilt? up to {off_axis.max():.2f} mm)"
            )
    origin = tuple(float(v) for v in slices[0].info.position)  # type: ignore[union-attr]
    return (float(sz), float(sy), float(sx)), origin, direction  # type: ignore[return-value]


def _sort_and_dedup(slices: list[SliceRef], files: list[Path], warn: list[str]) -> list[SliceRef]:
    slices = sorted(slices, key=lambda s: s.key)  # stable: input order breaks ties
    kept: list[SliceRef] = []
    for s in slices:
        if kept and abs(s.key - kept[-1].key) < _DUPLICATE_MM and s.info.position is not None:
            warn.append(
                f"duplicate slice position {s.key:.3f} mm in {files[s.ds_index].name}: "
                f"kept {files[kept[-1].ds_index].name}"
            )
            continue
        kept.append(s)
    return kept


@dataclass
class SeriesLayout:
    """Header-only facts of one series: frames in array order, geometry, warnings (no pixels decoded)."""

    datasets: list[Dataset]
    slices: list[SliceRef]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: NDArray[np.float64]
    warnings: list[str]
    has_pixel_spacing: bool
    #: (rows, columns) of each frame in array order when a projection series' images differ in size (the
    #: array is then as large as the largest, each image top left and padded with its own minimum)
    image_shapes: list[tuple[int, int]] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(frames, rows, columns)."""
        if self.image_shapes:
            rows, cols = zip(*self.image_shapes, strict=True)
            return len(self.slices), max(rows), max(cols)
        ds0 = self.datasets[self.slices[0].ds_index]
        return len(self.slices), int(ds0.Rows), int(ds0.Columns)


def series_layout(datasets: list[Dataset], paths: list[Path]) -> SeriesLayout:
    """Sort frames along the slice normal, drop duplicates and derive the geometry (headers only)."""
    uids = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(uids) > 1:
        raise InputError(
            f"files of {len(uids)} series passed as one series; pass one series at a time",
            path=paths[0].parent if len(paths) > 1 else paths[0],
        )
    slices: list[SliceRef] = []
    for i, ds in enumerate(datasets):
        if "Rows" not in ds or "Columns" not in ds:
            raise InputError("no Pixel Data (no Rows/Columns: not an image object)", path=paths[i])
        try:
            check_frames_fit(ds, paths[i])
            slices.extend(SliceRef(i, info, 0.0) for info in frame_infos(ds))
        except (ValueError, TypeError) as exc:  # a malformed value (IS '1A', a DS that is not a number...)
            raise InputError(f"malformed geometry or frame tags ({exc})", path=paths[i]) from None
    varied = _check_consistent(slices, datasets, paths)
    warn: list[str] = []
    info0 = slices[0].info
    if info0.orientation is not None and all(s.info.position is not None for s in slices):
        normal = np.cross(info0.orientation[:3], info0.orientation[3:])
        for s in slices:
            s.key = float(np.dot(s.info.position, normal))  # type: ignore[arg-type]
        slices = _sort_and_dedup(slices, paths, warn)
    else:
        if len(slices) > 1 and info0.orientation is not None:
            warn.append(
                "some slices lack ImagePositionPatient: sorted by instance number, default axial geometry"
            )
        for k, s in enumerate(slices):
            s.info.orientation = None
            s.key = float(s.info.instance_number if s.info.instance_number is not None else k)
        slices = sorted(slices, key=lambda s: s.key)
    spacing, origin, direction = _geometry(slices, warn)
    bad_spacing = None if info0.pixel_spacing else spacing_warning(datasets[slices[0].ds_index])
    warn.extend([bad_spacing] if bad_spacing else [])
    shapes = None
    if varied:  # in array order (sorted and de-duplicated above)
        shapes = [(int(datasets[s.ds_index].Rows), int(datasets[s.ds_index].Columns)) for s in slices]
        shapes = shapes if len(set(shapes)) > 1 else None
    has_spacing = info0.pixel_spacing is not None
    return SeriesLayout(datasets, slices, spacing, origin, direction, warn, has_spacing, shapes)
