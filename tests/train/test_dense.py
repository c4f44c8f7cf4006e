"""Training the dense localiser on the tiny forge data set: grid, patches, config checks, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import ConfigError
from medforensics.train.dense import (
    DenseConfig,
    Item,
    grid_factors,
    is_dense_config,
    load_dense_config,
    load_items,
    to_model_grid,
    train_dense,
)
from medforensics.train.dense_data import _patch
from tests.forge._tiny_ct import shared_tiny_dataset


def test_grid_factors_and_block_means() -> None:
    assert grid_factors((2.5, 0.7, 0.7), (2.0, 1.4, 1.4)) == (1, 2, 2)
    assert grid_factors((1.25, 0.68, 0.68), (2.0, 1.4, 1.4)) == (2, 2, 2)
    arr = np.arange(4 * 4 * 4, dtype=np.float32).reshape(4, 4, 4)
    low, f, sp = to_model_grid(arr, (1.0, 0.7, 0.7), (2.0, 1.4, 1.4))
    assert f == (2, 2, 2) and sp == (2.0, 1.4, 1.4) and low.shape == (2, 2, 2)
    assert low[0, 0, 0] == pytest.approx(arr[:2, :2, :2].mean())


def test_patch_centred_on_attack_and_padded() -> None:
    img = np.random.default_rng(0).random((6, 20, 20)).astype(np.float32)
    tgt = np.zeros(img.shape, np.int64)
    tgt[3, 10:12, 10:12] = 1
    it = Item(img, tgt, "FM", "x", "p", "u", (2.0, 1.4, 1.4), np.argwhere(tgt > 0))
    rng = np.random.default_rng(1)
    for _ in range(10):
        x, y = _patch(it, (8, 16, 16), rng, focus=True)
        assert x.shape == (8, 16, 16) and y.shape == (8, 16, 16)
        assert (y == 1).any()
        assert x.min() > 0  # edge-padded, never zeros (air) where the scan ends


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root, _ = shared_tiny_dataset()
    out = tmp_path_factory.mktemp("dense") / "model"
    cfg = DenseConfig(
        data=str(root),
        out=str(out),
        model="test_tamperseg3d",
        patch=(8, 32, 32),
        batch_size=2,
        steps=6,
        eval_every=3,
    )
    return out, train_dense(cfg)


def test_training_writes_a_complete_model_folder(trained: tuple[Path, dict]) -> None:
    out, metrics = trained
    for name in (
        "model.safetensors",
        "config.json",
        "metrics.json",
        "calibration.json",
        "model_card.md",
        "train_log.csv",
    ):
        assert (out / name).is_file(), name
    cal = json.loads((out / "calibration.json").read_text())
    assert 0.0 <= cal["series_threshold"] <= 1.0 and len(cal["platt"]) == 2
    assert metrics["best_step"] in (3, 6)
    splits = metrics["splits"]
    patients = [set(s["patients"]) for s in splits.values()]
    assert all(not (a & b) for i, a in enumerate(patients) for b in patients[i + 1 :])
    assert 0.0 <= metrics["val"]["auc"] <= 1.0
    assert "## Data seen" in (out / "model_card.md").read_text()


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
        assert it.image.min() >= 0.0 and it.image.max() <= 1.0


def test_config_errors(tmp_path: Path) -> None:
    good = tmp_path / "d.json"
    good.write_text(json.dumps({"model": "tamperseg3d", "data": "x", "out": "y", "steps": 5}))
    assert is_dense_config(good)
    assert load_dense_config(good).steps == 5
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"model": "tamperseg3d", "data": "x", "out": "y", "stepz": 5}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_dense_config(bad)
    bad.write_text(json.dumps({"model": "tamperseg3d", "data": "x", "out": "y", "steps": "many"}))
    with pytest.raises(ConfigError, match="wrong type"):
        load_dense_config(bad)
    other = tmp_path / "o.json"
    other.write_text(json.dumps({"model": "cnn3d"}))
    assert not is_dense_config(other)
    with pytest.raises(ConfigError, match="unknown dense model"):
        train_dense(DenseConfig(data="x", out=str(tmp_path), model="nope"))


def test_left_out_method_is_only_in_test() -> None:
    root, _ = shared_tiny_dataset()
    full = load_items(DenseConfig(data=str(root), out="unused"))
    methods = {i.method for lst in full.values() for i in lst if i.label in ("FM", "FB")}
    held = sorted(methods)[0]
    items = load_items(DenseConfig(data=str(root), out="unused", exclude_methods=[held]))
    assert all(i.method != held for split in ("train", "val") for i in items[split])
    assert [i.uid for i in items["test"]] == [i.uid for i in full["test"]]


def test_dense_benchmark_trains_one_model_per_held_out_method(tmp_path: Path) -> None:
    from medforensics.evaluate.dense_benchmark import run_dense_benchmark

    root, _ = shared_tiny_dataset()
    cfg = DenseConfig(
        data=str(root), out="unused", model="test_tamperseg3d", patch=(8, 32, 32), batch_size=2, steps=2
    )
    items = load_items(cfg)
    methods = sorted({i.method for i in items["test"] if i.label in ("FM", "FB")})[:2]
    res = run_dense_benchmark(cfg, tmp_path, methods, loao_steps=1)
    assert set(res["loao"]) == set(methods)
    assert all(v["steps"] == 1 for v in res["loao"].values())
    assert (tmp_path / "dense.md").read_text().count("\n| ") >= 2 + len(methods) - 1
    assert json.loads((tmp_path / "dense.json").read_text())["model"] == "test_tamperseg3d"


def test_resize_keeps_the_attack_and_the_patch_size() -> None:
    from medforensics.train.dense_data import _resize

    img = np.random.default_rng(0).random((8, 40, 40)).astype(np.float32)
    tgt = np.zeros(img.shape, np.int64)
    tgt[4, 18:22, 18:22] = 2
    x, y = _resize(img, tgt, (8, 32, 32))
    assert x.shape == y.shape == (8, 32, 32) and set(np.unique(y)) == {0, 2}
    assert abs(float(np.argwhere(y == 2).mean(0)[1]) - 16) <= 1.5


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


def test_threshold_stays_above_whole_authentic_series() -> None:
    from medforensics.train.dense import calibrate

    rows = [{"score": s, "label": "TB"} for s in (0.1, 0.2, 0.3)] + [
        {"score": s, "label": "FM"} for s in (0.6, 0.7, 0.8)
    ]
    plain = calibrate(rows)
    raised = calibrate(rows, whole_authentic=[0.65])
    assert raised["platt"] == plain["platt"]
    assert raised["series_threshold"] > plain["series_threshold"]
    from medforensics.evaluate.metrics import apply_platt

    assert raised["series_threshold"] > float(apply_platt([0.65], plain["platt"])[0])
    assert "whole authentic" in raised["fitted_on"]


def test_classifier_tools_refuse_a_dense_folder_in_one_line(trained: tuple[Path, dict]) -> None:
    from medforensics.errors import InputError
    from medforensics.train.checkpoint import load_trained

    with pytest.raises(InputError, match="dense localiser"):
        load_trained(trained[0])
