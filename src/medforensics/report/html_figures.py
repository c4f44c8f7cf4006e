"""Key-slice figures of the HTML report: which findings get a picture, the panels, and captions that say
where the slice is (index, InstanceNumber, table position in mm) and how it is displayed (window).
"""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np

from medforensics.io.dicom_tags import PROJECTION_MODALITIES
from medforensics.io.image2d import WINDOWS
from medforensics.io.volume import Volume
from medforensics.report.overlays import KeySlice, display_window, finding_panels, middle_slice_png
from medforensics.scan.result import Finding

__all__ = ["THUMB_PX", "figure_html", "key_slices_html", "nodule_figure_html", "slice_place", "window_text"]

#: The picture of a series without a located finding is a thumbnail at most this many pixels across.
THUMB_PX = 256


def escape(value: object) -> str:
    """HTML text of ``value`` (``None`` as empty), quotes escaped too (safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


_e = escape


def _display_size(volume: Volume, width: int, height: int) -> tuple[int, int]:
    """Width and height in CSS pixels keeping the physical aspect of the slice (row vs column spacing)."""
    _, sy, sx = volume.spacing
    ratio = sy / sx if sx > 0 and sy > 0 else 1.0
    return width, max(1, round(height * ratio))


def img_html(png: bytes, width: int, height: int, alt: str) -> str:
    """An ``<img>`` embedding ``png`` as a data URI (no external file)."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}" alt="{_e(alt)}">'


def window_text(volume: Volume) -> str:
    """How the slices of ``volume`` are displayed, in words (to follow "shown with")."""
    window = display_window(volume)
    if isinstance(window, str):
        centre, width = WINDOWS[window]
        return f"the {window} window (centre {centre:g} HU, width {width:g} HU)"
    return "contrast stretched between the 1st and 99th percentile of the slice's values"


def slice_place(volume: Volume, z: int) -> str:
    """Where slice ``z`` is: 0-based index in position order, InstanceNumber, table position (mm)."""
    if volume.is_2d:
        return "the image"
    radiographs = volume.modality in PROJECTION_MODALITIES  # exposures in instance order, no table position
    which, order = (f"image {z}", "instance") if radiographs else (f"slice z={z}", "position")
    parts = [f"{which} (of 0-{volume.shape[0] - 1}, in {order} order)"]
    if len(volume.datasets) == volume.shape[0]:
        number = getattr(volume.datasets[z], "InstanceNumber", None)
        if number not in (None, ""):
            parts.append(f"InstanceNumber {number}")
    if radiographs:
        return ", ".join(parts)
    _, ny, nx = volume.shape
    position = float(volume.index_to_patient(np.array([z, ny / 2.0, nx / 2.0], np.float64))[2])
    if np.isfinite(position):
        parts.append(f"patient z {position:.1f} mm")
    return ", ".join(parts)


def _caption(rank: int, finding: Finding, key: KeySlice, volume: Volume) -> str:
    kind = f"{finding.type} ({finding.check})" if finding.check else finding.type
    what = f"Finding {rank}: {kind}, score {float(finding.score):.3f}"
    what += "" if volume.is_2d else f"; {slice_place(volume, key.z)}"
    if key.whole_slice:
        whole = (
            "the whole image"
            if volume.is_2d or volume.modality in PROJECTION_MODALITIES
            else "the whole slice"
        )
        return f"{what}. The finding concerns {whole}, not a region within it."
    heat = (
        "right: the same crop with the detector's evidence map (brighter = stronger evidence of tampering)"
        if key.has_heatmap
        else "no evidence map for this finding"
    )
    return f"{what}. Left: {('image' if volume.is_2d else 'slice')} with the green box; middle: zoom; {heat}."


