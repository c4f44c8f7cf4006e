"""DICOM SEG (BINARY) of the tamper regions of one scanned series, with highdicom.

One segment per finding that has a bounding box (rank order = score order = JSON order): the finding's
``mask`` placed in its box, or the whole box when the finding has no mask. Segmented property category
SCT 49755003 "Morphologically Abnormal Structure"; property type the finding type
(:data:`medforensics.report.codes.FINDING_TYPE_CODES`); algorithm identification "medforensics <model>"
with the model version and SHA-256; the tracking UID of each segment equals the one of the same finding
in the SR. Frames that hold no segment are omitted (highdicom's default).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from pydicom.uid import generate_uid

from medforensics import __version__
from medforensics.errors import InputError
from medforensics.io.volume import Volume
from medforensics.logging import get_logger
from medforensics.report import codes
from medforensics.report.dicom_common import (
    NO_REGION,
    build_and_save,
    clipped_box,
    declare_private_scheme,
    ranked_findings,
    reference_datasets,
    require_dicom,
    tracking_uid,
    write_for_report,
)
from medforensics.scan.result import Finding, ModelInfo, ScanReport, SeriesResult

__all__ = [
    "SEG_SERIES_NUMBER",
    "build_seg",
    "finding_image_sizes",
    "finding_mask",
    "finding_region",
    "write_seg",
    "write_seg_for_report",
    "write_segs",
]

log = get_logger("report.dicom_seg")

#: Series Number of the SEG series we create.
SEG_SERIES_NUMBER = 9902


Region = tuple[tuple[slice, ...], NDArray[np.bool_]]


def finding_region(finding: Finding, shape: tuple[int, int, int]) -> Region | None:
    """The finding's region as (array slices of its clipped box, bool mask over that box).

    ``finding.mask`` (over the box) is used when its shape matches the box, else the whole box. None when
    the finding has no box or the region is empty.
    """
    box = clipped_box(finding, shape)
    if box is None or finding.bbox_voxel is None:
        return None
    z0, y0, x0, z1, y1, x1 = box
    where = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
    mask = finding.mask
    full = tuple(int(b - a) for a, b in zip(finding.bbox_voxel[:3], finding.bbox_voxel[3:], strict=True))
    if mask is not None and tuple(mask.shape) == full:
        oz, oy, ox = (c - o for c, o in zip(box[:3], finding.bbox_voxel[:3], strict=True))
        region = np.asarray(mask[oz : oz + z1 - z0, oy : oy + y1 - y0, ox : ox + x1 - x0], dtype=bool)
    else:
        if mask is not None:
            log.warning("finding mask shape %s does not match its box %s: using the box", mask.shape, full)
        region = np.ones((z1 - z0, y1 - y0, x1 - x0), dtype=bool)
    return (where, region) if region.any() else None


def finding_mask(finding: Finding, shape: tuple[int, int, int]) -> NDArray[np.bool_] | None:
    """The finding's region as a full-volume bool mask (None when it has none); see :func:`finding_region`."""
    found = finding_region(finding, shape)
    if found is None:
        return None
    out = np.zeros(shape, dtype=bool)
    out[found[0]] = found[1]
    return out


def _frame_order(volume: Volume, path: str) -> list[int] | None:
    """For a multi-frame source, array slice -> source frame; None for one file per slice."""
    if not volume.metadata.get("multiframe"):
        if len(volume.datasets) != volume.shape[0]:
            raise InputError("source headers do not match the slices", path=path)
        return None
    if len(volume.datasets) != 1:
        raise InputError("SEG of a series of several multi-frame files is not supported", path=path)
    sources = volume.metadata.get("frame_sources") or []
    if len(sources) != volume.shape[0]:
        raise InputError("frame map does not match the slices", path=path)
    return [int(frame) for _, frame in sources]


def _pixel_measures(volume: Volume) -> hd.PixelMeasuresSequence | None:
    """Without a frame of reference, the volume's nominal spacing (highdicom's reader needs a thickness)."""
    if volume.metadata.get("frame_of_reference_uid"):
        return None  # highdicom takes the source images' own pixel measures
    sz, sy, sx = volume.spacing
    return hd.PixelMeasuresSequence(pixel_spacing=(sy, sx), slice_thickness=sz)


def _image_size(volume: Volume, region: Region) -> tuple[int, int]:
    """(rows, columns) of the image a region starts on."""
    return volume.image_shapes[region[0][0].start]


