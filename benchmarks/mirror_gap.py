"""How far a dense CT detector is from mirror-symmetric: |score of a crop - score of its in-plane mirror|.

For each model folder and each patient of a forge data set, the first ``--per-patient`` scans with scanner
noise are scored as ``medforensics scan`` scores them (raw maximum of the tamper map over the lung zone,
one view) as stored and mirrored left-right, front-back and both; the absolute differences are summarised
(mean, 90th percentile, maximum). A mirror-symmetric network gives 0. Prints a Markdown table and writes
JSON.

    python benchmarks/mirror_gap.py --data DS --patients P1,P2 --model NAME=DIR [--model NAME=DIR ...]
        [--per-patient 40] --out FILE.json
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: In-plane mirrors, as array axes (z, y, x) reversed.
MIRRORS: tuple[tuple[int, ...], ...] = ((2,), (1,), (1, 2))


def mirror_gaps(model_dir: Path, data: Path, patient: str, per_patient: int) -> dict[str, Any]:
    """Summary of |score - mirrored score| over the patient's first scanner-noise scans."""
    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import load_detector
    from medforensics.train.dense_calibration import UNCORRELATED_BELOW, score_series

    det = load_detector(model_dir)
    det.specialist = None
    with (data / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["patient"] == patient]
    gaps: list[float] = []
    n = 0
    for row in rows:
        if n >= per_patient:
            break
        vol = read_volume(data / "scans" / row["uuid"])
        vol.modality = "CT"
        base = score_series(det, vol)
        if base.slice_corr is not None and base.slice_corr < UNCORRELATED_BELOW:
            continue  # noise added after reconstruction: another operating point
        n += 1
        for axes in MIRRORS:
            flipped = dataclasses.replace(vol, array=np.ascontiguousarray(np.flip(vol.array, axes)))
            gaps.append(abs(score_series(det, flipped).raw - base.raw))
    g = np.asarray(gaps, np.float64)
    if not len(g):
        return {"crops": 0}
    return {"crops": n, "mean_abs": float(g.mean()), "p90": float(np.quantile(g, 0.9)), "max": float(g.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--patients", required=True, help="comma-separated patient keys")
    ap.add_argument("--model", action="append", required=True, help="NAME=DIR (repeat)")
    ap.add_argument("--per-patient", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {}
    lines = [
        "| model | patient | crops | mean | 90th percentile | max |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for spec in args.model:
        name, _, folder = spec.partition("=")
        for patient in args.patients.split(","):
            s = mirror_gaps(Path(folder), args.data, patient, args.per_patient)
            out[f"{name}:{patient}"] = s
            if s["crops"]:
                cells = [name, patient, str(s["crops"])] + [f"{s[k]:.3f}" for k in ("mean_abs", "p90", "max")]
                lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
