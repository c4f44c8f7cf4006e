"""A DICOM series decoded on demand (``stream_above``) reads back exactly what reading it whole gives."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medforensics.errors import InputError
from medforensics.io.dicom import read_dicom_series
from medforensics.io.dicom_pixels import DicomPixels
from medforensics.io.volume import Volume
from tests.io._dicom_series import write_ct_series


def _pair(files: list[Path] | Path) -> tuple[Volume, Volume]:
    return read_dicom_series(files), read_dicom_series(files, stream_above=0)


def test_streamed_series_reads_back_the_same_pixels_and_geometry(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ser", [-70.0, -75.0, -65.0, -80.0, -60.0, -85.0])
    random.Random(1).shuffle(files)
    eager, lazy = _pair(files)
    assert isinstance(lazy.array, DicomPixels) and isinstance(eager.array, np.ndarray)
    assert lazy.shape == eager.shape == (6, 128, 128)
    assert lazy.spacing == eager.spacing and lazy.origin == eager.origin
    assert lazy.metadata["series_uid"] == eager.metadata["series_uid"]
    assert all("PixelData" not in ds for ds in lazy.datasets)
    ref = eager.array
    for key in (
        slice(1, 4),
        slice(None),
        slice(None, None, -2),
        0,
        -1,
        3,
        (2, slice(10, 20)),
        (slice(None), slice(None, None, 4), slice(None, None, 4)),
    ):
        got = lazy.array[key]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, ref[key])
    np.testing.assert_array_equal(np.asarray(lazy.array), ref)
    assert lazy.array.nbytes == ref.nbytes


def test_small_series_stays_in_memory_below_the_limit(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ser", [0.0, 5.0, 10.0])
    assert isinstance(read_dicom_series(files, stream_above=10**9).array, np.ndarray)
    assert isinstance(read_dicom_series(files, stream_above=3 * 128 * 128 * 4 - 1).array, DicomPixels)


def test_streamed_multiframe_file_keeps_the_frame_order() -> None:
    eager, lazy = _pair(Path(get_testdata_file("eCT_Supplemental.dcm")))  # type: ignore[arg-type]
    assert isinstance(lazy.array, DicomPixels)
    np.testing.assert_array_equal(lazy.array[:], eager.array)
    np.testing.assert_array_equal(lazy.array[1], eager.array[1])


def test_a_file_damaged_after_opening_is_an_error_naming_it(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ser", [0.0, 5.0, 10.0, 15.0])
    lazy = read_dicom_series(files, stream_above=0)
    victim = files[1]
    uid = str(pydicom.dcmread(victim, stop_before_pixels=True).SOPInstanceUID)
    k = next(i for i, ds in enumerate(lazy.datasets) if ds.SOPInstanceUID == uid)
    victim.write_bytes(victim.read_bytes()[:-100])
    assert lazy.array[(k + 1) % 4].shape == (128, 128)  # the other files still read
    with pytest.raises(InputError, match="truncated") as err:
        lazy.array[k]
    assert err.value.path is not None and err.value.path.endswith(victim.name)


def test_index_out_of_range_or_of_another_kind_is_refused(tmp_path: Path) -> None:
    lazy = read_dicom_series(write_ct_series(tmp_path / "ser", [0.0, 5.0]), stream_above=0)
    with pytest.raises(IndexError):
        lazy.array[2]
    with pytest.raises(TypeError, match="int or a slice"):
        lazy.array[[0, 1]]
