"""Key-slice pictures of findings: a windowed axial slice, the heatmap blended in, the box drawn.

Everything is uint8 RGB numpy; :func:`finding_panels` returns PNG bytes ready to embed: the whole slice
(small slices enlarged, large images such as radiographs reduced to at most :data:`MAX_DISPLAY_PX`) and a
zoomed crop around the box, with and without the heatmap, so the anatomy under the heatmap stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from medforensics.io.image2d import Window, apply_window, png_bytes
from medforensics.io.volume import Volume
from medforensics.scan.result import Finding

__all__ = [
    "BOX_COLOUR",
    "KeySlice",
    "blend_heatmap",
    "display_window",
    "downscale",
    "draw_box",
    "finding_panels",
    "middle_slice_png",
    "slice_rgb",
    "upscale",
]

#: Colour of the bounding box (RGB).
BOX_COLOUR: tuple[int, int, int] = (0, 255, 64)
#: Small slices are enlarged (nearest neighbour, integer factor) to at least this many pixels across.
MIN_DISPLAY_PX = 256
#: Larger images (radiographs) are reduced (mean of factor x factor blocks) to at most this many pixels.
MAX_DISPLAY_PX = 512
#: The zoomed crop spans this many times the box's larger side, and at least ``ZOOM_MIN_PX`` pixels.
ZOOM_CONTEXT, ZOOM_MIN_PX = 3, 48


@dataclass
class KeySlice:
    """One rendered slice: the plain (boxed) view and the heatmap overlay, as PNG bytes.

    ``zoom_plain_png``/``zoom_overlay_png`` are an enlarged crop around the box (without and with the
    heatmap), None when the box covers the whole slice (``whole_slice``: a metadata finding naming slices,
    or a whole 2-D image) or there is no box.
    """

    z: int
    plain_png: bytes
    overlay_png: bytes
    width: int
    height: int
    has_heatmap: bool
    zoom_plain_png: bytes | None = None
    zoom_overlay_png: bytes | None = None
    zoom_width: int = 0
    zoom_height: int = 0
    whole_slice: bool = False


def display_window(volume: Volume) -> Window:
    """The lung window for CT volumes, automatic percentiles for other modalities and single images."""
    return "lung" if volume.modality == "CT" and not volume.is_2d else None


def slice_rgb(volume: Volume, z: int, window: Window | None = None) -> NDArray[np.uint8]:
    """Axial slice ``z`` as uint8 RGB through ``window`` (default :func:`display_window`); a radiograph
    padded into its series' array is shown at its own size (``Volume.image_shapes``)."""
    z = int(np.clip(z, 0, volume.shape[0] - 1))
    rows, cols = volume.image_shapes[z]
    plane = np.asarray(volume.array[z])[:rows, :cols]
    grey = apply_window(plane, display_window(volume) if window is None else window)
    return np.repeat(grey[:, :, None], 3, axis=2)


@lru_cache(maxsize=4)
def _lut(name: str) -> NDArray[np.uint8]:
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def blend_heatmap(
    rgb: NDArray[np.uint8],
    heat: NDArray[np.floating],
    box_yx: tuple[int, int, int, int],
    *,
    alpha: float = 0.6,
    cmap: str = "inferno",
) -> NDArray[np.uint8]:
    """Blend ``heat`` (values in [0, 1], shape of the box) into ``rgb`` inside ``box_yx`` (y0, x0, y1, x1).

    The opacity grows with the heat (``alpha * heat``), so cold voxels leave the image visible.
    """
    y0, x0, y1, x1 = box_yx
    out = rgb.copy()
    h = np.nan_to_num(np.clip(np.asarray(heat, dtype=np.float64), 0.0, 1.0))
    h = h[: y1 - y0, : x1 - x0]
    colour = _lut(cmap)[np.rint(h * 255).astype(np.intp)].astype(np.float64)
    weight = (alpha * h)[:, :, None]
    region = out[y0 : y0 + h.shape[0], x0 : x0 + h.shape[1]].astype(np.float64)
    out[y0 : y0 + h.shape[0], x0 : x0 + h.shape[1]] = np.rint(region * (1 - weight) + colour * weight).astype(
        np.uint8
    )
    return out


