"""Scan a CT in the axial orientation the detectors were trained on, report in the series' own order.

The CT detectors read axis 0 as the slice axis along the body (feet to head), rows front to back and
columns right to left: the layout of an axial head-first supine series, which is what they were trained
on. A DICOM series stored otherwise (a coronal or sagittal reformat, a prone or feet-first acquisition)
reads back in its own order (slices along its normal), so a detector fed that array sees the chest on its
side or upside down, and on a coronal series it missed an injected nodule the same pixels in axial order
show (session 26). :func:`scan_axial` scores the axial view of such a volume
(:meth:`~medforensics.io.volume.Volume.reoriented_axial`) and puts the findings back in the volume's own
index order (what the JSON contract, the SEG and the SR index by); the per-slice metadata checks run on
the series' own slices. Patient coordinates are the same in both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from medforensics.io.volume import AxisMap, Volume
from medforensics.scan.enlarged import CHECK as ENLARGED_CHECK
from medforensics.scan.metadata_checks import metadata_findings
from medforensics.scan.result import Finding, SeriesResult

__all__ = ["finding_to_source", "read_as", "scan_axial"]

#: Metadata checks a scan of the axial view makes that the series' own checks do not repeat.
VIEW_CHECKS = frozenset({"added_noise"})


def finding_to_source(finding: Finding, amap: AxisMap) -> Finding:
    """``finding`` of an axial view with its voxel centre, box, heatmap and mask in the source's order."""
    centre = None if finding.center_voxel is None else amap.voxel_to_source(finding.center_voxel)
    box = finding.bbox_voxel
    heat, mask = finding.heatmap, finding.mask
    if box is not None:
        box = amap.box_to_source(box)
        heat = None if heat is None or heat.ndim != 3 else amap.array_to_source(heat)
        mask = None if mask is None or mask.ndim != 3 else amap.array_to_source(mask)
    return replace(finding, center_voxel=centre, bbox_voxel=box, heatmap=heat, mask=mask)


def _candidates_to_source(extra: dict[str, Any], amap: AxisMap) -> None:
    for cand in extra.get("top_candidates") or []:
        if cand.get("center_voxel"):
            cand["center_voxel"] = list(amap.voxel_to_source(cand["center_voxel"]))


def axial_view(volume: Volume, amap: AxisMap) -> Volume:
    """``volume`` in its axial layout (``amap``: its :meth:`~Volume.axial_axes`); itself when already axial.
    The view has no per-slice headers (its slices are not the series' images); one header still tells the
    noise check the slice thickness when the slice axis stays the slice axis."""
    if amap.is_identity:
        return volume
    view = replace(volume, datasets=[]).reoriented_axial()
    if amap.axes[0] == 0 and volume.datasets:
        view.datasets = volume.datasets[:1]
    return view


def scan_axial(volume: Volume, result: SeriesResult, scan: Callable[[Volume, SeriesResult], None]) -> None:
    """Run ``scan(volume, result)`` on the axial view of ``volume`` (see module docs); a volume already
    axial is scanned as it is."""
    amap = volume.axial_axes()
    if amap.is_identity:
        scan(volume, result)
        return
    view = axial_view(volume, amap)
    scan(view, result)
    image = [finding_to_source(f, amap) for f in result.findings if f.type != "metadata"]
    kept = [f for f in result.findings if f.type == "metadata" and f.check in VIEW_CHECKS]
    # the enlarged-slices rule holds for the axial view's planes (kept, mapped with the image findings); the
    # source layout's own enlarged finding is dropped, but computing it keeps its coding-grid and resampled
    # checks from claiming the same period (session 74: skipping it would add those to a synthetic series)
    again = [f for f in metadata_findings(volume) if f.check != ENLARGED_CHECK]
    meta = sorted(kept + again, key=lambda f: -f.score)
    result.findings = image + meta
    _candidates_to_source(result.extra, amap)
    result.extra["scanned_as"] = {"axes": list(amap.axes), "flipped": list(amap.flipped)}


def read_as(volume: Volume) -> dict[str, Any] | None:
    """How the reader laid a NIfTI, MetaImage or NRRD file out axially (:meth:`Volume.reoriented_axial`;
    None for a volume read in its own layout): the scan reports indices of that layout, and axis ``t`` of it
    is axis ``axes[t]`` of the file's (z, y, x), reversed where ``flipped[t]``. The file's (z, y, x) is
    NIfTI's (k, j, i) and the array order of SimpleITK (MetaImage, NRRD); ``file_shape`` is its shape."""
    how = volume.metadata.get("reoriented")
    if not how:
        return None
    axes = [int(a) for a in how["axes"]]
    file_shape = [0, 0, 0]
    for t, axis in enumerate(axes):
        file_shape[axis] = volume.shape[t]
    return {"axes": axes, "flipped": [bool(f) for f in how["flipped"]], "file_shape": file_shape}
