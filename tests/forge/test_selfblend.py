"""Self-blended edits: a region of the scan's own lung re-synthesised, with its mask and parameters."""

from __future__ import annotations

import numpy as np

from medforensics.forge import cubes as C
from medforensics.forge.selfblend import apply_blend, blended_copies, mask_centre, self_blend


def _lung(shape: tuple[int, int, int] = (16, 64, 64), seed: int = 0) -> np.ndarray:
    """Aerated lung (-850 HU) with scanner-like noise and one vessel-like bright rod."""
    rng = np.random.default_rng(seed)
    a = -850.0 + C.noise_field(shape, 25.0, 0.0, rng)
    a[:, 30:33, 30:33] = 40.0
    return a.astype(np.float32)


def test_the_region_is_changed_inside_its_mask_only_and_the_input_is_kept() -> None:
    a = _lung()
    before = a.copy()
    out, mask, params = self_blend(a, (1.25, 0.7, 0.7), np.random.default_rng(3), centre=(8, 31, 31))
    np.testing.assert_array_equal(a, before)
    assert mask.any() and mask[8, 31, 31] and params["centre"] == (8, 31, 31)
    d = np.abs(out - a)
    assert d[mask].mean() > 20.0  # the rod through the centre is smoothed away, the noise re-drawn
    reach = np.ceil(np.asarray(params["radius_mm"]) * 1.2 / np.asarray((1.25, 0.7, 0.7))).astype(int) + 1
    far = np.ones(a.shape, bool)
    far[tuple(slice(max(c - r, 0), c + r + 1) for c, r in zip((8, 31, 31), reach, strict=True))] = False
    assert far.any() and (d[far] == 0).all()  # nothing outside the blend's box


def test_parameters_are_the_ground_truth_and_replay_exactly() -> None:
    a = _lung()
    out, mask, params = self_blend(a, (1.25, 0.7, 0.7), np.random.default_rng(5))
    again, mask2 = apply_blend(a, (1.25, 0.7, 0.7), params)
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(mask, mask2)
    assert -950.0 < a[params["centre"]] < -500.0  # a random site lies in aerated lung


def test_copies_are_seeded_per_scan_and_every_other_one_sits_on_the_nodule() -> None:
    a = _lung()
    nodule = np.zeros(a.shape, bool)
    nodule[6:9, 40:46, 20:26] = True
    site = mask_centre(nodule)
    assert site == (7, 42, 22) and mask_centre(np.zeros(a.shape, bool)) is False
    one = list(blended_copies(a, (1.25, 0.7, 0.7), "scan-a", 3, seed=0, site=site))
    two = list(blended_copies(a, (1.25, 0.7, 0.7), "scan-a", 3, seed=0, site=site))
    other = list(blended_copies(a, (1.25, 0.7, 0.7), "scan-b", 3, seed=0, site=site))
    assert len(one) == 3 and one[0][1][site] and one[2][1][site]
    for (x, m), (y, n) in zip(one, two, strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(m, n)
    assert not np.array_equal(one[1][0], other[1][0])


def test_fresh_fill_noise_is_uncorrelated_between_slices_and_mixed_is_unchanged() -> None:
    """``fresh``: the region's new noise is i.i.d. along z (in-painting's trace); ``mixed`` keeps the draws
    of the blends session 22 measured first."""
    import pytest

    a = _lung((24, 64, 64))
    mixed = self_blend(a, (1.25, 0.7, 0.7), np.random.default_rng(7))
    np.testing.assert_array_equal(
        mixed[0], self_blend(a, (1.25, 0.7, 0.7), np.random.default_rng(7), None, "mixed")[0]
    )
    seen = set()
    for s in range(12):
        _, mask, p = self_blend(a, (1.25, 0.7, 0.7), np.random.default_rng(s), (12, 20, 44), "fresh")
        assert p["z_corr"] == 0.0 and 0.8 <= p["noise_scale"] <= 1.2
        seen.add(self_blend(a, (1.25, 0.7, 0.7), np.random.default_rng(s))[2]["z_corr"] > 0)
    assert seen == {True, False}  # mixed correlates about half of its regions

    def z_corr(out: np.ndarray, mask: np.ndarray) -> float:  # of the change inside the region, along z
        r = (out - a)[mask.any(axis=(1, 2))][:, 14:26, 38:50]
        r = r - r.mean(axis=(1, 2), keepdims=True)
        return float(np.mean([np.corrcoef(r[k].ravel(), r[k + 1].ravel())[0, 1] for k in range(len(r) - 1)]))

    out, mask, p = self_blend(a, (1.25, 0.7, 0.7), np.random.default_rng(1), (12, 20, 44), "fresh")
    assert abs(z_corr(out, mask)) < 0.2
    assert z_corr(*apply_blend(a, (1.25, 0.7, 0.7), {**p, "z_corr": 1.0})) > 0.2  # what mixed may draw
    with pytest.raises(ValueError, match="noise must be one of"):
        self_blend(a, (1.25, 0.7, 0.7), np.random.default_rng(0), None, "pink")
