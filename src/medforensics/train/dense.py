"""Training of the dense tamper localiser (:class:`~medforensics.models.tamperseg.TamperSegNet`).

Data: a ``medforensics forge dataset`` folder (scans + ``masks/`` + ``manifest.csv`` with patient-level
splits). Each scan and its mask are brought to :data:`TARGET_MM` (the same reduction the scan
applies, :func:`model_input`); with ``noise_channel`` (the default) the input has a second channel, the
full-resolution noise energy relative to the series' lung (:mod:`medforensics.features.noise_map`): the
block means alone average away the noise traces edits leave. Every voxel gets a class: 0 authentic
(TB, TM and all voxels outside an attack's mask), 1 injected (inside an FM mask), 2 removed (inside an
FB mask). SYN scans are skipped (whole-image synthesis is the 2-D detector's job); ``exclude_methods``
keeps attack methods out of train and val (leave-one-attack-out: the test AUC per method then measures
unseen attacks). Optional extra authentic volumes (for example the whole chest CT of a training patient)
add negatives from outside the data set's crops.

Loss: class-weighted cross-entropy, a soft Dice term on the tamper (not authentic) map and a patch-level
term on the map's maximum (the quantity the scan thresholds). Patches (:mod:`.dense_data`) are random
boxes centred on the attack (2/3 of tampered draws) or on a TM scan's real nodule (1/2 of authentic
draws) or, with probability ``hard_negative`` for an authentic scan that has them, on the current
model's strongest false alarms (:func:`mine_hard_negatives`, every ``hard_every`` steps); flips,
in-plane zoom 0.8-1.25, intensity jitter, blur and noise on the fly. The model kept is the one with the
best mean of the validation *scan* AUC and the share of tampered validation scans whose
strongest region lies within 10 mm of the edit (:func:`scan_scores`); the folder gets
``model.safetensors``, ``config.json`` (resolved), ``metrics.json``, ``calibration.json``,
``train_log.csv`` and ``model_card.md``. With ``scan_calibration`` (the default) the operating points are
then fitted again on the validation series scored as ``scan`` scores them, one per noise kind, and one
for series stored lossy (``lossy_codecs``) (:mod:`.dense_calibration`; the training calibration stays as
``calibration_training.json``).
Configuration: :mod:`.dense_config`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from medforensics.errors import ConfigError, InputError, check_one_of
from medforensics.forge.lossy import LOSSY_CODECS, missing_coder
from medforensics.logging import get_logger
from medforensics.models.inference import device_name, effective_precision, resolve_device
from medforensics.train.config import PRECISIONS
from medforensics.train.dense_batches import BatchSource, batch
from medforensics.train.dense_config import (
    HU_WINDOW,
    TARGET_MM,
    DenseConfig,
    is_dense_config,
    load_dense_config,
)
from medforensics.train.dense_data import (
    LABELS,
    Item,
    ItemCache,
    _count,
    grid_factors,
    load_items,
    model_input,
    to_model_grid,
    window,
)
from medforensics.train.dense_report import calibrate, model_card, whole_series_scores
from medforensics.train.dense_step import loss_fn, step_loss, train_step

__all__ = [
    "HU_WINDOW",
    "LABELS",
    "TARGET_MM",
    "DenseConfig",
    "Item",
    "batch",
    "calibrate",
    "check_counts",
    "dense_model",
    "grid_factors",
    "in_channels",
    "is_dense_config",
    "load_dense_config",
    "load_items",
    "loss_fn",
    "mine_hard_negatives",
    "model_input",
    "resolve_device",
    "scan_scores",
    "step_loss",
    "to_model_grid",
    "train_dense",
    "train_step",
    "whole_series_scores",
    "window",
]

log = get_logger("train.dense")


def scan_scores(
    model: Any, items: list[Item], precision: str = "bf16", views: int = 1, screen: float | None = None
) -> dict[str, Any]:
    """Per-scan score (max of the smoothed tamper map), AUC authentic vs tampered, distance from the strongest
    region's centre (:func:`~medforensics.models.tamperseg.region_centre`) to the mask's. ``views``: the map
    averaged over that many in-plane views, as a calibration's ``views`` makes ``scan`` do (with
    ``screen``, the views after the first only where the first reaches it: a calibration's ``screen``)."""
    from medforensics.evaluate.metrics import roc_auc
    from medforensics.models.tamperseg import peak_region, region_centre, tamper_evidence
    from medforensics.models.view_refine import screened_map

    model.eval()
    scores, truth, dists, hits = [], [], [], []
    for it in items:
        prob, _ = screened_map(model, it.image, it.spacing, views, screen, precision)
        ev = tamper_evidence(prob, it.spacing).numpy()
        peak = tuple(int(i) for i in np.unravel_index(int(np.argmax(ev)), ev.shape))
        scores.append(float(ev[peak]))
        truth.append(int(it.label in LABELS))
        if it.label in LABELS and (it.target > 0).any():
            c = np.argwhere(it.target > 0).mean(axis=0)
            found = region_centre(peak_region(ev, peak), peak, it.spacing)  # as the scan reports it
            d = float(np.linalg.norm((found - c) * np.asarray(it.spacing)))
            dists.append(d)
            hits.append(d <= 10.0)
    s, y = np.asarray(scores), np.asarray(truth)
    auc = roc_auc(y, s) if len(set(truth)) == 2 else None
    per_method: dict[str, float | None] = {}
    methods = np.asarray([it.method for it in items])
    for m in sorted({it.method for it in items if it.label in LABELS}):
        sel = (y == 0) | (methods == m)
        per_method[m] = roc_auc(y[sel], s[sel]) if len(set(y[sel])) == 2 else None
    return {
        "auc": float(auc) if auc is not None else 0.0,
        "auc_per_method": per_method,
        "scores": scores,
        "truth": truth,
        "median_distance_mm": float(np.median(dists)) if dists else None,
        "within_10mm": float(np.mean(hits)) if hits else None,
    }


