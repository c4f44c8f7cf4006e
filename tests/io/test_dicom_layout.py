"""A series' layout from its headers: images of one size and orientation, except projection radiographs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import InputError
from medforensics.io.dicom import read_dicom_header, read_dicom_series
from tests.io._dicom_series import write_ct_series
from tests.io._radiographs import rg1_pixels, write_radiographs


def test_a_radiograph_series_of_two_sizes_is_read_image_by_image(tmp_path: Path) -> None:
    """A PA view and a view of another size (the same CR turned a quarter, and a crop of it) in one CR series:
    read as one array as large as the largest, each image top left at its own size in instance order, the
    rest of its plane its own minimum. Before, the series was refused ("image size ... differs")."""
    px = rg1_pixels()
    images = [px, np.rot90(px), px[200:900, 300:1500]]
    write_radiographs(tmp_path / "xr", images)
    layout = read_dicom_header(tmp_path / "xr")
    assert layout.image_shapes == [(1955, 1841), (1841, 1955), (700, 1200)]
    vol = read_dicom_series(tmp_path / "xr")
    assert vol.shape == (3, 1955, 1955) and vol.modality == "CR"
    assert vol.image_shapes == [(1955, 1841), (1841, 1955), (700, 1200)]
    for k, stored in enumerate(images):
        alone = read_dicom_series(tmp_path / "xr" / f"f{3 - k}.dcm")  # the same file read by itself
        rows, cols = stored.shape
        np.testing.assert_array_equal(vol.array[k, :rows, :cols], alone.array[0])
        plane = np.asarray(vol.array[k])
        outside = np.ones(plane.shape, bool)
        outside[:rows, :cols] = False
        assert (plane[outside] == alone.array[0].min()).all()
    streamed = read_dicom_series(tmp_path / "xr", stream_above=0)  # decoded on access, padded the same way
    np.testing.assert_array_equal(np.asarray(streamed.array[0:3]), vol.array)


def test_a_radiograph_series_of_one_size_records_no_sizes(tmp_path: Path) -> None:
    px = rg1_pixels()
    write_radiographs(tmp_path / "xr", [px, px[::-1]])
    vol = read_dicom_series(tmp_path / "xr")
    assert vol.shape == (2, 1955, 1841) and "image_shapes" not in vol.metadata
    assert vol.image_shapes == [(1955, 1841)] * 2


def test_ct_slices_of_another_size_are_still_refused(tmp_path: Path) -> None:
    """Only projection radiographs may differ in size: a CT slice of another size is an error naming it."""
    import pydicom

    files = write_ct_series(tmp_path / "ct", [0.0, 5.0, 10.0])
    ds = pydicom.dcmread(files[1])
    ds.PixelData = ds.pixel_array[:64, :96].copy().tobytes()
    ds.Rows, ds.Columns = 64, 96
    ds.save_as(files[1])
    with pytest.raises(InputError, match="image size") as err:
        read_dicom_series(tmp_path / "ct")
    assert err.value.path == str(files[1])
