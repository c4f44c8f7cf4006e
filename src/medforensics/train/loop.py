"""The training loop: data -> splits -> model -> epochs with early stopping -> checkpoint folder.

Deterministic: every epoch reseeds torch and the shuffling generator from (seed, epoch), so a run resumed
from ``last/`` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from medforensics._atomic import write_text_atomic
from medforensics.errors import ConfigError
from medforensics.evaluate.metrics import evaluate_predictions, fake_score, roc_auc
from medforensics.logging import get_logger
from medforensics.models.classical import FeatureModel
from medforensics.models.inference import (
    autocast,
    device_name,
    effective_precision,
    memory_format,
    predict_proba,
    resolve_device,
)
from medforensics.models.registry import ModelInfo, model_info
from medforensics.train import checkpoint as ckpt
from medforensics.train.build import build_model, input_channels, input_size
from medforensics.train.card import write_model_card
from medforensics.train.config import TrainConfig
from medforensics.train.data import (
    FAKE_CLASSES,
    TASK_CLASSES,
    ForgeDatasetSource,
    ListSource,
    SampleSource,
    SplitArrays,
    collect_splits,
    task_samples,
)

log = get_logger("train")


@dataclass
class TrainResult:
    """Where the run wrote its folder and what it measured."""

    out: Path
    metrics: dict[str, Any]
    epochs_run: int
    best_epoch: int
    seconds: float


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def make_source(cfg: TrainConfig) -> SampleSource:
    """The forge data set named by ``data.path``, cut as the model needs."""
    path = cfg.data.path
    if not path:
        raise ConfigError("data.path must name a data set folder (labels.csv, scans/, splits.csv)")
    info = model_info(cfg.model)
    d = cfg.data
    return ForgeDatasetSource(
        path,
        info.sample_kind,
        input_size(cfg, info),
        d.slices,
        d.spacing_mm,
        d.cube_spacing_mm,
        d.hu_window,
    )


def _check_shape(splits: dict[str, SplitArrays], info: ModelInfo, channels: int) -> None:
    shape = splits["train"].x.shape[1:]
    want_ndim = 4 if info.input_kind == "3d" else 3
    if len(shape) != want_ndim or (info.family == "cnn" and shape[0] != channels):
        raise ConfigError(
            f"model {info.name!r} takes {info.input_kind} samples with {channels} channel(s); got {shape}"
        )


def class_weights(y: np.ndarray, k: int) -> torch.Tensor:
    """``N / (K * count_c)`` per class (0 for classes absent from training)."""
    counts = np.bincount(y, minlength=k).astype(np.float64)
    w = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _val_scores(
    cfg: TrainConfig, model: nn.Module, val: SplitArrays, loss_fn: nn.Module
) -> tuple[float, float | None]:
    logits = _logits(cfg, model, val.x)
    loss = float(loss_fn(logits, torch.as_tensor(val.y)).item())
    score = fake_score(torch.softmax(logits, 1).double().numpy(), FAKE_CLASSES[cfg.data.task])
    return loss, roc_auc(np.isin(val.y, FAKE_CLASSES[cfg.data.task]).astype(int), score)


def _logits(cfg: TrainConfig, model: nn.Module, x: np.ndarray) -> torch.Tensor:
    from medforensics.models.inference import logits_batches

    return logits_batches(model, x, cfg.batch_size, cfg.precision, cfg.channels_last)


def fit_torch(
    cfg: TrainConfig,
    model: nn.Module,
    splits: dict[str, SplitArrays],
    out: Path,
    resume: ckpt.ResumePoint | None = None,
) -> dict[str, Any]:
    """Epoch loop with class-weighted cross-entropy, early stopping, best/last checkpoints and resume
    (``resume``: ``cfg.resume`` as :func:`~medforensics.train.checkpoint.check_resume` read it; read here
    when not given)."""
    k = len(TASK_CLASSES[cfg.data.task])
    train = splits["train"]
    dev = resolve_device(cfg.device)
    weights = class_weights(train.y, k) if cfg.class_weighting else None
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(dev))
    eval_loss = nn.CrossEntropyLoss(weight=weights)  # validation logits come back on the CPU
    x = torch.as_tensor(train.x)
    model.to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=memory_format(x.ndim))  # type: ignore[call-overload]
    opt = _optimizer(cfg, model)
    state: dict[str, Any] = {"epoch": 0, "best": None, "best_epoch": 0, "bad_epochs": 0, "history": []}
    if cfg.resume and resume is None:
        resume = ckpt.check_resume(cfg.resume, model, opt)
    if resume is not None:
        state = resume.restore(model, opt)
        log.info("resumed from epoch %d", state["epoch"])
    data = TensorDataset(x, torch.as_tensor(train.y))
    best_state = {k_: v.detach().clone() for k_, v in model.state_dict().items()}
    if resume is not None and resume.best is not None:
        best_state = dict(resume.best)
    while state["epoch"] < cfg.epochs and state["bad_epochs"] < cfg.early_stopping_patience:
        epoch = state["epoch"] + 1
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        loader = DataLoader(
            data,
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=gen,
            num_workers=cfg.num_workers,
            worker_init_fn=_worker_init,
        )
        model.train()
        t0, total, seen = time.perf_counter(), 0.0, 0
        for step, (xb, yb) in enumerate(loader):
            if cfg.max_steps_per_epoch and step >= cfg.max_steps_per_epoch:
                break
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            if cfg.channels_last:
                xb = xb.contiguous(memory_format=memory_format(xb.ndim))
            opt.zero_grad(set_to_none=True)
            with autocast(cfg.precision, dev.type):
                logits = model(xb)
            loss = loss_fn(logits.float(), yb)
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(yb)
            seen += len(yb)
        val_loss, val_auc = _val_scores(cfg, model, splits["val"], eval_loss)
        row = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "val_loss": val_loss,
            "val_auc": val_auc,
            "seconds": round(time.perf_counter() - t0, 3),
            "images_per_s": round(seen / max(time.perf_counter() - t0, 1e-9), 1),
        }
        value = val_loss if cfg.monitor == "val_loss" else -(val_auc if val_auc is not None else 0.0)
        if state["best"] is None or value < state["best"] - 1e-6:
            state.update(best=value, best_epoch=epoch, bad_epochs=0)
            best_state = {k_: v.detach().clone() for k_, v in model.state_dict().items()}
            ckpt.save_weights(model, out / ckpt.WEIGHTS)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        state["history"].append(row)
        ckpt.save_last(out, model, opt, state)
        ckpt.write_log(out, LOG_FIELDS, state["history"])
        log.info("epoch %d: train %.4f val %.4f auc %s", epoch, row["train_loss"], val_loss, val_auc)
    model.load_state_dict(best_state)
    return state


#: Columns of the classifiers' ``train_log.csv``, one row per epoch.
LOG_FIELDS = ("epoch", "train_loss", "val_loss", "val_auc", "seconds", "images_per_s")


def _summary(splits: dict[str, SplitArrays]) -> dict[str, Any]:
    from collections import Counter

    return {
        k: {"n": len(s), "patients": len(set(s.groups)), "labels": dict(Counter(s.labels))}
        for k, s in splits.items()
    }


def evaluate_splits(cfg: TrainConfig, model: Any, splits: dict[str, SplitArrays]) -> dict[str, Any]:
    """Metrics on val (threshold at its own 1 % FPR) and test (calibration + threshold from val)."""
    task = cfg.data.task
    classes, fakes = TASK_CLASSES[task], FAKE_CLASSES[task]
    if isinstance(model, FeatureModel) and model.family == "anomaly":
        classes, fakes = TASK_CLASSES["binary"], FAKE_CLASSES["binary"]
    probs = {
        k: predict_proba(model, s.x, cfg.batch_size, cfg.precision, cfg.channels_last)
        for k, s in splits.items()
        if len(s)
    }
    val = splits["val"]
    out: dict[str, Any] = {}
    if "val" in probs:
        out["val"] = evaluate_predictions(probs["val"], _y(model, val), val.labels, classes, fakes)
    if "test" in probs:
        test = splits["test"]
        out["test"] = evaluate_predictions(
            probs["test"],
            _y(model, test),
            test.labels,
            classes,
            fakes,
            probs.get("val"),
            _y(model, val) if len(val) else None,
        )
    ref = out.get("test", out.get("val", {}))
    out["operating_point"] = {
        "threshold": ref.get("operating_point", {}).get("threshold"),
        "max_fpr": 0.01,
        "calibration": {k: v for k, v in ref.get("calibration", {}).items() if k != "reliability"},
    }
    return out


def _y(model: Any, s: SplitArrays) -> np.ndarray:
    """Anomaly models are scored real (0) / fake (1) whatever the task's class indices."""
    if isinstance(model, FeatureModel) and model.family == "anomaly":
        from medforensics.train.data import TASK_MAP

        return np.array([TASK_MAP["binary"][lab] for lab in s.labels], dtype=np.int64)
    return s.y


