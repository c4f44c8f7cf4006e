"""Tune the TB/TM rule of ``scan`` (``TM_MIN_BLOBNESS``, ``TM_MAX_HU``) on a forge data set's authentic scans.

An authentic series is labelled TM when the whole-lung nodule search
(:func:`medforensics.scan.nodules.find_nodules`) keeps a nodule-like blob at least ``TM_MIN_BLOBNESS``
round and no denser than ``TM_MAX_HU``, away from the map's peak and the volume's ends. This script
scores every authentic (TB/TM) scan of the chosen splits once, records every blob the search sees, and
reports the label accuracy for a grid of both values, so the rule is chosen on training and validation
patients only and the test split is left for ``benchmarks/label_accuracy.py``. Writes Markdown and JSON.

    python benchmarks/label_rule.py --data DS [--splits train,val | --patients P,...] [--model DIR]
        [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from label_accuracy import manifest_rows
from scan_report import write_results

BLOBNESS = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
MAX_HU: tuple[float | None, ...] = (100.0, 150.0, 200.0, 300.0, None)  # None: no cap


def blobs_of(volume: Any, det: Any) -> list[dict[str, float]]:
    """Every nodule-like blob of the whole-lung search on ``volume`` that ``scan`` would let a TM label rest
    on but for the roundness and density bounds (away from the map's peak and the volume's ends)."""
    from medforensics.scan.nodules import find_nodules, untouched_nodules

    with torch.inference_mode():
        dm = det.tamper_map(volume)
    blobs = untouched_nodules(volume, dm, find_nodules(dm, bounded=False), float(dm.evidence.max()))
    return [{"blobness": b.blobness, "hu": b.hu, "diameter_mm": b.diameter_mm} for b in blobs]


def accuracy(rows: list[dict[str, Any]], min_blobness: float, max_hu: float | None) -> int:
    """Authentic scans whose TB/TM label the rule gets right (``max_hu`` None: no cap)."""
    cap = float("inf") if max_hu is None else max_hu
    right = 0
    for r in rows:
        tm = any(b["blobness"] >= min_blobness and b["hu"] <= cap for b in r["blobs"])
        right += int(tm == (r["true_label"] == "TM"))
    return right


def run(data: Path, splits: set[str], model_dir: Path | None, patients: set[str]) -> dict[str, Any]:
    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import bundled_dir, load_detector

    det = load_detector(model_dir or bundled_dir())
    manifest = manifest_rows(data, splits, patients, ("TB", "TM"))
    rows = []
    t0 = time.perf_counter()
    for r in manifest:
        vol = read_volume(data / "scans" / r["uuid"])
        vol.modality = vol.modality or "CT"
        blobs = blobs_of(vol, det)
        rows.append({"uuid": r["uuid"], "split": r["split"], "true_label": r["type"], "blobs": blobs})
    grid: list[dict[str, Any]] = [
        {"min_blobness": t, "max_hu": h, "right": accuracy(rows, t, h)} for t in BLOBNESS for h in MAX_HU
    ]
    # ties: the threshold nearer 0.5 (session 10's), then the lower cap
    best = max(grid, key=lambda g: (g["right"], -abs(g["min_blobness"] - 0.5), -(g["max_hu"] or 1e9)))
    return {
        "data": str(data),
        "scope": f"{'patients' if patients else 'splits'} {', '.join(sorted(patients or splits))}",
        "scans": len(rows),
        "by_label": {k: sum(r["true_label"] == k for r in rows) for k in ("TB", "TM")},
        "seconds": round(time.perf_counter() - t0, 1),
        "grid": grid,
        "best": best,
        "rows": rows,
    }


def markdown(res: dict[str, Any]) -> str:
    """The grid as a table: rows blobness, columns HU cap."""
    n = res["scans"]
    head = " | ".join("no cap" if h is None else f"<= {h:g} HU" for h in MAX_HU)
    lines = [
        "# TB/TM rule on authentic scans (benchmarks/label_rule.py)",
        "",
        f"Data `{res['data']}`, {res['scope']}: {n} authentic scans "
        f"(TB {res['by_label']['TB']}, TM {res['by_label']['TM']}), {res['seconds']} s.",
        f"Best: blobness >= {res['best']['min_blobness']}, HU cap {res['best']['max_hu'] or 'none'}: "
        f"{res['best']['right']}/{n} right.",
        "",
        f"| min blobness | {head} |",
        "| --- |" + " --- |" * len(MAX_HU),
    ]
    for t in BLOBNESS:
        cells = [g for g in res["grid"] if g["min_blobness"] == t]
        lines.append(f"| {t} | " + " | ".join(f"{g['right']}/{n}" for g in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--splits", default="train,val")
    ap.add_argument("--patients", default="", help="comma-separated patient keys (instead of --splits)")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "label_accuracy")
    args = ap.parse_args()
    torch.set_num_threads(2)
    np.random.seed(0)
    patients = {p for p in args.patients.split(",") if p}
    res = run(args.data, set(args.splits.split(",")), args.model, patients)
    write_results(args.out, "label_rule", res, markdown(res))


if __name__ == "__main__":
    main()
