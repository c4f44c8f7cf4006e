"""Resuming a stopped dense training run: the same result as a run never stopped; refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medforensics.errors import ConfigError
from medforensics.train import dense
from medforensics.train.dense import train_dense
from tests.train._dense import tiny_config


class _Stop(Exception):
    """Stands for the kill of a run (a time limit, a lost machine)."""


def _stop_at_second_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    real = dense.scan_scores
    calls = {"n": 0}

    def scores(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise _Stop
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dense, "scan_scores", scores)


def test_a_resumed_run_ends_as_a_run_never_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # mining every 2 steps and a step-1 dropout-free tiny net: the state that must survive is the weights,
    # AdamW's moments, the schedule, the batch stream and the mined hard negatives
    run = {"steps": 6, "eval_every": 2, "hard_every": 2, "hard_negative": 0.5}
    whole = train_dense(tiny_config(tmp_path / "whole", **run))

    with monkeypatch.context() as m:
        _stop_at_second_evaluation(m)
        with pytest.raises(_Stop):
            train_dense(tiny_config(tmp_path / "stopped", **run))
    state = json.loads((tmp_path / "stopped" / "last" / "state.json").read_text())
    assert state["step"] == 2 and any(h is not None for _, h in state["hard"])

    # resumed into another folder: the best weights so far and the log come along
    resumed = train_dense(tiny_config(tmp_path / "resumed", resume=str(tmp_path / "stopped"), **run))
    a = load_file(str(tmp_path / "whole" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["val_scores"] == whole["val_scores"] and resumed["best_step"] == whole["best_step"]
    steps = [r.split(",")[0] for r in (tmp_path / "resumed" / "train_log.csv").read_text().splitlines()]
    assert steps == ["step", "2", "4", "6"]
    # a run that was not resumed, stopped at the same point, differs: the check above can fail
    c = load_file(str(tmp_path / "stopped" / "last" / "model.safetensors"))
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resuming_something_else_is_refused_before_loading(tmp_path: Path) -> None:
    train_dense(tiny_config(tmp_path / "run", steps=2, eval_every=1))
    with pytest.raises(ConfigError, match=r"no resume point"):
        train_dense(tiny_config(tmp_path / "x", steps=2, eval_every=1, resume=str(tmp_path / "nothing")))
    with pytest.raises(ConfigError, match=r"differs from the run being resumed: steps 2 -> 4"):
        train_dense(tiny_config(tmp_path / "x", steps=4, eval_every=1, resume=str(tmp_path / "run")))
    assert not (tmp_path / "x").exists()
    # where and how fast it runs may change: resuming a finished run just finishes it again
    cfg = tiny_config(tmp_path / "run", steps=2, eval_every=1, threads=1, resume=str(tmp_path / "run"))
    assert train_dense(cfg)["best_step"] in (1, 2)


def test_cli_resume_reaches_a_dense_training(tmp_path: Path) -> None:
    """``--resume`` was silently ignored for dense configs."""
    from typer.testing import CliRunner

    from medforensics.cli import app

    cfg = tmp_path / "dense.json"
    body = {"model": "test_tamperseg3d", "data": tiny_config().data, "out": str(tmp_path / "run")}
    cfg.write_text(json.dumps(body))
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--resume", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no resume point" in res.output and "Traceback" not in res.output
