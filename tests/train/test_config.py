"""Config validation: every mistake is a ConfigError naming the key, before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medforensics.errors import ConfigError
from medforensics.train.config import PRESETS, config_from_dict, load_config


def _cfg(**kw: object) -> dict[str, object]:
    return {"model": "test_cnn", "out": "o", **kw}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_cfg(bogus=1), "unknown config key bogus"),
        (_cfg(data={"sizee": 3}), "unknown config key data.sizee"),
        (_cfg(epochs="3"), "epochs must be int"),
        (_cfg(epochs=True), "epochs must be int, got bool"),
        (_cfg(lr=[1]), "lr must be float"),
        (_cfg(data={"task": "weird"}), "data.task must be one of"),
        (_cfg(data={"hu_window": [400, -1000]}), "data.hu_window"),
        (_cfg(data={"slices": 4}), "data.slices must be odd"),
        (_cfg(data={"exclude_types": ["XX"]}), "data.exclude_types"),
        (_cfg(data={"val_fraction": 0.6, "test_fraction": 0.5}), "below 1"),
        (_cfg(monitor="acc"), "monitor must be one of"),
        (_cfg(preset="fast"), "preset must be one of"),
        (_cfg(model="resnet-18"), "did you mean resnet18"),
        (_cfg(dropout=1.5), "dropout"),
        (_cfg(batch_size=0), "batch_size must be a finite number >= 1"),
        (_cfg(lr=float("nan")), "lr must be a finite number"),  # reached the optimiser: internal error
        (_cfg(lr=float("inf")), "lr must be a finite number"),
        (_cfg(seed=-1), "seed must be >= 0"),  # was an internal error in numpy's generator
        ({"out": "o"}, "missing config key model"),
        (_cfg(data=3), "data must be a table"),
        (_cfg(device="tpu"), "device must be cpu, cuda or auto"),
    ],
)
def test_bad_configs(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_presets_apply_under_user_keys() -> None:
    cfg = config_from_dict(_cfg(preset="seed-study", epochs=2, data={"task": "attack"}))
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.dropout, cfg.optimizer) == (
        1e-3,
        1e-4,
        64,
        0.5,
        "adam",
    )
    assert cfg.data.size == 224 and cfg.data.task == "attack" and cfg.epochs == 2 and cfg.class_weighting
    fast = config_from_dict(_cfg(preset="cpu-fast"))
    assert (
        fast.precision == "bf16"
        and fast.channels_last
        and fast.data.max_size == PRESETS["cpu-fast"]["data"]["max_size"]
    )


def test_load_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps(_cfg(lr=1)))
    assert load_config(tmp_path / "c.json").lr == 1.0
    (tmp_path / "c.toml").write_text('model = "test_cnn"\nout = "o"\n[data]\ntask = "label"\n')
    assert load_config(tmp_path / "c.toml", out="elsewhere").out == "elsewhere"
    (tmp_path / "c.yaml").write_text("model: x")
    with pytest.raises(ConfigError, match=r"\.json or \.toml"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match=r"broken\.json: not valid JSON"):
        load_config(tmp_path / "broken.json")
    (tmp_path / "k.json").write_text(json.dumps(_cfg(nope=1)))
    with pytest.raises(ConfigError, match=r"k\.json: unknown config key nope"):
        load_config(tmp_path / "k.json")


def test_round_trip_of_the_resolved_config() -> None:
    cfg = config_from_dict(_cfg(preset="cpu-fast", model_kwargs={"dropout": 0.1}))
    assert config_from_dict(cfg.to_dict()) == cfg


def test_an_out_that_is_a_file_is_refused_before_training(tmp_path: Path) -> None:
    from medforensics.errors import OutputError

    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        config_from_dict(_cfg(out=str(taken)))  # was a FileExistsError after the data had loaded


@pytest.mark.parametrize(
    ("raw", "message"),
    [  # session 25 fuzz: each was an internal error once training or data loading had started
        (_cfg(weight_decay=float("nan")), "weight_decay must be a finite number"),
        (_cfg(weight_decay=float("inf")), "weight_decay must be a finite number"),
        (_cfg(data={"hu_window": [float("nan"), 400]}), "data.hu_window must be .* finite"),
        (_cfg(data={"hu_window": [float("-inf"), float("inf")]}), "data.hu_window must be .* finite"),
        (_cfg(seed=2**62), r"seed must be >= 0 and < 2\*\*32"),  # overflowed torch.manual_seed
        (_cfg(seed=2**64), r"seed must be >= 0 and < 2\*\*32"),
        (_cfg(data={"size": 10_000_000}), "data.size must be .* <= 1024"),  # MemoryError
        (_cfg(model="test_cnn_25d", data={"slices": 1_000_000_001}), "data.slices must be .* <= 63"),
        (_cfg(model_kwargs={"in_channels": 3}), r"model_kwargs cannot set \['in_channels'\]"),
        (_cfg(model_kwargs={"num_classes": 5}), r"model_kwargs cannot set \['num_classes'\]"),
    ],
)
def test_bad_values_found_by_the_session_25_fuzz(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_json_nested_past_the_recursion_limit_is_a_config_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ConfigError, match=r"deep\.json: not valid JSON: nested too deeply"):
        load_config(deep)  # was a RecursionError (internal error)


def test_a_finished_folder_config_skips_the_output_and_device_checks(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    cfg = config_from_dict(_cfg(out=str(taken / "sub"), device="cuda"), training=False)
    assert cfg.device == "cuda"


def test_train_cli_on_json_nested_past_the_recursion_limit(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medforensics.cli import app

    deep = tmp_path / "deep.json"
    deep.write_text("{" + '"a":{' * 100_000 + "}" * 100_001)
    res = CliRunner().invoke(app, ["train", "--config", str(deep)])
    assert res.exit_code == 2 and "nested too deeply" in res.output  # was a RecursionError (exit 1)
