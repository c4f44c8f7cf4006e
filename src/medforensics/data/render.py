"""Render one slice of a :class:`Volume` as a PNG: display window, nodule outlines, centre markers, caption.

The image keeps the array's pixel grid (small images are enlarged by a whole factor, nearest neighbour, so
outlines stay on their pixels); a caption band below names the slice, its patient position and the window.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics._atomic import write_bytes_atomic
from medforensics.errors import ConfigError
from medforensics.io.annotations import Nodule
from medforensics.io.image2d import WINDOWS, Window, apply_window, png_bytes, window_bounds
from medforensics.io.volume import Volume

#: Images smaller than this (longest side, pixels) are enlarged by a whole factor.
MIN_SIDE = 512
#: Outline colours, one per nodule (cycled).
COLOURS: tuple[tuple[int, int, int], ...] = ((255, 210, 0), (0, 220, 255), (255, 80, 200), (120, 255, 80))
#: Caption font size in pixels for images up to ~900 px wide (scaled up for wider ones).
FONT_SIZE = 14


def default_slice(volume: Volume, nodules: Sequence[Nodule] | None = None) -> int:
    """The slice of the first nodule (nearest its centre), else the middle slice."""
    if nodules:
        return int(np.clip(round(nodules[0].center_voxel[0]), 0, volume.shape[0] - 1))
    return volume.shape[0] // 2


def default_window(volume: Volume) -> Window:
    """Lung window for CT (Hounsfield units), percentiles for anything else."""
    return "lung" if volume.modality == "CT" else None


def describe_window(window: Window, plane: NDArray[Any]) -> str:
    """``lung C-600/W1500``, ``C40/W400`` or ``auto 12..840``."""
    low, high = window_bounds(plane, window)
    if window is None:
        return f"auto {low:.4g}..{high:.4g}"
    center, width = (low + high) / 2.0, high - low
    prefix = f"{window} " if isinstance(window, str) else ""
    return f"{prefix}C{center:g}/W{width:g}"


def _on_slice(nodule: Nodule, k: int) -> bool:
    return k in nodule.contours or round(nodule.center_voxel[0]) == k


def _caption(volume: Volume, k: int, window_text: str, nodules: Sequence[Nodule], title: str) -> list[str]:
    nz, ny, nx = volume.shape
    pos = volume.index_to_patient((k, (ny - 1) / 2.0, (nx - 1) / 2.0))
    head = f"{title}  " if title else ""
    lines = [
        f"{head}slice {k}/{nz - 1}  centre (x,y,z) = ({pos[0]:.1f}, {pos[1]:.1f}, {pos[2]:.2f}) mm  "
        f"window {window_text}  {volume.modality}"
    ]
    for i, n in enumerate(nodules):
        cz, cy, cx = n.center_voxel
        where = "on this slice" if _on_slice(n, k) else f"centre on slice {round(cz)}"
        diameter = f", {n.diameter_mm:.1f} mm" if n.diameter_mm else ""
        malignancy = f", malignancy {n.malignancy:.2g}" if n.malignancy is not None else ""
        mm = ", ".join(f"{v:.1f}" for v in n.center_mm)
        lines.append(
            f"nodule {n.nodule_id or i + 1} ({where}): voxel (z,y,x) = ({cz:.1f}, {cy:.1f}, {cx:.1f}), "
            f"(x,y,z) = ({mm}) mm{diameter}{malignancy}"
        )
    return lines


def render_image(
    volume: Volume,
    slice_index: int | None = None,
    window: Window | str = "default",
    nodules: Sequence[Nodule] | None = None,
    title: str = "",
) -> NDArray[np.uint8]:
    """The rendered slice as an RGB (H, W, 3) uint8 array (image above, caption band below).

    ``window``: a name (lung, mediastinum, bone, brain), (center, width), None for the 1st-99th
    percentile, or ``"default"`` (lung for CT, percentiles otherwise).
    """
    from PIL import Image, ImageDraw, ImageFont

    nodules = list(nodules or [])
    nz, ny, nx = volume.shape
    k = default_slice(volume, nodules) if slice_index is None else int(slice_index)
    if not 0 <= k < nz:
        raise ConfigError(f"slice {slice_index} outside 0..{nz - 1}")
    win: Window = default_window(volume) if window == "default" else window
    if isinstance(win, str) and win not in WINDOWS:
        raise ConfigError(f"unknown window {win!r}; choose one of {', '.join(WINDOWS)} or CENTER,WIDTH")
    plane = volume.array[k]
    grey = apply_window(plane, win)
    scale = max(1, math.ceil(MIN_SIDE / max(ny, nx)))
    if scale > 1:
        grey = np.repeat(np.repeat(grey, scale, axis=0), scale, axis=1)
    width = nx * scale
    font_size = max(FONT_SIZE, width // 64)
    font = ImageFont.load_default(size=font_size)
    char_w = max(1.0, font.getlength("abcdefghij0123456789") / 20.0)
    wrap = max(20, int((width - 12) / char_w))
    lines = [
        piece
        for line in _caption(volume, k, describe_window(win, plane), nodules, title)
        for piece in textwrap.wrap(line, wrap, subsequent_indent="  ")
    ]
    line_h = font_size + 4
    canvas = Image.new("RGB", (width, ny * scale + 8 + line_h * len(lines)), (0, 0, 0))
    canvas.paste(Image.fromarray(grey, mode="L").convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    line_w = max(1, scale // 2)
    for i, nodule in enumerate(nodules):
        colour = COLOURS[i % len(COLOURS)]
        for poly in nodule.contours.get(k, []):
            pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            xy = [((c + 0.5) * scale, (r + 0.5) * scale) for r, c in pts]
            if len(xy) >= 2:
                draw.line([*xy, xy[0]], fill=colour, width=line_w)
            else:
                draw.point(xy, fill=colour)
        if _on_slice(nodule, k):
            _marker(draw, nodule, scale, colour, volume.spacing[2])
    for j, line in enumerate(lines):
        draw.text((6, ny * scale + 4 + j * line_h), line, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def _marker(draw: Any, nodule: Nodule, scale: int, colour: tuple[int, int, int], col_mm: float) -> None:
    """Four ticks around the nodule centre, just outside its radius (the nodule itself stays visible)."""
    _, cy, cx = nodule.center_voxel
    x, y = (cx + 0.5) * scale, (cy + 0.5) * scale
    radius_px = (nodule.diameter_mm or 6.0) / 2.0 / max(col_mm, 1e-6) * scale
    inner = radius_px + 4 * scale
    outer = inner + max(8, 4 * scale)
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        draw.line([(x + dx * inner, y + dy * inner), (x + dx * outer, y + dy * outer)], fill=colour, width=2)


def render_slice(
    volume: Volume,
    slice_index: int | None = None,
    window: Window | str = "default",
    nodules: Sequence[Nodule] | None = None,
    out: str | Path = "slice.png",
    title: str = "",
) -> Path:
    """Render a slice (see :func:`render_image`) and write it to ``out`` as PNG, atomically."""
    return write_bytes_atomic(out, png_bytes(render_image(volume, slice_index, window, nodules, title)))
