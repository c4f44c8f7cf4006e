"""The released CT-GAN tool's handling of a whole scan: zoomed to 1 mm voxels and back.

``ymirsky/CT-GAN`` does not edit a scan on its own grid. ``load_target_scan`` zooms the whole scan to 1 mm
voxels (``utils/dicom_utils.scale_scan``: ``scipy.ndimage.zoom`` to ``round(shape * spacing)`` voxels, cubic
spline, ``mode="nearest"``), the GAN edits a cube there, and ``_touch_up_scan`` zooms the whole scan back
before ``save_dicom`` rewrites every slice. :func:`scan_round_trip` replays that round trip, so a forgery
carries the trace of the tool's handling, far from the edit too, that ``scan``'s ``resampled`` check
(:mod:`medforensics.scan.resampling`) looks for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics.errors import ConfigError

#: The tool's voxel size (mm) and ``scipy.ndimage.zoom``'s default spline order, which it uses.
TOOL_GRID_MM, TOOL_ORDER = 1.0, 3


def scan_round_trip(
    array: NDArray[Any], spacing: tuple[float, ...], grid_mm: float = TOOL_GRID_MM, order: int = TOOL_ORDER
) -> NDArray[np.float32]:
    """``array`` (z, y, x; spacing in mm per axis) zoomed to ``grid_mm`` voxels and back to its shape, as
    the CT-GAN tool's ``scale_scan`` does (``scipy.ndimage.zoom``, ``mode="nearest"``; spline ``order``)."""
    if not grid_mm > 0:
        raise ConfigError(f"the round trip's voxel size must be positive, got {grid_mm}")
    shape = np.asarray(np.shape(array), np.float64)
    up_shape = np.maximum(np.round(shape * np.asarray(spacing, np.float64) / grid_mm), 1.0)
    up = ndimage.zoom(np.asarray(array, np.float32), up_shape / shape, order=order, mode="nearest")
    back = ndimage.zoom(up, shape / np.asarray(up.shape, np.float64), order=order, mode="nearest")
    return np.asarray(back, np.float32)
