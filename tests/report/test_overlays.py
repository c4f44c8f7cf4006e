"""Overlay primitives: box drawing, heatmap blending, windows, key slices."""

from __future__ import annotations

import numpy as np

from medforensics.io.volume import Volume
from medforensics.report.overlays import (
    BOX_COLOUR,
    blend_heatmap,
    display_window,
    draw_box,
    finding_panels,
    slice_rgb,
)
from medforensics.scan.result import Finding


def test_draw_box_outlines_outside_the_box() -> None:
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    draw_box(rgb, (3, 3, 6, 7))
    on = (rgb == BOX_COLOUR).all(axis=2)
    assert on[2, 2:8].all() and on[6, 2:8].all() and on[2:7, 2].all() and on[2:7, 7].all()
    assert not on[3:6, 3:7].any()  # the inside stays untouched
    assert on.sum() == 2 * 6 + 2 * 3


def test_draw_box_clips_at_the_border() -> None:
    rgb = np.zeros((5, 5, 3), dtype=np.uint8)
    draw_box(rgb, (0, 0, 5, 5))  # the outline lies outside the image: nothing to draw, no error
    assert not rgb.any()


def test_blend_heatmap_weights_by_heat() -> None:
    rgb = np.full((4, 4, 3), 100, dtype=np.uint8)
    heat = np.array([[0.0, 1.0]], dtype=np.float32)
    out = blend_heatmap(rgb, heat, (1, 1, 2, 3))
    assert (out[1, 1] == 100).all()  # zero heat leaves the pixel
    assert (out[1, 2] != 100).any()  # full heat colours it
    assert (out[0] == 100).all() and (rgb == 100).all()  # outside untouched, input not modified


def test_windows_and_slices() -> None:
    ct = Volume(np.full((3, 4, 4), -600.0, dtype=np.float32), modality="CT")
    assert display_window(ct) == "lung"
    assert (slice_rgb(ct, 1) == 128).all()  # the lung window's centre maps to mid-grey
    assert display_window(Volume(np.zeros((1, 4, 4)), modality="CT")) is None
    assert display_window(Volume(np.zeros((3, 4, 4)), modality="MR")) is None


def test_finding_panels() -> None:
    vol = Volume(np.zeros((4, 32, 32), dtype=np.float32), modality="CT")
    assert finding_panels(vol, Finding("metadata", 0.5)) is None
    heat = np.ones((2, 4, 4), dtype=np.float32)
    key = finding_panels(vol, Finding("injected", 0.9, (2, 10, 10), None, (1, 8, 8, 3, 12, 12), heatmap=heat))
    assert key is not None and key.z == 2 and key.has_heatmap and key.width == 256 and key.height == 256
    assert key.plain_png.startswith(b"\x89PNG") and key.plain_png != key.overlay_png
    wrong = finding_panels(
        vol, Finding("injected", 0.9, (2, 10, 10), None, (1, 8, 8, 3, 12, 12), heatmap=heat[:, :1])
    )
    assert wrong is not None and wrong.has_heatmap  # mis-shaped heat is cropped, never an error


def test_a_padded_radiograph_is_shown_at_its_own_size() -> None:
    """A radiograph the reader padded into its series' array (``image_shapes``) is shown without the
    padding: its slice at its own size, and a finding over all of it is a whole-image figure."""
    arr = np.zeros((2, 40, 60), dtype=np.float32)
    arr[1, :20, :30] = np.arange(600, dtype=np.float32).reshape(20, 30)
    vol = Volume(arr, modality="CR", metadata={"image_shapes": [[40, 60], [20, 30]]})
    assert slice_rgb(vol, 1).shape == (20, 30, 3) and slice_rgb(vol, 0).shape == (40, 60, 3)
    key = finding_panels(vol, Finding("synthetic", 0.9, (1, 10, 15), None, (1, 0, 0, 2, 20, 30)))
    assert key is not None and key.whole_slice and key.zoom_plain_png is None
