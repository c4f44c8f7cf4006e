"""``evaluate`` on bad outputs and damaged training folders (the session 25 fuzz): one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import InputError, OutputError
from medforensics.evaluate.runner import evaluate_model
from medforensics.train import ArraySource, config_from_dict, train
from medforensics.train.checkpoint import load_trained
from tests.train.test_loop import tiny_source


def _train(out: Path, model: str) -> Path:
    cfg = {"model": model, "out": str(out), "epochs": 1, "batch_size": 8, "data": {"size": 32}}
    train(config_from_dict(cfg), tiny_source(24))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {m: _train(root / m, m) for m in ("test_cnn", "test_random_forest")}


def _copy(models: dict[str, Path], name: str, tmp: Path) -> Path:
    return Path(shutil.copytree(models[name], tmp / "model"))


def _data() -> ArraySource:
    src = tiny_source(16, seed=3)
    return ArraySource(
        [s.array for s in src.samples], [s.label for s in src.samples], [s.group for s in src.samples]
    )


def _tree(p: Path) -> list[str]:
    return sorted(str(f.relative_to(p)) for f in p.rglob("*"))


@pytest.mark.parametrize("where", ["file", "file/sub", "data", "data/scans/eval", "model", "model/eval"])
def test_an_out_that_is_a_file_or_over_an_input_is_refused_first(
    models: dict[str, Path], tmp_path: Path, where: str
) -> None:
    model = _copy(models, "test_cnn", tmp_path)
    (tmp_path / "data" / "scans").mkdir(parents=True)
    (tmp_path / "file").write_text("precious")
    before = {p: _tree(tmp_path / p) for p in ("data", "model")}
    with pytest.raises(OutputError):  # was an internal error, or exit 0 with the input changed
        evaluate_model(model, tmp_path / "data", tmp_path / where)
    assert {p: _tree(tmp_path / p) for p in ("data", "model")} == before
    assert (tmp_path / "file").read_text() == "precious"


@pytest.mark.parametrize("name", ["evaluation.json", "roc.png"])
def test_an_out_holding_a_folder_where_a_figure_goes_leaves_nothing_behind(
    models: dict[str, Path], tmp_path: Path, name: str
) -> None:
    (tmp_path / "out" / name).mkdir(parents=True)
    with pytest.raises(OutputError):
        evaluate_model(models["test_cnn"], _data(), tmp_path / "out")
    assert _tree(tmp_path / "out") == [name]  # PNGs were left behind, exit 2


def test_a_rerun_replaces_its_own_output(models: dict[str, Path], tmp_path: Path) -> None:
    evaluate_model(models["test_cnn"], _data(), tmp_path / "out", split="all")
    (tmp_path / "out" / "stale.png").write_bytes(b"x")
    res = evaluate_model(models["test_cnn"], _data(), tmp_path / "out", split="all")
    assert "stale.png" not in _tree(tmp_path / "out") and res["figures"]["roc"] == "roc.png"


def test_nan_cnn_weights_name_the_model_folder(models: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    model = _copy(models, "test_cnn", tmp_path)
    w = load_file(str(model / "model.safetensors"))
    save_file(
        {k: v.float().fill_(float("nan")) if v.is_floating_point() else v for k, v in w.items()},
        str(model / "model.safetensors"),
    )
    with pytest.raises(InputError, match="model: the model gives non-finite probabilities"):
        evaluate_model(model, _data(), tmp_path / "out", split="all")  # was a ValueError in fit_platt
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        ("np.zeros(5, np.float32)", "np.zeros(5, np.int64)", "2-D matrix"),
        ("np.zeros((6, 3), np.float32)", "np.array([0, 1] * 3)", "has 3 columns"),
        ("np.full((6, F), np.nan, np.float32)", "np.array([0, 1] * 3)", "NaN"),  # exit 0 with garbage
        ("np.ones((6, F), np.float32)", "np.array([0, 7] * 3)", r"labels must lie in \[0, 2\)"),
    ],
)
def test_random_forest_weights_that_cannot_be_its_training_data(
    models: dict[str, Path], tmp_path: Path, features: str, labels: str, message: str
) -> None:
    from safetensors.numpy import load_file, save_file

    model = _copy(models, "test_random_forest", tmp_path)
    f = load_file(str(model / "model.safetensors"))["train_features"].shape[1]
    env = {"np": np, "F": f}
    state = {"train_features": eval(features, env), "train_labels": eval(labels, env)}
    save_file(state, str(model / "model.safetensors"))
    with pytest.raises(InputError, match=rf"model\.safetensors: weights do not fit the model \(.*{message}"):
        load_trained(model)


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ([], "must be a JSON object"),
        ({"operating_point": {"threshold": "abc"}}, "threshold must be a number"),
        ({"operating_point": {"calibration": {"platt": "x"}}}, r"platt must be \[a, b\]"),
        ({"operating_point": []}, "'operating_point' must be an object"),
    ],
)
def test_bad_metrics_json_names_the_file(
    models: dict[str, Path], tmp_path: Path, metrics: object, message: str
) -> None:
    model = _copy(models, "test_cnn", tmp_path)
    (model / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(InputError, match=rf"metrics\.json: .*{message}"):  # internal errors before
        evaluate_model(model, _data(), tmp_path / "out")


def _set_config(model: Path, **kw: object) -> None:
    raw = json.loads((model / "config.json").read_text())
    raw.update(kw)
    (model / "config.json").write_text(json.dumps(raw))


def test_a_saved_config_is_read_back_not_retrained(models: dict[str, Path], tmp_path: Path) -> None:
    model = _copy(models, "test_cnn", tmp_path)
    (tmp_path / "afile").write_text("x")
    _set_config(model, device="cuda", out=str(tmp_path / "afile" / "sub"))
    _, cfg, _ = load_trained(model)  # was "no CUDA device" / "afile is a file" on a CPU machine
    assert cfg.out == str(model)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),  # was a RecursionError
        ("[1, 2]", r"config\.json: a training config must be a table"),
        ("null", r"config\.json: a training config must be a table"),
        (json.dumps({"model": "no_such_net", "class_weights": [1, 2]}), r"config\.json: unknown model"),
        (
            json.dumps({"model": "test_cnn", "out": "o", "data": {"hu_window": [float("nan"), 400]}}),
            r"config\.json: data\.hu_window",
        ),
    ],
)
def test_a_bad_saved_config_names_the_file(
    models: dict[str, Path], tmp_path: Path, text: str, message: str
) -> None:
    model = _copy(models, "test_cnn", tmp_path)
    (model / "config.json").write_text(text)
    with pytest.raises(InputError, match=message):
        load_trained(model)
