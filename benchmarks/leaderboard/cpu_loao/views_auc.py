"""A dense model's validation and test AUC on a data set's scans with its map averaged over 1, 2 and 4
in-plane mirror views (test-time augmentation, ``predict_map(views=...)``), all in one run on the same
loaded scans: what the detector's in-distribution figures (issue 4) become when ``scan`` averages views
(a calibration's ``"views"``).

The scans, split and whole authentic series are those :mod:`score_on` gives the model (bundle14's split by
default), scored as training scores them (:func:`~medforensics.train.dense.scan_scores`).

    python benchmarks/leaderboard/cpu_loao/views_auc.py --model src/medforensics/assets/detector \\
        --data /work/cpu_loao/ds6_b14 [--views 1,2,4] [--screen 0.85] [--split-of PATIENT=SPLIT ...] \
        [--json OUT]

``--screen``: also the largest number of views with the views after the first drawn only where the first
view's raw evidence reaches it (a calibration's ``screen``, :mod:`medforensics.models.view_refine`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from score_on import B14_SPLIT, config_on

from medforensics.models.inference import effective_precision
from medforensics.train.checkpoint import load_weights
from medforensics.train.dense import load_items, model_from_config, scan_scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--views", default="1,2,4", help="comma-separated numbers of mirror views")
    ap.add_argument("--screen", type=float, default=None, help="also the most views under this screen")
    ap.add_argument("--split-of", action="append", default=None, metavar="PATIENT=SPLIT")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    splits = dict(p.split("=", 1) for p in (args.split_of or B14_SPLIT))
    with tempfile.TemporaryDirectory() as out:
        cfg = config_on(args.model, args.data, splits, Path(out), args.threads)
    model = load_weights(model_from_config(asdict(cfg)), args.model / "model.safetensors")
    t0 = time.perf_counter()
    items = load_items(cfg)
    counts = ", ".join(f"{len(v)} {k}" for k, v in items.items())
    print(f"{counts} scans loaded in {time.perf_counter() - t0:.0f} s")
    rows = []
    runs: list[tuple[int, float | None]] = [(int(v), None) for v in args.views.split(",")]
    if args.screen is not None:
        runs.append((max(v for v, _ in runs), args.screen))
    for views, screen in runs:
        row: dict[str, Any] = {"views": views, "precision": effective_precision(cfg.precision, "cpu")}
        if screen is not None:
            row["screen"] = screen
        for split in ("val", "test"):
            t0 = time.perf_counter()
            res = scan_scores(model, items[split], cfg.precision, views=views, screen=screen)
            row[split] = {k: v for k, v in res.items() if k not in ("scores", "truth")}
            row[f"{split}_seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        t = row["test"]
        per = ", ".join(f"{m} {a:.3f}" for m, a in t["auc_per_method"].items() if a is not None)
        under = "" if screen is None else f" (screen {screen:g})"
        print(f"views {views}{under}: val AUC {row['val']['auc']:.4f}, test AUC {t['auc']:.4f} ({per})")
    if args.json:
        out_json = {"model": str(args.model), "data": str(args.data), "rows": rows}
        args.json.write_text(json.dumps(out_json, indent=1))


if __name__ == "__main__":
    main()
