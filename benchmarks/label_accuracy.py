"""TB/TM/FB/FM labels of a forge data set's scans as ``medforensics scan`` gives them (issue #4's target).

The CT-GAN data set labels each scan (a crop around one site) TB (no nodule), TM (a real nodule), FB (a
nodule removed) or FM (a nodule injected); ``forge dataset`` writes the same labels. Each scan of one split
is scanned exactly as ``medforensics scan`` does and its label compared with the data set's: accuracy, the
confusion matrix and the accuracy per attack method. Writes Markdown and JSON.

    python benchmarks/label_accuracy.py --data DS [--split test | --patients P,...] [--model DIR] [--out DIR]
        [--pixel-mm MM]

``--patients`` picks scans by patient key instead of split: a data set forged again may deal its patients to
other splits than the one a bundled model was trained on (its test patient is what to score).
``--pixel-mm`` scans each scan resampled to coarser square pixels first, band-limited as a scanner's coarser
grid samples it (:func:`~medforensics.forge.augment.coarse_pixels`, as ``scan_accuracy.py --pixel-mm``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from scan_accuracy import noise_reported
from scan_report import (
    augmentation_lines,
    label_lines,
    operating_point_lines,
    operating_points_text,
    write_results,
)


def _augmentation(row: dict[str, str]) -> str:
    """The first augmentation the data set applied to a scan (``none`` when it has none)."""
    chain = json.loads(row.get("augmentation") or "[]")
    return str(chain[0]["kind"]) if chain else "none"


def manifest_rows(
    data: Path, splits: set[str], patients: set[str], types: tuple[str, ...]
) -> list[dict[str, str]]:
    """Rows of ``data``'s manifest of one of ``types``, by patient key when ``patients`` is given, else by
    split."""
    with (data / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["type"] in types]
    if patients:
        unknown = patients - {r["patient"] for r in rows}
        if unknown:
            raise SystemExit(f"{data}: no scans of patient(s) {', '.join(sorted(unknown))}")
        return [r for r in rows if r["patient"] in patients]
    return [r for r in rows if r["split"] in splits]


def run(
    data: Path, split: str, model_dir: Path, patients: set[str] | None = None, pixel_mm: float | None = None
) -> dict[str, Any]:
    from medforensics.forge.augment import coarse_pixels
    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import load_detector
    from medforensics.scan.pipeline import scan_volume

    det = load_detector(model_dir)
    patients = patients or set()
    manifest = manifest_rows(data, {split}, patients, ("TB", "TM", "FB", "FM"))
    rows = []
    for r in manifest:
        t0 = time.perf_counter()
        vol = read_volume(data / "scans" / r["uuid"])
        if pixel_mm is not None:
            vol = coarse_pixels(vol, pixel_mm)[0]
        res = scan_volume(vol, det, explain=None)
        rows.append(
            {
                "uuid": r["uuid"],
                "method": r["method"],
                "augmentation": _augmentation(r),
                "true_label": r["type"],
                "label": res.label,
                "verdict": res.verdict,
                "score": res.score,
                "error": res.error,
                "operating_point": res.extra.get("operating_point"),
                "noise_finding": noise_reported(res),
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    return {
        "model": det.info.name,
        "sha256": det.info.sha256,
        "data": str(data),
        "split": f"patients {', '.join(sorted(patients))}" if patients else split,
        "pixel_mm": pixel_mm,
        "operating_points": operating_points_text(det.calibration),
        "rows": rows,
    }


def _errors(rows: list[dict[str, Any]]) -> list[str]:
    """A line on the scans ``scan`` refused (they get no label and count as wrong)."""
    bad = [r["error"] for r in rows if r.get("error")]
    if not bad:
        return []
    top = max(set(bad), key=bad.count)
    return [f"{len(bad)} scan(s) refused by `scan` (no label; counted wrong), mostly: {top}.", ""]


def summarise(result: dict[str, Any]) -> str:
    rows = result["rows"]
    md = [
        "# TB/TM/FB/FM labels of data-set scans (benchmarks/label_accuracy.py)",
        "",
        f"Detector {result['model']} ({result['sha256'][:12]}); data `{result['data']}`, "
        f"split {result['split']}"
        + (f", resampled to {result['pixel_mm']:g} mm pixels" if result.get("pixel_mm") else "")
        + "; "
        + result.get("operating_points", ""),
        "",
        *label_lines(rows, unit="scans"),
        "",
        *operating_point_lines(rows, "scans"),
        *_errors(rows),
        "| method | scans | label right |",
        "| --- | --- | --- |",
    ]
    for m in sorted({r["method"] for r in rows}):
        rs = [r for r in rows if r["method"] == m]
        md.append(f"| {m} | {len(rs)} | {sum(r['label'] == r['true_label'] for r in rs)}/{len(rs)} |")
    if all("augmentation" in r for r in rows):  # rows of runs before session 12 lack it
        md += ["", *augmentation_lines(rows, "scans")]
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--patients", default="", help="comma-separated patient keys (instead of --split)")
    ap.add_argument("--stem", default="label_accuracy")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("label_accuracy"))
    ap.add_argument("--pixel-mm", type=float, default=None, help="resample each scan to square pixels of MM")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from medforensics.scan.detector import bundled_dir

    patients = {p for p in args.patients.split(",") if p}
    result = run(args.data, args.split, args.model or bundled_dir(), patients, args.pixel_mm)
    write_results(args.out, args.stem, result, summarise(result))


if __name__ == "__main__":
    main()
