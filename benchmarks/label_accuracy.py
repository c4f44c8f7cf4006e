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

Truth: a data set forged before session 15 (commit 3adc39f) has TB scans whose crop shows the patient's
annotated nodule (the forge then kept only the *site* away from it). Where the data set's sources are at hand
(``../shared/data``), a TB scan whose crop (its record's ``crop_start_zyx`` / ``crop_shape_zyx``) shows part
of an annotated nodule (:func:`~medforensics.forge.dataset_sources.nodules_in_box`, the rule the forge places
TB crops by today) is scored as TM when the crop holds the nodule's centre, and its label is not scored
(``label_scored`` false) when it holds only part; the rows keep the manifest's label as ``data_label``.
``--data-labels`` scores the manifest's labels as they are.

    python benchmarks/label_accuracy.py --rescore RUN.json [--data-labels] --out DIR --stem S
        # the same rows with the truth decided again (no scanning)
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
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


def shown_nodule_truth(data: Path, rows: list[dict[str, str]]) -> dict[str, str]:
    """uuid -> the truth of each TB row of ``data`` whose crop shows an annotated nodule of its source
    (sources as ``forge dataset`` finds them, :func:`~medforensics.forge.dataset_sources.auto_sources`):
    "TM" when the crop holds the nodule's centre, "part" when it holds only part of it (a nodule cut by the
    crop's edge makes neither a clean TB nor a TM crop: its label is not scored, its verdict is); empty
    when the sources are not at hand."""
    from medforensics.forge.dataset_sources import auto_sources, nodules_in_box

    tb = [r for r in rows if r["type"] == "TB"]
    if not tb:
        return {}
    sources = {s.name: s for s in auto_sources()}
    out: dict[str, str] = {}
    for r in tb:
        src = sources.get(r["source"])
        if src is None:
            continue
        rec = json.loads((data / "records" / f"{r['uuid']}.json").read_text(encoding="utf-8"))
        start, shape = np.asarray(rec["crop_start_zyx"]), np.asarray(rec["crop_shape_zyx"])
        shown = nodules_in_box(src, rec["crop_start_zyx"], rec["crop_shape_zyx"])
        if shown:
            centres = np.asarray([n.center_voxel for n in shown], np.float64)
            inside = np.all((centres >= start) & (centres <= start + shape - 1), axis=1)
            out[r["uuid"]] = "TM" if bool(inside.any()) else "part"
    return out


def run(
    data: Path,
    split: str,
    model_dir: Path,
    patients: set[str] | None = None,
    pixel_mm: float | None = None,
    data_labels: bool = False,
) -> dict[str, Any]:
    from medforensics.forge.augment import coarse_pixels
    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import load_detector
    from medforensics.scan.pipeline import scan_volume

    det = load_detector(model_dir)
    patients = patients or set()
    manifest = manifest_rows(data, {split}, patients, ("TB", "TM", "FB", "FM"))
    truth = {} if data_labels else shown_nodule_truth(data, manifest)
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
                **_truth_fields(r["type"], truth.get(r["uuid"])),
                "label": res.label,
                "verdict": res.verdict,
                "score": res.score,
                "error": res.error,
                "operating_point": res.extra.get("operating_point"),
                "noise_finding": noise_reported(res),
                "nodule_mm": nodule_distance(res.extra.get("nodules"), r, vol.spacing),
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
        "truth": _truth_text(truth, data_labels),
        "rows": rows,
    }


def nodule_distance(
    nodules: list[dict[str, Any]] | None, row: dict[str, str], spacing: tuple[float, ...]
) -> list[float] | None:
    """Distances (mm) from the data set's nodule (a TM scan's ``z, y, x``) to each blob the scan's TM label
    rests on (``extra.nodules``, in its order); None unless the data set says TM and the scan lists blobs."""
    if row["type"] != "TM" or not nodules:
        return None
    site = np.array([float(row["z"]), float(row["y"]), float(row["x"])])
    return [
        round(float(np.linalg.norm((np.asarray(n["center_voxel"], float) - site) * np.asarray(spacing))), 1)
        for n in nodules
    ]


