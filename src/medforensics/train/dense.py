"""Training of the dense tamper localiser (:class:`~medforensics.models.tamperseg.TamperSegNet`).

Data: a ``medforensics forge dataset`` folder (scans + ``masks/`` + ``manifest.csv`` with patient-level
splits). Each scan and its mask are block-averaged to about :data:`TARGET_MM` (the same reduction the
scan applies, :func:`to_model_grid`), and every voxel gets a class: 0 authentic (TB, TM and all voxels
outside an attack's mask), 1 injected (inside an FM mask), 2 removed (inside an FB mask). SYN scans are
skipped (whole-image synthesis is the 2-D detector's job); ``exclude_methods`` keeps attack methods out of
train and val (leave-one-attack-out: the test AUC per method then measures unseen attacks). Optional extra
authentic volumes (for example the whole chest CT of a training patient) add negatives from outside the
data set's crops.

Loss: class-weighted cross-entropy, a soft Dice term on the tamper (not authentic) map and a patch-level
term on the map's maximum (the quantity the scan thresholds). Patches are
random boxes, centred on the attack for two thirds of the tampered draws; flips and a small intensity
jitter on the fly. The model kept is the one with the best mean of the validation *scan* AUC and
the share of tampered validation scans whose strongest region lies within 10 mm of the edit (see
:func:`scan_scores`); the folder gets ``model.safetensors``,
``config.json`` (resolved), ``metrics.json``, ``train_log.csv`` and ``model_card.md``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from medforensics.errors import ConfigError, InputError
from medforensics.logging import get_logger

log = get_logger("train.dense")

#: Voxel size (z, y, x) mm the model works at (see :func:`to_model_grid`).
TARGET_MM: tuple[float, float, float] = (2.5, 1.4, 1.4)
#: HU window mapped to [0, 1].
HU_WINDOW: tuple[float, float] = (-1000.0, 400.0)
LABELS = {"FM": 1, "FB": 2}


@dataclass
class DenseConfig:
    """Resolved training configuration (written as ``config.json``)."""

    data: str
    out: str
    model: str = "tamperseg3d"
    extra_authentic: list[str] = field(default_factory=list)
    val_authentic: list[str] = field(default_factory=list)
    test_authentic: list[str] = field(default_factory=list)
    target_mm: tuple[float, float, float] = TARGET_MM
    hu_window: tuple[float, float] = HU_WINDOW
    patch: tuple[int, int, int] = (16, 80, 80)
    batch_size: int = 6
    steps: int = 600
    eval_every: int = 100
    lr: float = 2e-3
    weight_decay: float = 1e-4
    class_weights: tuple[float, float, float] = (1.0, 8.0, 8.0)
    dice_weight: float = 0.5
    zoom_range: tuple[float, float] = (0.8, 1.25)
    peak_weight: float = 0.5
    exclude_methods: list[str] = field(default_factory=list)
    #: Patient (manifest ``patient``) -> split, overriding the data set's split file for those patients.
    splits: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    threads: int | None = None
    precision: str = "bf16"


@dataclass
class Item:
    """One scan on the model grid: windowed image, voxel classes, the data-set label and its patient."""

    image: NDArray[np.float32]
    target: NDArray[np.int64]
    label: str
    method: str
    patient: str
    uid: str
    spacing: tuple[float, float, float]
    #: Voxels (model grid) worth centring patches on: the attack, or the real nodule of a TM scan.
    focus: NDArray[np.int64] | None = None


def grid_factors(
    spacing: tuple[float, float, float], target_mm: tuple[float, float, float]
) -> tuple[int, ...]:
    """Integer block-mean factors bringing ``spacing`` closest to ``target_mm`` (never below 1)."""
    return tuple(max(1, round(t / s)) for s, t in zip(spacing, target_mm, strict=True))


#: Relative spacing error left as is after the integer block means (no interpolation below it).
SPACING_TOLERANCE = 0.03


def to_model_grid(
    array: NDArray[Any],
    spacing: tuple[float, float, float],
    target_mm: tuple[float, float, float] = TARGET_MM,
) -> tuple[NDArray[np.float32], tuple[float, float, float], tuple[float, float, float]]:
    """``array`` on the model grid: ``(image, scale, spacing)``.

    Integer block means first (slab-wise, so the full-resolution volume is never copied; they also
    anti-alias), then a linear zoom of the small result to ``target_mm`` when it is still more than
    :data:`SPACING_TOLERANCE` off (a 0.82 mm scan block-averaged to 1.64 mm is zoomed to 1.4 mm: the model
    always sees one pixel size). ``scale``: full-resolution voxels per model voxel along each axis, so model
    voxel ``i`` covers full-resolution coordinates ``(i + 0.5) * scale - 0.5`` at its centre.
    """
    from scipy import ndimage

    from medforensics.scan.candidates import block_mean

    f = grid_factors(spacing, target_mm)
    low = block_mean(array, f)  # type: ignore[arg-type]
    sp_b = [s * k for s, k in zip(spacing, f, strict=True)]
    zoom = [
        1.0 if abs(s / t - 1) <= SPACING_TOLERANCE else s / t for s, t in zip(sp_b, target_mm, strict=True)
    ]
    if any(z != 1.0 for z in zoom):
        shape = [max(1, round(n * z)) for n, z in zip(low.shape, zoom, strict=True)]
        zoom = [m / n for m, n in zip(shape, low.shape, strict=True)]
        low = ndimage.zoom(low, zoom, order=1, grid_mode=True, mode="nearest").astype(np.float32)
    scale = tuple(float(k / z) for k, z in zip(f, zoom, strict=True))
    sp = tuple(float(s / z) for s, z in zip(sp_b, zoom, strict=True))
    return low, scale, sp  # type: ignore[return-value]


def window(hu: NDArray[Any], hu_window: tuple[float, float] = HU_WINDOW) -> NDArray[np.float32]:
    """Clip to the HU window, map to [0, 1]."""
    lo, hi = hu_window
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def load_items(cfg: DenseConfig) -> dict[str, list[Item]]:
    """Every FM/FB/TB/TM scan of the data set on the model grid, grouped by split (+ extra authentic)."""
    from medforensics.io.nifti import read_nifti
    from medforensics.io.reader import read_volume

    root = Path(cfg.data)
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise InputError("not a forge data set (no manifest.csv)", path=root)
    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    bad = sorted(set(cfg.splits.values()) - set(out))
    if bad:
        raise ConfigError(f"splits must map patients to train/val/test, got {bad}")
    for r in rows:
        r["split"] = cfg.splits.get(r["patient"], r["split"])
        if r["type"] not in ("TB", "TM", "FB", "FM") or r["split"] not in out:
            continue
        if r["method"] in cfg.exclude_methods and r["split"] != "test":
            continue  # leave-one-attack-out: never trained or validated on it
        vol = read_volume(root / "scans" / r["uuid"])
        img, _f, sp = to_model_grid(vol.array, vol.spacing, cfg.target_mm)
        target = np.zeros(img.shape, np.int64)
        focus = None
        mask_path = root / "masks" / f"{r['uuid']}.nii.gz"
        if r["type"] in LABELS or (r["type"] == "TM" and mask_path.is_file()):
            mask = read_nifti(mask_path).array
            if mask.shape != vol.shape:
                raise InputError(f"mask shape {mask.shape} != scan shape {vol.shape}", path=mask_path)
            low = to_model_grid((mask > 0).astype(np.float32), vol.spacing, cfg.target_mm)[0] >= 0.3
            if r["type"] in LABELS:
                target[low] = LABELS[r["type"]]
            focus = np.argwhere(low) if low.any() else None  # TM: the readers' outline, class authentic
        out[r["split"]].append(
            Item(
                window(img, cfg.hu_window), target, r["type"], r["method"], r["patient"], r["uuid"], sp, focus
            )
        )
    extras = {"train": cfg.extra_authentic, "val": cfg.val_authentic, "test": cfg.test_authentic}
    for split, paths in extras.items():
        for path in paths:
            vol = read_volume(path)
            img, _f, sp = to_model_grid(vol.array, vol.spacing, cfg.target_mm)
            out[split].append(
                Item(
                    window(img, cfg.hu_window),
                    np.zeros(img.shape, np.int64),
                    "TB",
                    "whole",
                    "extra",
                    path,
                    sp,
                )
            )
    _check_split(out)
    return out


def _check_split(items: dict[str, list[Item]]) -> None:
    seen: dict[str, str] = {}
    for split, lst in items.items():
        for it in lst:
            if it.patient != "extra" and seen.setdefault(it.patient, split) != split:
                raise ConfigError(f"patient {it.patient} is in two splits ({seen[it.patient]}, {split})")
    for split in ("train", "val"):
        labels = {it.label for it in items[split]}
        if not labels & {"FM", "FB"} or not labels & {"TB", "TM"}:
            raise ConfigError(f"the {split} split needs authentic and tampered scans (has {sorted(labels)})")


def _patch(it: Item, size: tuple[int, int, int], rng: np.random.Generator, focus: bool) -> tuple[Any, Any]:
    """A random ``size`` box of ``it`` (edge-padded), centred near the attack when ``focus``."""
    shape = np.asarray(it.image.shape)
    want = np.asarray(size)
    if focus and it.focus is not None and len(it.focus):
        c = it.focus[rng.integers(len(it.focus))]
        start = c - want // 2 + rng.integers(-want // 4, want // 4 + 1)
    else:
        start = np.array(
            [rng.integers(min(0, s - w), max(0, s - w) + 1) for s, w in zip(shape, want, strict=True)]
        )
    start = np.clip(start, np.minimum(0, shape - want), np.maximum(0, shape - want))
    lo = np.maximum(start, 0)
    hi = np.minimum(start + want, shape)
    img = np.zeros(size, np.float32)
    tgt = np.zeros(size, np.int64)
    dst = tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(lo, hi, start, strict=True))
    src = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    img[dst] = it.image[src]
    tgt[dst] = it.target[src]
    pad = [(int(d.start), int(w - d.stop)) for d, w in zip(dst, want, strict=True)]
    if any(p != (0, 0) for p in pad):  # edge-pad the image (air would look like an edit)
        img = np.pad(img[dst], pad, mode="edge")
    return img, tgt


def _augment(img: NDArray[Any], tgt: NDArray[Any], rng: np.random.Generator) -> tuple[Any, Any]:
    for ax in (1, 2):
        if rng.random() < 0.5:
            img, tgt = np.flip(img, ax), np.flip(tgt, ax)
    if rng.random() < 0.5:
        img, tgt = np.swapaxes(img, 1, 2), np.swapaxes(tgt, 1, 2)
    img = img * rng.uniform(0.95, 1.05) + rng.uniform(-0.02, 0.02)
    # scanners differ in noise and sharpness (kernel, dose, slice thickness): do not let the model key on them
    if rng.random() < 0.3:
        from scipy import ndimage

        img = ndimage.gaussian_filter(img, (0.0, *(rng.uniform(0.3, 0.8),) * 2))
    if rng.random() < 0.3:
        img = img + rng.normal(0.0, rng.uniform(0.002, 0.012), img.shape)
    return np.ascontiguousarray(img, np.float32), np.ascontiguousarray(tgt)


def _resize(img: NDArray[Any], tgt: NDArray[Any], size: tuple[int, int, int]) -> tuple[Any, Any]:
    """Zoom a patch in-plane to ``size`` (linear for the image, nearest for the classes)."""
    from scipy import ndimage

    f = [s / n for s, n in zip(size, img.shape, strict=True)]
    img = ndimage.zoom(img, f, order=1, grid_mode=True, mode="nearest")
    tgt = ndimage.zoom(tgt, f, order=0, grid_mode=True, mode="nearest")
    out_i = np.empty(size, np.float32)
    out_t = np.zeros(size, np.int64)
    sl = tuple(slice(0, min(a, b)) for a, b in zip(size, img.shape, strict=True))
    out_i[...] = np.pad(img[sl], [(0, s - x.stop) for s, x in zip(size, sl, strict=True)], mode="edge")
    out_t[sl] = tgt[sl]
    return out_i, out_t


def batch(items: list[Item], cfg: DenseConfig, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch: half tampered scans, half authentic (see the comments for where patches sit)."""
    tampered = [it for it in items if it.label in LABELS]
    authentic = [it for it in items if it.label not in LABELS]
    xs, ys = [], []
    for k in range(cfg.batch_size):
        pool = tampered if k % 2 == 0 else authentic
        it = pool[rng.integers(len(pool))]
        # tampered: centred on the attack 2/3 of the time; TM: on the real nodule half of the time (so a
        # real nodule is seen as authentic as often as an injected one is seen as injected)
        focus = rng.random() < (2 / 3 if it.label in LABELS else 1 / 2)
        zoom = float(rng.uniform(*cfg.zoom_range))
        size = (cfg.patch[0], *(round(p * zoom) for p in cfg.patch[1:]))
        img, tgt = _patch(it, size, rng, focus=focus)  # type: ignore[arg-type]
        if size != tuple(cfg.patch):  # another pixel size: other scanners, other patients' anatomy scale
            img, tgt = _resize(img, tgt, cfg.patch)
        img, tgt = _augment(img, tgt, rng)
        xs.append(img)
        ys.append(tgt)
    return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ys))


