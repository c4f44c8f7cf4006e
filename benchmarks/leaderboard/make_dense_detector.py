"""Train, benchmark and bundle the default CT detector: the dense tamper localiser ``tamperseg3d``.

Usage (long job; about 15 min per model on 2 cores)::

    medforensics forge dataset --out /tmp/dense/ds3 --per-class 150 --seed 2 \\
        --methods blob-inject,copy-move,ctgan-inject,ctgan-remove,inpaint-remove
    python benchmarks/leaderboard/make_dense_detector.py --data /tmp/dense/ds3 --work /tmp/dense/bundle \\
        [--steps 1500] [--loao-steps 600] [--from-run DIR]
        [--device cuda --workers 2 --jobs 6 --batch-size 16]   # a GPU machine: all six models at once
        [--loao-only]              # only the leave-one-attack-out models (starting points for --fine-tune)
        [--test-held-out FROM]     # train nothing: FROM's leave-one-attack-out models tested on --data

Steps: the whole authentic series of every data-set patient are added to that patient's split (train:
negatives from outside the data set's crops; val: the series threshold is then chosen on whole series too;
test: reported). The in-distribution model is trained (or taken from ``--from-run``, a folder trained with
the same config), then one model per held-out attack method (leave-one-attack-out, ``--loao-steps``), and the
in-distribution model (or ``--bundle DIR``, for example a model trained on the train and validation
patients together) is copied into ``src/medforensics/assets/detector/`` with its calibration, metrics,
training log, config and a model card that carries both tables (``dense.md``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from medforensics.evaluate.dense_benchmark import dense_markdown, run_dense_benchmark
from medforensics.train.dense import DenseConfig

ASSETS = Path(__file__).resolve().parents[2] / "src" / "medforensics" / "assets" / "detector"
FILES = (
    "model.safetensors",
    "config.json",
    "metrics.json",
    "calibration.json",
    "train_log.csv",
    "model_card.md",
)
#: copied too when the bundled folder has them: what its operating points were fitted on
CALIBRATION_FILES = ("calibration_scores.json", "calibration_training.json", "calibration_lossy_scores.json")


def whole_series_by_split(data: Path, splits: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Paths of the data set's source series, grouped by the split their patient is in (``splits``:
    patient -> split, overriding the data set's)."""
    from medforensics.forge.dataset_sources import auto_sources

    meta = json.loads((data / "dataset.json").read_text())
    split_of = {p: s for s, ps in meta["patients_per_split"].items() for p in ps} | (splits or {})
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for src in auto_sources():
        split = split_of.get(src.patient)
        if split is not None and src.volume.source is not None:
            out[split].append(str(src.volume.source))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--loao-steps", type=int, default=600)
    ap.add_argument("--methods", default="blob-inject,copy-move,ctgan-inject,ctgan-remove,inpaint-remove")
    ap.add_argument("--from-run", type=Path, default=None, help="An in-distribution folder already trained.")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (the network; data stay on the CPU)")
    ap.add_argument("--workers", type=int, default=0, help="Batch processes per model (0: in-process).")
    ap.add_argument("--jobs", type=int, default=1, help="Models trained at once (separate processes).")
    ap.add_argument(
        "--load-workers",
        type=int,
        default=0,
        help="Processes reading the data set per model (0: in-process).",
    )
    ap.add_argument("--batch-size", type=int, default=6)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--hard-every", type=int, default=100, help="Steps between hard-negative mining rounds.")
    ap.add_argument("--hard-items", type=int, default=24, help="Random authentic scans mined each round.")
    ap.add_argument(
        "--hard-negative", type=float, default=0.4, help="Share of authentic patches on a mined point."
    )
    ap.add_argument("--lr", type=float, default=2e-3, help="Peak learning rate (one-cycle schedule).")
    ap.add_argument(
        "--fine-tune",
        type=Path,
        default=None,
        metavar="WORK",
        help="An earlier run's --work folder: each model starts from its namesake there (in-dist, loao/M).",
    )
    ap.add_argument(
        "--lossy-codecs",
        default="j2k-10,j2k-20,jls-3",
        help="Codecs of the lossy operating point fitted after training ('' for none: a device call saves "
        "the time and recalibrate_dense.py --lossy-only adds it afterwards).",
    )
    ap.add_argument(
        "--calibrate-augmented",
        action="store_true",
        help="Keep every threshold above the whole validation and training series under each of the seed "
        "study's rotations, brightness factors and flips (DenseConfig.calibrate_augmented).",
    )
    ap.add_argument(
        "--zoom-range",
        default="0.8,1.25",
        help="LO,HI: each training patch is taken this many times the patch size and resized to it (config "
        "zoom_range; session 58: 1.0,1.6 shows lesions smaller than they are)",
    )
    ap.add_argument("--zcorr", action="store_true", help="Add the inter-slice noise correlation channel.")
    ap.add_argument("--linear-head", action="store_true", help="No ReLU before the network's 1x1 head.")
    ap.add_argument(
        "--thick-mm",
        type=float,
        default=0.0,
        help="Train on thick copies too (config thick_mm; for a model of thick-slice series, see README).",
    )
    ap.add_argument("--max-slice-mm", type=float, default=None, help="scan's slice limit for the models.")
    ap.add_argument(
        "--max-pixel-mm",
        type=float,
        default=None,
        help="scan's pixel-size limit for the models (bundle14: 1.0).",
    )
    ap.add_argument(
        "--pixel-copies-mm",
        default="",
        help="Comma-separated pixel sizes (mm): train scans also resampled to each coarser one (config "
        "pixel_copies_mm; e.g. 0.9,1.1 for CT of 0.68-0.82 mm pixels).",
    )
    ap.add_argument(
        "--dose-copies",
        default="",
        help="Comma-separated fractions of the dose: train scans also as at each lower dose (config "
        "dose_copies; e.g. 0.5,0.25; session 51: the bundled model flags low-dose authentic series).",
    )
    ap.add_argument(
        "--round-trip-copies-mm",
        default="",
        help="Comma-separated voxel sizes (mm): train scans also zoomed through each and back, as the CT-GAN "
        "tool handles a scan (config round_trip_copies_mm; e.g. 1).",
    )
    ap.add_argument(
        "--self-blend",
        type=int,
        default=0,
        help="Self-blended copies of each authentic training scan (config self_blend; see README: session "
        "23's best use was a fine-tune, with --fine-tune, of models trained without them).",
    )
    ap.add_argument(
        "--self-blend-noise",
        default="mixed",
        help="How blended regions are re-noised (config self_blend_noise: mixed or fresh).",
    )
    ap.add_argument(
        "--mirror-pairs",
        action="store_true",
        help="Every batch also seen in an in-plane mirror view (config mirror_pairs; session 38's CPU "
        "fine-tune with it found 109/120 whole-series attacks, the same without 105/120, bundle14 99/120).",
    )
    ap.add_argument(
        "--mirror-consistency",
        type=float,
        default=0.0,
        help="Weight of the mirror-consistency term (config mirror_consistency; implies --mirror-pairs).",
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="Do not retrain models whose folder holds a finished run of them; resume those stopped after an "
        "evaluation (a time limit, a lost session) from their last one.",
    )
    ap.add_argument(
        "--finish",
        metavar="NOTE",
        default=None,
        help="WORK/in-dist holds only the best checkpoint of a run a time limit stopped: evaluate it (NOTE: "
        "where and how it was trained, for its card) and use it as the in-distribution model.",
    )
    ap.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="Model folder to install (default: the in-distribution one), e.g. one trained on more patients.",
    )
    ap.add_argument(
        "--split-of",
        action="append",
        default=[],
        metavar="PATIENT=SPLIT",
        help="Deal a patient to a split, overriding the data set's (config splits; repeatable), as "
        "recalibrate_dense.py does; bundle14's: 93ad6a507f90=val, 3bb5d67ab461=test, 3ad2ceaeb677=train, "
        "f255db4ba233=train.",
    )
    ap.add_argument(
        "--test-held-out",
        type=Path,
        default=None,
        metavar="FROM",
        help="Train nothing: test the leave-one-attack-out models of an earlier --work folder FROM on "
        "--data (its patients, splits and whole series), as their training would have; written into --work.",
    )
    ap.add_argument(
        "--loao-only",
        action="store_true",
        help="Train only the leave-one-attack-out models (for example starting points of a later --fine-tune "
        "run that have never seen their held-out attack); implies --no-install.",
    )
    ap.add_argument(
        "--no-install",
        action="store_true",
        help="Leave src/medforensics/assets/detector as it is (write the benchmark into WORK only).",
    )
    args = ap.parse_args()

    bad = [pair for pair in args.split_of if "=" not in pair]
    if bad:
        raise SystemExit(f"--split-of: expected PATIENT=SPLIT, got {bad[0]!r}")
    splits = dict(pair.split("=", 1) for pair in args.split_of)
    whole = whole_series_by_split(args.data, splits)
    cfg = DenseConfig(
        data=str(args.data),
        out=str(args.work / "in-dist"),
        extra_authentic=whole["train"],
        val_authentic=whole["val"],
        test_authentic=whole["test"],
        steps=args.steps,
        eval_every=args.eval_every,
        hard_every=args.hard_every,
        threads=args.threads,
        device=args.device,
        workers=args.workers,
        load_workers=args.load_workers,
        batch_size=args.batch_size,
        zcorr_channel=args.zcorr,
        linear_head=args.linear_head,
        thick_mm=args.thick_mm,
        pixel_copies_mm=[float(v) for v in args.pixel_copies_mm.split(",") if v.strip()],
        dose_copies=[float(v) for v in args.dose_copies.split(",") if v.strip()],
        round_trip_copies_mm=[float(v) for v in args.round_trip_copies_mm.split(",") if v.strip()],
        max_slice_mm=args.max_slice_mm,
        max_pixel_mm=args.max_pixel_mm,
        self_blend=args.self_blend,
        self_blend_noise=args.self_blend_noise,
        mirror_pairs=args.mirror_pairs,
        mirror_consistency=args.mirror_consistency,
        lr=args.lr,
        hard_items=args.hard_items,
        hard_negative=args.hard_negative,
        zoom_range=tuple(float(v) for v in args.zoom_range.split(",")),  # type: ignore[arg-type]
        init_from=str(args.fine_tune / "in-dist") if args.fine_tune else None,
        splits=splits,
        lossy_codecs=[c for c in args.lossy_codecs.split(",") if c],
        calibrate_augmented=args.calibrate_augmented,
    )
    methods = [m for m in args.methods.split(",") if m]
    if args.test_held_out is not None:
        from medforensics.evaluate.dense_benchmark import held_out_on

        print(dense_markdown(held_out_on(args.test_held_out, cfg, methods, args.work)))
        return
    if args.loao_only:
        if args.finish is not None or args.from_run is not None:
            raise SystemExit("--loao-only trains no in-distribution model: drop --finish / --from-run")
        args.no_install = True
        metrics, main_dir = None, Path(cfg.out)
    elif args.finish is not None:
        from medforensics.train.dense import finish_dense

        main_dir = Path(cfg.out)
        metrics = finish_dense(cfg, args.finish)
    elif args.from_run is not None:
        main_dir = args.from_run
        used = json.loads((main_dir / "config.json").read_text())
        for key in (
            "data",
            "steps",
            "target_mm",
            "patch",
            "seed",
            "noise_channel",
            "zcorr_channel",
            "batch_size",
            "zoom_range",
        ):
            if json.dumps(used.get(key, False)) != json.dumps(asdict(cfg)[key]):
                raise SystemExit(f"--from-run was trained with another {key}: {used.get(key)}")
        metrics = json.loads((main_dir / "metrics.json").read_text())
    else:
        metrics = None  # run_dense_benchmark trains it into the same folder
        main_dir = Path(cfg.out)
    table = run_dense_benchmark(
        cfg,
        args.work,
        methods,
        args.loao_steps,
        main=metrics,
        progress=lambda msg: print(msg, flush=True),
        jobs=args.jobs,
        reuse=args.reuse,
        fine_tune=args.fine_tune,
        in_dist=not args.loao_only,
    )
    md = dense_markdown(table)  # also written to WORK/dense.md by run_dense_benchmark
    if args.no_install:
        print(md)
        return
    for old in ASSETS.iterdir():
        if old.is_file():
            old.unlink()
    bundle = args.bundle or main_dir
    for name in FILES:
        shutil.copy2(bundle / name, ASSETS / name)
    for name in CALIBRATION_FILES:
        if (bundle / name).is_file():
            shutil.copy2(bundle / name, ASSETS / name)
    metrics = json.loads((bundle / "metrics.json").read_text())
    metrics["benchmark"] = table
    (ASSETS / "metrics.json").write_text(json.dumps(metrics, indent=1))
    card = (ASSETS / "model_card.md").read_text()
    (ASSETS / "model_card.md").write_text(card + "\n" + md.replace("## ", "## Benchmark: ", 1))
    print(md)


if __name__ == "__main__":
    main()