#: Hard negatives are mined where the smoothed tamper map reaches at least this.
HARD_FLOOR = 0.2


def mine_hard_negatives(
    model: Any,
    items: list[Item],
    cfg: DenseConfig,
    rng: np.random.Generator,
    zones: dict[str, NDArray[np.bool_]] | None = None,
) -> int:
    """Set ``Item.hard`` of authentic training scans to the strongest local maxima of the current model's
    tamper map inside the scored zone (the lung when one is found, else near aerated tissue): the whole
    authentic series every time, ``cfg.hard_items`` other authentic scans drawn at random. Returns the
    number of points found (their patches then teach the model what its false alarms really are).
    ``zones``: a cache of the scored zone per scan uid, kept between calls (the zone never changes)."""
    from medforensics.forge.lung import lung_mask
    from medforensics.models.tamperseg import predict_map, tamper_evidence
    from medforensics.scan.dense import peaks, scored_zone

    authentic = [it for it in items if it.label not in LABELS]
    whole = [it for it in authentic if it.method == "whole"]
    rest = [it for it in authentic if it.method != "whole"]
    pick = whole + [rest[int(i)] for i in rng.permutation(len(rest))[: cfg.hard_items]]
    lo, hi = cfg.hu_window
    model.eval()
    found = 0
    with torch.inference_mode():
        for it in pick:
            ev = tamper_evidence(predict_map(model, it.image, precision=cfg.precision), it.spacing).numpy()
            zone = None if zones is None else zones.get(it.uid)
            if zone is None:
                hu = it.image[0] * (hi - lo) + lo
                zone = lung_mask(hu, it.spacing)
                if not zone.any():  # a crop inside the chest: no lung outline to find
                    zone = hu < -400.0
                zone = scored_zone(zone, it.spacing)  # what the scan reads
                if zones is not None:
                    zones[it.uid] = zone
            pts = peaks(np.where(zone, ev, 0.0).astype(np.float32), it.spacing, floor=HARD_FLOOR)
            it.hard = np.asarray(pts, np.int64).reshape(-1, 3) if pts else None
            found += len(pts)
    return found


