"""Resuming a dense training run (``medforensics train --config F --resume FOLDER``).

After every evaluation the loop writes its resume point to ``FOLDER/last/`` (:func:`save_point`): the
latest weights and AdamW state (safetensors + JSON, :func:`~medforensics.train.checkpoint.save_last`), and in
``state.json`` the step, the one-cycle schedule, both random streams (NumPy's batches and mining, torch's
dropout), the hard negatives mined so far, the best validation result and the log rows. Before any data
is read, :func:`check_point` reads and checks all of it and the best weights so far
(``FOLDER/model.safetensors``); a resumed run (:func:`load_point`) continues at the next step from that
checked point, without reading the files again, and ends with the same weights as a run never stopped.

Only a run with the same configuration can be resumed: keys that change what is trained (data, model,
steps, schedule, augmentation) must match the stopped run's; where it runs and how fast (``out``,
``threads``, ``device``, ``workers``, ``load_workers``) may differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medforensics._atomic import write_text_atomic
from medforensics._json import finite_numbers
from medforensics.errors import ConfigError, InputError
from medforensics.train.checkpoint import (
    LAST,
    WEIGHTS,
    ResumePoint,
    check_resume,
    read_json_object,
    save_last,
    save_tensors,
)
from medforensics.train.dense_config import RUN_KEYS, DenseConfig, config_values, with_defaults

#: Config keys that may differ between a stopped run and its resumption (where and how fast it runs).
FREE_KEYS = frozenset({"out", "resume", *RUN_KEYS})
#: The resumed run's configuration, as the stopped run saved it.
RUN_CONFIG = "config.json"
#: Keys of a dense run's ``last/state.json`` and the types each must have.
STATE_TYPES: dict[str, tuple[type, ...]] = {
    "step": (int,),
    "best": (list, type(None)),
    "best_val": (dict,),
    "log_rows": (list,),
    "scheduler": (dict,),
    "numpy_rng": (dict,),
    "torch_rng": (list,),
    "hard": (list,),
}


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
    return config_values(cfg, FREE_KEYS)


def check_same_run(cfg: DenseConfig, folder: str | Path) -> None:
    """ConfigError (one line, before any data is loaded) when ``folder`` holds no resume point or ``cfg``
    trains something else than the run stopped there (a key its saved config lacks, an option added since,
    counts as that option's default: a run stopped before a code update can be resumed after it)."""
    path = Path(folder) / LAST / RUN_CONFIG
    if not path.is_file():
        raise ConfigError("no resume point (last/config.json) in this folder", path=folder)
    saved = read_json_object(path, "run config")
    now = _run_keys(cfg)
    full = with_defaults(saved, FREE_KEYS)
    diff = sorted(k for k in set(full) | set(now) if full.get(k) != now.get(k))
    if diff:
        shown = ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise ConfigError(f"the config differs from the run being resumed: {shown}{more}", path=folder)


def check_point(
    folder: str | Path, model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any
) -> ResumePoint:
    """The resume point in ``folder`` read once and checked whole, before any data is read, into a throwaway
    ``model``, ``opt`` and one-cycle ``sched`` built as the run builds its own: the latest weights (their
    shapes those of the configured network), the optimizer state, the best weights so far and every key of
    ``state.json`` (InputError naming the file). The run resumes from what this returns
    (:func:`load_point`)."""
    point = check_resume(folder, model, opt, STATE_TYPES)
    if point.best is None:  # the loop saves them before its first resume point
        raise InputError("no weights file", path=Path(folder) / WEIGHTS)
    path = Path(folder) / LAST / "state.json"
    state = point.state

    def bad(key: str, why: str) -> InputError:
        return InputError(f"resume state: {key!r} {why}", path=path)

    if state["best"] is not None and finite_numbers(state["best"], 2) is None:
        raise bad("best", f"must be two numbers or null, got {state['best']!r}")
    if not all(isinstance(row, dict) for row in state["log_rows"]):
        raise bad("log_rows", "must list one object per evaluation")
    want = sched.state_dict()
    saved = state["scheduler"]
    if set(saved) != set(want) or saved.get("total_steps") != want["total_steps"]:
        raise bad("scheduler", f"is not the state of a one-cycle schedule of {want['total_steps']} steps")
    if saved.get("last_epoch") != state["step"]:
        raise bad("scheduler", f"is at step {saved.get('last_epoch')!r}, the run at {state['step']}")
    try:
        np.random.default_rng(0).bit_generator.state = state["numpy_rng"]
    except (TypeError, ValueError, KeyError) as err:
        raise bad("numpy_rng", f"is not a NumPy PCG64 state ({err})") from None
    try:
        torch.Generator().set_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    except (RuntimeError, TypeError, ValueError, OverflowError) as err:
        raise bad("torch_rng", f"is not a torch random state ({err})") from None
    state["hard"] = [_hard_points(entry, bad) for entry in state["hard"]]
    return point


def _hard_points(entry: Any, bad: Callable[[str, str], InputError]) -> tuple[str, np.ndarray | None]:
    """One ``[uid, points or null]`` of the state's ``hard`` list, the points as an ``(n, 3)`` array."""
    if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str):
        uid, pts = entry
        if pts is None:
            return uid, None
        try:
            arr: np.ndarray | None = np.asarray(pts, np.int64).reshape(-1, 3)
        except (TypeError, ValueError, OverflowError):
            arr = None
        if arr is not None and (arr >= 0).all():
            return uid, arr
    raise bad("hard", f"must list [scan uid, voxel points or null], got {str(entry)[:60]}")


def load_point(
    point: ResumePoint,
    folder: str | Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    rng: np.random.Generator,
    items: list[Any],
) -> dict[str, Any]:
    """Restore the resume point :func:`check_point` read from ``folder`` into the freshly built run; returns
    the loop's state (``step``, ``best``, ``best_val``, ``log_rows``)."""
    state = dict(point.restore(model, opt))
    sched.load_state_dict(state.pop("scheduler"))
    rng.bit_generator.state = state.pop("numpy_rng")
    torch.set_rng_state(torch.tensor(state.pop("torch_rng"), dtype=torch.uint8))
    hard = state.pop("hard")
    if [u for u, _ in hard] != [it.uid for it in items]:
        raise ConfigError("the data set's training scans are not those of the run being resumed", path=folder)
    for it, (_, h) in zip(items, hard, strict=True):
        it.hard = h
    return state


def keep_best(point: ResumePoint, folder: str | Path, out: str | Path) -> None:
    """A run resumed into another folder starts with the best weights so far, as :func:`check_point` read
    them (written anew, not the file copied: one changed since would go unchecked)."""
    if point.best is not None and Path(folder).resolve() != Path(out).resolve():
        save_tensors(point.best, Path(out) / WEIGHTS)
