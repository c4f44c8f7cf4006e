"""Lung mask, centre choice and the cube plumbing shared by the CT attacks."""

from __future__ import annotations

import numpy as np
import pytest

from medforensics.errors import ConfigError, InputError
from medforensics.forge import cubes as C
from medforensics.forge.base import create_attack
from medforensics.forge.lung import check_center, choose_center, lung_mask, measure_nodule_mm
from medforensics.io.volume import Volume
from tests.forge._ctdata import chest_ct, ct_crop  # noqa: F401


def test_lung_mask_on_real_crop(ct_crop: Volume) -> None:  # noqa: F811
    m = lung_mask(ct_crop)
    assert m.shape == ct_crop.shape and m.dtype == bool
    frac = m.mean()
    assert 0.1 < frac < 0.5
    # aerated voxels in the mask, the dark outside (air beyond the body / table) not
    assert np.median(ct_crop.array[m]) < -600
    assert not m[:, :3, :].any() and not m[:, :, :3].any()


def test_lung_mask_thin_slab(ct_crop: Volume) -> None:  # noqa: F811
    slab = Volume(ct_crop.array[:3], spacing=ct_crop.spacing, modality="CT")
    m = lung_mask(slab)
    assert m.shape == slab.shape and 0.1 < m.mean() < 0.5


def test_lung_cut_open_by_the_field_of_view_is_found_and_outside_air_is_not(ct_crop: Volume) -> None:  # noqa: F811
    from medforensics.forge.lung import _lung_mask

    full = lung_mask(ct_crop)
    xs = np.nonzero(full)[2]
    # a field of view from inside the right lung to inside the left one: both reach the image border
    left, right = (int(v) for v in np.percentile(xs, [25, 75]))
    cut = Volume(ct_crop.array[:, :, left:right].copy(), spacing=ct_crop.spacing, modality="CT")
    strict, cut_voxels = _lung_mask(cut.array, cut.spacing, cut_lung=False)
    assert cut_voxels > strict.sum()  # the cut lungs outweigh what the border rule alone finds
    m = lung_mask(cut)
    assert np.median(cut.array[m]) > -950  # aerated lung, not the air around the body
    inside = full[:, :, left:right]
    assert (m & inside).sum() / inside.sum() > 0.9 and (m & ~inside).sum() / m.sum() < 0.1
    assert not m[:, :3, :].any()  # the air beyond the body (top rows of this crop) stays outside


def test_outside_air_lifted_by_a_couch_is_not_taken_for_cut_lung(ct_crop: Volume) -> None:  # noqa: F811
    # an abdomen-like series (no aerated lung) whose outside air holds foam: its mean is lung-like
    # (above OUTSIDE_AIR_HU), its median is air's, as on a resampled abdominal CT (session 18)
    from medforensics.forge.lung import OUTSIDE_AIR_HU, _lung_mask

    arr = np.maximum(ct_crop.array, -1000.0)  # air at -1000 (this CT pads outside its field of view)
    arr[lung_mask(ct_crop)] = 40.0  # soft tissue where the lungs were
    outside = arr < -400
    below = np.percentile(np.nonzero(outside)[1], 75)  # the lowest quarter of the outside air: a mattress
    foam = outside & (np.arange(arr.shape[1])[None, :, None] >= below)
    arr[foam] = -500.0
    vol = Volume(arr, spacing=ct_crop.spacing, modality="CT")
    assert np.mean(arr[outside]) > OUTSIDE_AIR_HU > np.median(arr[outside])
    assert lung_mask(vol).sum() < 0.01 * outside.sum()
    assert _lung_mask(arr, vol.spacing, cut_lung=True)[0].sum() < 0.01 * outside.sum()


