"""``medforensics evaluate`` of a detector the scan runs (the dense localiser, the bundled default).

A zoo model is scored on the samples it was trained on (a crop or cube around each site: :mod:`.runner`).
The dense localiser has to find the edit as well as judge it, so it is scored the way ``scan`` uses it: every
scan of a forge data set's split (``manifest.csv``, ``scans/<uuid>/``, ``masks/``) goes through
:func:`~medforensics.scan.pipeline.scan_volume` (the network, the operating points, the duplicated-region and
metadata checks, the TB/TM/FB/FM label) and the series results are compared with the data set's truth:

- real/fake at the scan's own verdicts (each series held to its operating point: ``threshold`` per row),
  ROC-AUC and TPR at 1 % FPR of the calibrated series score, per data-set label and per attack method;
- the TB/TM/FB/FM(/SYN) label the scan gives against the true one (``labels``: accuracy, confusion);
- localisation: the top finding's distance from the centre of the edit's mask (within
  :data:`LOCALISED_MM`), and the strongest region's whether or not it was flagged;
- calibration (ECE, reliability bins) of the series score.

``evaluation.json`` holds all of it plus one row per scan (uuid, truth, score, verdict, label, distances);
the figures are the label confusion, the ROC, the score distributions and the reliability diagram.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medforensics._atomic import atomic_path, check_folder_output, check_writable
from medforensics.errors import ConfigError, InputError, MedforensicsError
from medforensics.evaluate import plots
from medforensics.evaluate.calibration import reliability
from medforensics.evaluate.metrics import binary_metrics, class_report, roc_auc
from medforensics.io.volume import Volume

#: A tampered scan is localised when its top finding's centre lies this close to the edit's (issue 5).
LOCALISED_MM = 10.0
#: Data-set labels of scans that are not authentic; every label, in the order tables show them.
FAKE_TYPES = ("FB", "FM", "SYN")
LABEL_ORDER = ("TB", "TM", "FB", "FM", "SYN")
CTGAN_LABELS = LABEL_ORDER[:4]
EVALUATION = "evaluation.json"
Progress = Callable[[int, int, str], None]


@dataclass
class ScanRow:
    """One data-set scan and what the scan made of it."""

    uuid: str
    type: str
    method: str
    patient: str
    split: str
    score: float | None = None
    verdict: str | None = None
    label: str | None = None
    threshold: float | None = None
    distance_mm: float | None = None  # top flagged finding to the edit's centre (tampered scans)
    strongest_mm: float | None = None  # the map's strongest region, flagged or not
    centre_known: bool = False  # a tampered scan whose edit's centre the data set gives (mask or point)
    error: str | None = None
    experiment: str = ""  # a CT-GAN layout's label file (labels_exp1.csv: exp1)


def manifest_rows(root: Path, split: str) -> list[dict[str, str]]:
    """The rows of a forge data set's ``manifest.csv`` in ``split`` (``all``: every row)."""
    from medforensics.forge.dataset_layout import read_manifest

    chosen = [r for r in read_manifest(root) if split == "all" or r["split"] == split]
    if not chosen:
        raise ConfigError(f"no scans in the {split} split; use --split all", path=str(root))
    return chosen


@dataclass
class Labelled:
    """One data-set scan to evaluate: its identity and truth (a :class:`ScanRow` to fill), where it lives and
    how to find its edits' centres (voxels, z y x) in the loaded volume."""

    row: ScanRow
    path: Path
    centres: Callable[[Volume], list[np.ndarray]]


