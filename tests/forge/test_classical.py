"""Classical baselines: copy-move (donor from annotations or the caller) and the parametric blob."""

from __future__ import annotations

import numpy as np
import pytest

from medforensics.errors import ConfigError
from medforensics.forge.base import create_attack, run_attack
from medforensics.forge.classical import blob_nodule
from medforensics.io.volume import Volume
from tests.forge._ctdata import chest_ct, ct_crop  # noqa: F401


@pytest.fixture(scope="module")
def with_nodule(ct_crop: Volume) -> Volume:  # noqa: F811
    """The crop with a parametric nodule at (10, 60, 50), annotated in metadata['nodules']."""
    out, _, rec = run_attack("blob-inject", ct_crop, seed=11, center=(10, 60, 50))
    out.metadata = {
        **out.metadata,
        "nodules": [{"center_voxel": (10, 60, 50), "diameter_mm": rec.params["diameter_mm"]}],
    }
    return out


def test_blob_profile() -> None:
    alpha, hu = blob_nodule(
        (21, 41, 41), (2.5, 0.7, 0.7), (10, 20, 20), 12.0, np.random.default_rng(0), spicules=0
    )
    assert alpha[10, 20, 20] > 0.99 and alpha[0, 0, 0] < 0.01
    assert 0 < alpha[10, 20, 20 + int(6 / 0.7)] < 1  # partial-volume edge near the radius
    assert -100 < hu[10, 20, 20] < 120


def test_copy_move_from_own_annotations(with_nodule: Volume) -> None:
    out, mask, rec = run_attack("copy-move", with_nodule, seed=2, center=(10, 60, 120))
    assert rec.params["donor_center"] == [10, 60, 50] and rec.label == "FM"
    np.testing.assert_array_equal(mask, out.array != with_nodule.array)
    assert out.array[10, 60, 120] > with_nodule.array[10, 60, 120] + 300
    # the copied nodule resembles the donor (correlation of the central patches)
    a = with_nodule.array[8:13, 55:66, 45:56].ravel()
    b = out.array[8:13, 55:66, 115:126].ravel()
    rot_ok = rec.params["rot90"] != 0 or rec.params["flip"]
    assert np.corrcoef(a, b)[0, 1] > (0.3 if rot_ok else 0.7)
    out2, _, _ = run_attack("copy-move", with_nodule, seed=2, center=(10, 60, 120))
    np.testing.assert_array_equal(out.array, out2.array)


def test_copy_move_with_caller_donor(with_nodule: Volume, ct_crop: Volume) -> None:  # noqa: F811
    attack = create_attack("copy-move", donor=with_nodule, donor_centers=[(10, 60, 50)])
    params = attack.sample_params(ct_crop, np.random.default_rng(0), center=(10, 60, 120))
    _out, mask, rec = attack.apply(ct_crop, params, seed=0)
    assert mask.any() and rec.params["donor_series_uid"] == with_nodule.series_uid
    with pytest.raises(ConfigError, match="donor"):
        create_attack("copy-move").sample_params(ct_crop, np.random.default_rng(0))


def test_inpaint_remove_erases_the_nodule(with_nodule: Volume) -> None:
    out, _mask, rec = run_attack("inpaint-remove", with_nodule, seed=0, center=(10, 60, 50))
    assert rec.params["diameter_mm"] == with_nodule.metadata["nodules"][0]["diameter_mm"]
    assert out.array[10, 60, 50] < -500  # lung again
    assert (out.array[9:12, 57:64, 47:54] > -300).mean() < 0.1


