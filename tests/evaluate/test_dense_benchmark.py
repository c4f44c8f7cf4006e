"""Scan-level benchmark of the dense localiser (in-distribution + leave-one-attack-out)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from medforensics.train.dense import load_items
from tests.train._dense import tiny_config


def test_dense_benchmark_trains_one_model_per_held_out_method(tmp_path: Path) -> None:
    from medforensics.evaluate.dense_benchmark import run_dense_benchmark

    cfg = tiny_config(steps=2)
    items = load_items(cfg)
    methods = sorted({i.method for i in items["test"] if i.label in ("FM", "FB")})[:2]
    res = run_dense_benchmark(cfg, tmp_path, methods, loao_steps=1)
    assert set(res["loao"]) == set(methods)
    assert all(v["steps"] == 1 for v in res["loao"].values())
    assert (tmp_path / "dense.md").read_text().count("\n| ") >= 2 + len(methods) - 1
    assert json.loads((tmp_path / "dense.json").read_text())["model"] == "test_tamperseg3d"

    # a second run fine-tunes each model from its namesake of the first (LOAO models never see their method)
    from medforensics.scan.detector import sha256_file

    again = run_dense_benchmark(cfg, tmp_path / "ft", methods, loao_steps=1, fine_tune=tmp_path)
    assert set(again["loao"]) == set(methods)
    for name in ["in-dist"] + [f"loao/{m}" for m in methods]:
        used = json.loads((tmp_path / "ft" / name / "metrics.json").read_text())["init_from"]
        start = tmp_path / name / "model.safetensors"
        assert used == {"weights": str(start), "sha256": sha256_file(start)[:12]}, name

    # without it, only the in-distribution model takes cfg.init_from: it saw every method
    fresh = run_dense_benchmark(
        replace(cfg, init_from=str(tmp_path / "in-dist")), tmp_path / "plain", methods[:1], loao_steps=1
    )
    assert set(fresh["loao"]) == set(methods[:1])
    metrics = {
        n: json.loads((tmp_path / "plain" / n / "metrics.json").read_text())
        for n in ("in-dist", f"loao/{methods[0]}")
    }
    assert metrics["in-dist"]["init_from"]["weights"] == str(tmp_path / "in-dist" / "model.safetensors")
    assert metrics[f"loao/{methods[0]}"]["init_from"] is None


def test_given_in_distribution_metrics_are_not_trained_again(tmp_path: Path) -> None:
    from medforensics.evaluate.dense_benchmark import run_dense_benchmark

    main = {"test": {"auc": 0.7}, "val": {"auc": 0.6}, "train_seconds": 1.5}
    res = run_dense_benchmark(tiny_config(steps=2), tmp_path, [], main=main)
    assert res["in_dist"]["test_auc"] == 0.7 and res["in_dist"]["train_seconds"] == 1.5
    assert res["loao"] == {} and res["unseen_auc_mean"] is None
    assert not (tmp_path / "in-dist").exists() and (tmp_path / "dense.md").is_file()


def test_dense_benchmark_trains_models_in_parallel_processes(tmp_path: Path) -> None:
    from medforensics.evaluate.dense_benchmark import run_dense_benchmark

    cfg = tiny_config(steps=2)
    methods = sorted({i.method for i in load_items(cfg)["test"] if i.label in ("FM", "FB")})[:1]
    res = run_dense_benchmark(cfg, tmp_path, methods, loao_steps=1, jobs=2)
    assert set(res["loao"]) == set(methods) and res["in_dist"]["steps"] == 2
    for sub in ("in-dist", f"loao/{methods[0]}"):
        assert (tmp_path / sub / "model.safetensors").is_file()
    used = json.loads((tmp_path / f"loao/{methods[0]}" / "config.json").read_text())
    assert used["exclude_methods"] == methods


def test_finished_runs_are_reused_and_others_trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A benchmark a time limit cut short is completed without retraining what had finished, and only a
    folder holding the *same* config (up to where it ran) counts as finished."""
    from dataclasses import replace

    from medforensics.evaluate import dense_benchmark as db

    cfg = tiny_config(steps=2)
    methods = sorted({i.method for i in load_items(cfg)["test"] if i.label in ("FM", "FB")})[:2]
    db.run_dense_benchmark(cfg, tmp_path, methods[:1], loao_steps=1)
    done = replace(
        cfg, out=str(tmp_path / "loao" / methods[0]), exclude_methods=methods[:1], steps=1, eval_every=1
    )
    assert db.finished(done) and db.finished(replace(done, device="auto", threads=1))
    assert not db.finished(replace(done, steps=2)) and not db.finished(replace(done, zcorr_channel=True))
    written = Path(done.out) / "config.json"
    new_keys = ("thick_mm", "max_slice_mm")
    older = {k: v for k, v in json.loads(written.read_text()).items() if k not in new_keys}
    written.write_text(json.dumps(older))  # a run from before those options: it used their defaults
    assert db.finished(done) and not db.finished(replace(done, thick_mm=5.0))

    trained: list[str] = []
    real = db.train_dense
    monkeypatch.setattr(db, "train_dense", lambda c: trained.append(c.out) or real(c))
    res = db.run_dense_benchmark(cfg, tmp_path, methods, loao_steps=1, reuse=True)
    assert trained == [str(tmp_path / "loao" / methods[1])]  # in-dist and the first LOAO were reused
    assert set(res["loao"]) == set(methods)


