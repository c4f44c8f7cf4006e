"""The Markdown tables the whole-series benchmarks share (``scan_accuracy.py``, ``label_accuracy.py``,
``label_rule.py``, ``mirror_views.py``): TB/TM/FB/FM labels and their confusion matrix, the operating points
and what each held, authentic series by augmentation; and how a run's results are written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def label_lines(rows: list[dict[str, Any]], unit: str = "series") -> list[str]:
    """Markdown: share of rows whose ``label`` equals their ``true_label`` (TB/TM/FB/FM) and the confusion
    matrix (rows true, columns given); rows without a truth, or with ``label_scored`` False, are not
    counted."""
    labels = ["TB", "TM", "FB", "FM"]
    conf: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.get("true_label") is not None and r.get("label_scored", True):
            row = conf.setdefault(r["true_label"], {})
            row[r.get("label") or "-"] = row.get(r.get("label") or "-", 0) + 1
    n = sum(sum(v.values()) for v in conf.values())
    if not n:
        return []
    right = sum(v.get(t, 0) for t, v in conf.items())
    md = [
        f"TB/TM/FB/FM label right for {right}/{n} {unit} ({right / n:.1%}); rows true, columns given:",
        "",
        "| true → given | " + " | ".join(labels) + " |",
        "| --- |" + " --- |" * len(labels),
    ]
    return md + [
        f"| {t} | " + " | ".join(str(conf[t].get(g, 0)) for g in labels) + " |" for t in labels if t in conf
    ]


def operating_points_text(cal: Any) -> str:
    """The detector's series thresholds in words (the uncorrelated-noise one when its calibration has it)."""
    text = f"series threshold {cal.operating_threshold:.4f}"
    if cal.uncorrelated is not None:
        below, thr = cal.uncorrelated
        text += f" ({thr:.4f} for series whose slice noise correlation is below {below:g})"
    return text + "."


def operating_point_lines(rows: list[dict[str, Any]], unit: str) -> list[str]:
    """Authentic and tampered ``rows`` flagged, by the operating point each was held to."""
    done = [r for r in rows if not r.get("error") and r.get("operating_point")]
    if not done:
        return []
    from medforensics.evaluate.metrics import roc_auc

    noted = all("noise_finding" in r for r in done)  # rows of runs before session 20 lack it
    md = [
        f"| operating point | authentic {unit} | flagged | tampered {unit} | flagged | label right | AUC |"
        + (" added noise reported |" if noted else ""),
        "| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if noted else ""),
    ]
    for point in sorted({r["operating_point"] for r in done}):
        rs = [r for r in done if r["operating_point"] == point]
        aut = [r for r in rs if r.get("true_label") in ("TB", "TM")]
        tam = [r for r in rs if r.get("true_label") in ("FB", "FM")]
        scored = [r for r in rs if r.get("label_scored", True)]
        right = sum(r.get("label") == r.get("true_label") for r in scored)
        truth = [0] * len(aut) + [1] * len(tam)
        auc = roc_auc(truth, [r["score"] for r in aut + tam]) if aut and tam else None
        md.append(
            f"| {point} | {len(aut)} | {sum(r['verdict'] == 'tampered' for r in aut)} | {len(tam)} | "
            f"{sum(r['verdict'] == 'tampered' for r in tam)} | {right}/{len(scored)} | "
            f"{'-' if auc is None else f'{auc:.3f}'} |"
            + (f" {sum(bool(r['noise_finding']) for r in rs)}/{len(rs)} |" if noted else "")
        )
    return [*md, ""]


def augmentation_lines(rows: list[dict[str, Any]], unit: str) -> list[str]:
    """Authentic ``rows`` (``true_label`` TB/TM) by their ``augmentation``: how many were flagged and the
    highest score. The seed study's augmentations are authentic images; a kind that draws the false alarms
    sets the operating point for all (session 12: i.i.d. Gaussian noise, which no scanner makes)."""
    aut = [r for r in rows if r.get("true_label") in ("TB", "TM") and not r.get("error")]
    md = [
        f"| authentic {unit} by augmentation | {unit} | flagged | highest score |",
        "| --- | --- | --- | --- |",
    ]
    for kind in sorted({r["augmentation"] for r in aut}):
        rs = [r for r in aut if r["augmentation"] == kind]
        top = max(float(r["score"]) for r in rs)
        md.append(f"| {kind} | {len(rs)} | {sum(r['verdict'] == 'tampered' for r in rs)} | {top:.3f} |")
    return md


def write_results(out: Path, stem: str, result: dict[str, Any], text: str) -> None:
    """``OUT/STEM.json`` (the rows) and ``OUT/STEM.md`` (``text``, also printed)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text(text)
    print(text)
