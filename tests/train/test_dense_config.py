"""Dense localiser configuration: strict keys and types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medforensics.errors import ConfigError
from medforensics.scan.detector import Calibration
from medforensics.scan.result import ModelInfo
from medforensics.train.dense import (
    DenseConfig,
    is_dense_config,
    load_dense_config,
    train_dense,
)


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
    bad.write_text(json.dumps({"model": "tamperseg3d", "data": "x", "out": "y", "noise_copies": 1.5}))
    with pytest.raises(ConfigError, match=r"noise_copies.*wrong type"):
        load_dense_config(bad)
    bad.write_text(json.dumps({"model": "tamperseg3d", "data": "x", "out": "y", "lr": 1}))
    assert load_dense_config(bad).lr == 1  # a float key takes an int
    bad.write_text(json.dumps({"model": "tamperseg3d", "data": "x", "out": "y", "noise_channel": 1}))
    with pytest.raises(ConfigError, match=r"noise_channel.*wrong type"):
        load_dense_config(bad)
    bad.write_text(json.dumps({"model": "tamperseg3d", "data": "x", "out": "y", "noise_channel": False}))
    assert load_dense_config(bad).noise_channel is False
    bad.write_text(json.dumps({"data": "x", "out": "y", "lossy_codecs": ["j2k-10", "jpeg-99"]}))
    with pytest.raises(ConfigError, match=r"unknown lossy codec\(s\) \['jpeg-99'\]"):
        train_dense(load_dense_config(bad))  # before any data is read (there is none at "x")
    bad.write_text(json.dumps({"data": "x", "out": "y", "precision": "fp16"}))
    with pytest.raises(ConfigError, match=r"precision must be one of fp32, bf16; got 'fp16'"):
        train_dense(load_dense_config(bad))  # before any data is read (it trained in fp32 silently)
    bad.write_text(json.dumps({"data": "x", "out": "y", "lossy_codecs": []}))
    assert load_dense_config(bad).lossy_codecs == []  # no lossy operating point
    other = tmp_path / "o.json"
    other.write_text(json.dumps({"model": "cnn3d"}))
    assert not is_dense_config(other)
    with pytest.raises(ConfigError, match="unknown dense model"):
        train_dense(DenseConfig(data="x", out=str(tmp_path), model="nope"))


def test_init_from_is_a_path_or_null(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"data": "x", "out": "y", "init_from": "runs/a"}))
    assert load_dense_config(cfg).init_from == "runs/a"
    cfg.write_text(json.dumps({"data": "x", "out": "y", "init_from": None}))
    assert load_dense_config(cfg).init_from is None
    cfg.write_text(json.dumps({"data": "x", "out": "y", "init_from": 3}))
    with pytest.raises(ConfigError, match=r"init_from.*wrong type"):
        load_dense_config(cfg)


def test_max_slice_mm_is_a_number_or_null_and_reaches_the_detector(tmp_path: Path) -> None:
    from medforensics.scan.dense import DenseDetector

    cfg = tmp_path / "c.json"
    for value, want in ((6, 6.0), (5.5, 5.5), (None, None)):
        cfg.write_text(json.dumps({"data": "x", "out": "y", "max_slice_mm": value}))
        assert load_dense_config(cfg).max_slice_mm == want
    for value in ("6", True):
        cfg.write_text(json.dumps({"data": "x", "out": "y", "max_slice_mm": value}))
        with pytest.raises(ConfigError, match=r"max_slice_mm.*wrong type"):
            load_dense_config(cfg)
    net = torch.nn.Identity()
    info = ModelInfo("m", "1", "0" * 12)
    assert DenseDetector(net, {"max_slice_mm": 6.0}, Calibration(), info).max_slice_mm == 6.0
    # a resolved config without the limit (None): 1.2 x the grid's 2.5 mm slices
    assert DenseDetector(net, {"max_slice_mm": None}, Calibration(), info).max_slice_mm == pytest.approx(3.0)
