"""Probe (session 68): does ``anomaly_residual`` carry across slice protocols better on its relative
noise-deficit features alone (the crop's centre against its own ring) than with the two absolute ones
(``mad_median``, ``std_median``: the crop's noise level, which differs between protocols)?

Over the eight leak-free draws of ``draws.py`` (seed 1: ``/tmp/s67/ds1``, seeds 2-8: ``--work`` folder's
``ds_seed<S>``), the detector is fitted on each draw's train authentic crops as the benchmark fits it, and the
test crops are scored with all seven features per plane, the five relative ones, and the two absolute
ones. Unseen-attack AUC per method = authentic test crops against that method's (what the benchmark's
leave-one-attack-out gives a detector fitted on authentic crops only). Prints a line per draw; writes
``--out`` JSON.

    python benchmarks/leaderboard/residual_features_probe.py --ds1 /tmp/s67/ds1 --work /tmp/s67/draws2 \
        --out /tmp/resid.json
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from medforensics.evaluate.benchmark import BenchmarkConfig, load_samples, spec_of
from medforensics.features.prediction import DEFICIT_NAMES
from medforensics.models.anomaly import ResidualAnomalyDetector
from medforensics.train.data import AUTHENTIC_LABELS, Sample

ABSOLUTE = ("mad_median", "std_median")
VARIANTS = ("all", "relative", "absolute")


def variants(width: int) -> dict[str, list[int]]:
    """Feature columns of each variant (the features are ``len(DEFICIT_NAMES)`` per plane)."""
    absolute = [i for i in range(width) if DEFICIT_NAMES[i % len(DEFICIT_NAMES)] in ABSOLUTE]
    return {
        "all": list(range(width)),
        "relative": [i for i in range(width) if i not in absolute],
        "absolute": absolute,
    }


def draw(data: str, out: str) -> dict[str, Any]:
    """Fit on one draw's train authentic crops; AUCs of each variant on its test crops."""
    cfg = BenchmarkConfig(out=out + ".d", models=["anomaly_residual"])
    samples = load_samples(data, spec_of("anomaly_residual", cfg), cfg)
    train = [s for s in samples if s.meta.get("split") == "train" and s.label in AUTHENTIC_LABELS]
    test = [s for s in samples if s.meta.get("split") == "test"]
    det = ResidualAnomalyDetector()
    det.fit(np.stack([s.array for s in train]), np.zeros(len(train), int))
    f_tr = det.features(np.stack([s.array for s in train])).astype(np.float64)
    f_te = det.features(np.stack([s.array for s in test])).astype(np.float64)
    z_all = (f_te - f_tr.mean(0)) / (f_tr.std(0) + 1e-6)
    authentic = np.array([s.label in AUTHENTIC_LABELS for s in test])
    methods = sorted({str(s.meta.get("method")) for s in test if s.label not in AUTHENTIC_LABELS})
    row: dict[str, Any] = {"test_patients": sorted({s.group for s in test})}
    for name, cols in variants(f_tr.shape[1]).items():
        score = np.sqrt((np.minimum(z_all[:, cols], 0.0) ** 2).sum(1))
        per_method = {m: _auc(authentic, score, test, m) for m in methods}
        row[name] = {
            "unseen_mean": float(np.mean(list(per_method.values()))),
            "in_dist": float(roc_auc_score(~authentic, score)),
            "per_method": per_method,
        }
    return row


def _auc(authentic: NDArray[np.bool_], score: NDArray[np.float64], test: list[Sample], method: str) -> float:
    sel = authentic | np.array([s.meta.get("method") == method for s in test])
    return float(roc_auc_score(~authentic[sel], score[sel]))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--ds1", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    res = {}
    for seed in range(1, 9):
        row = draw(args.ds1 if seed == 1 else f"{args.work}/ds_seed{seed}", args.out)
        res[seed] = row
        cells = {k: (round(row[k]["unseen_mean"], 3), round(row[k]["in_dist"], 3)) for k in VARIANTS}
        print(seed, row["test_patients"], cells, flush=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=1)
    for k in VARIANTS:
        unseen = np.mean([r[k]["unseen_mean"] for r in res.values()])
        print(
            k,
            "unseen mean",
            round(float(unseen), 3),
            "in-dist",
            round(float(np.mean([r[k]["in_dist"] for r in res.values()])), 3),
        )


if __name__ == "__main__":
    main()
