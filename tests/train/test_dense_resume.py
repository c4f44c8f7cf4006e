"""Resuming a stopped dense training run: the same result as a run never stopped; refusals."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from medforensics.errors import ConfigError, InputError
from medforensics.train import dense
from medforensics.train.dense import train_dense
from tests.train._dense import Stop, stop_at_second_evaluation, tiny_config


def test_a_resumed_run_ends_as_a_run_never_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # mining every 2 steps and a step-1 dropout-free tiny net: the state that must survive is the weights,
    # AdamW's moments, the schedule, the batch stream and the mined hard negatives
    run = {"steps": 6, "eval_every": 2, "hard_every": 2, "hard_negative": 0.5}
    whole = train_dense(tiny_config(tmp_path / "whole", **run))

    with monkeypatch.context() as m:
        stop_at_second_evaluation(m)
        with pytest.raises(Stop):
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
    # its clock goes on from the stopped run's (made long here): the seconds never fall back
    state["log_rows"][-1]["seconds"] = 1000.0
    (tmp_path / "stopped" / "last" / "state.json").write_text(json.dumps(state))
    again = train_dense(tiny_config(tmp_path / "again", resume=str(tmp_path / "stopped"), **run))
    rows = (tmp_path / "again" / "train_log.csv").read_text().splitlines()[1:]
    seconds = [float(r.split(",")[4]) for r in rows]
    assert seconds[0] == 1000.0 and 1000.0 < seconds[1] <= seconds[2] <= again["train_seconds"] < 1500
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


def test_a_run_stopped_before_an_option_existed_resumes_at_its_default(tmp_path: Path) -> None:
    """A run stopped under an older version, whose saved config lacks an option added since, is the run of
    that option's default (a multi-session CPU benchmark spans code updates); another value is refused."""
    train_dense(tiny_config(tmp_path / "run", steps=2, eval_every=1))
    saved = tmp_path / "run" / "last" / "config.json"
    older = json.loads(saved.read_text())
    del older["round_trip_copies_mm"]  # added in session 53
    saved.write_text(json.dumps(older))
    from medforensics.train.dense_resume import check_same_run

    check_same_run(tiny_config(tmp_path / "run", steps=2, eval_every=1), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"round_trip_copies_mm None -> \[1.0\]"):
        check_same_run(
            tiny_config(tmp_path / "run", steps=2, eval_every=1, round_trip_copies_mm=[1.0]), tmp_path / "run"
        )


def test_cli_resume_reaches_a_dense_training(tmp_path: Path) -> None:
    """``--resume`` was silently ignored for dense configs."""
    from typer.testing import CliRunner

    from medforensics.cli import app

    cfg = tmp_path / "dense.json"
    body = {"model": "test_tamperseg3d", "data": tiny_config().data, "out": str(tmp_path / "run")}
    cfg.write_text(json.dumps(body))
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--resume", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no resume point" in res.output and "Traceback" not in res.output