def nodule_lines(rows: list[dict[str, Any]], within_mm: float = 10.0) -> list[str]:
    """Where the TM label's blob is, on the scans the data set labels TM and ``scan`` labels TM."""
    dists = [r["nodule_mm"] for r in rows if r.get("nodule_mm")]
    if not dists:
        return []
    first = sum(d[0] <= within_mm for d in dists)
    nearest = [min(d) for d in dists]
    return [
        f"Where the TM label's nodule is (`extra.nodules`), on the {len(dists)} scans the data set labels TM "
        f"and `scan` labels TM: the first blob listed lies within {within_mm:g} mm of the annotated nodule "
        f"in {first}, some listed blob in {sum(v <= within_mm for v in nearest)} (nearest: median "
        f"{float(np.median(nearest)):.1f} mm, largest {max(nearest):.1f} mm).",
        "",
    ]


def _truth_fields(data_label: str, decided: str | None) -> dict[str, Any]:
    """A row's ``true_label`` (TM where the crop holds a nodule's centre), the data set's ``data_label``,
    and ``label_scored`` False where it shows only part of one."""
    return {
        "true_label": "TM" if decided == "TM" else data_label,
        "data_label": data_label,
        "label_scored": decided != "part",
    }


def _truth_text(truth: dict[str, str], data_labels: bool) -> str:
    if data_labels:
        return "the data set's labels"
    tm = sum(v == "TM" for v in truth.values())
    return (
        f"the data set's labels, except {tm} TB scan(s) whose crop holds an annotated nodule's centre"
        f" (scored as TM) and {len(truth) - tm} whose crop shows only part of one (their label not scored)"
    )


def rescore(result: dict[str, Any], data_labels: bool = False) -> dict[str, Any]:
    """``result`` (a run's JSON) with each row's truth decided again as :func:`run` decides it now (rows of
    runs before session 66 hold the data set's label as ``true_label``)."""
    data = Path(result["data"])
    rows = [dict(r) for r in result["rows"]]
    with (data / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        wanted = {r["uuid"] for r in rows}
        manifest = [r for r in csv.DictReader(fh) if r["uuid"] in wanted]
    truth = {} if data_labels else shown_nodule_truth(data, manifest)
    for r in rows:
        r.update(_truth_fields(str(r.get("data_label", r["true_label"])), truth.get(r["uuid"])))
    return dict(result, rows=rows, truth=_truth_text(truth, data_labels))


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
        "Truth: " + result.get("truth", "the data set's labels") + ".",
        "",
        *label_lines(rows, unit="scans"),
        "",
        *operating_point_lines(rows, "scans"),
        *_errors(rows),
        *nodule_lines(rows),
        "| method | scans | label right |",
        "| --- | --- | --- |",
    ]
    for m in sorted({r["method"] for r in rows}):
        rs = [r for r in rows if r["method"] == m and r.get("label_scored", True)]
        md.append(f"| {m} | {len(rs)} | {sum(r['label'] == r['true_label'] for r in rs)}/{len(rs)} |")
    if all("augmentation" in r for r in rows):  # rows of runs before session 12 lack it
        md += ["", *augmentation_lines(rows, "scans")]
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--patients", default="", help="comma-separated patient keys (instead of --split)")
    ap.add_argument("--stem", default="label_accuracy")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("label_accuracy"))
    ap.add_argument("--pixel-mm", type=float, default=None, help="resample each scan to square pixels of MM")
    ap.add_argument("--data-labels", action="store_true", help="score the manifest's labels as they are")
    ap.add_argument(
        "--rescore", type=Path, default=None, help="a run's JSON: decide its truth again, no scanning"
    )
    args = ap.parse_args()
    if args.rescore is not None:
        result = rescore(json.loads(args.rescore.read_text(encoding="utf-8")), args.data_labels)
        write_results(args.out, args.stem, result, summarise(result))
        return
    if args.data is None:
        ap.error("--data is required unless --rescore is given")
    torch.set_num_threads(args.threads)
    from medforensics.scan.detector import bundled_dir

    patients = {p for p in args.patients.split(",") if p}
    result = run(
        args.data, args.split, args.model or bundled_dir(), patients, args.pixel_mm, args.data_labels
    )
    write_results(args.out, args.stem, result, summarise(result))


if __name__ == "__main__":
    main()
