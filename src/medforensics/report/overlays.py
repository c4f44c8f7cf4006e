"""Key-slice pictures of findings: a windowed axial slice, the heatmap blended in, the box drawn.

Everything is uint8 RGB numpy; :func:`finding_panels` returns PNG bytes ready to embed.
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


@dataclass
class KeySlice:
    """One rendered slice: the plain (boxed) view and the heatmap overlay, as PNG bytes."""

    z: int
    plain_png: bytes
    overlay_png: bytes
    width: int
    height: int
    has_heatmap: bool


def display_window(volume: Volume) -> Window:
    """The lung window for CT volumes, automatic percentiles for other modalities and single images."""
    return "lung" if volume.modality == "CT" and not volume.is_2d else None


def slice_rgb(volume: Volume, z: int, window: Window | None = None) -> NDArray[np.uint8]:
    """Axial slice ``z`` as uint8 RGB through ``window`` (default :func:`display_window`)."""
    plane = volume.array[int(np.clip(z, 0, volume.shape[0] - 1))]
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


def _scale_factor(shape: tuple[int, int]) -> int:
    return max(1, -(-MIN_DISPLAY_PX // max(shape)))


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


def finding_panels(volume: Volume, finding: Finding, window: Window | None = None) -> KeySlice | None:
    """The key slice of a located finding: (slice + box) and (slice + heatmap + box), as PNG bytes.

    None for a finding without a location (metadata findings).
    """
    z = _centre_z(finding, volume)
    if z is None:
        return None
    base = slice_rgb(volume, z, window)
    box = _box_yx(finding, volume)
    overlay = base.copy()
    heat = _heat_plane(finding, z, box) if box is not None else None
    if heat is not None and box is not None:
        overlay = blend_heatmap(overlay, heat, box)
    factor = _scale_factor(base.shape[:2])
    plain, overlay = upscale(base, factor), upscale(overlay, factor)
    if box is not None:
        scaled = (box[0] * factor, box[1] * factor, box[2] * factor, box[3] * factor)
        thickness = max(1, factor // 2)
        draw_box(plain, scaled, thickness=thickness)
        draw_box(overlay, scaled, thickness=thickness)
    elif finding.center_voxel is not None:  # no box: mark the centre with a small box
        cy, cx = (int(v) * factor for v in finding.center_voxel[1:])
        draw_box(plain, (cy, cx, cy + factor, cx + factor), thickness=2)
        draw_box(overlay, (cy, cx, cy + factor, cx + factor), thickness=2)
    return KeySlice(
        z=z,
        plain_png=png_bytes(plain),
        overlay_png=png_bytes(overlay),
        width=int(plain.shape[1]),
        height=int(plain.shape[0]),
        has_heatmap=heat is not None,
    )


def middle_slice_png(volume: Volume, window: Window | None = None) -> tuple[bytes, int, int]:
    """The middle slice (PNG bytes, width, height): the picture of a series without located findings."""
    base = slice_rgb(volume, volume.shape[0] // 2, window)
    base = upscale(base, _scale_factor(base.shape[:2]))
    return png_bytes(base), int(base.shape[1]), int(base.shape[0])
