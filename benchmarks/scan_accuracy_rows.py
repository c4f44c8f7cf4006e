"""Two runs of ``benchmarks/scan_accuracy.py`` on the same draws (same seeds, same sources), series by series.

For two ways of drawing one model's map (four mirror views everywhere, or under a screen): whether every
series gets the same verdict and localisation, and how far the raw scores (before each calibration's Platt
map) of the series either flags lie apart. Each run's ``calibration.json`` gives its Platt map.

    python benchmarks/scan_accuracy_rows.py A.json A_CALIBRATION.json B.json B_CALIBRATION.json [--top 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from scan_accuracy_table import near

from medforensics.evaluate.calibration import invert_platt


def compare(
    a: list[dict[str, Any]], ab_a: tuple[float, float], b: list[dict[str, Any]], ab_b: tuple[float, float]
) -> dict[str, Any]:
    """Counts over paired rows and the raw score differences (largest first)."""
    if [(r["source"], r["kind"]) for r in a] != [(r["source"], r["kind"]) for r in b]:
        raise SystemExit("the runs do not hold the same series in the same order (same seeds and sources?)")
    out: dict[str, Any] = {
        "series": len(a),
        "verdicts_differ": [],
        "localised": [0, 0],
        "flagged_raw_diff": 0.0,
    }
    diffs = []
    for x, y in zip(a, b, strict=True):
        if x["verdict"] != y["verdict"]:
            out["verdicts_differ"].append(f"{x['source']} {x['kind']}: {x['verdict']} / {y['verdict']}")
        for i, r in enumerate((x, y)):
            out["localised"][i] += (
                not r["kind"].startswith("authentic") and r["verdict"] == "tampered" and near(r)
            )
        if x.get("error") or y.get("error"):
            continue
        ra, rb = invert_platt(x["score"], ab_a), invert_platt(y["score"], ab_b)
        if "tampered" in (x["verdict"], y["verdict"]):
            out["flagged_raw_diff"] = max(out["flagged_raw_diff"], abs(ra - rb))
        diffs.append((abs(ra - rb), f"{x['source']} {x['kind']}", round(ra, 4), round(rb, 4)))
    out["largest_raw_diffs"] = sorted(diffs, reverse=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("a", "a_cal", "b", "b_cal"):  # run A's JSON, its calibration.json, then B's
        ap.add_argument(name, type=Path)
    ap.add_argument("--top", type=int, default=8, help="largest raw score differences listed")
    args = ap.parse_args()
    runs, cals = (args.a, args.b), (args.a_cal, args.b_cal)
    rows = [json.loads(p.read_text(encoding="utf-8"))["rows"] for p in runs]
    abs_ = [tuple(json.loads(p.read_text(encoding="utf-8"))["platt"]) for p in cals]
    res = compare(rows[0], abs_[0], rows[1], abs_[1])
    print(f"{res['series']} series; verdicts differ for {len(res['verdicts_differ'])}")
    for line in res["verdicts_differ"]:
        print(f"  {line}")
    print(f"localised: {res['localised'][0]} / {res['localised'][1]}")
    print(f"largest raw score difference of a flagged series: {res['flagged_raw_diff']:.3g}")
    for d, name, ra, rb in res["largest_raw_diffs"][: args.top]:
        print(f"  {name}: raw {ra} / {rb} ({d:.4f})")


if __name__ == "__main__":
    main()