def test_clone_remove_stamps_real_lung_over_the_nodule(with_nodule: Volume) -> None:
    out, mask, rec = run_attack("clone-remove", with_nodule, seed=0, center=(10, 60, 50))
    p = rec.params
    assert rec.label == "FB" and p["diameter_mm"] == with_nodule.metadata["nodules"][0]["diameter_mm"]
    assert out.array[10, 60, 50] < -500  # lung again
    assert (out.array[9:12, 57:64, 47:54] > -300).mean() < 0.1
    np.testing.assert_array_equal(mask, out.array != with_nodule.array)
    # the donor lies in healthy lung, far from the nodule, and its voxels (not a smooth fill) are what was
    # pasted: the core's fine texture follows the donor's, turned and flipped as recorded
    dz, dy, dx = p["donor_center"]
    sp = np.asarray(with_nodule.spacing)
    assert np.linalg.norm((np.array([dz, dy, dx]) - (10, 60, 50)) * sp) >= p["diameter_mm"] + 5
    donor = with_nodule.array[dz, dy - 2 : dy + 3, dx - 2 : dx + 3]
    k = p["rot90"] % 4
    donor = np.rot90(donor, k)
    donor = donor[:, ::-1] if p["flip"] else donor
    core = out.array[10, 58:63, 48:53]
    assert np.corrcoef(core.ravel(), donor.ravel())[0, 1] > 0.8
    assert core.std() > 20  # real texture, not an in-painted plateau
    out2, _, _ = run_attack("clone-remove", with_nodule, seed=0, center=(10, 60, 50))
    np.testing.assert_array_equal(out.array, out2.array)


def test_clone_remove_keeps_the_chest_wall(ct_crop: Volume) -> None:  # noqa: F811
    """Only the lung side of the pleura is stamped: soft tissue outside the (closed) lung stays as it was."""
    from medforensics.forge.lung import lung_mask

    vol = ct_crop.copy()
    lm = lung_mask(vol)
    ys, xs = np.nonzero(lm[10])
    i = int(np.argmax(xs))  # the lung's outermost column on slice 10: against the chest wall
    centre = (10, int(ys[i]), int(xs[i]) - 2)
    _out, mask, _ = run_attack("clone-remove", vol, seed=3, center=centre)
    assert mask.any()
    wall = (~lm) & (vol.array > -200)
    assert (mask & wall).sum() < 0.05 * mask.sum()


def test_clone_remove_puts_back_only_the_noise_the_blend_lost() -> None:
    """Two independent noise fields mixed with weights w and 1 - w keep sqrt(w^2 + (1-w)^2) of the noise;
    the top-up brings a half-and-half blend back to the scanner's level and leaves the copy's core alone."""
    from medforensics.forge.classical import _blend_noise
    from medforensics.forge.cubes import _correlated

    rng = np.random.default_rng(0)
    shape = (8, 96, 96)
    a, b = (30.0 * _correlated(rng, shape, 0.8) - 850.0 for _ in range(2))
    w = np.zeros(shape, np.float32)
    w[:, 24:72, 24:72] = 0.5  # the blend band
    w[:, 40:56, 40:56] = 1.0  # the copy's core
    topped = (1 - w) * a + w * b + _blend_noise(a, b, w, seed=3)
    band = w == 0.5
    assert np.std(((1 - w) * a + w * b)[band]) < 0.75 * 30  # the blend lost noise: 0.71 of it
    assert abs(np.std(topped[band]) - 30) < 3  # and got it back
    np.testing.assert_array_equal(topped[w == 1], b[w == 1])  # the core is the donor's, voxel for voxel