def check_output(cfg: TrainConfig) -> None:
    """OutputError before any work when ``cfg.out`` is, holds or lies inside the data set or the resume
    folder (resuming in place is fine), or already holds files that are not an earlier training run's
    (``config.json``): training there would change what the user gave."""
    import os

    from medforensics._atomic import check_folder_output

    inputs = [cfg.data.path] if cfg.data.path else []
    if cfg.resume and os.path.realpath(cfg.resume) != os.path.realpath(cfg.out):
        inputs.append(cfg.resume)
    check_folder_output(cfg.out, inputs, marker=ckpt.CONFIG)


def train(cfg: TrainConfig, source: SampleSource | None = None) -> TrainResult:
    """Run one training: validate, read and split the data, fit, evaluate, write the checkpoint folder."""
    cfg.validate()
    t0 = time.perf_counter()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    info = model_info(cfg.model)
    model = build_model(cfg)  # bad model kwargs fail here, before the data is read
    check_output(cfg)
    resume = None
    if cfg.resume and isinstance(model, nn.Module):  # a damaged resume point: an error before the data
        resume = ckpt.check_resume(cfg.resume, model, _optimizer(cfg, model))
    d = cfg.data
    samples = list(source if source is not None else make_source(cfg))
    left_out = task_samples(samples, d.task)[1]  # SYN under the attack task: said, and recorded below
    splits = collect_splits(
        ListSource(samples), d.task, d.val_fraction, d.test_fraction, cfg.seed, d.exclude_types
    )
    del samples  # the splits hold their stacked copies
    channels = input_channels(cfg, info)
    _check_shape(splits, info, channels)
    seed_everything(cfg.seed)
    model = build_model(cfg)  # rebuilt after seeding: identical initial weights for a given seed
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    resolved = replace(cfg, data=replace(cfg.data, size=int(splits["train"].x.shape[-1])))
    write_text_atomic(out / ckpt.CONFIG, json.dumps(resolved.to_dict(), indent=1))
    state: dict[str, Any] = {"epoch": 1, "best_epoch": 1}
    if isinstance(model, FeatureModel):
        model.fit(splits["train"].x, splits["train"].y)
        ckpt.save_weights(model, out / ckpt.WEIGHTS)
    else:
        state = fit_torch(cfg, model, splits, out, resume)
    metrics = evaluate_splits(cfg, model, splits)
    seconds = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters()) if isinstance(model, nn.Module) else None
    feature_model, dev = isinstance(model, FeatureModel), resolve_device(cfg.device)
    metrics.update(
        model=cfg.model,
        train_seconds=round(seconds, 2),
        parameters=n_params,
        init_weights=getattr(model, "init_weights", None),
        epochs_run=state["epoch"],
        best_epoch=state["best_epoch"],
        device="cpu" if feature_model else device_name(dev),
        precision_run=None if feature_model else effective_precision(cfg.precision, dev.type),
        data=_summary(splits),
        left_out=left_out,  # per label: samples the task has no class for (SYN under attack)
    )
    write_text_atomic(out / ckpt.METRICS, json.dumps(metrics, indent=1))
    data_info = {
        "splits": _summary(splits),
        "left_out": left_out,
        "input_shape": list(splits["train"].x.shape[1:]),
        "classes": list(TASK_CLASSES[d.task]),
        "fake_classes": list(FAKE_CLASSES[d.task]),
    }
    write_model_card(
        out / ckpt.CARD,
        resolved.to_dict(),
        {**info.as_dict(), "parameters": n_params, "init_weights": metrics["init_weights"]},
        data_info,
        metrics,
    )
    return TrainResult(out, metrics, state["epoch"], state["best_epoch"], seconds)
