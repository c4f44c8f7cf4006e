"""Fit a dense detector folder's operating points again on validation series scored as ``scan`` scores
them, with a second operating point for series whose noise is uncorrelated between slices
(:mod:`medforensics.train.dense_calibration`). Rewrites ``calibration.json`` (the training one is kept as
``calibration_training.json``), ``calibration_scores.json`` and the model card in the folder.

    python benchmarks/leaderboard/recalibrate_dense.py --model DIR --data DS [--noise-copies 3] [--seed 0] \
        [--views 4 [--screen 0.85]] [--split-of PATIENT=SPLIT ...] [--augmented]

The whole authentic training series (``extra_authentic``) and whole validation series (``val_authentic``)
come from the folder's ``config.json``; ``--path-map OLD=NEW`` rewrites their prefixes when the data moved.
``--views`` averages each map over that many in-plane views (4: the mirrors; 8: their transposes too;
recorded in ``calibration.json``, so ``scan`` does the same); ``--screen`` draws the views after the first
only where the first view's raw evidence reaches it (:mod:`medforensics.models.view_refine`; recorded as
well). ``--split-of`` deals a patient key to a split as the model was trained (a data set forged again may
deal its patients otherwise; the split is not written to the folder's config). The folder's ``config.json``
records what was fitted, so that training with it fits the same points: ``calibrate_augmented`` (set to
``--augmented``) or, with ``--lossy-only``, ``lossy_codecs``.

``--augmented``: every threshold also kept above the whole validation and training series under each of the
seed study's rotations, brightness factors and flips
(:func:`~medforensics.train.dense_calibration.augmented_copies`).

``--lossy-only``: keep the calibration as it is and add the operating point for series stored lossy
(:func:`~medforensics.train.dense_calibration.add_lossy_point`: the same validation and whole authentic
training series, each coded with every ``--codecs`` codec of ``forge.lossy.LOSSY_CODECS``); its scores go
to ``calibration_lossy_scores.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    from medforensics.forge.lossy import DEFAULT_LOSSY_CODECS
    from medforensics.train.dense_calibration import (
        NOISE_COPIES,
        add_lossy_point,
        recalibrate,
        write_recalibration,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--noise-copies", type=int, default=NOISE_COPIES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--path-map", action="append", default=[], metavar="OLD=NEW")
    ap.add_argument("--views", type=int, default=1, help="in-plane views averaged into each map (1-8)")
    ap.add_argument("--screen", type=float, default=None, help="1st view's evidence drawing the others")
    ap.add_argument("--split-of", action="append", default=[], metavar="PATIENT=SPLIT")
    ap.add_argument("--augmented", action="store_true", help="keep thresholds above augmented whole series")
    ap.add_argument("--lossy-only", action="store_true", help="only add the lossy operating point")
    ap.add_argument("--codecs", default=",".join(DEFAULT_LOSSY_CODECS), help="lossy codecs (--lossy-only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = json.loads((args.model / "config.json").read_text(encoding="utf-8"))
    splits = {**cfg.get("splits", {}), **dict(pair.split("=", 1) for pair in args.split_of)}

    def mapped(paths: list[str]) -> list[str]:
        out = []
        for p in paths:
            for pair in args.path_map:
                old, new = pair.split("=", 1)
                p = new + p[len(old) :] if p.startswith(old) else p
            out.append(p)
        return out

    if args.lossy_only:
        cal, val = add_lossy_point(
            args.model,
            args.data,
            mapped(cfg.get("extra_authentic", [])),
            mapped(cfg.get("val_authentic", [])),
            codecs=[c for c in args.codecs.split(",") if c],
            splits=splits,
        )
        write_recalibration(args.model, cal, val, "calibration_lossy_scores.json")
        record(args.model, cfg, lossy_codecs=list(cal["lossy"]["codecs"]))
        print(json.dumps(cal["lossy"], indent=1))
        return
    cal, val = recalibrate(
        args.model,
        args.data,
        mapped(cfg.get("extra_authentic", [])),
        mapped(cfg.get("val_authentic", [])),
        noise_copies=args.noise_copies,
        seed=args.seed,
        views=args.views,
        splits=splits,
        augmented=args.augmented,
        screen=args.screen,
    )
    write_recalibration(args.model, cal, val)
    record(args.model, cfg, calibrate_augmented=args.augmented)
    print(json.dumps(cal, indent=1))


def record(folder: Path, cfg: dict[str, object], **fitted: object) -> None:
    """Write the calibration settings just used into ``folder/config.json`` (the rest unchanged)."""
    from medforensics._atomic import write_text_atomic

    write_text_atomic(folder / "config.json", json.dumps({**cfg, **fitted}, indent=1))


if __name__ == "__main__":
    main()
