"""Forensic features: shapes, determinism, sensitivity to tampering of the noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medforensics.errors import InputError
from medforensics.features import extract_features, feature_names
from medforensics.features.residual import residual_feature_names, residual_features


def _ct_like(n: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """Smooth anatomy plus white scanner noise, values around 0.3-0.7."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random((n, size, size)), sigma=(0, 4, 4))
    base = (base - base.min()) / (np.ptp(base) + 1e-9) * 0.4 + 0.3
    return (base + rng.normal(0, 0.03, base.shape)).astype(np.float32)


def test_shapes_names_and_determinism() -> None:
    x = _ct_like(5)[:, None]
    f1, f2 = extract_features(x), extract_features(x.copy())
    assert f1.shape == (5, len(feature_names()))
    assert f1.dtype == np.float32 and np.isfinite(f1).all()
    np.testing.assert_array_equal(f1, f2)
    # (N, H, W) and (N, C, H, W) with the centre channel agree
    stack = np.concatenate([x * 0.5, x, x * 0.1], 1)
    np.testing.assert_array_equal(extract_features(x[:, 0]), extract_features(stack))


def test_3d_cubes_use_three_planes() -> None:
    cube = np.stack([_ct_like(24, 24, seed=i) for i in range(2)])[:, None]  # (2, 1, 24, 24, 24)
    f = extract_features(cube)
    assert f.shape == (2, 3 * len(feature_names()))
    assert len(feature_names(3)) == f.shape[1]


def test_inpainted_centre_changes_residual_features() -> None:
    """Smoothing the noise away in the centre (what an in-painting does) moves the centre ratio down,
    extra noise there (a pasted patch from a noisier scan) moves it up."""
    img = _ct_like(1, 64)
    smoothed = img.copy()
    smoothed[0, 20:44, 20:44] = ndimage.gaussian_filter(img[0], 2)[20:44, 20:44]
    noisy = img.copy()
    noisy[0, 20:44, 20:44] += np.random.default_rng(1).normal(0, 0.06, (24, 24)).astype(np.float32)
    names = residual_feature_names()
    col = names.index("residual_kv3_centre_ratio")
    base, smooth_f, noisy_f = (residual_features(a)[0, col] for a in (img, smoothed, noisy))
    assert smooth_f < base - 0.2
    assert noisy_f > base + 0.2
    assert not np.allclose(extract_features(img), extract_features(noisy))


def test_copy_move_changes_features() -> None:
    img = _ct_like(1, 64, seed=3)
    moved = img.copy()
    moved[0, 24:40, 24:40] = img[0, 2:18, 2:18]
    assert not np.allclose(extract_features(img), extract_features(moved))


def test_too_small_or_bad_shape_is_an_input_error() -> None:
    with pytest.raises(InputError, match="at least"):
        extract_features(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(InputError, match="shape"):
        extract_features(np.zeros((8, 8), np.float32))


def test_residual_energy_measures_pixel_noise_not_ramps() -> None:
    from medforensics.features.noise_map import residual_energy

    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 20.0, (4, 64, 64)).astype(np.float32)
    e = residual_energy(noise, (2, 2, 2))
    assert e.shape == (2, 32, 32)
    assert float(np.sqrt(e.mean())) == pytest.approx(1.5 * 20.0, rel=0.05)  # KV gain 1.5
    yy, xx = np.mgrid[:64, :64].astype(np.float32)
    ramp = np.broadcast_to(3.0 * yy + 5.0 * xx, (4, 64, 64))
    assert float(residual_energy(ramp, (1, 2, 2)).max()) < 1e-3
    spot = np.zeros((2, 32, 32), np.float32)
    spot[:, 16, 16] = 5000.0  # a bright calcification: clipped, not a huge energy
    from medforensics.features.noise_map import RESIDUAL_CLIP_HU

    assert float(residual_energy(spot, (1, 1, 1)).max()) == pytest.approx(RESIDUAL_CLIP_HU**2)


def _z_correlated_noise(shape: tuple[int, int, int], rho: float, seed: int = 0) -> np.ndarray:
    """Pixel noise (std 20) whose neighbouring slices correlate by ``rho``, as a scanner's do."""
    rng = np.random.default_rng(seed)
    white = rng.normal(0.0, 20.0, shape).astype(np.float32)
    out = white.copy()
    for k in range(1, shape[0]):
        out[k] = rho * out[k - 1] + np.sqrt(1 - rho**2) * white[k]
    return out


