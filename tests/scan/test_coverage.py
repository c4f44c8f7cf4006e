"""What a CT model was trained on, and the caveats of series outside it."""

from __future__ import annotations

import pytest

from medforensics.errors import InputError
from medforensics.scan.coverage import read_spacing_range, spacing_caveats, spacing_range

TRAINED = {"pixel_mm": (0.68, 0.82), "slice_mm": (1.25, 2.5)}


def test_spacing_range_takes_the_larger_pixel_side_and_the_slice_spacing() -> None:
    got = spacing_range([(2.5, 0.70, 0.70), (1.25, 0.68, 0.69), (2.5, 0.82, 0.80)])
    assert got == {"pixel_mm": [0.69, 0.82], "slice_mm": [1.25, 2.5]}
    assert spacing_range([]) == {}


def test_inside_the_range_or_within_its_slack_there_is_no_caveat() -> None:
    assert spacing_caveats((2.5, 0.70, 0.70), TRAINED) == []
    assert spacing_caveats((2.55, 0.84, 0.84), TRAINED) == []  # 3 % slack for rounded headers
    assert spacing_caveats((3.0, 0.98, 0.98), {}) == []  # a model that records nothing


def test_coarser_pixels_and_wider_slices_each_get_one_line() -> None:
    pixel, slices = spacing_caveats((3.0, 0.977, 0.977), TRAINED)
    assert pixel.startswith("pixels 0.98 mm, coarser than the 0.68-0.82 mm pixels")
    assert "outside what its validation figures cover" in pixel
    assert slices.startswith("slices 3.00 mm apart, farther apart than the 1.25-2.50 mm")
    (fine,) = spacing_caveats((2.5, 0.5, 0.5), TRAINED)
    assert fine.startswith("pixels 0.50 mm, finer than the 0.68-0.82 mm pixels")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([0.7, 0.8], "data_spacing must map"),
        ({"voxel_mm": [1, 2]}, "data_spacing must map"),
        ({"pixel_mm": [0.8, 0.7]}, r"data_spacing pixel_mm must be \[low, high\]"),
        ({"slice_mm": [0, 2.5]}, "data_spacing slice_mm must be"),
        ({"slice_mm": [1.0, "x"]}, "data_spacing slice_mm must be"),
    ],
)
def test_a_malformed_range_is_one_error_naming_the_file(value: object, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        read_spacing_range({"data_spacing": value}, "m/metrics.json")
    assert "m/metrics.json" in str(err.value) and "\n" not in str(err.value)


def test_an_absent_range_reads_as_none_and_a_good_one_as_tuples() -> None:
    assert read_spacing_range({}, "x") == {}
    assert read_spacing_range({"data_spacing": {"pixel_mm": [0.68, 0.82]}}, "x") == {"pixel_mm": (0.68, 0.82)}