def draw_box(
    rgb: NDArray[np.uint8],
    box_yx: tuple[int, int, int, int],
    colour: tuple[int, int, int] = BOX_COLOUR,
    thickness: int = 1,
) -> NDArray[np.uint8]:
    """Draw the outline of ``box_yx`` (y0, x0, y1, x1; end exclusive) just outside the box, in place."""
    height, width = rgb.shape[:2]
    y0, x0, y1, x1 = box_yx
    for t in range(thickness):
        top, bottom, left, right = y0 - 1 - t, y1 + t, x0 - 1 - t, x1 + t
        cols = slice(max(left, 0), min(right + 1, width))
        rows = slice(max(top, 0), min(bottom + 1, height))
        for y in (top, bottom):
            if 0 <= y < height:
                rgb[y, cols] = colour
        for x in (left, right):
            if 0 <= x < width:
                rgb[rows, x] = colour
    return rgb


def upscale(rgb: NDArray[np.uint8], factor: int) -> NDArray[np.uint8]:
    """Nearest-neighbour enlargement by an integer factor."""
    if factor <= 1:
        return rgb
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def downscale(rgb: NDArray[np.uint8], factor: int) -> NDArray[np.uint8]:
    """Reduction by an integer factor: the mean of each factor x factor block (edge remainders dropped)."""
    if factor <= 1:
        return rgb
    h, w = rgb.shape[0] // factor, rgb.shape[1] // factor
    blocks = rgb[: h * factor, : w * factor].reshape(h, factor, w, factor, -1).astype(np.float64)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