@pytest.mark.parametrize("fz", [1, 2])
def test_inter_slice_moments_do_not_depend_on_the_slab_size(fz: int) -> None:
    from medforensics.features.noise_map import grid_means

    vol = _z_correlated_noise((20, 32, 32), 0.5)
    whole = grid_means(vol, (fz, 2, 2), slab=32, zpair=True)
    slabbed = grid_means(vol, (fz, 2, 2), slab=3, zpair=True)
    assert whole.zpair is not None and slabbed.zpair is not None and whole.energy is not None
    np.testing.assert_allclose(slabbed.zpair, whole.zpair, rtol=1e-5, atol=1e-3)
    # r_k * r_(k-1) over r^2: the correlation put in, seen through the in-plane KV filter
    assert float(whole.zpair[0].mean() / whole.energy.mean()) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("k", [(1, 2, 2), (2, 3, 1), (3, 1, 2)])
def test_block_sum_is_the_block_mean_times_its_size(k: tuple[int, int, int]) -> None:
    import torch
    import torch.nn.functional as F

    from medforensics.features.noise_map import block_sum

    t = torch.randn(7, 11, 10)  # remainders on every axis for some k: dropped, as avg_pool3d drops them
    before = t.clone()
    ref = F.avg_pool3d(t[None, None], k, stride=k)[0, 0] * (k[0] * k[1] * k[2])
    out = block_sum(t, k)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(t, before)  # the input is not summed into


def test_zcorr_channel_marks_fresh_noise_the_energy_channel_does_not() -> None:
    """An in-painted cube whose noise is of the right strength but new on every slice (what a slice-wise
    generator leaves) stands out in the correlation channel only."""
    from medforensics.train.dense_data import model_input

    hu = _z_correlated_noise((24, 96, 96), 0.5) - 800.0
    rng = np.random.default_rng(1)
    hu[8:16, 32:64, 32:64] = rng.normal(-800.0, 20.0, (8, 32, 32))  # same energy, no inter-slice link
    g = model_input(hu, (2.5, 0.7, 0.7), (2.5, 1.4, 1.4), noise=True, zcorr=True)
    assert g.zcorr is not None and g.noise is not None and g.zcorr.shape == g.hu.shape
    inside, outside = g.zcorr[10:14, 20:28, 20:28], g.zcorr[:, :10, :10]
    assert float(np.median(outside)) == pytest.approx(0.0, abs=0.2)  # relative to the series' lung
    assert float(inside.mean()) < -1.0  # correlation about 0.5 lower, in units of 0.25
    assert abs(float(g.noise[10:14, 20:28, 20:28].mean() - np.median(g.noise))) < 0.2
    assert g.channels((-1000.0, 400.0)).shape == (3, *g.hu.shape)


def test_zcorr_is_its_formula_whether_the_moments_come_stacked_or_as_views() -> None:
    """The in-place computation (memory of long series) gives exactly the plain formula of the docs."""
    from scipy import ndimage

    from medforensics.features import noise_map as nm

    rng = np.random.default_rng(0)
    pair = rng.normal(size=(2, 12, 40, 40)).astype(np.float32)
    pair[1] = np.abs(pair[1])
    energy = np.abs(rng.normal(size=(12, 40, 40))).astype(np.float32)
    hu = rng.uniform(-1000, 0, size=(12, 40, 40)).astype(np.float32)
    sp = (2.5, 1.4, 1.4)
    size = (1, *(max(1, round(nm.ZCORR_BOX_MM / s)) for s in sp[1:]))
    assert nm.corr_size(sp) == size
    ab, bb, aa = (ndimage.uniform_filter(a, size, mode="nearest") for a in (*pair, energy))
    c = ab / np.sqrt(np.maximum(aa * bb, 0.0) + nm.ZCORR_EPS**2)
    lung = (hu > nm.LUNG_HU[0]) & (hu < nm.LUNG_HU[1])
    want = np.clip((c - np.median(c[lung])) / nm.ZCORR_SCALE, -2.0, 2.0)
    kept = energy.copy()
    apart = [pair[0].copy(), pair[1].copy()]
    got, ref = nm.corr_channel(nm.raw_corr(*apart, energy, size), hu)
    assert got is apart[0] and ref == pytest.approx(float(np.median(c[lung])), abs=1e-6)  # in place
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    stacked = pair.copy()  # views of one (2, z, y, x) array
    np.testing.assert_array_equal(
        nm.corr_channel(nm.raw_corr(stacked[0], stacked[1], energy, size), hu)[0], got
    )
    np.testing.assert_array_equal(energy, kept)  # the energy is only read: the noise channel needs it


