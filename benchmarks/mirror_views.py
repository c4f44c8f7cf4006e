"""Test-time mirror views for the dense CT detector: crop-level AUC with 1, 2 and 4 in-plane views.

Each scan of the given patients of a forge data set is scored as ``medforensics scan`` scores it (the raw
maximum of the tamper map over the lung zone) with the map averaged over the first N views of
:data:`medforensics.models.tamperseg.MIRROR_VIEWS`; per patient and noise operating point (the series'
inter-slice noise correlation) it reports the AUC and the share of tampered scans above the highest authentic
score of the first patient listed (the validation patient: a threshold with no false alarm there). Raw
scores, so no calibration is involved. Writes Markdown and JSON.

    python benchmarks/mirror_views.py --data DS --patients VAL,TEST [--views 1,2,4] [--model DIR]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from scan_report import write_results


def run(data: Path, patients: list[str], views: list[int], model_dir: Path) -> dict[str, Any]:
    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import load_detector
    from medforensics.train.dense_calibration import UNCORRELATED_BELOW, score_series

    det = load_detector(model_dir)
    det.specialist = None
    with (data / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if r["patient"] in patients and r["type"] in ("TB", "TM", "FB", "FM")
        ]
    out = []
    for r in rows:
        vol = read_volume(data / "scans" / r["uuid"])
        rec: dict[str, Any] = {
            "uuid": r["uuid"],
            "patient": r["patient"],
            "type": r["type"],
            "method": r["method"],
        }
        for n in views:
            det.calibration = dataclasses.replace(det.calibration, views=n)
            t0 = time.perf_counter()
            s = score_series(det, vol)
            rec[f"raw{n}"], rec[f"s{n}"] = s.raw, round(time.perf_counter() - t0, 3)
        rec["uncorrelated"] = s.slice_corr is not None and s.slice_corr < UNCORRELATED_BELOW  # same each view
        out.append(rec)
    return {
        "model": det.info.name,
        "sha256": det.info.sha256,
        "data": str(data),
        "patients": patients,
        "views": views,
        "rows": out,
    }


def summarise(result: dict[str, Any]) -> str:
    from sklearn.metrics import roc_auc_score

    rows, pats = result["rows"], result["patients"]
    md = [
        "# Mirror views: crop-level AUC of the dense detector (benchmarks/mirror_views.py)",
        "",
        f"Detector {result['model']} ({result['sha256'][:12]}); data `{result['data']}`; raw scan scores. "
        f"Bar: the highest authentic score of {pats[0]} at that operating point (no false alarm there).",
        "",
        "| noise | views | " + " | ".join(f"{p} AUC | {p} tampered > bar" for p in pats) + " | s / scan |",
        "| --- | --- |" + " --- | --- |" * len(pats) + " --- |",
    ]
    for unc in (False, True):
        for n in result["views"]:
            bar, cells = None, []
            for p in pats:
                rs = [r for r in rows if r["patient"] == p and r["uncorrelated"] == unc]
                y = np.array([r["type"] in ("FB", "FM") for r in rs])
                s = np.array([r[f"raw{n}"] for r in rs])
                if not rs or y.all() or not y.any():
                    cells += ["-", "-"]
                    continue
                bar = float(s[~y].max()) if bar is None else bar
                cells += [f"{roc_auc_score(y, s):.3f}", f"{int((s[y] > bar).sum())}/{int(y.sum())}"]
            secs = np.mean([r[f"s{n}"] for r in rows])
            noise = "uncorrelated" if unc else "scanner"
            md.append(f"| {noise} | {n} | " + " | ".join(cells) + f" | {secs:.2f} |")
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--patients", required=True, help="VAL,TEST patient keys (the first sets the bar)")
    ap.add_argument("--views", default="1,2,4")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("mirror_views"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from medforensics.scan.detector import bundled_dir

    result = run(
        args.data,
        args.patients.split(","),
        [int(v) for v in args.views.split(",")],
        args.model or bundled_dir(),
    )
    write_results(args.out, "mirror_views", result, summarise(result))


if __name__ == "__main__":
    main()
