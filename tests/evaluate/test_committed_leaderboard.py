"""Issue 4: every registered model appears in the committed leaderboard with numbers from a real run."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from medforensics.models import list_models
from medforensics.models.registry import is_dense

LEADERBOARD = Path(__file__).resolve().parents[2] / "benchmarks" / "leaderboard" / "leaderboard.csv"


def test_every_registered_model_has_a_row_with_real_numbers() -> None:
    """Dense localisers are benchmarked at scan level (``dense.md``), every other model here: a model
    registered without a run of ``medforensics benchmark`` fails this test."""
    with LEADERBOARD.open(encoding="utf-8") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {n for n in list_models() if not is_dense(n)}
    for name, row in rows.items():
        for col in ("in_dist_auc", "unseen_auc_mean", "train_s", "img_per_s"):
            value = float(row[col])
            assert math.isfinite(value) and value > 0, (name, col, row[col])