def _core_and_ring_noise(
    before: Volume, after: Volume, mask: np.ndarray, params: dict, bbox: tuple
) -> tuple[float, float]:
    """In-plane noise (forge.cubes.noise_std) of the removal's core after and of the lung around it before."""
    from medforensics.forge.cubes import noise_std

    sl = tuple(slice(a, b) for a, b in zip(bbox[:3], bbox[3:], strict=True))
    axes = [
        (np.arange(s.start, s.stop) - c) * sp
        for s, c, sp in zip(sl, params["center"], before.spacing, strict=True)
    ]
    dist = np.sqrt(sum(g**2 for g in np.meshgrid(*axes, indexing="ij")))
    core = dist <= params["diameter_mm"] / 2 + params["margin_mm"] - 1
    ring = ~mask[sl] & (before.array[sl] < -500)
    return noise_std(after.array[sl], core, inplane=True), noise_std(before.array[sl], ring, inplane=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inpaint_remove_matches_the_lungs_noise_within_slices(with_nodule: Volume, seed: int) -> None:
    """The in-painted core gets the lung's in-plane noise back. Measured in 3-D (``noise_plane="volume"``,
    the forge before session 41), the slice-by-slice fill reads as noisy across slices and gets too little:
    under 0.6 of the lung's level in-plane (0.4 here)."""
    for plane, lo, hi in (("slice", 0.75, 1.3), ("volume", 0.0, 0.6)):
        attack = create_attack("inpaint-remove", noise_plane=plane)
        params = attack.sample_params(with_nodule, np.random.default_rng(seed), center=(10, 60, 50))
        assert params["noise_plane"] == plane
        out, mask, rec = attack.apply(with_nodule, params, seed=seed)
        core, ring = _core_and_ring_noise(with_nodule, out, mask, params, rec.bbox_voxel)
        assert lo * ring < core < hi * ring, (plane, core, ring)


@pytest.mark.parametrize("method", ["blob-inject", "copy-move", "inpaint-remove", "ctgan-remove"])
def test_parameters_without_a_noise_plane_replay_the_3d_touch_up(with_nodule: Volume, method: str) -> None:
    """Parameters recorded before the noise plane existed replay as they were forged (3-D); a new draw
    records ``slice``, which fills a removal's core with other noise."""
    attack = create_attack(method)
    params = attack.sample_params(with_nodule, np.random.default_rng(4), center=(10, 60, 50))
    assert params["noise_plane"] == "slice"
    assert params["noise_z"] == "independent"
    legacy = {k: v for k, v in params.items() if k not in ("noise_plane", "noise_z", "noise_core")}
    old, _, rec = attack.apply(with_nodule, legacy, seed=4)
    assert "noise_plane" not in rec.params
    as_volume, _, _ = attack.apply(with_nodule, {**legacy, "noise_plane": "volume"}, seed=4)
    new, _, _ = attack.apply(with_nodule, params, seed=4)
    np.testing.assert_array_equal(old.array, as_volume.array)
    if method.endswith("remove"):
        assert not np.array_equal(old.array, new.array)


@pytest.mark.parametrize("seed", [5, 7, 10])
def test_blob_interior_gets_the_lungs_noise(chest_ct: Volume, seed: int) -> None:  # noqa: F811
    """A blob's solid interior gets the lung's in-plane noise (full-resolution CT). Measured over
    ``alpha > 0.5`` (parameters without ``noise_core``, the forge before session 42), its edge reads as noise
    and the interior is left under half as noisy as the lung."""
    from medforensics.forge.classical import blob_interior
    from medforensics.forge.cubes import noise_std

    attack = create_attack("blob-inject")
    params = attack.sample_params(chest_ct, np.random.default_rng(seed))
    assert params["noise_core"] == "interior"
    sl, _, alpha, _ = attack.blob(chest_ct, params)
    inner = blob_interior(alpha)
    assert inner is not None and inner.sum() >= 32
    lung = noise_std(chest_ct.array[sl], (alpha < 0.01) & (chest_ct.array[sl] < -500), inplane=True)
    ratios = []
    for p in (params, {k: v for k, v in params.items() if k != "noise_core"}):
        out, _, _ = attack.apply(chest_ct, p, seed=seed)
        ratios.append(noise_std(out.array[sl], inner, inplane=True) / lung)
    assert 0.75 < ratios[0] < 1.35, ratios
    assert ratios[1] < 0.5, ratios


def test_unknown_noise_plane_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="noise_plane must be one of slice, volume; got 'plane'"):
        create_attack("blob-inject", noise_plane="plane")
    with pytest.raises(ConfigError, match="noise_plane"):
        create_attack("ctgan-inject", noise_plane="3d")
    with pytest.raises(ConfigError, match=r"noise_z must be one of .*; got 'along'"):
        create_attack("inpaint-remove", noise_z="along")