def _scale_factor(shape: tuple[int, ...], target: int = MIN_DISPLAY_PX) -> int:
    """Integer enlargement bringing the larger side to at least ``target`` pixels."""
    return max(1, -(-target // max(shape)))


def _reduce_factor(shape: tuple[int, ...], limit: int = MAX_DISPLAY_PX) -> int:
    """Integer reduction bringing the larger side to at most ``limit`` pixels."""
    return max(1, -(-max(shape) // limit))


def _fit(rgb: NDArray[np.uint8], limit: int = MAX_DISPLAY_PX) -> tuple[NDArray[np.uint8], float]:
    """``rgb`` enlarged or reduced for display, and the scale applied (pixels out per pixel in)."""
    down = _reduce_factor(rgb.shape[:2], limit)
    if down > 1:
        return downscale(rgb, down), 1.0 / down
    up = min(_scale_factor(rgb.shape[:2]), max(1, limit // max(rgb.shape[:2])))
    return upscale(rgb, up), float(up)


def _scaled_box(box: tuple[int, int, int, int], scale: float) -> tuple[int, int, int, int]:
    y0, x0, y1, x1 = box
    return (int(y0 * scale), int(x0 * scale), max(int(y0 * scale) + 1, int(np.ceil(y1 * scale))),
            max(int(x0 * scale) + 1, int(np.ceil(x1 * scale))))  # fmt: skip


def _zoom_window(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A square crop (y0, x0, y1, x1) around ``box``, ``ZOOM_CONTEXT`` times its larger side, in the slice."""
    y0, x0, y1, x1 = box
    side = min(max(ZOOM_CONTEXT * max(y1 - y0, x1 - x0), ZOOM_MIN_PX), *shape)
    out: list[int] = []
    for lo, hi, size in ((y0, y1, shape[0]), (x0, x1, shape[1])):
        start = int(np.clip((lo + hi) // 2 - side // 2, 0, size - side))
        out.append(start)
    return out[0], out[1], out[0] + side, out[1] + side


def _box_yx(finding: Finding, volume: Volume) -> tuple[int, int, int, int] | None:
    if finding.bbox_voxel is None:
        return None
    _, y0, x0, _, y1, x1 = (int(v) for v in finding.bbox_voxel)
    _, height, width = volume.shape
    y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, height), min(x1, width)
    return (y0, x0, y1, x1) if y1 > y0 and x1 > x0 else None


def _centre_z(finding: Finding, volume: Volume) -> int | None:
    if finding.center_voxel is not None:
        return int(np.clip(finding.center_voxel[0], 0, volume.shape[0] - 1))
    if finding.bbox_voxel is not None:
        z0, z1 = int(finding.bbox_voxel[0]), int(finding.bbox_voxel[3])
        return int(np.clip((z0 + z1 - 1) // 2, 0, volume.shape[0] - 1))
    return None


def _heat_plane(finding: Finding, z: int, box_yx: tuple[int, int, int, int]) -> NDArray[np.float32] | None:
    """The heatmap plane of slice ``z``, cropped to the clipped box (None if absent or mis-shaped)."""
    heat = finding.heatmap
    if heat is None or finding.bbox_voxel is None:
        return None
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim == 2:
        heat = heat[None]
    bz0, by0, bx0 = (int(v) for v in finding.bbox_voxel[:3])
    k = z - bz0
    if heat.ndim != 3 or not 0 <= k < heat.shape[0]:
        return None
    y0, x0, y1, x1 = box_yx
    plane = heat[k, y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
    return plane if plane.size else None


def finding_panels(
    volume: Volume,
    finding: Finding,
    window: Window | None = None,
    whole_px: int = MAX_DISPLAY_PX,
    max_px: int = MAX_DISPLAY_PX,
) -> KeySlice | None:
    """The key slice of a located finding: (slice + box) and (slice + heatmap + box), fitted to at most
    ``max_px`` pixels, as PNG bytes, and a zoomed crop around the box (see :class:`KeySlice`). A finding
    covering the whole slice gets the slice fitted to at most ``whole_px`` pixels and no zoom.

    None for a finding without a location (metadata findings about the whole series).
    """
    z = _centre_z(finding, volume)
    if z is None:
        return None
    base = slice_rgb(volume, z, window)
    box = _box_yx(finding, volume)
    whole = box is not None and box == (0, 0, base.shape[0], base.shape[1])
    overlay = base.copy()
    heat = _heat_plane(finding, z, box) if box is not None else None
    if heat is not None and box is not None:
        overlay = blend_heatmap(overlay, heat, box)
    if box is None and finding.center_voxel is not None:  # no box: mark the centre with a small box
        cy, cx = (int(v) for v in finding.center_voxel[1:])
        box = (cy, cx, cy + 1, cx + 1)
    limit = whole_px if whole else max_px
    plain, scale = _fit(base, limit)
    shown, _ = _fit(overlay, limit)
    key = KeySlice(z, b"", b"", int(plain.shape[1]), int(plain.shape[0]), heat is not None, whole_slice=whole)
    if box is not None and not whole:
        thickness = max(1, int(scale) // 2) + (finding.bbox_voxel is None)
        for image in (plain, shown):
            draw_box(image, _scaled_box(box, scale), thickness=thickness)
        _add_zoom(key, base, overlay, box)
    key.plain_png, key.overlay_png = png_bytes(plain), png_bytes(shown)
    return key


def _add_zoom(
    key: KeySlice, base: NDArray[np.uint8], overlay_full: NDArray[np.uint8], box: tuple[int, int, int, int]
) -> None:
    """Fill ``key``'s zoomed crop around ``box`` (slice pixels) of ``base`` and ``overlay_full``."""
    cy0, cx0, cy1, cx1 = _zoom_window(box, base.shape[:2])
    factor = _scale_factor((cy1 - cy0, cx1 - cx0))
    local = (box[0] - cy0, box[1] - cx0, box[2] - cy0, box[3] - cx0)
    scaled = (local[0] * factor, local[1] * factor, local[2] * factor, local[3] * factor)
    pngs: list[bytes] = []
    for image in (base, overlay_full):
        crop = upscale(image[cy0:cy1, cx0:cx1], factor)
        pngs.append(png_bytes(draw_box(crop, scaled, thickness=max(1, factor // 4))))
    key.zoom_plain_png, key.zoom_overlay_png = pngs
    key.zoom_width, key.zoom_height = (cx1 - cx0) * factor, (cy1 - cy0) * factor


def middle_slice_png(
    volume: Volume, window: Window | None = None, max_px: int = MAX_DISPLAY_PX
) -> tuple[bytes, int, int]:
    """The middle slice (PNG bytes, width, height), fitted to at most ``max_px`` pixels across: the picture
    of a series without located findings."""
    base, _ = _fit(slice_rgb(volume, volume.shape[0] // 2, window), max_px)
    return png_bytes(base), int(base.shape[1]), int(base.shape[0])
