"""One line per run of ``benchmarks/scan_accuracy.py``: several runs' JSON files side by side.

For each file: tampered series localised (flagged, top finding within 10 mm), flagged, authentic series
flagged (all, and those held to the scanner-noise point), the AUC of all series held to the scanner-noise
operating point, labels right, the highest authentic score, and localised per attack. Prints Markdown;
``--out`` also writes it.

Two models with different operating points flag different numbers of authentic series, so their
"localised" counts are not comparable as they stand. ``--equal-fa K`` adds a column that is: among the
series held to the scanner-noise point, the tampered ones localised when the threshold is set so that
exactly K of the authentic ones score above it (the model's own ranking, not its threshold). ``--total``
adds a row of all the runs' series together (for example two draws of one model).

    python benchmarks/scan_accuracy_table.py RUN.json ... [--equal-fa K] [--total NAME] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def near(row: dict[str, Any]) -> bool:
    """The row's top finding lies within 10 mm of the edit."""
    return (row.get("top_distance_mm") or 1e9) <= 10


def localised(rows: list[dict[str, Any]]) -> int:
    """Rows flagged with their top finding within 10 mm of the edit."""
    return sum(1 for r in rows if r["verdict"] == "tampered" and near(r))


def at_false_alarms(rows: list[dict[str, Any]], k: int) -> str:
    """Tampered series localised at the threshold that lets ``k`` authentic ones through, both among the
    series held to the scanner-noise point: ``"n/N (t)"``, ``t`` that threshold."""
    held = [r for r in rows if r.get("operating_point") == "scanner noise"]
    aut = sorted((r["score"] for r in held if r["kind"].startswith("authentic")), reverse=True)
    tam = [r for r in held if not r["kind"].startswith("authentic")]
    t = aut[k] if k < len(aut) else float("-inf")
    hit = sum(1 for r in tam if r["score"] > t and near(r))
    return f"{hit}/{len(tam)} ({t:.3f})"


def run_line(name: str, result: dict[str, Any], equal_fa: int | None = None) -> str:
    """The Markdown row of one run (``equal_fa``: with :func:`at_false_alarms`' column)."""
    from medforensics.evaluate.metrics import roc_auc

    rows = [r for r in result["rows"] if not r.get("error")]
    tam = [r for r in rows if not r["kind"].startswith("authentic")]
    aut = [r for r in rows if r["kind"].startswith("authentic")]
    held = [r for r in rows if r.get("operating_point") == "scanner noise"]
    held_aut = [r for r in held if r["kind"].startswith("authentic")]
    truth = [0 if r["kind"].startswith("authentic") else 1 for r in held]
    auc = roc_auc(truth, [r["score"] for r in held]) if 0 < sum(truth) < len(truth) else None
    per = ", ".join(
        f"{kind} {localised([r for r in tam if r['kind'] == kind])}/{sum(r['kind'] == kind for r in tam)}"
        for kind in sorted({r["kind"] for r in tam})
    )
    return (
        f"| {name} | {localised(tam)}/{len(tam)} | {sum(r['verdict'] == 'tampered' for r in tam)} | "
        f"{sum(r['verdict'] == 'tampered' for r in aut)}/{len(aut)} | "
        f"{sum(r['verdict'] == 'tampered' for r in held_aut)}/{len(held_aut)} | "
        f"{'-' if auc is None else f'{auc:.3f}'} | "
        f"{sum(r.get('label') == r.get('true_label') for r in rows)}/{len(rows)} | "
        f"{max((r['score'] for r in aut), default=float('nan')):.3f} | {per} |"
        + ("" if equal_fa is None else f" {at_false_alarms(rows, equal_fa)} |")
    )


def table(paths: list[Path], equal_fa: int | None = None, total: str | None = None) -> str:
    """The Markdown table of the runs in ``paths`` (``total``: the name of a row of all of them)."""
    head = (
        "| run | localised | flagged | authentic flagged | of them at the scanner-noise point | "
        "AUC (scanner noise) | labels right | highest authentic | localised per attack |"
    )
    rule = "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    if equal_fa is not None:
        head += f" localised, {equal_fa} authentic above (threshold) |"
        rule += " --- |"
    runs = [(p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in paths]
    if total is not None:
        runs.append((total, {"rows": [r for _, run in runs for r in run["rows"]]}))
    md = [head, rule] + [run_line(name, run, equal_fa) for name, run in runs]
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--equal-fa", type=int, default=None, help="localised with K authentic series above")
    ap.add_argument("--total", default=None, help="name of a row of all the runs together")
    args = ap.parse_args()
    text = table(args.runs, args.equal_fa, args.total)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