# --- the resume point is checked, whole, before any data is read -------------------------------------------


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run of 4 steps stopped at its second evaluation (resume point after step 2)."""
    out = tmp_path_factory.mktemp("dense_stopped") / "run"
    with pytest.MonkeyPatch.context() as m:
        stop_at_second_evaluation(m)
        with pytest.raises(Stop):
            train_dense(tiny_config(out, steps=4, eval_every=2))
    return out


def _no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_items(*_: object) -> object:
        raise AssertionError("the data was read before the resume point was checked")

    monkeypatch.setattr(dense, "load_items", load_items)


def _wrong_shapes(path: Path) -> None:
    save_file({k: torch.zeros(*v.shape, 2) for k, v in load_file(str(path)).items()}, str(path))


def _drop_scheduler(path: Path) -> None:
    state = json.loads(path.read_text())
    del state["scheduler"]
    path.write_text(json.dumps(state))


def _bad_rng(path: Path) -> None:
    state = json.loads(path.read_text())
    state["torch_rng"] = [1, 2, 3]
    path.write_text(json.dumps(state))


DAMAGES = {
    "corrupt state": ("last/state.json", lambda p: p.write_text("{not json"), "unreadable resume state"),
    "no scheduler": ("last/state.json", _drop_scheduler, r"'scheduler' missing"),
    "bad torch rng": ("last/state.json", _bad_rng, r"'torch_rng'"),
    "wrong shapes": ("last/model.safetensors", _wrong_shapes, "weights do not fit the model"),
    "corrupt best": ("model.safetensors", lambda p: p.write_bytes(b"\xff" * 64), "weights do not fit"),
    "no best": ("model.safetensors", lambda p: p.unlink(), "no weights file"),
    "corrupt optimizer": ("last/optimizer.json", lambda p: p.write_text("{bad"), "optimizer state"),
    "corrupt run config": ("last/config.json", lambda p: p.write_text("{bad"), "unreadable"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_resume_point_is_refused_before_the_data_is_read(
    damage: str, stopped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resume point was read only after the data had loaded (minutes on real data); the best weights
    were copied into the new run without ever being read; a state without a key was a KeyError."""
    name, spoil, reason = DAMAGES[damage]
    folder = tmp_path / "stopped"
    shutil.copytree(stopped, folder)
    spoil(folder / name)
    _no_data(monkeypatch)
    out = tmp_path / "resumed"
    with pytest.raises(InputError, match=reason) as err:
        train_dense(tiny_config(out, steps=4, eval_every=2, resume=str(folder)))
    assert err.value.path == str(folder / name)
    assert not out.exists()


def test_cli_a_damaged_resume_point_is_one_line(
    stopped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medforensics.cli import app

    folder = tmp_path / "stopped"
    shutil.copytree(stopped, folder)
    _wrong_shapes(folder / "last" / "model.safetensors")
    _no_data(monkeypatch)
    body = {k: v for k, v in asdict(tiny_config(steps=4, eval_every=2)).items() if k != "resume"}
    cfg = tmp_path / "dense.json"
    cfg.write_text(json.dumps({**body, "out": str(tmp_path / "resumed")}))
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--resume", str(folder)])
    assert res.exit_code == 2, res.output
    assert "last/model.safetensors" in res.output and "weights do not fit the model" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_the_run_resumes_from_the_point_it_checked(
    stopped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files spoiled while the data loads: the run goes on from what was read and checked before it."""
    folder = tmp_path / "stopped"
    shutil.copytree(stopped, folder)
    best = {k: v.clone() for k, v in load_file(str(folder / "model.safetensors")).items()}  # maps the file
    real = dense.load_items

    def load_items(cfg: object) -> object:
        (folder / "last" / "state.json").write_text("{bad")
        (folder / "last" / "optimizer.json").write_text("{bad")
        moments = folder / "last" / "optimizer.safetensors"
        with moments.open("r+b") as f:  # in place (safetensors maps the file): NaN moments if still mapped
            f.write(b"\xff" * moments.stat().st_size)
        (folder / "last" / "model.safetensors").write_bytes(b"\xff" * 64)
        (folder / "model.safetensors").write_bytes(b"\xff" * 64)
        return real(cfg)  # type: ignore[arg-type]

    monkeypatch.setattr(dense, "load_items", load_items)
    # no better step after the resume: the best weights so far are the checked ones, written anew
    monkeypatch.setattr(dense, "scan_scores", _worse(dense.scan_scores))
    out = tmp_path / "resumed"
    train_dense(tiny_config(out, steps=4, eval_every=2, resume=str(folder)))
    steps = [r.split(",")[0] for r in (out / "train_log.csv").read_text().splitlines()]
    assert steps == ["step", "2", "4"]
    kept = load_file(str(out / "model.safetensors"))
    assert kept.keys() == best.keys() and all(torch.equal(kept[k], best[k]) for k in best)
    last = load_file(str(out / "last" / "model.safetensors"))
    assert all(bool(v.isfinite().all()) for v in last.values())  # AdamW's moments were not the spoiled file's


def _worse(real: Any) -> Any:
    def scores(*args: Any, **kwargs: Any) -> Any:
        return {**real(*args, **kwargs), "auc": -1.0, "within_10mm": None}

    return scores
