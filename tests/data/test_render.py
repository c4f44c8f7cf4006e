"""Slice rendering: window, outline and marker placement, caption, output size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medforensics.data.render import COLOURS, MIN_SIDE, default_slice, render_image, render_slice
from medforensics.errors import ConfigError
from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume


def _phantom() -> tuple[Volume, Nodule]:
    """Lung-like CT (-800 HU) with a 10-voxel-wide soft-tissue nodule at slice 3, row 40, column 70."""
    array = np.full((6, 128, 128), -800.0, dtype=np.float32)
    array[2:5, 35:46, 65:76] = 30.0
    volume = Volume(array=array, spacing=(2.0, 0.7, 0.7), origin=(-50.0, -60.0, -100.0), modality="CT")
    square = np.array([[34.0, 64.0], [34.0, 76.0], [46.0, 76.0], [46.0, 64.0]])  # (row, col)
    nodule = Nodule(
        center_voxel=(3.0, 40.0, 70.0),
        center_mm=tuple(float(v) for v in volume.index_to_patient((3.0, 40.0, 70.0))),  # type: ignore[arg-type]
        diameter_mm=7.7,
        malignancy=4.5,
        nodule_id="1",
        contours={2: [square], 3: [square], 4: [square]},
    )
    return volume, nodule


def test_default_slice_is_the_nodule_slice_else_the_middle() -> None:
    volume, nodule = _phantom()
    assert default_slice(volume, [nodule]) == 3
    assert default_slice(volume) == 3  # 6 // 2
    assert default_slice(volume.with_array(volume.array[:5], spacing=volume.spacing)) == 2


def test_outline_is_drawn_on_the_nodule_pixels() -> None:
    volume, nodule = _phantom()
    rgb = render_image(volume, None, "lung", [nodule], title="phantom")
    scale = MIN_SIDE // 128
    assert rgb.shape[1] == 128 * scale and rgb.shape[0] > 128 * scale and rgb.shape[2] == 3
    colour = np.array(COLOURS[0])
    # the outline's top edge: row 34, columns 64..76, at the pixel centres of the enlarged grid
    y = int(34.5 * scale)
    xs = [int((c + 0.5) * scale) for c in range(65, 76)]
    assert all((rgb[y, x] == colour).all() for x in xs)
    # nodule interior is soft tissue, shown bright (above the lung window) and not painted over
    inside = rgb[int(40.5 * scale), int(70.5 * scale)]
    assert inside[0] == inside[1] == inside[2] and inside[0] > 150
    # lung far from the nodule is dark grey and untouched
    lung = rgb[int(100.5 * scale), int(20.5 * scale)]
    assert lung[0] == lung[1] == lung[2] and lung[0] < 100


def test_window_changes_the_image_and_bad_values_are_config_errors() -> None:
    volume, nodule = _phantom()
    lung = render_image(volume, 3, "lung", [nodule])
    mediastinum = render_image(volume, 3, (40.0, 400.0), [nodule])
    assert lung.shape == mediastinum.shape
    assert not np.array_equal(lung, mediastinum)
    with pytest.raises(ConfigError):
        render_image(volume, 3, "nosuchwindow")
    with pytest.raises(ConfigError):
        render_image(volume, 6)


def test_off_slice_nodule_gets_no_outline() -> None:
    volume, nodule = _phantom()
    rgb = render_image(volume, 0, "lung", [nodule])
    image = rgb[: 128 * (MIN_SIDE // 128)]
    assert not (image == np.array(COLOURS[0])).all(axis=-1).any()


def test_render_slice_writes_png_of_expected_size(tmp_path: Path) -> None:
    volume, nodule = _phantom()
    out = render_slice(volume, None, "default", [nodule], out=tmp_path / "sub" / "x.png", title="phantom")
    assert out == tmp_path / "sub" / "x.png"
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.width == MIN_SIDE
        assert img.height > MIN_SIDE
    assert not [p for p in out.parent.iterdir() if p.name != "x.png"]  # no temporary left behind


def test_large_image_keeps_its_size(tmp_path: Path) -> None:
    volume = Volume(array=np.linspace(0, 1, 700 * 600, dtype=np.float32).reshape(1, 700, 600), modality="DX")
    rgb = render_image(volume)
    assert rgb.shape[1] == 600 and rgb.shape[0] > 700
