from __future__ import annotations

import numpy as np
import pytest

from medforensics.forge.cubes import extract_cube
from medforensics.forge.lung import lung_mask
from medforensics.scan.candidates import blob_candidates, block_mean, ct_candidates, low_resolution
from medforensics.scan.cubes import extract_cube_fast
from tests.scan._helpers import ct_crop


@pytest.mark.parametrize(
    "center", [(12.0, 64.0, 70.0), (0.3, 1.7, 127.0), (23.0, 0.0, 0.0), (-2.0, 5.5, 130.0)]
)
def test_fast_cube_equals_reference(center: tuple[float, float, float]) -> None:
    arr = np.random.default_rng(1).normal(size=(24, 128, 128)).astype(np.float32) * 300
    sp = (2.5, 1.4, 1.4)
    ref, _ = extract_cube(arr, sp, center, 32.0)
    assert np.abs(extract_cube_fast(arr, sp, center, 32.0) - ref).max() < 1e-3


def test_block_mean_matches_numpy() -> None:
    a = np.arange(5 * 8 * 9, dtype=np.float32).reshape(5, 8, 9)
    out = block_mean(a, (1, 2, 3), slab=2)
    assert out.shape == (5, 4, 3)
    assert np.allclose(out, a[:, :8, :9].reshape(5, 4, 2, 3, 3).mean(axis=(2, 4)))


def test_planted_blob_is_found_and_grid_covers_the_lung() -> None:
    vol = ct_crop()
    lung = lung_mask(vol)
    # plant a 10 mm solid sphere on aerated lung, far from the lung border
    from scipy import ndimage

    inner = ndimage.binary_erosion(lung, iterations=8) & (vol.array < -800)
    inner[:6] = inner[-6:] = False
    c = np.argwhere(inner)[len(np.argwhere(inner)) // 2]
    zz, yy, xx = np.ogrid[: vol.shape[0], : vol.shape[1], : vol.shape[2]]
    d = np.sqrt(
        ((zz - c[0]) * vol.spacing[0]) ** 2
        + ((yy - c[1]) * vol.spacing[1]) ** 2
        + ((xx - c[2]) * vol.spacing[2]) ** 2
    )
    vol.array[d <= 5.0] = 30.0
    low = low_resolution(vol)
    blobs = blob_candidates(low)
    dist = [np.linalg.norm((np.array(b.center) - c) * vol.spacing) for b in blobs]
    k = int(np.argmin(dist))
    assert dist[k] <= 4.0, dist[k]
    assert blobs[k].nodule_like and 6.0 <= blobs[k].diameter_mm <= 16.0
    cands, _ = ct_candidates(vol, cube_mm=32.0, low=low)
    grid = np.array([x.center for x in cands if x.kind == "grid"])
    assert len(grid) > 10
    # every lung voxel lies within half a stride diagonal (+ rounding) of a grid centre
    pts = np.argwhere(lung)[::997] * np.asarray(vol.spacing)
    g = grid * np.asarray(vol.spacing)
    nearest = np.min(np.linalg.norm(pts[:, None, :] - g[None, :, :], axis=2), axis=1)
    assert np.percentile(nearest, 99) <= 16.0 * np.sqrt(3) / 2 + 3.0


def test_upsample2_is_linear_grid_mode_zoom() -> None:
    from scipy import ndimage

    from medforensics.scan.candidates import _upsample2

    a = np.random.default_rng(0).random((3, 7, 9)).astype(np.float32)
    ref = ndimage.zoom(a, (1, 2, 2), order=1, grid_mode=True, mode="nearest")
    assert np.abs(_upsample2(_upsample2(a, 1), 2) - ref).max() < 1e-5


def test_pyramid_scales_find_a_large_blob_where_full_resolution_does() -> None:
    from scipy import ndimage

    from medforensics.scan.candidates import BLOB_SIGMAS_MM, _log_max

    sp = np.array([2.5, 1.4, 1.4])
    zz, yy, xx = np.ogrid[:24, :96, :96]
    d = np.sqrt(((zz - 12) * sp[0]) ** 2 + ((yy - 41) * sp[1]) ** 2 + ((xx - 50) * sp[2]) ** 2)
    vol = np.where(d <= 12.0, 30.0, -850.0).astype(np.float32)  # a 24 mm mass
    sigmas = list(BLOB_SIGMAS_MM)
    best, scale = _log_max(vol, sigmas, sp)
    assert np.unravel_index(int(np.argmax(best)), best.shape) in {
        (12, y, x) for y in (40, 41, 42) for x in (49, 50, 51)
    }
    ref = [-(s**2) * ndimage.gaussian_laplace(vol, s / sp, mode="nearest") for s in sigmas]
    assert int(scale[12, 41, 50]) == int(np.argmax([r[12, 41, 50] for r in ref]))
    assert best[12, 41, 50] == pytest.approx(max(r[12, 41, 50] for r in ref), rel=0.1)


def test_log_is_bitwise_three_gaussian_derivatives() -> None:
    """The shared-pass LoG gives exactly ``gaussian_filter``'s three second derivatives (float32 between
    passes, in its axis order): the blob search is not moved by a rounding."""
    from scipy import ndimage

    from medforensics.scan.candidates import _log

    arr = np.random.default_rng(3).normal(-600, 300, size=(9, 40, 44)).astype(np.float32)
    sv, unit, s_mm = np.array([0.6, 1.1, 1.3]), (1.0, 2.0, 2.0), 2.5
    ref = np.zeros(arr.shape, np.float32)
    for ax in range(3):
        order = [0, 0, 0]
        order[ax] = 2
        d = ndimage.gaussian_filter(arr, sv, order=order, output=np.float32, mode="nearest")
        ref += d / np.float32(unit[ax] ** 2)
    ref *= -(s_mm**2)
    assert np.array_equal(_log(arr, s_mm, sv, unit), ref)


def test_keep_max_takes_the_stronger_response_and_its_scale() -> None:
    from medforensics.scan.candidates import _keep_max

    best = np.array([1.0, 5.0, -np.inf, 2.0], np.float32)
    scale = np.zeros(4, np.uint8)
    _keep_max(best, scale, np.array([3.0, 4.0, 0.5, np.nan], np.float32), 2)
    assert best.tolist() == [3.0, 5.0, 0.5, 2.0]  # a NaN response never wins
    assert scale.tolist() == [2, 0, 2, 0]
    _keep_max(best, scale, np.array([9.0, 9.0, 0.0, 2.0], np.float32), np.array([4, 3, 1, 1], np.uint8))
    assert best.tolist() == [9.0, 9.0, 0.5, 2.0] and scale.tolist() == [4, 3, 2, 0]  # ties keep the old