def in_channels(config: dict[str, Any]) -> int:
    """Input channels of a dense model from its resolved config (older configs: the HU channel only)."""
    return 1 + bool(config.get("noise_channel")) + bool(config.get("zcorr_channel"))


def dense_model(name: str, in_channels: int = 1, linear_head: bool = False) -> Any:
    """A registered dense localiser (input kind ``dense3d``) by name; ConfigError for any other name."""
    from medforensics.models.registry import create_model, is_dense, list_models

    if not is_dense(name):
        known = [n for n in list_models(include_test=True) if is_dense(n)]
        raise ConfigError(f"unknown dense model {name!r}; known: {known}")
    return create_model(name, in_channels=in_channels, linear_head=linear_head)


def model_from_config(config: dict[str, Any]) -> Any:
    """The untrained network a resolved dense config describes (name, input channels, head)."""
    return dense_model(str(config.get("model")), in_channels(config), bool(config.get("linear_head")))


def check_counts(cfg: DenseConfig) -> None:
    """ConfigError (one line) for counts that cannot train (steps, batch size, evaluation/mining periods),
    pixel copies of no CT's size, an unknown blend noise, precision or lossy codec."""
    for key, least in (
        ("steps", 1),
        ("batch_size", 2),
        ("eval_every", 1),
        ("hard_every", 1),
        ("workers", 0),
        ("load_workers", 0),
    ):
        value = getattr(cfg, key)
        if value < least:
            raise ConfigError(f"{key} must be {least} or more, got {value}")
    if not 0 <= cfg.seed < 2**32:  # numpy/torch generators take [0, 2**32); 2**64 overflowed (session 25)
        raise ConfigError(f"seed must be 0 or more and below 2**32, got {cfg.seed}")
    if not 0.0 < cfg.lr < math.inf:  # NaN fails too
        raise ConfigError(f"lr must be a finite number above 0, got {cfg.lr}")
    for key in ("weight_decay", "mirror_consistency"):
        value = getattr(cfg, key)
        if not 0.0 <= value < math.inf:  # NaN fails too
            raise ConfigError(f"{key} must be a finite number of 0 or more, got {value}")
    unknown = sorted({str(c) for c in cfg.lossy_codecs} - set(LOSSY_CODECS))
    if unknown:  # the lossy operating point is fitted after training: refused before it
        raise ConfigError(f"unknown lossy codec(s) {unknown}; known: {list(LOSSY_CODECS)}")
    if cfg.scan_calibration and (absent := missing_coder(cfg.lossy_codecs)):
        raise ConfigError(f"lossy_codecs: {absent}")
    copies: tuple[tuple[str, Callable[[float], bool], str], ...] = (
        ("pixel_copies_mm", lambda v: 0.1 <= v <= 5.0, "pixel sizes of 0.1-5 mm"),
        ("dose_copies", lambda v: 0.0 < v < 1.0, "fractions of the scans' dose in (0, 1)"),
        ("round_trip_copies_mm", lambda v: 0.1 <= v <= 5.0, "voxel sizes of 0.1-5 mm"),
    )
    for key, ok, what in copies:
        bad = [v for v in getattr(cfg, key) if not (isinstance(v, (int, float)) and ok(float(v)))]
        if bad:
            raise ConfigError(f"{key} must be {what}, got {bad[0]!r}")
    check_one_of("precision", cfg.precision, PRECISIONS)  # else an unknown one trained silently in fp32
    from medforensics.forge.selfblend import NOISE_KINDS

    check_one_of("self_blend_noise", cfg.self_blend_noise, NOISE_KINDS)


