"""Resuming a dense training run (``medforensics train --config F --resume FOLDER``).

After every evaluation the loop writes its resume point to ``FOLDER/last/`` (:func:`save_point`): the
latest weights and AdamW state (safetensors + JSON, :func:`~medforensics.train.checkpoint.save_last`), and in
``state.json`` the step, the one-cycle schedule, both random streams (NumPy's batches and mining, torch's
dropout), the hard negatives mined so far, the best validation result and the log rows. A resumed run
(:func:`load_point`) continues at the next step and ends with the same weights as a run never stopped.

Only a run with the same configuration can be resumed: keys that change what is trained (data, model,
steps, schedule, augmentation) must match the stopped run's; where it runs and how fast (``out``,
``threads``, ``device``, ``workers``) may differ.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medforensics._atomic import write_text_atomic
from medforensics.errors import ConfigError
from medforensics.train.checkpoint import LAST, load_last, save_last
from medforensics.train.dense_config import DenseConfig

#: Config keys that may differ between a stopped run and its resumption (where and how fast it runs).
FREE_KEYS = frozenset({"out", "resume", "threads", "device", "workers"})
#: The resumed run's configuration, as the stopped run saved it.
RUN_CONFIG = "config.json"


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def save_point(
    cfg: DenseConfig,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    rng: np.random.Generator,
    items: list[Any],
    loop: dict[str, Any],
) -> None:
    """Write the resume point after step ``loop["step"]`` (``items``: the training items, whose mined hard
    negatives are part of the state)."""
    out = Path(cfg.out)
    state = {
        **loop,
        "scheduler": sched.state_dict(),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state().tolist(),
        "hard": [[it.uid, None if it.hard is None else np.asarray(it.hard).tolist()] for it in items],
    }
    # the state is round-tripped through JSON text before anything is written: a value JSON cannot hold
    # fails here, not in the middle of the folder's files
    state = json.loads(json.dumps(state, default=_jsonable))
    save_last(out, model, opt, state)
    write_text_atomic(out / LAST / RUN_CONFIG, json.dumps(_run_keys(cfg), indent=1))


def _run_keys(cfg: DenseConfig) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(json.dumps(asdict(cfg)))  # tuples as lists, as read back
    return {k: v for k, v in raw.items() if k not in FREE_KEYS}


def check_same_run(cfg: DenseConfig, folder: str | Path) -> None:
    """ConfigError (one line, before any data is loaded) when ``folder`` holds no resume point or ``cfg``
    trains something else than the run stopped there."""
    path = Path(folder) / LAST / RUN_CONFIG
    if not path.is_file():
        raise ConfigError("no resume point (last/config.json) in this folder", path=folder)
    saved = json.loads(path.read_text(encoding="utf-8"))
    now = _run_keys(cfg)
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if diff:
        shown = ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise ConfigError(f"the config differs from the run being resumed: {shown}{more}", path=folder)


def load_point(
    folder: str | Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    rng: np.random.Generator,
    items: list[Any],
) -> dict[str, Any]:
    """Restore a resume point into the freshly built run; returns the loop's state (``step``, ``best``,
    ``best_val``, ``log_rows``)."""
    state = load_last(folder, model, opt)
    sched.load_state_dict(state.pop("scheduler"))
    rng.bit_generator.state = state.pop("numpy_rng")
    torch.set_rng_state(torch.tensor(state.pop("torch_rng"), dtype=torch.uint8))
    hard = state.pop("hard")
    if [u for u, _ in hard] != [it.uid for it in items]:
        raise ConfigError("the data set's training scans are not those of the run being resumed", path=folder)
    for it, (_, h) in zip(items, hard, strict=True):
        it.hard = None if h is None else np.asarray(h, np.int64).reshape(-1, 3)
    return state
