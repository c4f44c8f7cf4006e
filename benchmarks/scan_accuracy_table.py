"""One line per run of ``benchmarks/scan_accuracy.py``: several runs' JSON files side by side.

For each file: tampered series localised (flagged, top finding within 10 mm), flagged, authentic series
flagged, the AUC of all series held to the scanner-noise operating point, labels right, the highest
authentic score, and localised per attack. Prints Markdown; ``--out`` also writes it.

    python benchmarks/scan_accuracy_table.py RUN.json ... [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def localised(rows: list[dict[str, Any]]) -> int:
    """Rows flagged with their top finding within 10 mm of the edit."""
    return sum(1 for r in rows if r["verdict"] == "tampered" and (r.get("top_distance_mm") or 1e9) <= 10)


def run_line(name: str, result: dict[str, Any]) -> str:
    """The Markdown row of one run."""
    from medforensics.evaluate.metrics import roc_auc

    rows = [r for r in result["rows"] if not r.get("error")]
    tam = [r for r in rows if not r["kind"].startswith("authentic")]
    aut = [r for r in rows if r["kind"].startswith("authentic")]
    held = [r for r in rows if r.get("operating_point") == "scanner noise"]
    truth = [0 if r["kind"].startswith("authentic") else 1 for r in held]
    auc = roc_auc(truth, [r["score"] for r in held]) if 0 < sum(truth) < len(truth) else None
    per = ", ".join(
        f"{kind} {localised([r for r in tam if r['kind'] == kind])}/{sum(r['kind'] == kind for r in tam)}"
        for kind in sorted({r["kind"] for r in tam})
    )
    return (
        f"| {name} | {localised(tam)}/{len(tam)} | {sum(r['verdict'] == 'tampered' for r in tam)} | "
        f"{sum(r['verdict'] == 'tampered' for r in aut)}/{len(aut)} | "
        f"{'-' if auc is None else f'{auc:.3f}'} | "
        f"{sum(r.get('label') == r.get('true_label') for r in rows)}/{len(rows)} | "
        f"{max((r['score'] for r in aut), default=float('nan')):.3f} | {per} |"
    )


def table(paths: list[Path]) -> str:
    """The Markdown table of the runs in ``paths``."""
    md = [
        "| run | localised | flagged | authentic flagged | AUC (scanner noise) | labels right | "
        "highest authentic | localised per attack |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    md += [run_line(p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in paths]
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    text = table(args.runs)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