def data_set_scans(root: Path, split: str) -> list[Labelled]:
    """The scans of ``split`` (``all``: every one) of a forge data set (``manifest.csv``: the edit's centre is
    its mask's) or of a CT-GAN-layout folder (``labels_exp*.csv`` / ``labels.csv`` and a scan per uuid, as
    the public CT-GAN data set: its labelled points; a ``splits.csv`` beside them gives patients and splits,
    else every scan is a test scan)."""
    if (root / "manifest.csv").is_file():
        return [
            Labelled(
                ScanRow(r["uuid"], r["type"], r["method"], r["patient"], r["split"]),
                root / "scans" / r["uuid"],
                functools.partial(_mask_centre, root / "masks" / f"{r['uuid']}.nii.gz"),
            )
            for r in manifest_rows(root, split)
        ]
    from medforensics.io.datasets.ctgan import CTGANDataset
    from medforensics.train.data import read_splits

    if not any(root.glob("labels*.csv")):
        raise InputError(
            "neither a forge data set (manifest.csv) nor a CT-GAN layout (labels_exp*.csv)", path=root
        )
    splits = read_splits(root / "splits.csv") if (root / "splits.csv").is_file() else {}
    out = []
    for (exp, uuid), samples in sorted(CTGANDataset(root).scans().items()):
        patient, where = splits.get(uuid, ("", "test"))
        if split != "all" and where != split:
            continue
        kind = samples[0].label
        method = {"FM": "inject (not recorded)", "FB": "remove (not recorded)"}.get(kind, "none")
        key = f"{exp}/{uuid}" if exp else uuid
        row = ScanRow(key, kind, method, patient, where, experiment=exp)
        out.append(Labelled(row, samples[0].series_path, functools.partial(_label_points, samples)))
    if not out:
        raise ConfigError(f"no labelled scans in the {split} split; use --split all", path=str(root))
    return out


def _mask_centre(mask_path: Path, volume: Volume) -> list[np.ndarray]:
    from medforensics.io.nifti import read_nifti

    if not mask_path.is_file():
        return []
    mask = read_nifti(mask_path).array > 0
    return [np.argwhere(mask).mean(axis=0)] if mask.shape == volume.shape and mask.any() else []


def _label_points(samples: list[Any], volume: Volume) -> list[np.ndarray]:
    found = []
    for s in samples:
        try:
            loc = s.locate(volume)
        except InputError:  # a point outside the scan: no centre to measure against
            continue
        if loc is not None:
            found.append(np.asarray(loc.center_voxel, np.float64))
    return found


def _distance(centre: Any, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    return float(np.linalg.norm((np.asarray(centre, np.float64) - truth) * np.asarray(spacing)))


def is_scan_level(model_dir: str | Path | None) -> bool:
    """Whether ``evaluate`` scores this model folder at scan level: the bundled detector (None) or a
    dense localiser's folder (by its ``config.json``)."""
    from medforensics.scan.detector import is_dense_folder

    return model_dir is None or is_dense_folder(model_dir)


def scan_row(detectors: tuple[Any, Any], item: Labelled) -> ScanRow:
    """Scan one data-set scan as ``medforensics scan`` would (with its CT and 2-D ``detectors``) and
    compare it with its truth: the distances are to the nearest of its edits' centres."""
    from medforensics.io.reader import read_volume
    from medforensics.scan.pipeline import scan_volume

    row = replace(item.row)
    try:
        vol = read_volume(item.path)
    except MedforensicsError as err:
        row.error = err.reason
        return row
    res = scan_volume(vol, detectors[0], detector2d=detectors[1], explain=None, path=str(item.path))
    if res.error:
        row.error = res.error
        return row
    row.score, row.verdict, row.label = res.score, res.verdict, res.label
    row.threshold = res.extra.get("threshold")
    truth = item.centres(vol) if row.type in ("FB", "FM") else []
    row.centre_known = bool(truth)
    if not truth:
        return row

    def nearest(centre: Any) -> float:
        return min(_distance(centre, t, vol.spacing) for t in truth)

    found = [f for f in res.findings if f.type in ("injected", "removed") and f.center_voxel]
    if found:  # the top finding: the strongest flagged region (a duplicated one's copy included)
        row.distance_mm = nearest(max(found, key=lambda f: f.score).center_voxel)
    tops = res.extra.get("top_candidates") or []
    if tops:
        row.strongest_mm = nearest(tops[0]["center_voxel"])
    return row


def _headline(rows: list[ScanRow]) -> dict[str, Any]:
    """A group of scanned rows' count, AUC, verdict accuracy and TB/TM/FB/FM label accuracy."""
    y = [r.type in FAKE_TYPES for r in rows]
    ctgan = [r.label == r.type for r in rows if r.type in CTGAN_LABELS]
    return {
        "n": len(rows),
        "roc_auc": roc_auc(np.asarray(y, np.int64), np.asarray([r.score for r in rows], np.float64)),
        "accuracy": _rate([(r.verdict != "authentic") == t for r, t in zip(rows, y, strict=True)]),
        "label_accuracy": _rate(ctgan),
    }


def _located(row: ScanRow) -> bool:
    """A tampered (FB, FM) scan whose edit's centre the data set gives."""
    return row.type in ("FB", "FM") and row.centre_known


def _within(distance_mm: float | None) -> bool:
    """Localised: a distance measured and within :data:`LOCALISED_MM`."""
    return distance_mm is not None and distance_mm <= LOCALISED_MM


def _rate(hits: list[bool]) -> float | None:
    return float(np.mean(hits)) if hits else None


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.median(known)) if known else None