def loss_fn(logits: torch.Tensor, target: torch.Tensor, cfg: DenseConfig) -> torch.Tensor:
    """Weighted cross-entropy + ``dice_weight`` x soft Dice of the tamper map + ``peak_weight`` x patch
    BCE."""
    w = torch.tensor(cfg.class_weights, dtype=torch.float32)
    ce = F.cross_entropy(logits.float(), target, weight=w)
    p = 1.0 - torch.softmax(logits.float(), dim=1)[:, 0]
    t = (target > 0).float()
    inter = (p * t).sum()
    dice = 1.0 - (2 * inter + 1.0) / (p.sum() + t.sum() + 1.0)
    # patch level (what the scan reads): the strongest 3x3x3-averaged tamper probability must be high in a
    # patch holding an attack and low elsewhere, so isolated false hot spots cost as much as a missed edit
    peak = F.avg_pool3d(p[:, None], 3, stride=1, padding=1).amax(dim=(1, 2, 3, 4)).clamp(1e-4, 1 - 1e-4)
    has = t.amax(dim=(1, 2, 3))
    mil = F.binary_cross_entropy(peak, has)
    return ce + cfg.dice_weight * dice + cfg.peak_weight * mil


def scan_scores(model: Any, items: list[Item], precision: str = "bf16") -> dict[str, Any]:
    """Per-scan score (max of the smoothed tamper map), AUC authentic vs tampered, peak-to-mask distance."""
    from medforensics.evaluate.metrics import roc_auc
    from medforensics.models.tamperseg import predict_map, tamper_evidence

    model.eval()
    scores, truth, dists, hits = [], [], [], []
    for it in items:
        prob = predict_map(model, it.image, precision=precision)
        ev = tamper_evidence(prob, it.spacing).numpy()
        peak = np.unravel_index(int(np.argmax(ev)), ev.shape)
        scores.append(float(ev[peak]))
        truth.append(int(it.label in LABELS))
        if it.label in LABELS and (it.target > 0).any():
            c = np.argwhere(it.target > 0).mean(axis=0)
            d = float(np.linalg.norm((np.asarray(peak) - c) * np.asarray(it.spacing)))
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


