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


@pytest.mark.parametrize("ndim", [2, 3])
def test_every_augmentation_enumerates_what_the_random_ones_draw(ndim: int) -> None:
    rng = np.random.default_rng(1)
    drawn = {
        A.augmentation_name(A.sample_params(k, rng, ndim=ndim, reference=-1000.0))
        for k in ("rotate", "brightness", "flip")
        for _ in range(200)
    }
    every = A.every_augmentation(ndim=ndim, reference=-1000.0)
    assert {A.augmentation_name(p) for p in every} == drawn
    assert len(every) == len(drawn) == (10 if ndim == 2 else 11)  # each once
    assert all(p["reference"] == -1000.0 for p in every if p["kind"] == "brightness")
    assert [p["kind"] for p in A.every_augmentation(("flip",), ndim=ndim)] == ["flip"] * (ndim)
    with pytest.raises(ConfigError, match="noise"):
        A.every_augmentation(("noise",))
    assert A.augmentation_name({"kind": "rotate", "angle_deg": -5.0}) == "rotate-5"
    assert A.augmentation_name({"kind": "brightness", "factor": 0.75}) == "brightness0.75"
    ct = np.full((4, 8, 8), -1000.0, np.float32)
    ct[:, 2:4, 2:4] = 0.0
    copies = dict(A.every_ct_copy(ct if ndim == 3 else ct[0]))
    assert list(copies) == [A.augmentation_name(p) for p in A.every_augmentation(ndim=ndim)]
    assert copies["brightness0.75"].min() == -1000.0 and copies["brightness0.75"].max() == -250.0  # about air
    np.testing.assert_array_equal(copies["flip-1"], np.flip(ct if ndim == 3 else ct[0], -1))


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


def test_area_weights_are_block_means_for_integers_and_keep_mass_for_fractions() -> None:
    w2, t2 = A.area_weights(6, 2.0)
    np.testing.assert_allclose(w2, np.kron(np.eye(3), [[0.5, 0.5]]))
    assert t2 == 0.5  # output pixel 0 is centred between input pixels 0 and 1
    w, _ = A.area_weights(10, 1.6)
    assert w.shape == (6, 10)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)  # a uniform image stays uniform
    np.testing.assert_allclose(w[0, :2], [1 / 1.6, 0.6 / 1.6])  # pixel 0 whole, 60 % of pixel 1
    with pytest.raises(ConfigError, match=r"factor of 0\.5"):
        A.area_weights(10, 0.5)


def test_sinc_weights_sample_band_limited_signals_exactly_and_keep_noise_stationary() -> None:
    n, f = 128, 1.7
    w, t0 = A.sinc_weights(n, f)
    t = t0 + np.arange(w.shape[0]) * f
    assert t[0] >= 0 and t[-1] <= n - 1 and abs(t[0] - (n - 1 - t[-1])) < 1e-9  # centred in the field
    wave = np.cos(2 * np.pi * 5 * np.arange(n) / n + 0.3)
    np.testing.assert_allclose(w @ wave, np.cos(2 * np.pi * 5 * t / n + 0.3), atol=1e-9)
    np.testing.assert_allclose(A.sinc_weights(n, 1.0)[0], np.eye(n), atol=1e-9)
    noise = np.random.default_rng(0).normal(size=(n, 4000))
    var = (w @ noise).var(axis=1)
    assert np.all(np.abs(var - 1.0) < 0.1)  # every sample keeps the pixels' noise variance
    area_var = (A.area_weights(n, 1.1)[0] @ noise).var(axis=1)
    assert area_var.min() < 0.6 < 0.8 < area_var.max()  # area means at 1.1: uneven, a periodic pattern


@pytest.mark.parametrize("sampling", ["point", "area"])
def test_coarse_pixels_keeps_geometry_and_moves_a_spot_to_its_mapped_index(sampling: str) -> None:
    from medforensics.io.volume import Volume

    yy, xx = np.indices((60, 50))
    spot = 1800.0 * np.exp(-((yy - 30.0) ** 2 + (xx - 20.0) ** 2) / (2 * 4.0**2))  # a smooth spot at (30, 20)
    arr = np.repeat((spot - 800.0)[None], 2, axis=0).astype(np.float32)
    arr[:, :3] = -2048.0  # padding outside the field of view
    vol = Volume(arr, spacing=(2.5, 0.7, 0.7), origin=(10.0, -5.0, 3.0))
    out, factors, offsets = A.coarse_pixels(vol, 1.2, sampling)
    f = 1.2 / 0.7
    assert out.spacing == (2.5, 1.2, 1.2) and factors == (1.0, f, f)
    assert arr[0, 30, 20] == 1000.0 and arr[0, 0, 0] == -2048.0  # the input is not modified
    assert out.array.min() >= -1024.0 - 30.0  # the padding was raised to -1024 HU first
    # the spot's intensity-weighted centre lies where the index mapping says, at the same patient position
    expect = (np.array([0.0, 30.0, 20.0]) - np.array(offsets)) / np.array(factors)
    cy, cx = (round(float(v)) for v in expect[1:])
    w = out.array[0, cy - 8 : cy + 9, cx - 8 : cx + 9] + 800.0  # the spot, away from the padding's edge
    yy, xx = np.indices(w.shape)
    centre = np.array([0.0, (w * yy).sum() / w.sum() + cy - 8, (w * xx).sum() / w.sum() + cx - 8])
    np.testing.assert_allclose(centre, expect, atol=0.05)
    at = vol.index_to_patient((0.0, 30.0, 20.0))
    np.testing.assert_allclose(out.index_to_patient(expect), at, atol=1e-6)
    with pytest.raises(ConfigError, match="unknown pixel sampling"):
        A.coarse_pixels(vol, 1.2, "nearest")


def test_lower_dose_raises_the_lung_noise_by_one_over_root_dose_and_keeps_it_correlated() -> None:
    """A half-dose copy: the lung's in-plane noise about 1.41 x, still correlated between slices as the
    scanner's (so ``scan`` keeps it at the scanner-noise operating point), reproducible from the generator."""
    from medforensics.forge.cubes import noise_std, slice_correlation

    rng = np.random.default_rng(0)
    base = rng.standard_normal((12, 96, 96)).astype(np.float32) * 20.0
    for k in range(1, 12):  # scanner-like: each slice shares half of its noise with the one before
        base[k] = 0.5 * base[k - 1] + np.float32(np.sqrt(0.75)) * base[k]
    ct = np.round(base - 800.0).astype(np.float32)  # aerated lung everywhere
    lung = np.ones(ct.shape, bool)
    half = A.lower_dose(ct, 0.5, np.random.default_rng(1))
    assert half.dtype == np.float32 and np.array_equal(half, np.round(half))
    ratio = noise_std(half, lung, inplane=True) / noise_std(ct, lung, inplane=True)
    assert 1.3 < ratio < 1.55
    assert slice_correlation(half, lung) > 0.3
    assert np.array_equal(half, A.lower_dose(ct, 0.5, np.random.default_rng(1)))
    white = A.lower_dose(ct, 0.25, np.random.default_rng(1), corr=0.0)
    assert 1.8 < noise_std(white, lung, inplane=True) / noise_std(ct, lung, inplane=True) < 2.3
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="between 0 and 1"):
            A.lower_dose(ct, bad, np.random.default_rng(1))
