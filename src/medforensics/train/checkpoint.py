"""Checkpoints without pickle: weights and optimizer tensors in safetensors, everything else in JSON.

A training folder holds ``model.safetensors`` (best weights), ``config.json`` (the resolved config),
``metrics.json``, ``model_card.md``, ``train_log.csv`` and ``last/`` (the latest epoch's weights,
``optimizer.safetensors`` + ``optimizer.json`` and ``state.json``) for resuming.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch
from torch import nn

from medforensics._atomic import atomic_path, write_text_atomic
from medforensics.errors import ConfigError, InputError
from medforensics.models.classical import FeatureModel

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
CARD = "model_card.md"
LOG = "train_log.csv"
LAST = "last"


def write_log(out: Path, fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """``out/train_log.csv``: one row per evaluation so far, rewritten atomically after each (a run stopped
    by a time limit keeps its log)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(out / LOG, buf.getvalue())


def save_weights(model: Any, path: str | Path) -> Path:
    """Weights of a CNN (state dict) or a feature model (its arrays) to safetensors, atomically."""
    with atomic_path(path, suffix=".safetensors") as tmp:
        if isinstance(model, FeatureModel):
            save_numpy({k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}, str(tmp))
        else:
            state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
            save_torch(state, str(tmp), metadata={"format": "pt"})
    return Path(path)


def load_weights(model: Any, path: str | Path) -> Any:
    """Load weights saved by :func:`save_weights` into ``model`` (strict)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no weights file", path=path)
    try:
        if isinstance(model, FeatureModel):
            model.load_state_dict(load_numpy(str(path)))
        else:
            model.load_state_dict(load_torch(str(path)))
    except (SafetensorError, RuntimeError, KeyError) as err:
        raise InputError(f"weights do not fit the model ({str(err).splitlines()[0]})", path=path) from None
    return model


def save_optimizer(opt: torch.optim.Optimizer, folder: Path) -> None:
    """Optimizer state: per-parameter tensors to ``optimizer.safetensors``, groups and scalars to JSON."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            name = f"{idx}.{key}"
            if isinstance(val, torch.Tensor):
                tensors[name] = val.detach().cpu().contiguous().clone()
            else:
                scalars[name] = val
    with atomic_path(folder / "optimizer.safetensors") as tmp:
        save_torch(tensors, str(tmp))
    write_text_atomic(
        folder / "optimizer.json", json.dumps({"param_groups": sd["param_groups"], "scalars": scalars})
    )


def load_optimizer(opt: torch.optim.Optimizer, folder: Path) -> None:
    """Inverse of :func:`save_optimizer`."""
    tensors = load_torch(str(folder / "optimizer.safetensors"))
    meta = json.loads((folder / "optimizer.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for name, val in list(tensors.items()) + list(meta["scalars"].items()):
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_last(folder: Path, model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """The resume point: latest weights, optimizer and loop state (epoch, best value, history)."""
    last = folder / LAST
    last.mkdir(parents=True, exist_ok=True)
    save_weights(model, last / WEIGHTS)
    save_optimizer(opt, last)
    write_text_atomic(last / "state.json", json.dumps(state, indent=1))


def load_last(folder: str | Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_last` wrote; ConfigError when ``folder`` holds no resume point."""
    last = Path(folder) / LAST
    if not (last / "state.json").is_file():
        raise ConfigError("no resume point (last/state.json) in this folder", path=folder)
    load_weights(model, last / WEIGHTS)
    load_optimizer(opt, last)
    state: dict[str, Any] = json.loads((last / "state.json").read_text())
    return state


def load_trained(folder: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, TrainConfig, metrics)`` of a training folder (best weights, eval mode)."""
    from medforensics.train.config import config_from_dict
    from medforensics.train.loop import build_model

    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise InputError("not a training folder (no config.json)", path=folder)
    try:
        raw = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        metrics = (
            json.loads((folder / METRICS).read_text(encoding="utf-8")) if (folder / METRICS).is_file() else {}
        )
    except (OSError, ValueError) as err:
        raise InputError(f"unreadable training folder ({err})", path=folder) from None
    from medforensics.models.registry import is_dense

    if isinstance(raw, dict) and is_dense(str(raw.get("model", ""))):
        raise InputError(
            "a dense localiser folder: scan it with `medforensics scan --model`; it is evaluated at scan "
            "level (benchmarks/scan_accuracy.py, medforensics.evaluate.dense_benchmark)",
            path=folder,
        )
    cfg = config_from_dict(raw)
    model = build_model(cfg)
    load_weights(model, folder / WEIGHTS)
    if isinstance(model, nn.Module):
        model.eval()
    return model, cfg, metrics