def test_a_stopped_run_is_resumed_not_started_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``reuse``, a leave-one-attack-out model stopped after an evaluation (a session that ended, a
    time limit) continues from its resume point and ends as a run never stopped; without, it starts again."""
    import torch
    from safetensors.torch import load_file

    from medforensics.evaluate import dense_benchmark as db
    from tests.train._dense import Stop, stop_at_second_evaluation

    cfg = tiny_config(steps=4, eval_every=2, hard_every=2, hard_negative=0.5)
    methods = sorted({i.method for i in load_items(cfg)["test"] if i.label in ("FM", "FB")})[:1]
    whole = tmp_path / "whole"
    db.run_dense_benchmark(cfg, whole, methods, in_dist=False)

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        stop_at_second_evaluation(m)
        with pytest.raises(Stop):
            db.run_dense_benchmark(cfg, run, methods, in_dist=False)
    folder = run / "loao" / methods[0]
    stopped = replace(cfg, out=str(folder), exclude_methods=methods, steps=4)
    assert db.stopped(stopped) and not db.finished(stopped)
    assert not db.stopped(replace(stopped, steps=6))  # another run's point is not resumed

    started: list[str | None] = []
    real_train = db.train_dense
    monkeypatch.setattr(db, "train_dense", lambda c: started.append(c.resume) or real_train(c))
    db.run_dense_benchmark(cfg, run, methods, in_dist=False, reuse=True)
    assert started == [str(folder)]
    a = load_file(str(whole / "loao" / methods[0] / "last" / "model.safetensors"))
    b = load_file(str(folder / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert db.finished(stopped) and not db.stopped(stopped)


def test_markdown_says_when_the_in_distribution_run_was_stopped_early() -> None:
    from medforensics.evaluate.dense_benchmark import dense_markdown

    ind = {"test_auc": 0.9, "test_within_10mm": 0.5, "steps": 2500, "train_seconds": None}
    md = dense_markdown({"model": "m", "data": "d", "in_dist": ind, "loao": {}, "unseen_auc_mean": None})
    assert "stopped early" in md and "None" not in md
    md = dense_markdown(
        {
            "model": "m",
            "data": "d",
            "in_dist": {**ind, "train_seconds": 12.5},
            "loao": {},
            "unseen_auc_mean": None,
        }
    )
    assert "2500 steps, 12.5 s" in md


def test_held_out_models_alone_and_tested_again_on_other_data(tmp_path: Path) -> None:
    from medforensics.errors import ConfigError
    from medforensics.evaluate.dense_benchmark import held_out_on, run_dense_benchmark

    cfg = tiny_config(steps=2)
    methods = sorted({i.method for i in load_items(cfg)["test"] if i.label in ("FM", "FB")})[:2]
    res = run_dense_benchmark(cfg, tmp_path / "w", methods, loao_steps=1, in_dist=False)
    assert res["in_dist"] is None and set(res["loao"]) == set(methods)
    assert not (tmp_path / "w" / "in-dist").exists()
    assert "not trained (leave-one-attack-out models only)" in (tmp_path / "w" / "dense.md").read_text()

    # tested again on data of the same kind (here the same data, elsewhere, read by 2 loaders): the same AUCs
    again = held_out_on(tmp_path / "w", replace(cfg, load_workers=2), methods, tmp_path / "again")
    assert {m: v["auc"] for m, v in again["loao"].items()} == {m: v["auc"] for m, v in res["loao"].items()}
    assert again["unseen_auc_mean"] == res["unseen_auc_mean"] and again["in_dist"] is None
    md = (tmp_path / "again" / "dense.md").read_text()
    assert f"trained in `{tmp_path / 'w'}`" in md and "| None |" not in md
    for m in methods:
        used = json.loads((tmp_path / "again" / "loao" / m / "config.json").read_text())
        assert used["exclude_methods"] == [m] and used["steps"] == 1 and used["load_workers"] == 2
        assert json.loads((tmp_path / "again" / "loao" / m / "metrics.json").read_text())["stopped_early"]
    # models that were fine-tuned from weights not at hand here: named in their card, not looked up
    ft = run_dense_benchmark(
        cfg, tmp_path / "ft", methods[:1], loao_steps=1, in_dist=False, fine_tune=tmp_path / "w"
    )
    (tmp_path / "w").rename(tmp_path / "gone")
    held_out_on(tmp_path / "ft", cfg, methods[:1], tmp_path / "ft_again")
    card = (tmp_path / "ft_again" / "loao" / methods[0] / "model_card.md").read_text()
    assert str(tmp_path / "w" / "loao" / methods[0] / "model.safetensors") in card and ft["in_dist"] is None
    (tmp_path / "gone").rename(tmp_path / "w")
    with pytest.raises(ConfigError, match="not the model that left out"):
        (tmp_path / "w" / "loao" / "x").symlink_to(tmp_path / "w" / "loao" / methods[0])
        held_out_on(tmp_path / "w", cfg, ["x"], tmp_path / "bad")


def _train_for_a_minute(cfg: object) -> None:
    import time

    time.sleep(60)


def test_an_interrupt_stops_the_parallel_training_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while runs train in parallel processes: they are terminated at once (they ignore SIGINT
    themselves, so none prints a traceback), and the interrupt goes on to the command."""
    import multiprocessing as mp
    import signal
    import time

    from medforensics.evaluate import dense_benchmark as db

    monkeypatch.setattr(db, "train_dense", _train_for_a_minute)  # what the processes are started with
    ignored: list[bool] = []
    real_join = mp.get_context("spawn").Process.join

    def interrupted_join(self: mp.process.BaseProcess, timeout: float | None = None) -> None:
        if timeout is None:  # the wait for the runs: Ctrl-C arrives
            ignored.append(signal.getsignal(signal.SIGINT) is not signal.SIG_IGN)  # ours is back
            raise KeyboardInterrupt
        real_join(self, timeout)

    monkeypatch.setattr(mp.context.SpawnProcess, "join", interrupted_join)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        db._train([object(), object()], jobs=2)  # type: ignore[list-item]
    assert time.perf_counter() - t0 < 30 and ignored == [True]
    assert mp.active_children() == []