def test_lung_mask_does_not_depend_on_how_many_slices_are_labelled_at_once(
    ct_crop: Volume,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from medforensics.forge import lung

    xs = np.nonzero(lung_mask(ct_crop))[2]
    left = int(np.percentile(xs, 25))
    cut = ct_crop.array[:, :, left:].copy()  # one lung cut open: the border parts matter
    got = {}
    for chunk in (1, 7, 1000):
        monkeypatch.setattr(lung, "_CHUNK", chunk)
        got[chunk] = (
            lung_mask(ct_crop),
            lung_mask(cut, ct_crop.spacing),
            lung._lung_mask(cut, ct_crop.spacing, False)[1],
        )
    for chunk in (1, 7):
        np.testing.assert_array_equal(got[chunk][0], got[1000][0])
        np.testing.assert_array_equal(got[chunk][1], got[1000][1])
        assert got[chunk][2] == got[1000][2] > 0


def test_lung_mask_keeps_the_two_lungs_among_more_air_pockets_than_16_bit_labels_hold() -> None:
    """The labels are 16-bit when the air parts fit; with more than 65535 the int32 labelling takes over."""
    from scipy import ndimage

    arr = np.zeros((9, 300, 300), np.float32)  # soft tissue
    arr[1:8, 100:200, 60:140] = -800.0  # two lungs, not touching the border
    arr[1:8, 100:200, 160:240] = -800.0
    pockets = np.zeros_like(arr, bool)
    pockets[0:9:2, 5:295:2, 5:295:2] = True  # single air voxels ...
    pockets[:, 97:203, 57:243] = False  # ... none touching a lung
    assert ndimage.label(pockets)[1] > 65535
    arr[pockets] = -1000.0
    np.testing.assert_array_equal(lung_mask(arr, (2.5, 1.4, 1.4)), arr == -800.0)


def test_fill_indentations_puts_a_dent_back_and_leaves_the_gap_between_the_lungs() -> None:
    from medforensics.forge.lung import fill_indentations

    sp = (2.5, 1.0, 1.0)
    yy, xx = np.mgrid[0:120, 0:160]
    left = (yy - 60) ** 2 + (xx - 40) ** 2 <= 30**2
    right = (yy - 60) ** 2 + (xx - 120) ** 2 <= 30**2  # 20 mm of mediastinum between the two lungs
    dent = (yy - 60) ** 2 + (xx - 10) ** 2 <= 6**2  # a 12 mm juxtapleural nodule dents the left lung
    lungs = np.repeat(((left | right) & ~dent)[None], 4, axis=0)
    out = fill_indentations(lungs, sp, 10.0)
    assert (out >= lungs).all()  # never loses lung
    hole = np.repeat((dent & left)[None], 4, axis=0)
    # the dent is back inside but for the lens the disc reaches into its 12 mm mouth (and a pixel lost to
    # the half-resolution closing)
    assert out[:, 60, 13:16].all() and (out & hole).sum() > 0.5 * hole.sum()
    assert not out[:, 60, 75:85].any()  # the mediastinum is not bridged
    assert not out[:, :30, :].any() and not out[:, :, 151:].any()  # nothing grows outwards
    assert not fill_indentations(np.zeros((3, 20, 20), bool), sp, 10.0).any()


def test_choose_center_inject(ct_crop: Volume) -> None:  # noqa: F811
    m = lung_mask(ct_crop)
    c1 = choose_center(ct_crop, np.random.default_rng(1), "inject", mask=m)
    c2 = choose_center(ct_crop, np.random.default_rng(1), "inject", mask=m)
    assert c1 == c2 and m[c1] and ct_crop.array[c1] < -500
    check_center(ct_crop, c1, 8.0)  # fits the in-painted region
    attack = create_attack("blob-inject")
    params = {**attack.sample_params(ct_crop, np.random.default_rng(0), center=c1), "diameter_mm": 14.0}
    params.update(spicules=0, lobulation=0.0)
    fake, _, _ = attack.apply(ct_crop, params)
    assert 10.0 < (measure_nodule_mm(fake, c1) or 0.0) < 18.0


def test_centres_drawn_from_candidates_made_once_are_the_ones_drawn_without(ct_crop: Volume) -> None:  # noqa: F811
    from medforensics.forge.lung import inject_candidates, margin_voxels

    m = lung_mask(ct_crop)
    cand = inject_candidates(ct_crop, m, 8.0)
    inner = np.unravel_index(cand, m.shape)
    need = margin_voxels(ct_crop, 8.0)
    assert len(cand) and m[inner].all()
    assert all((c >= n).all() and (c < s - n).all() for c, n, s in zip(inner, need, m.shape, strict=True))
    assert len(cand) < m.sum()  # the lung near the borders is left out
    one, two = np.random.default_rng(4), np.random.default_rng(4)
    for _ in range(5):  # the same centres, and the same draws consumed
        a = choose_center(ct_crop, one, "inject", mask=m, tries=10)
        assert a == choose_center(ct_crop, two, "inject", mask=m, tries=10, candidates=cand)
    with pytest.raises(InputError, match="no lung found"):
        choose_center(ct_crop, one, "inject", mask=m, candidates=cand[:0])


def test_choose_center_remove_needs_annotations(ct_crop: Volume) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="annotations"):
        choose_center(ct_crop, np.random.default_rng(0), "remove")
    v = ct_crop.copy()
    v.metadata["nodules"] = [{"center_voxel": (10.2, 60.0, 50.0), "diameter_mm": 9.0}]
    assert choose_center(v, np.random.default_rng(0), "remove") == (10, 60, 50)