@pytest.mark.parametrize(("depth", "slab"), [(None, 4), (None, 32), (28, 4), (17, 3)])
def test_grid_means_makes_the_correlation_in_the_pass_as_from_the_whole_maps(
    depth: int | None, slab: int
) -> None:
    """``corr_size``: the raw correlation made slab by slab from the moments (zoomed along z or not) is
    bit for bit the one made from the whole moment maps, and the moments are not kept."""
    from medforensics.features import noise_map as nm

    vol = np.random.default_rng(4).normal(-700.0, 150.0, (23, 40, 36)).astype(np.float32)
    size = nm.corr_size((2.5, 1.4, 1.4))
    whole = nm.grid_means(vol, (1, 2, 2), slab=slab, energy=True, zpair=True, depth=depth)
    passed = nm.grid_means(vol, (1, 2, 2), slab=slab, energy=True, zpair=True, depth=depth, corr_size=size)
    assert whole.zpair is not None and whole.energy is not None
    assert passed.zpair is None and passed.corr is not None and passed.energy is not None
    np.testing.assert_array_equal(passed.means, whole.means)
    np.testing.assert_array_equal(passed.energy, whole.energy)
    want = nm.raw_corr(*(z.copy() for z in whole.zpair), whole.energy, size)
    np.testing.assert_array_equal(passed.corr, want)
    assert passed.corr.shape[0] == (depth or 23)


def test_grid_means_reads_a_float32_volume_without_changing_it() -> None:
    """A float32 volume is read in place (no copy): it must come back unchanged, with the same means as
    from a copy of another dtype."""
    from medforensics.features.noise_map import grid_means

    rng = np.random.default_rng(0)
    vol = rng.normal(-700, 200, size=(10, 32, 30)).astype(np.float32)
    before = vol.copy()
    seen: list[int] = []
    a = grid_means(vol, (1, 2, 2), slab=3, energy=True, zpair=True, on_slab=lambda z0, b: seen.append(z0))
    assert np.array_equal(vol, before) and seen == [0, 3, 6, 9]
    b = grid_means(vol.astype(np.float64), (1, 2, 2), slab=3, energy=True, zpair=True)
    for x, y in ((a.means, b.means), (a.energy, b.energy), (a.zpair, b.zpair)):
        assert np.array_equal(x, y)


@pytest.mark.parametrize(
    ("depth", "out", "slab"), [(13, 16, 4), (13, 16, 1), (16, 13, 5), (7, 5, 32), (1, 3, 2)]
)
def test_z_linear_streams_scipys_linear_zoom_along_z(depth: int, out: int, slab: int) -> None:
    from scipy import ndimage

    from medforensics.features.noise_map import ZLinear

    a = np.random.default_rng(0).normal(0.0, 300.0, (depth, 9, 7)).astype(np.float32)
    want = ndimage.zoom(a, (out / depth, 1, 1), order=1, grid_mode=True, mode="nearest")
    got = np.full((out, 9, 7), np.nan, np.float32)
    z = ZLinear(out, depth, got.__setitem__)
    for z0 in range(0, depth, slab):
        z.push(z0, a[z0 : z0 + slab].copy())
        assert all(i >= z0 - 1 for i in z.held)  # only the slices still needed are kept
    np.testing.assert_allclose(got, want, atol=0.05)
    assert not z.held


def test_grid_means_resamples_along_z_in_the_pass() -> None:
    from scipy import ndimage

    from medforensics.features.noise_map import grid_means

    vol = np.random.default_rng(3).normal(-700.0, 150.0, (23, 20, 18)).astype(np.float32)
    plain = grid_means(vol, (1, 2, 2), slab=4, energy=True, zpair=True)
    zoomed = grid_means(vol, (1, 2, 2), slab=4, energy=True, zpair=True, depth=28)
    assert plain.energy is not None and plain.zpair is not None
    assert zoomed.energy is not None and zoomed.zpair is not None
    pairs = [(plain.means, zoomed.means), (plain.energy, zoomed.energy)]
    for a, b in [*pairs, *zip(plain.zpair, zoomed.zpair, strict=True)]:
        want = ndimage.zoom(a, (28 / 23, 1, 1), order=1, grid_mode=True, mode="nearest")
        assert b.shape == want.shape
        np.testing.assert_allclose(b, want, rtol=1e-5, atol=1e-6 * float(np.abs(a).max()))  # float32 rounding