def _key_figure(key: KeySlice, volume: Volume, alt: str, caption: str) -> str:
    """The slice with its box, then a zoom without and (when ``key`` has one) with the heatmap."""
    width, height = _display_size(volume, key.width, key.height)
    images = [img_html(key.plain_png, width, height, f"{alt}: slice with box")]
    if key.zoom_plain_png is not None and key.zoom_overlay_png is not None:
        zw, zh = _display_size(volume, key.zoom_width, key.zoom_height)
        images.append(img_html(key.zoom_plain_png, zw, zh, f"{alt}: zoom"))
        if key.has_heatmap:
            images.append(img_html(key.zoom_overlay_png, zw, zh, f"{alt}: zoom with heatmap"))
    return f'<figure class="key">{"".join(images)}<figcaption>{_e(caption)}</figcaption></figure>'


def figure_html(rank: int, finding: Finding, key: KeySlice, volume: Volume) -> str:
    """One finding's figure: the slice with its box, then a zoom without and with the heatmap."""
    return _key_figure(key, volume, f"finding {rank}", _caption(rank, finding, key, volume))


def nodule_figure_html(nodule: dict[str, Any], volume: Volume) -> str | None:
    """The figure of the nodule-like blob an untouched series' TM label rests on (an ``extra.nodules``
    row): its slice with a box of its estimated diameter, and a zoom; None when it cannot be placed."""
    try:
        z, y, x = (int(v) for v in nodule["center_voxel"])
        diameter = float(nodule["diameter_mm"])
    except (KeyError, TypeError, ValueError):
        return None
    _, sy, sx = volume.spacing
    ry, rx = (max(2, int(np.ceil(diameter / 2 / s))) if s > 0 else 2 for s in (sy, sx))
    marker = Finding("nodule", 0.0, (z, y, x), None, (z, y - ry, x - rx, z + 1, y + ry + 1, x + rx + 1))
    key = finding_panels(volume, marker, max_px=THUMB_PX)  # a thumbnail, as an authentic series gets
    if key is None:
        return None
    text = (
        f"No located finding. Label TM rests on this nodule-like blob, where the detector sees no "
        f"tampering: about {diameter:.0f} mm, {float(nodule.get('hu', float('nan'))):.0f} HU at its centre; "
        f"{slice_place(volume, key.z)}. Left: slice with the green box; right: zoom; shown with "
        f"{window_text(volume)}. The blob finder's call, not a radiologist's read."
    )
    return _key_figure(key, volume, "label TM", text)


def key_slices_html(
    findings: list[Finding], volume: Volume, max_findings: int, nodules: list[Any] | None = None
) -> list[str]:
    """Figures of up to ``max_findings`` located findings (regions first, then findings naming whole
    slices); when there are none, the first of ``nodules`` (a TM label's basis, ``extra.nodules``) or
    else a thumbnail of the middle slice; one HTML string per figure."""
    regions: list[str] = []
    wholes: list[str] = []
    for rank, finding in enumerate(findings, start=1):
        if len(regions) >= max_findings:
            break
        if finding.center_voxel is None and finding.bbox_voxel is None:
            continue
        key = finding_panels(volume, finding, whole_px=THUMB_PX)
        if key is not None:
            (wholes if key.whole_slice else regions).append(figure_html(rank, finding, key, volume))
    parts = regions + wholes[: max(0, max_findings - len(regions))]
    if parts:
        note = f'<p class="meta">Key slices shown with {_e(window_text(volume))}.</p>'
        return [note + parts[0], *parts[1:]]
    figure = nodule_figure_html(nodules[0], volume) if nodules and isinstance(nodules[0], dict) else None
    if figure is not None:
        return [figure]
    png, width, height = middle_slice_png(volume, max_px=THUMB_PX)
    width, height = _display_size(volume, width, height)
    place = slice_place(volume, volume.shape[0] // 2)
    shown = "The image" if volume.is_2d else f"The middle slice, {place},"
    text = f"No located finding. {shown} for orientation, shown with {window_text(volume)}."
    return [f"<figure>{img_html(png, width, height, 'overview')}<figcaption>{_e(text)}</figcaption></figure>"]
