"""95 % intervals of ROC-AUC (Hanley-McNeil) in the metrics and on the leaderboard."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from medforensics.evaluate import metrics as M
from medforensics.evaluate.leaderboard import overlapping_top, with_intervals, write_leaderboard


def test_the_interval_covers_the_true_auc_about_95_percent_of_the_time() -> None:
    # binormal scores: fakes N(1, 1), authentic N(0, 1), true AUC = Phi(1 / sqrt(2)) = 0.760; the test
    # split's counts of the benchmark (50 fakes, 35 authentic)
    rng = np.random.default_rng(0)
    true = float(norm.cdf(1 / np.sqrt(2)))
    hits, widths = 0, []
    for _ in range(1000):
        s = np.concatenate([rng.normal(1, 1, 50), rng.normal(0, 1, 35)])
        y = np.r_[np.ones(50), np.zeros(35)]
        ci = M.auc_ci95(float(roc_auc_score(y, s)), 50, 35)
        assert ci is not None
        hits += ci[0] <= true <= ci[1]
        widths.append(ci[1] - ci[0])
    assert 0.92 <= hits / 1000 <= 0.975
    assert 0.17 < float(np.median(widths)) < 0.27  # +-0.1: what 85 test crops can tell apart


def test_interval_shape_and_edge_cases() -> None:
    lo, hi = M.auc_ci95(0.8, 50, 35)  # type: ignore[misc]
    lo2, hi2 = M.auc_ci95(0.8, 500, 350)  # type: ignore[misc]
    assert lo < 0.8 < hi and lo2 > lo and hi2 < hi  # ten times the data: a narrower interval
    assert M.auc_ci95(1.0, 10, 10) == (1.0, 1.0) and M.auc_ci95(0.0, 10, 10) == (0.0, 0.0)
    assert M.auc_ci95(None, 10, 10) is None and M.auc_ci95(0.7, 0, 10) is None
    y, s = np.r_[np.ones(20), np.zeros(20)], np.linspace(0, 1, 40)[::-1]
    m = M.binary_metrics(y, s)
    assert m["roc_auc_ci95"] == M.auc_ci95(m["roc_auc"], 20, 20)


def _result() -> dict[str, object]:
    loao = [
        {"model": "a", "held_out": "x", "auc": 0.9, "n_test": 50, "n_positive": 15},
        {"model": "a", "held_out": "y", "auc": 0.7, "n_test": 50, "n_positive": 15},
        {"model": "b", "held_out": "x", "auc": None, "note": "skipped"},  # a run without an AUC
    ]
    rows = [
        {"model": "a", "in_dist_auc": 0.8, "n": 85, "n_positive": 50, "unseen_auc_mean": 0.8},
        {"model": "b", "in_dist_auc": 0.6, "unseen_auc_mean": None},  # a stored row without counts
    ]
    return {
        "config": {"preset": "cpu-fast", "seed": 0, "size_2d": 96, "epochs": 1, "protocols": ["in-dist"]},
        "machine": {
            "torch": "x",
            "cpus": 2,
            "torch_threads": 2,
            "load_average_start": 0,
            "load_average_end": 0,
        },
        "data": "ds",
        "data_summary": {"n": 85, "labels_per_split": {}, "patients_per_split": {}},
        "methods": ["x", "y"],
        "wall_s": 1.0,
        "rows": rows,
        "loao": loao,
    }


def test_leaderboard_rows_get_intervals_from_stored_aucs(tmp_path: Path) -> None:
    res = with_intervals(_result())  # type: ignore[arg-type]
    a, b = res["rows"]
    assert a["in_dist_auc_ci95"] == M.auc_ci95(0.8, 50, 35)
    runs = [M.auc_ci95(0.9, 15, 35), M.auc_ci95(0.7, 15, 35)]
    lo, hi = a["unseen_auc_mean_ci95"]
    assert lo < 0.8 < hi and hi - lo < min(r[1] - r[0] for r in runs)  # a mean of two is surer than either
    assert b["in_dist_auc_ci95"] is None and "unseen_auc_mean_ci95" not in b
    assert res["loao"][0]["auc_ci95"] == runs[0] and res["loao"][2]["auc_ci95"] is None
    write_leaderboard(_result(), tmp_path)
    with (tmp_path / "leaderboard.csv").open() as fh:
        row = next(csv.DictReader(fh))
    lo, hi = (float(v) for v in row["in_dist_auc_ci95"].split("-"))
    assert (round(lo, 3), round(hi, 3)) == tuple(round(v, 3) for v in M.auc_ci95(0.8, 50, 35))  # type: ignore[union-attr]
    ci = M.auc_ci95(0.8, 50, 35)
    assert f"{ci[0]:.2f}-{ci[1]:.2f}" in (tmp_path / "leaderboard.md").read_text()  # type: ignore[index]
    with (tmp_path / "loao.csv").open() as fh:
        assert next(csv.DictReader(fh))["auc_ci95"] != ""


def test_the_leaderboard_names_models_it_cannot_tell_from_the_recommended_one(tmp_path: Path) -> None:
    """Session 30: the order of the top two flipped between two draws of the same patients; the
    leaderboard says which models' unseen-attack intervals overlap the recommended one's."""
    rows = [
        {"model": "a", "unseen_auc_mean_ci95": (0.82, 0.96)},
        {"model": "b", "unseen_auc_mean_ci95": (0.76, 0.92)},
        {"model": "c", "unseen_auc_mean_ci95": (0.50, 0.64)},
        {"model": "d"},
    ]
    assert overlapping_top(rows, "a") == ["b"]
    assert overlapping_top(rows, "b") == ["a"] and overlapping_top(rows, "c") == []  # c lies below both
    assert overlapping_top(rows, "d") == [] and overlapping_top(rows, None) == []
    for runs, told_apart in (((0.85, 0.75), False), ((0.3, 0.2), True)):
        result = _result()
        result["recommended"] = "a"
        result["loao"] += [  # type: ignore[operator]
            {"model": "c", "held_out": h, "auc": auc, "n_test": 50, "n_positive": 15}
            for h, auc in zip("xy", runs, strict=True)
        ]
        result["rows"] += [{"model": "c", "unseen_auc_mean": sum(runs) / 2}]  # type: ignore[operator]
        write_leaderboard(result, tmp_path)
        md = (tmp_path / "leaderboard.md").read_text()
        assert (
            "Not told apart from it by this run (unseen-attack 95 % intervals overlap): c." in md
        ) != told_apart
