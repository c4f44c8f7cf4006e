"""Scan-level benchmark of the dense localiser (in-distribution + leave-one-attack-out)."""

from __future__ import annotations

import json
from pathlib import Path

from medforensics.train.dense import (
    DenseConfig,
    load_items,
)
from tests.forge._tiny_ct import shared_tiny_dataset


def test_dense_benchmark_trains_one_model_per_held_out_method(tmp_path: Path) -> None:
    from medforensics.evaluate.dense_benchmark import run_dense_benchmark

    root, _ = shared_tiny_dataset()
    cfg = DenseConfig(
        data=str(root), out="unused", model="test_tamperseg3d", patch=(8, 32, 32), batch_size=2, steps=2
    )
    items = load_items(cfg)
    methods = sorted({i.method for i in items["test"] if i.label in ("FM", "FB")})[:2]
    res = run_dense_benchmark(cfg, tmp_path, methods, loao_steps=1)
    assert set(res["loao"]) == set(methods)
    assert all(v["steps"] == 1 for v in res["loao"].values())
    assert (tmp_path / "dense.md").read_text().count("\n| ") >= 2 + len(methods) - 1
    assert json.loads((tmp_path / "dense.json").read_text())["model"] == "test_tamperseg3d"
