"""Seed-study augmentations: parameters recorded, replay exact, geometry follows masks and points."""

from __future__ import annotations

import numpy as np
import pytest

from medforensics.errors import ConfigError
from medforensics.forge import augment as A


def _image(ndim: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (6, 40, 48) if ndim == 3 else (40, 48)
    img = rng.normal(-700, 50, size=shape).astype(np.float32)
    img[..., 10:18, 30:36] = 40.0  # a bright off-centre block
    return img


@pytest.mark.parametrize("ndim", [2, 3])
def test_random_augment_records_and_replays(ndim: int) -> None:
    img = _image(ndim)
    aug = A.ct_augmenter(n_ops=2)
    out1, _, chain1 = aug(img, np.random.default_rng(7))
    out2, _, chain2 = aug(img, np.random.default_rng(7))
    assert chain1 == chain2 and len(chain1) == 2
    np.testing.assert_array_equal(out1, out2)
    replay, _ = A.apply_augmentations(img, chain1)
    np.testing.assert_array_equal(out1, replay)
    assert out1.shape == img.shape
    others = [aug(img, np.random.default_rng(s))[2] for s in range(8, 14)]
    assert any(c != chain1 for c in others)  # the parameters do depend on the seed


def test_sampled_values_are_the_seed_study_choices() -> None:
    rng = np.random.default_rng(0)
    angles = {A.sample_params("rotate", rng)["angle_deg"] for _ in range(200)}
    factors = {A.sample_params("brightness", rng)["factor"] for _ in range(200)}
    assert angles == {-10.0, -5.0, 5.0, 10.0}
    assert factors == {0.75, 0.9, 1.1, 1.25}
    flips3 = {A.sample_params("flip", rng, ndim=3)["axis"] for _ in range(100)}
    assert flips3 == {-1, -2, -3}


def test_brightness_about_reference_and_noise_std() -> None:
    img = _image(2)
    out, params = A.scale_brightness(img, 1.25, reference=-1000.0)
    np.testing.assert_allclose(out, -1000 + 1.25 * (img + 1000), rtol=1e-6)
    assert params == {"kind": "brightness", "factor": 1.25, "reference": -1000.0}
    flat = np.zeros((200, 200), np.float32)
    noisy, p = A.add_noise(flat, 20.0, seed=3)
    assert abs(float(noisy.std()) - 20.0) < 1.0 and p["seed"] == 3


def test_flip_and_rotate_move_mask_and_point_together() -> None:
    img = _image(3)
    mask = img > 0
    point = (3.0, 13.5, 32.5)  # centre of the bright block
    for params in (
        {"kind": "flip", "axis": -1},
        {"kind": "flip", "axis": -2},
        {"kind": "rotate", "angle_deg": 10.0},
    ):
        out, m = A.apply_augmentation(img, params, mask)
        assert m is not None and m.dtype == bool
        p = A.transform_point(point, params, img.shape)
        zi, yi, xi = (round(v) for v in p)
        assert m[zi, yi, xi], params  # the mask still covers the moved point
        assert out[zi, yi, xi] > -200, params  # and so do the pixels


@pytest.mark.parametrize("angle", [-10.0, -5.0, 5.0, 10.0])
def test_rotated_point_lands_on_the_rotated_pixel(angle: float) -> None:
    img = np.zeros((41, 61), np.float32)
    img[10, 45] = 1000.0  # 15 px right and 10 px above the centre: moves ~2-5 px
    out, _, params = A.rotate(img, angle)
    peak = np.unravel_index(int(out.argmax()), out.shape)
    moved = A.transform_point((10.0, 45.0), params, img.shape)
    assert abs(peak[0] - moved[0]) <= 1.0 and abs(peak[1] - moved[1]) <= 1.0, (peak, moved)
    assert peak != (10, 45)


def test_rotation_by_zero_and_unknown_kind() -> None:
    img = _image(2)
    out, _, params = A.rotate(img, 0.0)
    np.testing.assert_allclose(out, img, atol=1e-4)
    assert params["angle_deg"] == 0.0
    with pytest.raises(ConfigError):
        A.apply_augmentation(img, {"kind": "shear"})
    with pytest.raises(ConfigError):
        A.RandomAugment(["shear"])
    with pytest.raises(ConfigError):
        A.flip(img, -3)


def test_rotation_corners_keep_the_noise_texture() -> None:
    """A flat (nearest/constant) corner fill would look like an in-painting's noise-free patch."""
    from medforensics.features.noise_map import residual_energy

    noise = np.random.default_rng(0).normal(0.0, 20.0, (1, 128, 128)).astype(np.float32)
    out, _, _ = A.rotate(noise, 10.0)
    e = residual_energy(out, (1, 1, 1))
    corner, centre = np.sqrt(e[0, :6, :6].mean()), np.sqrt(e[0, 60:68, 60:68].mean())
    assert corner > 0.7 * centre


def test_noise_copy_draws_the_seed_studys_noise_reproducibly() -> None:
    from medforensics.forge.augment import NOISE_STD, noise_copy

    img = np.zeros((4, 64, 64), np.float32)
    a = noise_copy(img, np.random.default_rng(3))
    b = noise_copy(img, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert NOISE_STD[0] * 1400.0 * 0.95 <= float(a.std()) <= NOISE_STD[1] * 1400.0 * 1.05
    assert not img.any()  # the input is not modified


def test_thicken_slices_averages_blocks_and_drops_the_remainder() -> None:
    arr = np.arange(5 * 2 * 2, dtype=np.float32).reshape(5, 2, 2)
    thick = A.thicken_slices(arr, 2)
    assert thick.shape == (2, 2, 2) and thick.dtype == np.float32
    np.testing.assert_allclose(thick[1], arr[2:4].mean(axis=0))
    np.testing.assert_array_equal(A.thicken_slices(arr, 1), arr)
    with pytest.raises(ConfigError, match="cannot average 6 slices"):
        A.thicken_slices(arr, 6)
