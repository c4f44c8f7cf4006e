"""Per-frame DICOM facts shared by the reader and the writer.

One :class:`FrameInfo` per 2-D image: single-frame files have one; multi-frame files have one per frame,
taken from the Per-frame / Shared Functional Groups (enhanced CT/MR) or, for legacy multi-frame files,
from the top-level geometry plus ``GridFrameOffsetVector`` / ``SpacingBetweenSlices``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.tag import Tag

__all__ = ["BULK_KEYWORDS", "FrameInfo", "frame_infos", "luminance", "stored_range", "strip_bulk"]

#: Elements holding bulk pixel values; never kept in ``Volume.datasets``.
BULK_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass
class FrameInfo:
    """Geometry and value mapping of one 2-D image (frame) of a DICOM file."""

    frame: int
    position: NDArray[np.float64] | None
    orientation: NDArray[np.float64] | None
    pixel_spacing: tuple[float, float] | None
    thickness: float | None
    spacing_between: float | None
    slope: float
    intercept: float
    window: tuple[float, float] | None
    sop_instance_uid: str | None
    instance_number: int | None


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | bytes) and hasattr(value, "__getitem__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _vec(value: Any, n: int) -> NDArray[np.float64] | None:
    if value is None:
        return None
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.all(np.isfinite(arr)) else None


def _item(ds: Dataset, frame: int, keyword: str) -> Dataset | None:
    """First item of a functional-group macro for ``frame`` (per-frame wins over shared)."""
    for seq_kw, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(seq_kw)
        if seq is None or len(seq) <= index:
            continue
        macro = seq[index].get(keyword)
        if macro is not None and len(macro) > 0:
            item: Dataset = macro[0]
            return item
    return None


def _orientation(value: Any) -> NDArray[np.float64] | None:
    o = _vec(value, 6)
    if o is None:
        return None
    row, col = o[:3], o[3:]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if nr < 1e-6 or nc < 1e-6:
        return None
    if np.linalg.norm(np.cross(row / nr, col / nc)) < 0.5:  # (nearly) parallel: no slice normal, as missing
        return None
    return np.concatenate([row / nr, col / nc])


def _window(src: Dataset | None) -> tuple[float, float] | None:
    if src is None:
        return None
    c, w = _num(src.get("WindowCenter")), _num(src.get("WindowWidth"))
    return (c, w) if c is not None and w is not None else None


def _spacing(src: Dataset | None) -> tuple[float, float] | None:
    if src is None:
        return None
    for kw in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        v = _vec(src.get(kw), 2)
        if v is not None and np.all(v > 0):
            return float(v[0]), float(v[1])
    return None


def _positive(value: Any) -> float | None:
    v = _num(value)
    return v if v is not None and v > 0 else None


def _slope(value: float | None) -> float:
    """A rescale slope (1 without one); ValueError for 0, which DICOM does not allow and which would read
    every pixel of the frame as the intercept."""
    if value == 0:
        raise ValueError("RescaleSlope 0")
    return 1.0 if value is None else value


def frame_count(ds: Dataset) -> int:
    """``NumberOfFrames`` of ``ds``: 1 without it, or where it is empty or 0 (single-frame objects carry
    that); ValueError for a negative or non-integer value, which the readers report as a malformed tag."""
    value = ds.get("NumberOfFrames")
    n = int(value) if value not in (None, "") else 1
    if n < 0:
        raise ValueError(f"NumberOfFrames {n}")
    return max(n, 1)


def single_frame_geometry(
    ds: Dataset,
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None, str | None] | None:
    """Position, orientation and SOP instance UID of a single-frame object, as :func:`frame_infos` reads
    them but from those tags alone (discovery asks it of every file of an archive: a third of the time
    :func:`frame_infos` takes); None for a multi-frame object; ValueError where :func:`frame_infos` raises
    one on these tags."""
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        infos = frame_infos(ds)  # an enhanced object's geometry lives in its functional groups
        if len(infos) != 1:
            return None
        return infos[0].position, infos[0].orientation, infos[0].sop_instance_uid
    if frame_count(ds) != 1:
        return None
    position = _vec(ds.get("ImagePositionPatient"), 3)
    orientation = _orientation(ds.get("ImageOrientationPatient"))
    return position, orientation, str(ds.get("SOPInstanceUID", "")) or None


def frame_infos(ds: Dataset) -> list[FrameInfo]:
    """One :class:`FrameInfo` per frame of ``ds`` (header only; pixels are not touched)."""
    n = frame_count(ds)
    uid = str(ds.get("SOPInstanceUID", "")) or None
    inst = ds.get("InstanceNumber")
    inst_n = int(inst) if inst not in (None, "") else None
    top_slope = _num(ds.get("RescaleSlope"))
    top_intercept = _num(ds.get("RescaleIntercept"))
    out: list[FrameInfo] = []
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        for k in range(n):
            plane = _item(ds, k, "PlanePositionSequence")
            orient = _item(ds, k, "PlaneOrientationSequence")
            meas = _item(ds, k, "PixelMeasuresSequence")
            pvt = _item(ds, k, "PixelValueTransformationSequence")
            slope = _num(pvt.get("RescaleSlope")) if pvt is not None else top_slope
            intercept = _num(pvt.get("RescaleIntercept")) if pvt is not None else top_intercept
            out.append(
                FrameInfo(
                    frame=k,
                    position=_vec(plane.get("ImagePositionPatient"), 3) if plane is not None else None,
                    orientation=_orientation(orient.get("ImageOrientationPatient"))
                    if orient is not None
                    else None,
                    pixel_spacing=_spacing(meas) or _spacing(ds),
                    thickness=_positive(meas.get("SliceThickness")) if meas is not None else None,
                    spacing_between=_positive(meas.get("SpacingBetweenSlices")) if meas is not None else None,
                    slope=_slope(slope),
                    intercept=0.0 if intercept is None else intercept,
                    window=_window(_item(ds, k, "FrameVOILUTSequence")) or _window(ds),
                    sop_instance_uid=uid,
                    instance_number=inst_n,
                )
            )
        return out
    position = _vec(ds.get("ImagePositionPatient"), 3)
    orientation = _orientation(ds.get("ImageOrientationPatient"))
    thickness = _positive(ds.get("SliceThickness"))
    between = _positive(ds.get("SpacingBetweenSlices"))
    offsets: list[float | None] = [0.0] * n
    if n > 1:
        grid = ds.get("GridFrameOffsetVector")
        step = between or thickness or 1.0
        if grid is not None and len(grid) == n:
            offsets = [float(v) for v in grid]
        else:
            offsets = [k * step for k in range(n)]
    for k in range(n):
        pos = None
        if position is not None and orientation is not None and offsets[k] is not None:
            normal = np.cross(orientation[:3], orientation[3:])
            pos = position + float(offsets[k] or 0.0) * normal
        elif n == 1:
            pos = position
        out.append(
            FrameInfo(
                frame=k,
                position=pos,
                orientation=orientation,
                pixel_spacing=_spacing(ds),
                thickness=thickness or between,
                spacing_between=between,
                slope=_slope(top_slope),
                intercept=0.0 if top_intercept is None else top_intercept,
                window=_window(ds),
                sop_instance_uid=uid,
                instance_number=inst_n,
            )
        )
    return out


def stored_range(ds: Dataset) -> tuple[int, int]:
    """Smallest and largest stored value allowed by BitsStored / PixelRepresentation."""
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def luminance(rgb: NDArray[Any]) -> NDArray[np.float32]:
    """ITU-R BT.601 luma of an (..., 3) RGB array."""
    arr = np.asarray(rgb, dtype=np.float32)
    return arr[..., 0] * np.float32(0.299) + arr[..., 1] * np.float32(0.587) + arr[..., 2] * np.float32(0.114)


def strip_bulk(ds: Dataset) -> Dataset:
    """Remove pixel data (and overlay bit planes) from ``ds`` in place and return it."""
    for kw in BULK_KEYWORDS:
        if kw in ds:
            del ds[kw]
    overlays = [t for t in ds.keys() if 0x6000 <= t.group <= 0x601E and t.element == 0x3000]  # noqa: SIM118
    for tag in overlays:
        del ds[Tag(tag)]
    return ds