def build_seg(
    series: SeriesResult,
    volume: Volume,
    *,
    model: ModelInfo | None = None,
    image_size: tuple[int, int] | None = None,
    series_uid: str | None = None,
    instance_number: int = 1,
) -> hd.seg.Segmentation:
    """The SEG dataset of one series (with ``image_size``, of its findings on images of that size only: a
    radiograph series' views may differ); :class:`InputError` when no finding has a region."""
    volume = require_dicom(series, volume)
    frames = _frame_order(volume, series.path)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"medforensics {model.name}"[:64] if model else "medforensics",
        family=codes.FAMILY_AI,
        version=(model.version if model else __version__)[:64] or "0",
        source="medforensics",
        parameters={"sha256": model.sha256} if model else None,
    )
    regions: list[Region] = []
    descriptions: list[hd.seg.SegmentDescription] = []
    for rank, finding in enumerate(ranked_findings(series), start=1):
        found = finding_region(finding, volume.shape)
        if found is None or (image_size is not None and _image_size(volume, found) != image_size):
            continue
        regions.append(found)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=len(regions),
                segment_label=f"Finding {rank}: {finding.type} {float(finding.score):.3f}"[:64],
                segmented_property_category=codes.CATEGORY_ALTERED_STRUCTURE,
                segmented_property_type=codes.finding_type_code(finding.type),
                algorithm_type="AUTOMATIC",
                algorithm_identification=algorithm,
                tracking_uid=tracking_uid(series, rank, finding),
                tracking_id=f"Finding {rank}",
            )
        )
    if not regions:
        raise InputError(NO_REGION, path=series.path)
    # memory stays bounded by the slab the findings cover: only those slices' images are segmented
    slices = sorted({z for where, _ in regions for z in range(where[0].start, where[0].stop)})
    row_of = {z: k for k, z in enumerate(slices)}
    labels = np.zeros((len(slices), *volume.shape[1:], len(regions)), dtype=np.uint8)
    for k, (where, region) in enumerate(regions):
        first = row_of[where[0].start]  # a box's slices are consecutive in ``slices``
        labels[first : first + region.shape[0], where[1], where[2], k] = region
    sizes = {volume.image_shapes[z] for z in slices}
    if len(sizes) > 1:  # radiographs of different sizes: one SEG's frames share the sources' rows and columns
        shown = ", ".join(f"{c} x {r}" for r, c in sorted(sizes))
        raise InputError(
            f"the images with findings differ in size ({shown}): one SEG cannot hold them", path=series.path
        )
    rows, cols = sizes.pop()
    labels = labels[:, :rows, :cols]
    if frames is None:
        sources = reference_datasets([volume.datasets[z] for z in slices])
    else:  # one multi-frame source: frames in the source's own order
        ordered = np.zeros((volume.shape[0], *labels.shape[1:]), dtype=np.uint8)
        ordered[[frames[z] for z in slices]] = labels
        labels = ordered
        sources = reference_datasets(volume.datasets)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=labels,
        segmentation_type="BINARY",
        segment_descriptions=descriptions,
        series_instance_uid=series_uid or generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=instance_number,
        manufacturer="medforensics",
        manufacturer_model_name=(model.name if model else "medforensics")[:64],
        software_versions=__version__,
        device_serial_number="0",
        content_label="TAMPER",
        content_description="medforensics tamper regions",
        pixel_measures=_pixel_measures(volume),
    )
    seg.SeriesDescription = "medforensics tamper regions"
    if (
        "FrameOfReferenceUID" not in seg and "PatientOrientation" not in seg
    ):  # Type 2C without a frame of ref.
        seg.PatientOrientation = sources[0].get("PatientOrientation") or ""
    declare_private_scheme(seg)
    return seg


def write_seg(
    series: SeriesResult,
    volume: Volume,
    path: str | Path,
    *,
    model: ModelInfo | None = None,
    **only: Any,
) -> Path:
    """Write the SEG of one series to ``path`` atomically; :class:`InputError` if it cannot have one.
    ``only``: :func:`build_seg`'s ``image_size``, ``series_uid`` and ``instance_number``."""
    seg, out = build_and_save("SEG", lambda: build_seg(series, volume, model=model, **only), series, path)
    n = len(seg.SegmentSequence)
    log.info("wrote SEG %s for series %s (%d segment(s))", out.name, series.series_uid, n)
    return out


def finding_image_sizes(series: SeriesResult, volume: Volume) -> list[tuple[int, int]]:
    """The (rows, columns) of the images the series' findings with a region start on, in rank order."""
    sizes: list[tuple[int, int]] = []
    for finding in ranked_findings(series):
        found = finding_region(finding, volume.shape)
        if found is not None and _image_size(volume, found) not in sizes:
            sizes.append(_image_size(volume, found))
    return sizes


def write_segs(
    series: SeriesResult, volume: Volume, path: str | Path, *, model: ModelInfo | None = None
) -> list[Path]:
    """:func:`write_seg` at ``path``; when the findings lie on images of several sizes (a radiograph
    series' views), one SEG per size instead, instances of one SEG series: ``path`` for the size of the top
    finding's image, ``<stem>_<k>.dcm`` for the k-th other size."""
    sizes = finding_image_sizes(series, volume)
    if len(sizes) <= 1:
        return [write_seg(series, volume, path, model=model)]
    path, uid, out = Path(path), generate_uid(), []
    for k, size in enumerate(sizes, start=1):
        target = path if k == 1 else path.with_name(f"{path.stem}_{k}{path.suffix}")
        written = write_seg(
            series, volume, target, model=model, image_size=size, series_uid=uid, instance_number=k
        )
        out.append(written)
    return out


def write_seg_for_report(
    report: ScanReport,
    volumes: Mapping[str, Volume] | None,
    out_dir: str | Path,
    *,
    notes: list[str] | None = None,
) -> list[Path]:
    """The SEG of every scanned DICOM series with localised findings (one per image size of a radiograph
    series whose views with findings differ in size); the others are noted in ``notes``."""

    def one(series: SeriesResult, volume: Volume, path: Path) -> list[Path]:
        return write_segs(series, volume, path, model=report.model)

    return write_for_report(report, volumes, out_dir, "SEG", one, notes, precheck=_has_region)


def _has_region(series: SeriesResult) -> None:
    """:class:`InputError` (:data:`NO_REGION`) for a series none of whose findings has a region within its
    shape, before its volume is read again (an archive's authentic series: one read each saved)."""
    if series.shape is not None and not any(finding_region(f, series.shape) for f in series.findings):
        raise InputError(NO_REGION, path=series.path)
