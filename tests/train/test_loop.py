"""The training loop on tiny data: learning, checkpoints, resume, every family, bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medforensics.errors import ConfigError
from medforensics.models.inference import predict_proba
from medforensics.train import ArraySource, config_from_dict, train
from medforensics.train.checkpoint import load_trained


def tiny_source(
    n: int = 48, size: int = 32, cube: bool = False, labels: tuple[str, ...] = ("TB", "FM"), seed: int = 0
) -> ArraySource:
    """Noise images; fakes carry a bright (FM) or dark (FB) centre square: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    shape = (n, 1, size, size, size) if cube else (n, 1, size, size)
    x = (0.4 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    lab = [labels[i % len(labels)] for i in range(n)]
    c = slice(size // 2 - 4, size // 2 + 4)
    for i, name in enumerate(lab):
        if name in ("FM", "FB"):
            x[(i, 0, *([c] * (x.ndim - 2)))] += 0.4 if name == "FM" else -0.3
    return ArraySource(x, lab, [f"p{i // 2}" for i in range(n)])


def _cfg(tmp: Path, **kw: object) -> object:
    base = {
        "model": "test_cnn",
        "out": str(tmp / "run"),
        "epochs": 8,
        "batch_size": 8,
        "lr": 1e-2,
        "early_stopping_patience": 50,
        "data": {"size": 32},
    }
    base.update(kw)
    return config_from_dict(base)


def test_loss_decreases_and_folder_is_complete(tmp_path: Path) -> None:
    res = train(_cfg(tmp_path), tiny_source())  # type: ignore[arg-type]
    with (res.out / "train_log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    assert float(rows[-1]["train_loss"]) < 0.8 * float(rows[0]["train_loss"])
    for name in (
        "model.safetensors",
        "config.json",
        "metrics.json",
        "model_card.md",
        "last/optimizer.safetensors",
    ):
        assert (res.out / name).is_file(), name
    metrics = json.loads((res.out / "metrics.json").read_text())
    assert metrics["test"]["operating_point"]["roc_auc"] > 0.9
    assert "Intended use" in (res.out / "model_card.md").read_text()
    model, cfg, _ = load_trained(res.out)
    x = tiny_source(8, seed=5).samples[0].array[None]
    torch.manual_seed(0)
    assert predict_proba(model, x).shape == (1, 2) and cfg.model == "test_cnn"


def test_resume_reproduces_an_uninterrupted_run(tmp_path: Path) -> None:
    src = tiny_source(32)
    full = train(_cfg(tmp_path / "a", epochs=4), src)  # type: ignore[arg-type]
    part = train(_cfg(tmp_path / "b", epochs=2), src)  # type: ignore[arg-type]
    resumed = train(_cfg(tmp_path / "c", epochs=4, resume=str(part.out)), src)  # type: ignore[arg-type]
    assert resumed.epochs_run == 4
    wa, wc = (
        load_file(str(full.out / "last/model.safetensors")),
        load_file(str(resumed.out / "last/model.safetensors")),
    )
    assert wa.keys() == wc.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wc[k], rtol=0, atol=0)
    wb = load_file(str(part.out / "last/model.safetensors"))
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize(
    "model",
    [
        "test_svm",
        "test_random_forest",
        "test_decision_tree",
        "test_anomaly_gaussian",
        "test_anomaly_residual",
    ],
)
def test_feature_families_train_and_reload_identically(tmp_path: Path, model: str) -> None:
    src = tiny_source(40)
    res = train(_cfg(tmp_path, model=model), src)  # type: ignore[arg-type]
    assert res.metrics["test"]["operating_point"]["roc_auc"] is not None
    loaded, cfg, metrics = load_trained(res.out)
    from medforensics.evaluate.metrics import roc_auc
    from medforensics.train.data import collect_splits

    val = collect_splits(src, "binary", seed=cfg.seed)["val"]
    # pickle-free reload (refit or stored arrays) reproduces the validation scores exactly
    assert roc_auc(val.y, predict_proba(loaded, val.x)[:, 1]) == metrics["val"]["operating_point"]["roc_auc"]
    # the card says what a feature model was fitted on; it has no initial weights
    card = (res.out / "model_card.md").read_text()
    assert "Initial weights" not in card and "- Fitted on" in card and "Parameters: n/a" in card
    assert ("authentic samples only" in card) == ("anomaly" in model)


def test_3d_attack_task_with_bf16_channels_last(tmp_path: Path) -> None:
    src = tiny_source(36, size=16, cube=True, labels=("TB", "FM", "FB"))
    cfg = _cfg(
        tmp_path,
        model="test_cnn3d",
        epochs=3,
        precision="bf16",
        channels_last=True,
        data={"task": "attack", "size": 16},
    )
    res = train(cfg, src)  # type: ignore[arg-type]
    test = res.metrics["test"]
    assert test["classes"]["classes"] == ["authentic", "injected", "removed"]
    assert set(test["per_label"]) <= {"TB", "FM", "FB"}


def test_attack_task_leaves_synthetic_scans_out_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``forge dataset`` data set holds SYN scans, which the attack task has no class for: ``train`` and
    ``evaluate`` leave them out with a warning and record how many (both refused the data set before)."""
    from medforensics.evaluate.runner import evaluate_model

    src = tiny_source(32, size=16, cube=True, labels=("TB", "FM", "FB", "SYN"))
    cfg = _cfg(tmp_path, model="test_cnn3d", epochs=2, data={"task": "attack", "size": 16})
    with caplog.at_level("WARNING"):
        res = train(cfg, src)  # type: ignore[arg-type]
    assert "no class for SYN: 8 SYN samples left out" in caplog.text
    assert res.metrics["left_out"] == {"SYN": 8}
    assert sum(s["n"] for s in res.metrics["data"].values()) == 24
    assert "Left out (the task has no class for them): 8 SYN." in (res.out / "model_card.md").read_text()
    ev = evaluate_model(res.out, src, tmp_path / "eval", split="all")
    assert ev["left_out"] == {"SYN": 8} and ev["n"] == 24


def test_wrong_sample_kind_or_task_fails_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="3d samples"):
        train(_cfg(tmp_path, model="test_cnn3d"), tiny_source(16))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="binary"):
        train(_cfg(tmp_path, model="test_anomaly_gaussian", data={"task": "attack"}), tiny_source(16))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"data\.path"):
        train(_cfg(tmp_path))  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")
def test_cnn_trains_on_cuda_and_reloads_on_the_cpu(tmp_path: Path) -> None:
    res = train(_cfg(tmp_path, device="cuda", precision="bf16"), tiny_source())  # type: ignore[arg-type]
    assert res.metrics["device"] != "cpu" and res.metrics["test"]["operating_point"]["roc_auc"] > 0.9
    model, _, _ = load_trained(res.out)
    assert next(model.parameters()).device.type == "cpu"
    assert predict_proba(model, tiny_source(8, seed=5).samples[0].array[None]).shape == (1, 2)


def test_device_auto_trains_where_it_can_and_says_where(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, device="auto", epochs=1, precision="bf16")
    res = train(cfg, tiny_source())  # type: ignore[arg-type]
    assert (res.metrics["device"] == "cpu") == (not torch.cuda.is_available())
    from medforensics.models.inference import effective_precision

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    # bf16 where the device computes it natively, else fp32
    assert res.metrics["precision_run"] == effective_precision("bf16", dev)
