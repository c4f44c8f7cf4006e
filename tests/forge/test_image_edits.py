"""The 2-D clone-stamp attack (forge.image_edits): a disc copied pixel for pixel, nothing else changed."""

from __future__ import annotations

import numpy as np
import pytest

from medforensics.errors import ConfigError, InputError
from medforensics.forge.base import create_attack, held_out_attacks
from medforensics.io.volume import Volume


def _image(modality: str = "DX", size: int = 240) -> Volume:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    img = 500 + 300 * np.sin(yy / 17.0) * np.cos(xx / 23.0) + rng.normal(0, 20, (size, size))
    return Volume(np.round(img)[None].astype(np.float32), spacing=(1.0, 0.2, 0.2), modality=modality)


def test_params_are_seeded_and_the_disc_is_copied_pixel_for_pixel() -> None:
    """The donor is the most alike of the random sites drawn; its pixels are pasted levelled, nothing else
    changes."""
    attack = create_attack("image-clone")
    vol = _image()
    params = attack.sample_params(vol, np.random.default_rng(5))
    assert params == attack.sample_params(vol, np.random.default_rng(5))
    r = params["radius_px"]
    assert 12 <= r <= 240 // 6
    (z, ty, tx), (_, dy, dx) = params["center"], params["donor_center"]
    assert np.hypot(ty - dy, tx - dx) >= 2.5 * r
    forged, mask, record = attack.apply(vol, params)
    assert record.method == "image-clone" and record.label == "FB" and record.center_voxel == (z, ty, tx)
    yy, xx = np.nonzero(mask[0])
    assert np.hypot(yy + 0.5 - ty, xx + 0.5 - tx).max() <= r  # only the disc changed
    np.testing.assert_array_equal(forged.array[~mask], vol.array[~mask])
    donor = np.rot90(vol.array[0, dy - r : dy + r, dx - r : dx + r], params["rot90"])
    donor = donor[:, ::-1] if params["flip"] else donor
    core = slice(ty - r // 2, ty + r // 2), slice(tx - r // 2, tx + r // 2)
    inner = slice(r - r // 2, r + r // 2)
    shift = forged.array[0][core] - donor[inner, inner]  # the same pixels, moved and levelled by one offset
    assert np.ptp(shift) <= 1.0  # (rounded back to integers like the source)
    np.testing.assert_array_equal(vol.array, _image().array)  # the input is not modified


def test_held_out_and_refusals() -> None:
    attack = create_attack("image-clone")
    assert "image-clone" in held_out_attacks()
    with pytest.raises(InputError, match=r"needs .*MR/CT input, got modality US"):
        attack.sample_params(_image("US"), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="too small"):
        attack.sample_params(_image(size=60), np.random.default_rng(0))
    vol = _image()
    with pytest.raises(ConfigError, match="leaves the image"):
        attack.apply(vol, {"center": [0, 5, 5], "radius_px": 20, "donor_center": [0, 100, 100], "rot90": 0})
    clipped = vol.with_array(np.where(np.arange(240)[None, None, :] < 120, vol.array.max(), vol.array))
    with pytest.raises(ConfigError, match="leaves the image or is clipped"):
        attack.sample_params(clipped, np.random.default_rng(0), center=(0, 120, 60))


def test_the_donor_is_tissue_like_the_target() -> None:
    """Half the image bright, half dark: a target in the dark half gets its donor from the dark half."""
    rng = np.random.default_rng(1)
    img = np.where(np.arange(300)[None, :] < 150, 2000.0, 400.0) + rng.normal(0, 20, (300, 300))
    img[0, :2] = 0.0, 5000.0  # the image's minimum and maximum (clipped pixels) in a corner
    vol = Volume(np.round(img)[None].astype(np.float32), spacing=(1.0, 0.2, 0.2), modality="CR")
    attack = create_attack("image-clone")
    for seed in range(5):
        params = attack.sample_params(vol, np.random.default_rng(seed), center=(0, 150, 225))
        r = params["radius_px"]
        assert params["donor_center"][2] - r >= 150, params  # the whole donor disc in the dark half


def _ct_slice(size: int = 256) -> Volume:
    """A CT slice (HU): a soft-tissue body (a disc) with lungs inside, a couch below it, air around; noise."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), -1000.0)
    img[np.hypot(yy - 110, xx - 128) < 95] = 40.0
    img[np.hypot(yy - 110, xx - 85) < 35] = -850.0  # lungs, enclosed by the body
    img[np.hypot(yy - 110, xx - 171) < 35] = -850.0
    img[230:240, 20:236] = 300.0  # the couch, apart from the body
    img += rng.normal(0, 15, img.shape)
    return Volume(np.round(img)[None].astype(np.float32), spacing=(1.0, 0.7, 0.7), modality="CT")


def test_on_a_ct_slice_both_discs_lie_in_the_body() -> None:
    """A CT slice is edited as a radiograph is, but neither disc may touch the air around or the couch."""
    vol = _ct_slice()
    body = np.hypot(*(np.mgrid[:256, :256] - np.array([110, 128])[:, None, None])) < 95
    attack = create_attack("image-clone")
    for seed in range(5):
        params = attack.sample_params(vol, np.random.default_rng(seed))
        r = params["radius_px"]
        for _, y, x in (params["center"], params["donor_center"]):
            assert body[y - r : y + r, x - r : x + r].all(), params
    with pytest.raises(ConfigError, match="leaves the image or the body"):
        attack.sample_params(vol, np.random.default_rng(0), center=(0, 235, 128))  # on the couch


def test_a_crop_that_cuts_the_lung_open_is_edited_within_the_body() -> None:
    """A crop inside the body whose border cuts a lung open: the lung reaching the border is body (it reads
    as lung there, not as the air around), so a disc fits on it; on a whole slice the air around stays out."""
    from medforensics.forge.lung import body_mask

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:200, :200]
    img = np.where(np.hypot(yy - 100, xx - 20) < 70, -850.0, 40.0) + rng.normal(0, 15, (200, 200))
    crop = Volume(np.round(img)[None].astype(np.float32), spacing=(1.0, 0.7, 0.7), modality="CT")
    assert (crop.array[0, :, 0] < -500).any() and body_mask(crop.array[0]).all()
    params = create_attack("image-clone").sample_params(crop, np.random.default_rng(0), center=(0, 100, 40))
    assert params["center"] == [0, 100, 40]  # on the cut lung (refused before: it reaches the border)
    whole = _ct_slice().array[0]
    assert not body_mask(whole)[0].any() and body_mask(whole)[110, 85]  # air around out, enclosed lung in
