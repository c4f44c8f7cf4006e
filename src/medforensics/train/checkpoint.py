"""Checkpoints without pickle: weights and optimizer tensors in safetensors, everything else in JSON.

A training folder holds ``model.safetensors`` (best weights), ``config.json`` (the resolved config),
``metrics.json``, ``model_card.md``, ``train_log.csv`` and ``last/`` (the latest epoch's weights,
``optimizer.safetensors`` + ``optimizer.json`` and ``state.json``) for resuming.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
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
from medforensics._json import finite_numbers, is_finite_number
from medforensics.errors import ConfigError, InputError, MedforensicsError

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
    """Weights of a CNN (state dict) or a feature model (any other model: its arrays) to safetensors,
    atomically."""
    if isinstance(model, nn.Module):
        return save_tensors(model.state_dict(), path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_numpy({k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}, str(tmp))
    return Path(path)


def save_tensors(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    """A network's state dict (for example :attr:`ResumePoint.best`) to safetensors, atomically."""
    with atomic_path(path, suffix=".safetensors") as tmp:
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
        save_torch(tensors, str(tmp), metadata={"format": "pt"})
    return Path(path)


def load_weights(model: Any, path: str | Path) -> Any:
    """Load weights saved by :func:`save_weights` into ``model`` (strict)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no weights file", path=path)
    try:
        if not isinstance(model, nn.Module):  # a feature model: arrays
            model.load_state_dict(load_numpy(str(path)))
        else:
            model.load_state_dict(load_torch(str(path)))
    except (SafetensorError, RuntimeError, KeyError, ValueError, TypeError, OSError) as err:
        raise InputError(f"weights do not fit the model ({_first_line(err)})", path=path) from None
    except MedforensicsError as err:  # a feature model's own check (InputError/ConfigError): name the file
        if err.path:
            raise
        reason = (
            err.reason
            if err.reason.startswith("weights do not fit")
            else f"weights do not fit ({err.reason})"
        )
        raise InputError(reason, path=path) from None
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
    """Inverse of :func:`save_optimizer`; InputError naming the file when it is missing, damaged or holds
    the state of another optimizer."""
    st, js = folder / "optimizer.safetensors", folder / "optimizer.json"
    try:  # copies: safetensors' tensors map the file, and the optimizer would keep them (check_resume)
        tensors = {k: v.clone() for k, v in load_torch(str(st)).items()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise InputError(f"unreadable optimizer state ({_first_line(err)})", path=st) from None
    try:
        meta = json.loads(js.read_text(encoding="utf-8"))
        groups, scalars = meta["param_groups"], meta["scalars"]
        state: dict[int, dict[str, Any]] = {}
        for name, val in list(tensors.items()) + list(scalars.items()):
            idx, key = name.split(".", 1)
            state.setdefault(int(idx), {})[key] = val
        want = [set(g) for g in opt.state_dict()["param_groups"]]
        if [set(g) for g in groups] != want:
            raise ValueError(f"the state of another optimizer than {type(opt).__name__}")
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
        raise InputError(f"optimizer state does not fit ({_first_line(err)})", path=js) from None


def save_last(folder: Path, model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """The resume point: latest weights, optimizer and loop state (epoch, best value, history)."""
    last = folder / LAST
    last.mkdir(parents=True, exist_ok=True)
    save_weights(model, last / WEIGHTS)
    save_optimizer(opt, last)
    write_text_atomic(last / "state.json", json.dumps(state, indent=1))


def load_last(
    folder: str | Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    state_types: dict[str, tuple[type, ...]] | None = None,
) -> dict[str, Any]:
    """Restore what :func:`save_last` wrote; ConfigError when ``folder`` holds no resume point, InputError
    naming the file when a part is damaged (``state_types``: keys the state must hold, with their types)."""
    last = Path(folder) / LAST
    if not (last / "state.json").is_file():
        raise ConfigError("no resume point (last/state.json) in this folder", path=folder)
    state = read_state(last / "state.json", state_types or {})
    load_weights(model, last / WEIGHTS)
    load_optimizer(opt, last)
    return state


#: Keys of the classifiers' ``last/state.json`` and the types each must have.
STATE_TYPES: dict[str, tuple[type, ...]] = {
    "epoch": (int,),
    "best": (int, float, type(None)),
    "best_epoch": (int,),
    "bad_epochs": (int,),
    "history": (list,),
}


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """``path`` read as a JSON object; else an InputError naming it ("unreadable {what} (why)" or "{what}
    must be a JSON object")."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise InputError(f"unreadable {what} ({_first_line(err)})", path=path) from None
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a JSON object", path=path)
    return data


def read_state(path: Path, types: dict[str, tuple[type, ...]]) -> dict[str, Any]:
    """``last/state.json``: a JSON object, its keys in ``types`` checked (InputError naming the file)."""
    state = read_json_object(path, "resume state")
    for key, want in types.items():
        val = state.get(key)
        if not isinstance(val, want) or isinstance(val, bool) or (isinstance(val, int) and val < 0):
            raise InputError(f"resume state: {key!r} missing or of the wrong type ({val!r})", path=path)
    if "history" in types and not all(isinstance(row, dict) for row in state["history"]):
        raise InputError("resume state: 'history' must list one object per epoch", path=path)
    return state


@dataclass
class ResumePoint:
    """A training run's resume point as :func:`check_resume` read and checked it: the loop state, the latest
    weights and optimizer state, and the best weights so far (None when the folder has none)."""

    state: dict[str, Any]
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    best: dict[str, torch.Tensor] | None

    def restore(self, model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
        """Load the latest weights and optimizer state into the run's ``model``/``opt``; the loop state."""
        model.load_state_dict(self.weights)
        opt.load_state_dict(self.optimizer)
        return self.state


def _weights_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_resume(
    folder: str | Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    state_types: dict[str, tuple[type, ...]] = STATE_TYPES,
) -> ResumePoint:
    """Everything a resume from ``folder`` reads, read once now into a throwaway ``model``/``opt``: a
    damaged resume point is an error before any data is read or anything is written. The run resumes from
    what this returns: the files are not read again (one changed since would go unchecked).
    ``state_types``: the keys ``last/state.json`` must hold (default: the classifiers')."""
    state = load_last(folder, model, opt, state_types)
    weights = _weights_of(model)
    best_path, best = Path(folder) / WEIGHTS, None
    if best_path.is_file():
        best = _weights_of(load_weights(model, best_path))
    return ResumePoint(state, weights, opt.state_dict(), best)


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0] or type(err).__name__


def load_trained(folder: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, TrainConfig, metrics)`` of a training folder (best weights, eval mode)."""
    from medforensics.train.build import build_model
    from medforensics.train.config import config_from_dict

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
    except RecursionError:  # JSON nested past Python's recursion limit
        raise InputError("unreadable training folder (JSON nested too deeply)", path=folder) from None
    from medforensics.models.registry import is_dense, model_info

    if isinstance(raw, dict) and is_dense(str(raw.get("model", ""))):
        raise InputError(
            "a dense localiser folder: `medforensics scan --model` runs it and `medforensics evaluate` "
            "scores it at scan level (medforensics.evaluate.scan_level)",
            path=folder,
        )
    try:
        if not isinstance(raw, dict):
            raise ConfigError("a training config must be a table/object at the top level")
        if not isinstance(raw.get("model"), str):
            raise ConfigError(f"'model' must name a registered model, got {raw.get('model')!r}")
        model_info(raw["model"])  # an unknown name first: not the unknown keys of another config kind
        # read back, not trained: the recorded out and device are not this machine's business
        cfg = config_from_dict({**raw, "out": str(folder)}, training=False)
        model = build_model(cfg, pretrained=False)  # the checkpoint's weights replace any pretrained ones
    except ConfigError as err:
        raise InputError(err.reason, path=folder / CONFIG) from None
    check_metrics(metrics, folder / METRICS)
    load_weights(model, folder / WEIGHTS)
    if isinstance(model, nn.Module):
        model.eval()
    return model, cfg, metrics


def check_metrics(metrics: Any, path: Path) -> None:
    """InputError naming ``metrics.json`` unless the operating point evaluate and scan read from it (a
    threshold and Platt ``[a, b]``, each optional) has the right types."""
    if not isinstance(metrics, dict):
        raise InputError("training metrics must be a JSON object", path=path)
    op = metrics.get("operating_point", {})
    if not isinstance(op, dict):
        raise InputError("'operating_point' must be an object", path=path)
    thr, cal = op.get("threshold"), op.get("calibration", {})
    if thr is not None and not is_finite_number(thr):
        raise InputError(f"operating_point.threshold must be a number, got {thr!r}", path=path)
    if not isinstance(cal, dict):
        raise InputError("operating_point.calibration must be an object", path=path)
    platt = cal.get("platt")
    if platt is not None and not (isinstance(platt, list) and finite_numbers(platt, 2) is not None):
        raise InputError(f"operating_point.calibration.platt must be [a, b], got {platt!r}", path=path)