def _steps(
    source: BatchSource, cfg: DenseConfig, done: int = 0
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(step, x, y)`` for the steps after ``done`` (0: the whole run); batches are drawn block by block, so
    that a block drawn by workers holds the hard negatives mined at its start (the loop mines between
    blocks; a resumed run restarts inside a block with the hard negatives that block started with)."""
    block = cfg.hard_every if cfg.hard_negative > 0 else cfg.steps
    for first in range(1, cfg.steps + 1, block):
        last = min(cfg.steps, first + block - 1)
        if last <= done:
            continue
        lo = max(first, done + 1)
        for step, (x, y) in enumerate(source.block(lo, last), lo):
            yield step, x, y


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def train_dense(cfg: DenseConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (see module docs); returns the metrics written to ``metrics.json``. ``progress`` gets a line
    after loading and after each evaluation."""
    from medforensics.models.tamperseg import tie_mirrors
    from medforensics.train.checkpoint import save_weights, write_log
    from medforensics.train.dense_resume import check_point, check_same_run, keep_best, load_point, save_point

    check_counts(cfg)
    resume = None
    if cfg.resume:  # a damaged resume point: an error before the data (read once, into a spare network)
        check_same_run(cfg, cfg.resume)
        spare = model_from_config(asdict(cfg))
        resume = check_point(cfg.resume, spare, *_optimizer(cfg, spare))
    dev = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)  # before the model: its initial weights are part of the run
    model = model_from_config(asdict(cfg))
    init = init_provenance(cfg)
    if init:
        from medforensics.train.checkpoint import load_weights

        load_weights(model, Path(init["weights"]))
    if cfg.mirror_tied:
        tie_mirrors(model)
    rng = np.random.default_rng(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    items = load_items(cfg)
    t_load = time.perf_counter() - t0
    if progress:
        progress(f"{', '.join(f'{len(v)} {k}' for k, v in items.items())} scans loaded in {t_load:.0f} s")
    source = BatchSource(items["train"], cfg, rng)  # before any CUDA work: its workers fork
    # channels-last from the start: the evaluations convert the weights to it anyway (predict_map), and a
    # run resumed from saved weights must train in the layout the stopped run trained in after its first
    # evaluation, or the convolutions round differently
    model.to(dev).to(memory_format=torch.channels_last_3d)
    opt, sched = _optimizer(cfg, model)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log_rows: list[dict[str, Any]] = []
    best: tuple[float, float] | None = None
    best_val: dict[str, Any] = {}
    running = 0.0
    zones: dict[str, Any] = {}
    done = 0
    if cfg.resume and resume is not None:
        point = load_point(resume, cfg.resume, model, opt, sched, rng, items["train"])
        done, best_val, log_rows = point["step"], point["best_val"], point["log_rows"]
        best = None if point["best"] is None else (point["best"][0], point["best"][1])
        keep_best(resume, cfg.resume, out)  # the best weights so far come along
        log.info("resumed after step %d of %d", done, cfg.steps)
    last = log_rows[-1] if log_rows else {}
    spent = {k: float(last.get(f"{k}_seconds") or 0.0) for k in ("mine", "eval")}  # of the run so far
    if last:  # a resumed run's clock goes on from the stopped run's last evaluation (this load not counted)
        t0 = time.perf_counter() - float(last.get("seconds") or 0.0)
    try:
        for step, x, y in _steps(source, cfg, done):
            loss = train_step(model, opt, x, y, cfg, step, dev)
            if cfg.mirror_tied:
                tie_mirrors(model)
            sched.step()
            running += float(loss.detach())
            if cfg.hard_negative > 0 and step % cfg.hard_every == 0 and step < cfg.steps:
                t_mine = time.perf_counter()
                n = mine_hard_negatives(model, items["train"], cfg, rng, zones)
                spent["mine"] += time.perf_counter() - t_mine
                log.info("step %d: %d hard negative points mined", step, n)
            if step % cfg.eval_every != 0 and step != cfg.steps:
                continue
            t_eval = time.perf_counter()
            val = scan_scores(model, items["val"], cfg.precision)
            spent["eval"] += time.perf_counter() - t_eval
            row = {
                "step": step,
                "train_loss": running / cfg.eval_every,
                "val_auc": val["auc"],
                "val_within_10mm": val["within_10mm"],
                "seconds": round(time.perf_counter() - t0, 1),
                "mine_seconds": round(spent["mine"], 2),
                "eval_seconds": round(spent["eval"], 2),
            }
            running = 0.0
            log_rows.append(row)
            write_log(out, LOG_FIELDS, log_rows)
            log.info("step %d: %s; val AUC per method %s", step, row, val["auc_per_method"])
            if progress:
                progress(
                    f"step {step}/{cfg.steps}: train loss {row['train_loss']:.4f}, val scan AUC "
                    f"{_fmt(val['auc'])}, strongest region within 10 mm {_fmt(val['within_10mm'])}, "
                    f"{row['seconds']:.0f} s"
                )
            # both jobs of the scan count: telling tampered from authentic scans and finding the edit
            key = (0.5 * (val["auc"] + (val["within_10mm"] or 0.0)), val["auc"])
            if best is None or key >= best:
                best, best_val = key, {**val, "step": step}
                save_weights(model, out / "model.safetensors")
            loop = {"step": step, "best": best, "best_val": best_val, "log_rows": log_rows}
            save_point(cfg, model, opt, sched, rng, items["train"], loop)
    finally:
        source.close()
    seconds = (time.perf_counter() - t0, t_load)
    from medforensics.train.checkpoint import load_weights

    load_weights(model, out / "model.safetensors")  # the best validation step, not the last
    return _finish(model, cfg, items, best_val, seconds, dev, init=init)


def _optimizer(cfg: DenseConfig, model: torch.nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW and its one-cycle schedule: warm-up over 10 % of the steps, at least 1.5 steps (or torch's
    schedule divides by zero: 10 steps)."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = min(0.9, max(0.1, 1.5 / cfg.steps))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=warm)
    return opt, sched


#: Columns of ``train_log.csv``, one row per evaluation (``seconds``: since the run started, its data loading
#: included; a resumed run goes on from the stopped run's last row, its own loading not counted;
#: ``mine_seconds``, ``eval_seconds``: the part of them spent mining hard negatives and scoring the
#: validation scans, so a time-limited run can be budgeted; empty in logs written before session 44).
LOG_FIELDS = ("step", "train_loss", "val_auc", "val_within_10mm", "seconds", "mine_seconds", "eval_seconds")


def init_provenance(cfg: DenseConfig) -> dict[str, str] | None:
    """The weights ``cfg.init_from`` names (a folder's ``model.safetensors`` or the file) and their short
    sha256, read before training overwrites anything: a fine-tuned model's card says what it started from."""
    if not cfg.init_from:
        return None
    from medforensics.scan.detector import sha256_file

    init = Path(cfg.init_from)
    weights = init / "model.safetensors" if init.is_dir() else init
    if not weights.is_file():
        raise InputError("no weights to start from", path=weights)
    return {"weights": str(weights), "sha256": sha256_file(weights)[:12]}


def finish_dense(cfg: DenseConfig, note: str = "", cache: ItemCache | None = None) -> dict[str, Any]:
    """Evaluate and complete the folder of a training that stopped early (a time limit): ``cfg.out`` holds
    ``model.safetensors``, the best validation checkpoint saved so far, and ``train_log.csv`` of the
    evaluations run (kept). It is scored on the validation and test scans as :func:`train_dense` would
    have; the metrics say ``stopped_early`` (no training time or step: they died with the run) and keep
    ``note`` (where and how it was trained). ``cache``: see :func:`load_items`."""
    from medforensics.train.checkpoint import load_weights

    weights = Path(cfg.out) / "model.safetensors"
    if not weights.is_file():
        raise InputError("no model.safetensors to finish", path=cfg.out)
    init = init_provenance(cfg)
    dev = resolve_device(cfg.device)
    model = load_weights(model_from_config(asdict(cfg)), weights).to(dev)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    items = load_items(cfg, cache)
    best_val = {**scan_scores(model, items["val"], cfg.precision), "step": None}
    return _finish(model, cfg, items, best_val, (None, time.perf_counter() - t0), dev, note, init)


def _finish(
    model: Any,
    cfg: DenseConfig,
    items: dict[str, list[Item]],
    best_val: dict[str, Any],
    seconds: tuple[float | None, float],
    dev: torch.device,
    note: str = "",
    init: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Test scores, calibration and the folder's files of a model holding its best checkpoint's weights
    (``train_log.csv`` is written by the training loop after each evaluation)."""
    from medforensics._atomic import write_text_atomic
    from medforensics.scan.coverage import spacing_range

    train_seconds, t_load = seconds
    out = Path(cfg.out)
    test = scan_scores(model, items["test"], cfg.precision) if items["test"] else {}
    metrics = {
        "model": cfg.model,
        "out": str(out),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
        "load_seconds": round(t_load, 1),
        "device": device_name(dev),
        "precision_run": effective_precision(cfg.precision, dev.type),
        "batch_workers": cfg.workers,
        "best_step": best_val.get("step"),
        "val": {k: v for k, v in best_val.items() if k not in ("scores", "truth")},
        "test": {k: v for k, v in test.items() if k not in ("scores", "truth")},
        "test_scores": [
            {"uid": it.uid, "label": it.label, "method": it.method, "score": s}
            for it, s in zip(items["test"], test.get("scores", []), strict=False)
        ],
        "val_scores": [
            {"uid": it.uid, "label": it.label, "method": it.method, "score": s}
            for it, s in zip(items["val"], best_val.get("scores", []), strict=False)
        ],
        "stopped_early": train_seconds is None,
        "note": note,
        "init_from": init,
        "splits": {
            k: {"n": len(v), "patients": sorted({i.patient for i in v}), "labels": _count(v)}
            for k, v in items.items()
        },
        # the CTs it learnt from and was chosen on: scan's caveats for series outside them
        "data_spacing": spacing_range(
            it.source_spacing for k in ("train", "val") for it in items[k] if it.source_spacing is not None
        ),
    }
    val_rows: list[dict[str, Any]] = metrics["val_scores"]  # type: ignore[assignment]
    whole_scores = whole_series_scores(model, cfg, cfg.extra_authentic)
    write_text_atomic(
        out / "calibration.json", json.dumps(calibrate(val_rows, whole_authentic=whole_scores), indent=1)
    )
    write_text_atomic(out / "config.json", json.dumps(asdict(cfg), indent=1))
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1))
    write_text_atomic(out / "model_card.md", model_card(cfg, metrics))
    if cfg.scan_calibration:
        from medforensics.train.dense_calibration import recalibrate, write_recalibration

        cal, val = recalibrate(
            out,
            cfg.data,
            cfg.extra_authentic,
            cfg.val_authentic,
            seed=cfg.seed,
            augmented=cfg.calibrate_augmented,
        )
        write_recalibration(out, cal, val)
        if cfg.lossy_codecs and not cfg.noise_only:
            from medforensics.train.dense_calibration import add_lossy_point

            cal, lossy = add_lossy_point(
                out, cfg.data, cfg.extra_authentic, cfg.val_authentic, cfg.lossy_codecs
            )
            write_recalibration(out, cal, lossy, "calibration_lossy_scores.json")
        metrics["scan_calibration"] = cal
        write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1))
    return metrics
