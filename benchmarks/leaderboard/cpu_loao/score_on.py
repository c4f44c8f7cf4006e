"""A dense model folder scored on another data set's validation and test scans, as its training would have.

The leave-one-attack-out comparison needs figures on the same test scans: bundle14's unseen-attack mean
(0.753) was measured on session 11's ds6, which a checkout before commit 3adc39f forges again
(`README.md`). This copies the model's weights into ``--out`` and runs
:func:`~medforensics.train.dense.finish_dense` there with the data set, patient split and whole authentic
series of ``--data`` (everything else is the model's own config), so the figures of the current code can
be checked against the stored ones before they are compared with new models.

    python benchmarks/leaderboard/cpu_loao/score_on.py --model src/medforensics/assets/detector \\
        --data /work/cpu_loao/ds6_b14 --out /work/cpu_loao/b14_on_ds6_b14 [--split-of PATIENT=SPLIT ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from make_dense_detector import whole_series_by_split

from medforensics.train.dense import finish_dense
from medforensics.train.dense_config import DenseConfig, load_dense_config

#: bundle14's split (its config's ``splits``), the default.
B14_SPLIT = ("93ad6a507f90=val", "3bb5d67ab461=test", "3ad2ceaeb677=train", "f255db4ba233=train")


def config_on(
    model: Path, data: Path, splits: dict[str, str], out: Path, threads: int, calibrate: bool = False
) -> DenseConfig:
    """The model folder's config with ``data``'s scans, patient split and whole authentic series (CPU, no
    resume or initial weights, no lossy point): how the model is scored on another data set."""
    whole = whole_series_by_split(data, splits)
    cfg = load_dense_config(model / "config.json", out=str(out))
    return replace(
        cfg,
        data=str(data),
        splits=splits,
        extra_authentic=whole["train"],
        val_authentic=whole["val"],
        test_authentic=whole["test"],
        threads=threads,
        device="cpu",
        workers=0,
        load_workers=0,
        init_from=None,
        resume=None,
        scan_calibration=calibrate,
        lossy_codecs=[],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split-of", action="append", default=None, metavar="PATIENT=SPLIT")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calibrate", action="store_true", help="Also fit the operating points (slower).")
    args = ap.parse_args()
    splits = dict(p.split("=", 1) for p in (args.split_of or B14_SPLIT))
    cfg = config_on(args.model, args.data, splits, args.out, args.threads, args.calibrate)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "train_log.csv"):
        if (args.model / name).is_file():
            shutil.copy2(args.model / name, args.out / name)
    res = finish_dense(cfg, f"{args.model} scored on {args.data}")
    test = res["test"]
    print(json.dumps({"test_auc": test.get("auc"), "per_method": test.get("auc_per_method")}, indent=1))


if __name__ == "__main__":
    main()