def scan_metrics(rows: list[ScanRow], max_fpr: float = 0.01) -> dict[str, Any]:
    """The metrics of :mod:`this module <medforensics.evaluate.scan_level>` over the scanned rows."""
    ok = [r for r in rows if r.error is None]
    if not ok:
        raise ConfigError(f"no scan could be scanned ({len(rows)} error(s), first: {rows[0].error})")
    y = np.asarray([r.type in FAKE_TYPES for r in ok], np.int64)
    score = np.asarray([r.score for r in ok], np.float64)
    pred = np.asarray([r.verdict != "authentic" for r in ok], np.float64)
    op = binary_metrics(y, pred, 0.5, max_fpr, rank_score=score)  # at the verdicts; AUC from the scores
    op["threshold"] = sorted({r.threshold for r in ok if r.threshold is not None})
    op["decision_rule"] = {
        "kind": "verdict",
        "text": "the scan's verdict (series score >= its operating point's threshold)",
    }
    types = [t for t in LABEL_ORDER if any(r.type == t for r in ok)]
    names = [t for t in LABEL_ORDER if t in types or any(r.label == t for r in ok)]  # given ones too
    given = [names.index(r.label) if r.label in names else -1 for r in ok]  # -1: none (counted wrong)
    truth = [names.index(r.type) for r in ok]
    labels = class_report(truth, given, names)
    labels["decision_rule"] = {"kind": "scan label", "text": "the TB/TM/FB/FM label the scan gives"}
    ctgan = [r for r in ok if r.type in CTGAN_LABELS]  # the CT-GAN data set's four (issue 4's target)
    right = sum(r.label == r.type for r in ctgan)
    share = right / len(ctgan) if ctgan else None
    labels["tb_tm_fb_fm"] = {"n": len(ctgan), "right": right, "accuracy": share}
    per_label = {
        t: {
            "n": len(sel := [r for r in ok if r.type == t]),
            "truth": "fake" if t in FAKE_TYPES else "real",
            "accuracy": float(np.mean([(r.verdict != "authentic") == (t in FAKE_TYPES) for r in sel])),
            "label_accuracy": float(np.mean([r.label == t for r in sel])),
            "mean_score": float(np.mean([r.score for r in sel])),
            "median_score": float(np.median([r.score for r in sel])),
        }
        for t in types
    }
    per_method: dict[str, Any] = {}
    for m in sorted({r.method for r in ok if r.type in FAKE_TYPES}):
        sel = (y == 0) | np.asarray([r.method == m and r.type in FAKE_TYPES for r in ok])
        mine = [r for r in ok if r.method == m and r.type in FAKE_TYPES]
        per_method[m] = {
            "n": len(mine),
            "roc_auc": roc_auc(y[sel], score[sel]),
            "flagged": float(np.mean([r.verdict != "authentic" for r in mine])),
            # of its edits whose centre the data set gives (a whole synthetic volume has no place)
            "localised": _rate([_within(r.distance_mm) for r in mine if _located(r)]),
        }
    per_experiment = {  # the CT-GAN data set's experiments (blind, open) apart
        e: _headline([r for r in ok if r.experiment == e]) for e in sorted({r.experiment for r in ok} - {""})
    }
    located = [r for r in ok if _located(r)]
    ece, bins = reliability(y, score)
    return {
        "level": "scan",
        "max_fpr": max_fpr,
        "operating_point": op,
        "per_label": per_label,
        "per_method": per_method,
        **({"per_experiment": per_experiment} if per_experiment else {}),
        "labels": labels,
        "localisation": {
            "within_mm": LOCALISED_MM,
            "tampered": sum(r.type in ("FB", "FM") for r in ok),
            "tampered_located": len(located),  # the rates are of these: the edit's centre is known
            "top_finding_within": _rate([_within(r.distance_mm) for r in located]),
            "strongest_region_within": _rate([_within(r.strongest_mm) for r in located]),
            "median_distance_mm": _median([r.distance_mm for r in located]),
        },
        "calibration": {"method": "the detector's own (series score)", "ece": ece, "reliability": bins},
        "n_errors": len(rows) - len(ok),
    }


