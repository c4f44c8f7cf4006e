"""``benchmarks/scan_accuracy_table.py``: the equal-false-alarm column and the pooled row, which the
session-52 comparison of two models with different operating points rests on."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "scan_accuracy_table.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scan_accuracy_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(
    kind: str, score: float, verdict: str, top: float | None = None, point: str = "scanner noise"
) -> dict:
    return {
        "kind": kind,
        "score": score,
        "verdict": verdict,
        "top_distance_mm": top,
        "operating_point": point,
        "label": "TB",
        "true_label": "TB" if kind.startswith("authentic") else "FM",
    }


ROWS = [
    _row("authentic", 0.9, "tampered"),
    _row("authentic", 0.5, "authentic"),
    _row("authentic", 0.2, "authentic"),
    _row("authentic", 0.95, "tampered", point="uncorrelated noise"),  # another operating point: not counted
    _row("blob-inject", 0.8, "tampered", top=3.0),
    _row("blob-inject", 0.6, "authentic", top=4.0),
    _row("copy-move", 0.7, "tampered", top=25.0),  # found, but not where the edit is
    _row("copy-move", 0.4, "authentic", top=2.0),
    _row("copy-move", 0.99, "tampered", top=1.0, point="uncorrelated noise"),
]


def test_at_false_alarms_sets_the_threshold_by_the_authentic_ranking() -> None:
    mod = _module()
    # no authentic above: the threshold is the highest authentic score (0.9): nothing tampered beats it
    assert mod.at_false_alarms(ROWS, 0) == "0/4 (0.900)"
    # one authentic above: threshold 0.5, the blobs at 0.8 and 0.6 count, copy-move at 0.7 is 25 mm off
    assert mod.at_false_alarms(ROWS, 1) == "2/4 (0.500)"
    # every authentic above: all localised ones count (0.4 too)
    assert mod.at_false_alarms(ROWS, 3) == "3/4 (-inf)"


def test_table_adds_the_column_and_a_pooled_row(tmp_path: Path) -> None:
    mod = _module()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"rows": ROWS[:5]}), encoding="utf-8")
    b.write_text(json.dumps({"rows": ROWS[5:]}), encoding="utf-8")
    text = mod.table([a, b], equal_fa=1, total="both")
    lines = text.splitlines()
    assert lines[0].endswith("localised, 1 authentic above (threshold) |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| a", "| b", "| both"]
    both = lines[-1].split(" | ")
    assert both[1] == "2/5"  # localised as scanned: the flagged blob and the uncorrelated-point copy-move
    assert both[3] == "2/4"  # authentic flagged, every operating point
    assert both[4] == "1/3"  # of the authentic series held to the scanner-noise point
    assert both[-1] == "2/4 (0.500) |"
    assert "localised, " not in mod.table([a])