def dense_model(name: str) -> Any:
    """A registered dense localiser (input kind ``dense3d``) by name; ConfigError for any other name."""
    from medforensics.models.registry import create_model, list_models, model_info

    known = [n for n in list_models(include_test=True) if model_info(n).input_kind == "dense3d"]
    if name not in known:
        raise ConfigError(f"unknown dense model {name!r}; known: {known}")
    return create_model(name)


def train_dense(cfg: DenseConfig) -> dict[str, Any]:
    """Train (see module docs); returns the metrics written to ``metrics.json``."""
    from medforensics._atomic import write_text_atomic
    from medforensics.models.inference import autocast
    from medforensics.train.checkpoint import save_weights

    torch.manual_seed(cfg.seed)  # before the model: its initial weights are part of the run
    model = dense_model(cfg.model)
    rng = np.random.default_rng(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    items = load_items(cfg)
    t_load = time.perf_counter() - t0
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log_rows: list[dict[str, Any]] = []
    best: tuple[float, float] | None = None
    best_val: dict[str, Any] = {}
    running = 0.0
    for step in range(1, cfg.steps + 1):
        model.train()
        x, y = batch(items["train"], cfg, rng)
        with autocast(cfg.precision):
            logits = model(x)
        loss = loss_fn(logits, y, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += float(loss.detach())
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val = scan_scores(model, items["val"], cfg.precision)
            row = {
                "step": step,
                "train_loss": running / cfg.eval_every,
                "val_auc": val["auc"],
                "val_within_10mm": val["within_10mm"],
                "seconds": round(time.perf_counter() - t0, 1),
            }
            running = 0.0
            log_rows.append(row)
            log.info("step %d: %s; val AUC per method %s", step, row, val["auc_per_method"])
            # both jobs of the scan count: telling tampered from authentic scans and finding the edit
            key = (0.5 * (val["auc"] + (val["within_10mm"] or 0.0)), val["auc"])
            if best is None or key >= best:
                best, best_val = key, {**val, "step": step}
                save_weights(model, out / "model.safetensors")
    train_seconds = time.perf_counter() - t0
    from medforensics.train.checkpoint import load_weights

    load_weights(model, out / "model.safetensors")
    test = scan_scores(model, items["test"], cfg.precision) if items["test"] else {}
    metrics = {
        "model": cfg.model,
        "out": str(out),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "train_seconds": round(train_seconds, 1),
        "load_seconds": round(t_load, 1),
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
        "splits": {
            k: {"n": len(v), "patients": sorted({i.patient for i in v}), "labels": _count(v)}
            for k, v in items.items()
        },
    }
    val_rows: list[dict[str, Any]] = metrics["val_scores"]  # type: ignore[assignment]
    whole_scores = whole_series_scores(model, cfg, cfg.extra_authentic)
    write_text_atomic(
        out / "calibration.json", json.dumps(calibrate(val_rows, whole_authentic=whole_scores), indent=1)
    )
    write_text_atomic(out / "config.json", json.dumps(asdict(cfg), indent=1))
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1))
    with (out / "train_log.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(log_rows[0]))
        w.writeheader()
        w.writerows(log_rows)
    write_text_atomic(out / "model_card.md", model_card(cfg, metrics))
    return metrics


def model_card(cfg: DenseConfig, metrics: dict[str, Any]) -> str:
    """Markdown model card: what data the model saw, what it scored, how it is meant to be used."""
    cal = json.loads((Path(cfg.out) / "calibration.json").read_text(encoding="utf-8"))
    lines = [
        f"# Model card: {cfg.model} (dense tamper localiser)",
        "",
        f"- Per-voxel classes authentic / injected / removed on a {cfg.target_mm} mm grid "
        "(block means, then a small zoom), "
        f"HU window {cfg.hu_window}; {metrics['parameters']} parameters; seed {cfg.seed}.",
        f"- Trained {metrics['train_seconds']} s ({cfg.steps} steps of {cfg.batch_size} patches "
        f"{cfg.patch}); kept step {metrics['best_step']} (best mean of validation scan AUC and share "
        "localised within 10 mm).",
        f"- Operating point: series threshold {cal['series_threshold']:.4f} on Platt-calibrated scores "
        f"({cal['fitted_on']}, <= {cal['max_fpr']:.0%} authentic flagged there).",
        "",
        "## Data seen (patient-level splits)",
        "",
        "| split | scans | patients | scans by label:method |",
        "| --- | --- | --- | --- |",
    ]
    for name, sp in metrics["splits"].items():
        labels = ", ".join(f"{k} {v}" for k, v in sorted(sp["labels"].items()))
        lines.append(f"| {name} | {sp['n']} | {', '.join(sp['patients'])} | {labels} |")
    lines += ["", "## Scores (scan level: maximum of the 6 mm-averaged tamper map)", ""]
    for name in ("val", "test"):
        m = metrics.get(name) or {}
        lines.append(
            f"- {name}: AUC {m.get('auc')}, top region within 10 mm of the attack for "
            f"{m.get('within_10mm')} of tampered scans (median distance {m.get('median_distance_mm')} mm)."
        )
    lines += [
        "",
        "## Intended use and limits",
        "",
        "Screening chest CT series for nodule injection/removal (CT-GAN-style, classical edits) as the",
        "`scan` default. Trained on very few real patients (LIDC-IDRI slabs, one full chest CT): scores on",
        "scanners and protocols unlike these are not validated; whole-image synthesis is not its job.",
    ]
    return "\n".join(lines) + "\n"


def _count(items: list[Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        key = f"{it.label}:{it.method}"
        out[key] = out.get(key, 0) + 1
    return out


def is_dense_config(path: str | Path) -> bool:
    """True when a config file names a dense model (``*tamperseg3d``); False when unreadable (the strict
    classifier loader then reports the problem)."""
    try:
        raw = _read_raw(Path(path))
    except ConfigError:
        return False
    return isinstance(raw, dict) and str(raw.get("model", "")).endswith("tamperseg3d")


def _read_raw(path: Path) -> Any:
    import tomllib

    try:
        text = path.read_bytes()
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text.decode("utf-8"))
        return json.loads(text)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"unreadable config ({err})", path=path) from None


def load_dense_config(path: str | Path, out: str | None = None) -> DenseConfig:
    """A :class:`DenseConfig` from ``.json``/``.toml``; unknown keys and wrong types are one-line errors."""
    import dataclasses

    path = Path(path)
    raw = _read_raw(path)
    if out is not None:
        raw["out"] = out
    known = {f.name: f for f in dataclasses.fields(DenseConfig)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}; known: {sorted(known)}", path=path)
    for key in ("data", "out"):
        if not isinstance(raw.get(key), str):
            raise ConfigError(f"{key!r} must be a path string", path=path)
    defaults = DenseConfig(data="", out="")
    for key, value in raw.items():
        want = getattr(defaults, key)
        ok = (
            isinstance(value, str)
            if isinstance(want, str)
            else isinstance(value, (int, float)) and not isinstance(value, bool)
            if isinstance(want, (int, float)) and want is not None
            else isinstance(value, (list, tuple))
            if isinstance(want, (list, tuple))
            else isinstance(value, dict)
            if isinstance(want, dict)
            else value is None or isinstance(value, int)
        )
        if not ok:
            raise ConfigError(f"{key!r} has the wrong type ({type(value).__name__})", path=path)
    for key in ("target_mm", "hu_window", "patch", "class_weights", "zoom_range"):
        if key in raw:
            raw[key] = tuple(raw[key])
    return DenseConfig(**raw)


def whole_series_scores(model: Any, cfg: DenseConfig, paths: list[str]) -> list[float]:
    """Raw series scores of whole series exactly as ``scan`` computes them (lung box, lung zone)."""
    from medforensics.io.reader import read_volume
    from medforensics.scan.dense import DenseDetector
    from medforensics.scan.detector import Calibration
    from medforensics.scan.result import ModelInfo

    det = DenseDetector(model, asdict(cfg), Calibration(), ModelInfo(name=cfg.model, version="", sha256=""))
    det.precision = cfg.precision
    out = []
    for path in paths:
        vol = read_volume(path)
        vol.modality = vol.modality or "CT"
        with torch.inference_mode():
            out.append(float(det.tamper_map(vol).evidence.max()))
    return out


def calibrate(
    val_scores: list[dict[str, Any]], max_fpr: float = 0.01, whole_authentic: list[float] | None = None
) -> dict[str, Any]:
    """Platt parameters on validation scan scores and the series threshold for <= ``max_fpr`` flagged.

    ``whole_authentic``: raw scores of whole authentic series of the *training* patients. The threshold is
    kept above them too: a whole chest CT offers many more places for a false alarm than the data set's
    crops, and with one validation patient the crops alone set it too low (conservative on purpose).
    """
    from medforensics.evaluate.metrics import apply_platt, fit_platt
    from medforensics.scan.aggregate import series_threshold_at_fpr

    s = np.asarray([r["score"] for r in val_scores], np.float64)
    y = np.asarray([int(r["label"] in LABELS) for r in val_scores])
    a, b = fit_platt(s, y)
    cal = apply_platt(s, (a, b))
    thr = series_threshold_at_fpr(cal[y == 0], max_fpr)
    fitted = f"validation scans ({int((y == 0).sum())} authentic, {int(y.sum())} tampered)"
    if whole_authentic:
        top = float(np.max(apply_platt(np.asarray(whole_authentic, np.float64), (a, b))))
        if top >= thr:
            thr = float(np.nextafter(top, np.inf))
        fitted += f"; kept above {len(whole_authentic)} whole authentic training series"
    return {
        "platt": [a, b],
        "threshold": thr,
        "series_threshold": thr,
        "max_fpr": max_fpr,
        "fitted_on": fitted,
    }