def test_check_center_names_axis_and_margin(ct_crop: Volume) -> None:  # noqa: F811
    with pytest.raises(InputError, match=r"axis y: needs 4 voxels"):
        check_center(ct_crop, (10, 2, 50), 8.0)
    with pytest.raises(InputError, match="axis z"):
        check_center(ct_crop, (0, 60, 50), 8.0)
    with pytest.raises(InputError, match="outside"):
        check_center(ct_crop, (30, 60, 50), 8.0)


def test_extract_cube_geometry() -> None:
    arr = np.arange(40**3, dtype=np.float32).reshape(40, 40, 40)
    cube, grid = C.extract_cube(arr, (1.0, 1.0, 1.0), (20.0, 20.0, 20.0), cube_mm=8)
    assert cube.shape == (8, 8, 8) and grid.mirrored == (0, 0, 0)
    assert cube[0, 0, 0] == pytest.approx(arr[16, 16, 16] + (0.5 * (1 + 40 + 1600)), rel=1e-5)
    _, grid2 = C.extract_cube(arr, (2.5, 1.0, 1.0), (1.0, 20.0, 20.0), cube_mm=32)
    assert grid2.mirrored[0] > 0 and grid2.step == (0.4, 1.0, 1.0)


def test_paste_zero_weight_changes_nothing_and_full_weight_copies() -> None:
    rng = np.random.default_rng(0)
    arr = rng.normal(-800, 30, (30, 40, 40)).astype(np.float32)
    cube, grid = C.extract_cube(arr, (2.0, 1.0, 1.0), (15.0, 20.0, 20.0), 16)
    new, _, _ = C.paste_region(arr, grid, cube + 500, np.zeros_like(cube), 6)
    np.testing.assert_array_equal(new, arr)
    new, _sl, w = C.paste_region(arr, grid, np.full_like(cube, 40.0), C.blend_weight(16, 6, 2), 6)
    assert new[15, 20, 20] == pytest.approx(40.0) and (new != arr).sum() == (w > 0).sum()


def test_unit_window_and_noise() -> None:
    hu = np.array([-2000, -1000, -300, 400, 900], np.float32)
    np.testing.assert_allclose(C.to_unit(hu), [-1, -1, 0, 1, 1])
    np.testing.assert_allclose(C.from_unit(C.to_unit(hu[1:4])), hu[1:4], atol=1e-3)
    rng = np.random.default_rng(0)
    flat = np.full((20, 20, 20), -850.0, np.float32)
    noisy = flat + C.noise_field(flat.shape, 12.0, 0.0, rng)
    assert C.noise_std(noisy) == pytest.approx(12.0, rel=0.15)
    assert np.all(C.noise_field((5, 5, 5), 10.0, 20.0, rng) == 0)  # already noisy enough


def test_match_context_recovers_affine() -> None:
    rng = np.random.default_rng(0)
    orig = rng.normal(-800, 40, (16, 16, 16)).astype(np.float32)
    gen = (orig - 30) * 0.9
    ctx = np.ones(orig.shape, bool)
    np.testing.assert_allclose(C.match_context(gen, orig, ctx), orig, atol=2.0)


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.6])
def test_slice_correlation_reads_the_scanners_inter_slice_correlation(rho: float) -> None:
    """Noise whose neighbouring slices share ``rho`` (an overlapping reconstruction) reads as ``rho``."""
    field = C._correlated(np.random.default_rng(1), (24, 64, 64), C.NOISE_CORR, rho)
    lung = -850.0 + 20.0 * field
    assert C.slice_correlation(lung) == pytest.approx(rho, abs=0.05)


def test_matched_top_up_correlates_between_slices_as_the_lung_does() -> None:
    """An in-painted (flat) core topped up with ``z="matched"`` noise gets the lung's level and inter-slice
    correlation; with independent noise (every attack's default) it gets the level only."""
    shape = (24, 64, 64)
    original = -850.0 + 20.0 * C._correlated(np.random.default_rng(2), shape, C.NOISE_CORR, 0.5)
    core = np.zeros(shape, bool)
    core[:, 16:48, 16:48] = True
    new = np.where(core, -850.0, original).astype(np.float32)
    level = C.noise_std(original, ~core, inplane=True)
    for z, want in (("matched", 0.5), ("independent", 0.0)):
        noise = C.top_up_noise(original, new, ~core, core, np.random.default_rng(3), plane="slice", z=z)
        filled = new + core * noise
        assert C.noise_std(filled, core, inplane=True) == pytest.approx(level, rel=0.15)
        assert C.slice_correlation(filled, core) == pytest.approx(want, abs=0.1), z
    with pytest.raises(ConfigError, match="noise_z"):
        C.top_up_noise(original, new, ~core, core, np.random.default_rng(3), z="along")