def evaluate_scans(
    model_dir: str | Path | None,
    data: str | Path,
    out: str | Path,
    split: str = "test",
    progress: Progress | None = None,
    limits: tuple[float | None, float | None] = (None, None),
    jobs: int = 1,
) -> dict[str, Any]:
    """Scan every scan of ``split`` (``test`` or ``all``) of the data set ``data`` (:func:`data_set_scans`)
    with the detector in ``model_dir`` (None: the bundled one) and write ``evaluation.json`` and the figures
    into ``out`` (a new or empty folder, or an earlier evaluation; written whole, atomically).
    ``progress(index, total, label)`` follows the scans; ``limits``: the largest slice spacing and pixel
    (mm) to score, as ``scan``'s ``--max-slice-mm`` and ``--max-pixel-mm`` (None: the detector's own);
    ``jobs`` > 1: that many scans at a time in worker processes (:mod:`~medforensics.evaluate.scan_workers`;
    the same rows)."""
    from medforensics.scan.detector import scan_detectors, with_limits

    if split not in ("test", "all"):
        raise ConfigError(f"split must be 'test' or 'all', got {split!r}")
    root, out = Path(data), Path(out)
    check_writable(out, folder=True)
    check_folder_output(out, [p for p in (model_dir, root) if p is not None], marker=EVALUATION)
    det, det2 = scan_detectors(model_dir)
    with_limits(det, *limits)
    chosen = data_set_scans(root, split)
    t0 = time.perf_counter()
    if jobs > 1:
        from medforensics.evaluate.scan_workers import rows_in_workers, worker_setup

        found: Generator[ScanRow, None, None] = rows_in_workers(
            chosen, worker_setup(model_dir, limits, jobs), jobs
        )
    else:
        found = (scan_row((det, det2), item) for item in chosen)
    rows = []
    if progress is not None:
        progress(0, len(chosen), str(chosen[0].path))
    with contextlib.closing(found):  # an interrupt stops the workers at once
        for row in found:  # in the data set's order, whatever ``jobs``
            rows.append(row)
            if progress is not None and len(rows) < len(chosen):
                progress(len(rows), len(chosen), str(chosen[len(rows)].path))
    if progress is not None:
        progress(len(chosen), len(chosen), "")
    result = scan_metrics(rows)
    result.update(
        model=det.info.to_dict(),
        model_dir=str(model_dir) if model_dir is not None else "bundled",
        data=str(root),
        split=split,
        limits_mm={
            "max_slice": getattr(det, "max_slice_mm", None),
            "max_pixel": getattr(det, "max_pixel_mm", None),
        },
        n=len(rows) - result["n_errors"],
        seconds=round(time.perf_counter() - t0, 2),  # scanning, the model's loading not included
        jobs=jobs,
        scans=[asdict(r) for r in rows],
    )
    with atomic_path(out) as tmp:
        tmp.mkdir()
        _write(result, tmp, rows)
    return result


def _write(result: dict[str, Any], out: Path, rows: list[ScanRow]) -> None:
    ok = [r for r in rows if r.error is None]
    y = np.asarray([r.type in FAKE_TYPES for r in ok], np.int64)
    score = np.asarray([r.score for r in ok], np.float64)
    lab = result["labels"]
    thr = result["operating_point"]["threshold"]
    result["figures"] = {
        "confusion": plots.confusion_png(
            lab["confusion"], lab["classes"], out / "confusion.png", rule=lab["decision_rule"]["text"]
        ).name,
        "roc": plots.roc_png(y, score, out / "roc.png").name,
        "scores": plots.score_distributions_png(
            score, [r.type for r in ok], out / "scores.png", thr[0] if len(thr) == 1 else None
        ).name,
        "reliability": plots.reliability_png(
            result["calibration"]["reliability"], result["calibration"]["ece"], out / "reliability.png"
        ).name,
    }
    (out / EVALUATION).write_text(json.dumps(result, indent=1), encoding="utf-8")
