"""The zoo's fast models over several forge draws: how much of the leaderboard's order is the draw.

One `medforensics benchmark` run scores every model on one data set: one test patient, a few dozen authentic
test crops. Session 30 found the two anomaly detectors' order flip between two draws of the same four
patients. This script forges the data set with several seeds (each seed deals the patients to other splits
and draws other crops), runs the benchmark of the given (fast) models on each, and reports per model the
mean, spread and range of the in-distribution and unseen-attack AUCs, with the test patient of each draw.

    python benchmarks/leaderboard/draws.py --seeds 1,2,3,4,5 --work /tmp/draws \
        [--models anomaly_gaussian,anomaly_residual,svm,random_forest,decision_tree] [--per-class 60]
        [--run-name run] [--out benchmarks/leaderboard/draws]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

FAST = "anomaly_gaussian,anomaly_residual,svm,random_forest,decision_tree"


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-c", "from medforensics.cli import main; main()", *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _test_patients(data: Path) -> list[str]:
    with (data / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return sorted({r["patient"] for r in csv.DictReader(fh) if r["split"] == "test"})


def run_draw(seed: int, work: Path, models: str, per_class: int, run_name: str = "run") -> dict[str, Any]:
    """Forge the data set with ``seed`` (once per ``work`` folder) and benchmark ``models`` on it
    (in-distribution and LOAO, the committed leaderboard's settings) into ``work/<run_name>_seed<seed>``
    (skipped when that run is there)."""
    data, out = work / f"ds_seed{seed}", work / f"{run_name}_seed{seed}"
    t0 = time.perf_counter()
    if not (data / "manifest.csv").is_file():
        _cli("forge", "dataset", "--out", str(data), "--per-class", str(per_class), "--seed", str(seed))
    if not (out / "leaderboard.csv").is_file():
        _cli(
            "benchmark", "--data", str(data), "--out", str(out), "--models", models, "--loao-models", models,
            "--epochs", "15", "--patience", "6", "--batch-size", "16", "--threads", "2", "--seed", "0",
        )  # fmt: skip
    with (out / "leaderboard.csv").open(newline="", encoding="utf-8") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    return {
        "seed": seed,
        "test_patients": _test_patients(data),
        "seconds": round(time.perf_counter() - t0, 1),
        "models": {
            m: {"in_dist_auc": float(r["in_dist_auc"]), "unseen_auc_mean": float(r["unseen_auc_mean"])}
            for m, r in rows.items()
        },
    }


def _best(models: dict[str, dict[str, float]]) -> str:
    return max(models, key=lambda m: models[m]["unseen_auc_mean"])


def _cell(scores: dict[str, float] | None) -> str:
    return "-" if scores is None else f"{scores['unseen_auc_mean']:.3f} / {scores['in_dist_auc']:.3f}"


def summarise(draws: list[dict[str, Any]]) -> str:
    """Markdown: per model and draw the two AUCs, then mean, standard deviation and range."""
    models = sorted({m for d in draws for m in d["models"]})
    seeds = " | ".join(
        f"seed {d['seed']} (test {', '.join(p[:8] for p in d['test_patients'])})" for d in draws
    )
    lines = [
        "# The fast models over several forge draws (benchmarks/leaderboard/draws.py)",
        "",
        "Unseen-attack mean AUC / in-distribution AUC per draw; each draw is `forge dataset --seed S` (its",
        "own patient split and crops) and `medforensics benchmark` of these models on it.",
        "",
        f"| model | {seeds} | unseen mean (sd; range) | in-dist mean (sd; range) | best unseen in |",
        "| --- |" + " --- |" * (len(draws) + 3),
    ]
    best = [_best(d["models"]) for d in draws]
    for m in models:
        u = np.array([d["models"][m]["unseen_auc_mean"] for d in draws if m in d["models"]])
        i = np.array([d["models"][m]["in_dist_auc"] for d in draws if m in d["models"]])
        cells = [
            f"{d['models'][m]['unseen_auc_mean']:.3f} / {d['models'][m]['in_dist_auc']:.3f}"
            if m in d["models"]
            else "-"
            for d in draws
        ]
        lines.append(
            f"| {m} | " + " | ".join(cells) + f" | {u.mean():.3f} ({u.std(ddof=1) if len(u) > 1 else 0:.3f}; "
            f"{u.min():.3f}-{u.max():.3f}) | {i.mean():.3f} ({i.std(ddof=1) if len(i) > 1 else 0:.3f}; "
            f"{i.min():.3f}-{i.max():.3f}) | {best.count(m)}/{len(draws)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--models", default=FAST)
    ap.add_argument("--per-class", type=int, default=60)
    ap.add_argument("--run-name", default="run", help="benchmark folders WORK/NAME_seedS (data sets shared)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "draws")
    args = ap.parse_args()
    draws = []
    for seed in (int(s) for s in args.seeds.split(",")):
        draws.append(run_draw(seed, args.work, args.models, args.per_class, args.run_name))
        print(json.dumps(draws[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (args.out.with_suffix(".json")).write_text(json.dumps(draws, indent=1), encoding="utf-8")
    text = summarise(draws)
    (args.out.with_suffix(".md")).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
