"""What a finished dense run writes beside its weights: the calibration (Platt scaling and the series
operating point, kept above whole authentic training series) and the model card."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.logging import get_logger
from medforensics.train.card import fmt_number
from medforensics.train.dense_config import MAX_SLICE_FACTOR, DenseConfig, slice_limit
from medforensics.train.dense_data import LABELS

log = get_logger("train.dense")


def model_card(cfg: DenseConfig, metrics: dict[str, Any]) -> str:
    """Markdown model card: what data the model saw, what it scored, how it is meant to be used."""
    from medforensics.scan.nodules import INJECTED_MIN_HU, NODULE_MATCH_MM, SOLID_WITHIN_MM

    cal = json.loads((Path(cfg.out) / "calibration.json").read_text(encoding="utf-8"))
    lines = [
        f"# Model card: {cfg.model} (dense tamper localiser)",
        "",
        f"- Per-voxel classes authentic / injected / removed on a {cfg.target_mm} mm grid "
        "(block means, then a small zoom), "
        f"HU window {cfg.hu_window}; {metrics['parameters']} parameters; seed {cfg.seed}.",
        "- Input channels: windowed HU"
        + (
            " and the full-resolution noise energy (in-plane KV residual, log, relative to the series' lung)"
            if cfg.noise_channel
            else ""
        )
        + (
            ", and the inter-slice correlation of that residual (7 mm boxes, relative to the series' lung)"
            if cfg.zcorr_channel
            else ""
        )
        + ("; no ReLU before the 1x1 head." if cfg.linear_head else "."),
        f"- The scan types a flagged region injected when solid tissue (at least {INJECTED_MIN_HU:.0f} HU, "
        f"in-plane 3 x 3 mean) inside the lung lies within {SOLID_WITHIN_MM:.0f} mm of its peak or a blob is "
        f"centred within {NODULE_MATCH_MM:.0f} mm of it, else removed (the network's own injected/removed "
        "split is not used for that).",
        (
            f"- Hard negatives: a patch of an authentic scan with mined false alarms is centred on one of "
            f"them {cfg.hard_negative:.0%} of the time (the model's own strongest, mined every "
            f"{cfg.hard_every} steps on the whole series and {cfg.hard_items} random authentic crops)."
            if cfg.hard_negative > 0
            else "- No hard-negative mining."
        ),
        (
            f"- Training of {cfg.steps} steps ({cfg.batch_size} patches {cfg.patch}) stopped early; the best "
            f"validation checkpoint saved before that was evaluated on {metrics.get('device', 'cpu')}. "
            f"{metrics.get('note', '')}"
            if metrics.get("stopped_early")
            else f"- Trained {metrics['train_seconds']} s on {metrics.get('device', 'cpu')} "
            f"({cfg.steps} steps of {cfg.batch_size} patches {cfg.patch}, "
            f"{cfg.workers or 'no'} batch workers); "
            f"kept step {metrics['best_step']} (best mean of validation scan AUC and share "
            "localised within 10 mm)."
        ),
        *_init_line(cfg, metrics),
        *_noise_only_line(cfg),
        *_self_blend_line(cfg),
        *_mirror_lines(cfg),
        *operating_point_lines(cal),
        *_ties_line(cal, len(metrics.get("val_scores", []))),
        "",
        "## Data seen (patient-level splits)",
        "",
        "| split | scans | patients | scans by label:method |",
        "| --- | --- | --- | --- |",
    ]
    for name, sp in metrics["splits"].items():
        labels = ", ".join(f"{k} {v}" for k, v in sorted(sp["labels"].items()))
        lines.append(f"| {name} | {sp['n']} | {', '.join(sp['patients'])} | {labels} |")
    seen = metrics.get("data_spacing") or {}
    if seen:  # scan gives series outside these a caveat (scan.coverage)
        px, sl = seen.get("pixel_mm", ["?", "?"]), seen.get("slice_mm", ["?", "?"])
        lines += [
            "",
            f"Training and validation CTs: pixels {px[0]}-{px[1]} mm, slices {sl[0]}-{sl[1]} mm apart "
            "(`data_spacing`; `scan` adds a caveat to a series outside them).",
        ]
    lines += ["", "## Scores (scan level: maximum of the 6 mm-averaged tamper map)", ""]
    for name in ("val", "test"):
        m = metrics.get(name) or {}
        lines.append(
            f"- {name}: AUC {fmt_number(m.get('auc'), 3)}, top region within 10 mm of the attack for "
            f"{fmt_number(m.get('within_10mm'), 3)} of tampered scans (median distance "
            f"{fmt_number(m.get('median_distance_mm'), 1)} mm)."
        )
    limit = slice_limit(cfg.max_slice_mm, cfg.target_mm[0])
    why = "set in its config" if cfg.max_slice_mm else f"{MAX_SLICE_FACTOR:g} x the grid's slice spacing"
    pixels = f" or whose pixels exceed {cfg.max_pixel_mm:g} mm (`max_pixel_mm`)" if cfg.max_pixel_mm else ""
    options = "`--max-slice-mm` and `--max-pixel-mm` score" if cfg.max_pixel_mm else "`--max-slice-mm` scores"
    lines += [
        "",
        "## Intended use and limits",
        "",
        "Screening chest CT series for nodule injection/removal (CT-GAN-style, classical edits) as the",
        "`scan` default. Trained on very few real patients (LIDC-IDRI slabs, one full chest CT): scores on",
        "scanners and protocols unlike these are not validated; whole-image synthesis is not its job.",
        f"`scan` does not assess series whose slices lie more than {limit:g} mm "
        f"apart ({why}; the training CTs have 1.25-2.5 mm slices){pixels}: they get verdict",
        f"`error`; {options} them anyway.",
    ]
    return "\n".join(lines) + "\n"


def _noise_only_line(cfg: DenseConfig) -> list[str]:
    if not cfg.noise_only:
        return []
    return [
        "- Noise specialist (config `noise_only`): every scan of every split was seen with the seed study's "
        "i.i.d. Gaussian noise (14-42 HU) added after any edit, as stored by the data set or as "
        f"{max(1, cfg.noise_copies)} drawn cop{'y' if max(1, cfg.noise_copies) == 1 else 'ies'}. "
        "`scan` uses it, as a detector folder's `uncorrelated/` sub-folder, for the series its "
        "uncorrelated-noise operating point holds."
    ]


def _mirror_lines(cfg: DenseConfig) -> list[str]:
    """The card's lines for configs ``mirror_tied``, ``mirror_pairs`` and ``mirror_consistency``."""
    lines = []
    if cfg.mirror_tied:
        lines.append(
            "- Mirror-tied: every convolution kernel averaged with its in-plane mirrors "
            "(config `mirror_tied`)."
        )
    if cfg.mirror_consistency > 0:
        lines.append(
            "- Mirror pairs: every batch also seen in an in-plane mirror view, with a consistency term "
            f"(weight {cfg.mirror_consistency:g}) on the two maps' tamper probabilities "
            "(config `mirror_consistency`)."
        )
    elif cfg.mirror_pairs:
        lines.append(
            "- Mirror pairs: every batch also seen in an in-plane mirror view (config `mirror_pairs`)."
        )
    return lines


def _self_blend_line(cfg: DenseConfig) -> list[str]:
    if not cfg.self_blend:
        return []
    n = cfg.self_blend
    return [
        f"- Self-blended copies: every authentic training scan was also seen as {n} cop"
        f"{'y' if n == 1 else 'ies'} with one lung region (every other copy: its real nodule) smoothed, "
        f"levelled and re-noised ({cfg.self_blend_noise} noise), trained as a removal "
        "(`medforensics.forge.selfblend`): the generic trace of in-painting, for attacks never seen in "
        "training."
    ]


def _init_line(cfg: DenseConfig, metrics: dict[str, Any]) -> list[str]:
    init = metrics.get("init_from")
    if not init:
        return []
    return [
        f"- Fine-tuned: training started from the weights `{init['weights']}` (sha256 {init['sha256']}), "
        f"not from random ones, with a peak learning rate of {cfg.lr:g}."
    ]


def _ties_line(cal: dict[str, Any], n: int) -> list[str]:
    """The card's line on validation scans tied at the top score: a warning when authentic scans are among
    them (the operating point then sits on a ceiling), a plain note when only tampered ones are."""
    tied = int(cal.get("tied_at_top", 0))
    if not saturated(tied, n):
        return []
    authentic = cal.get("tied_authentic")
    if authentic == 0:
        return [
            f"- {tied} validation scans, all of them tampered, tie at the top score (their tamper map "
            "reaches 1 in float32): the ranking among them is lost, the operating point is not affected."
        ]
    return [
        f"- **Warning: {tied} validation scans tie at the highest score the model gave"
        + (f", {authentic} of them authentic" if authentic is not None else "")
        + ".** Its tamper map saturates there (a ceiling the scores cannot pass), so the ranking at the "
        "top, and an operating point chosen there, mean little."
    ]


#: How the card's operating-point lines start (:func:`operating_point_lines`; a recalibration swaps them).
OPERATING_POINT_PREFIXES = (
    "- Operating point:",
    "- Series whose noise is uncorrelated",
    "- Series stored lossy",
)


def operating_point_lines(cal: dict[str, Any]) -> list[str]:
    """The card's lines on the operating point(s) of ``calibration.json`` content ``cal``: the series
    threshold and, when there are, the uncorrelated-noise and the lossy ones (:mod:`.dense_calibration`)."""
    views = int(cal.get("views", 1))
    kinds = "mirror views" if views <= 4 else "views (mirrors and their transposes)"
    drawn = f"; every map the mean of {views} in-plane {kinds}, as `scan` draws it" if views > 1 else ""
    if views > 1 and cal.get("screen") is not None:
        drawn += f" (the views after the first where the first view's raw evidence reaches {cal['screen']:g})"
    lines = [
        f"- Operating point: series threshold {cal['series_threshold']:.4f} on Platt-calibrated scores "
        f"({cal['fitted_on']}{drawn}, <= {cal['max_fpr']:.0%} authentic flagged there)."
    ]
    unc = cal.get("uncorrelated_noise")
    if unc:
        lines.append(
            "- Series whose noise is uncorrelated between slices (median inter-slice correlation of the "
            f"noise residual over aerated lung below {unc['below']:g}: noise added to the whole series, or "
            f"thick slices that do not overlap) are held to threshold {unc['series_threshold']:.4f} instead "
            f"({unc['fitted_on']}). The noise traces the model reads are drowned there: it detects much "
            "less in such series."
        )
    lossy = cal.get("lossy")
    if lossy:
        lines.append(
            "- Series stored lossy (a lossy encoding, or pixels that carry a lossy coding grid in a series "
            "whose headers say LossyImageCompression 01 or in a file that cannot record it, such as NIfTI: "
            "a tag alone on lossless pixels is not enough) are held to threshold "
            f"{lossy['series_threshold']:.4f} instead ({lossy['fitted_on']}). "
            "Lossy coding smooths and blocks the noise the model reads: it detects much less in such series."
        )
    return lines


def whole_series_scores(model: Any, cfg: DenseConfig, paths: list[str]) -> list[float]:
    """Raw series scores of whole series exactly as ``scan`` computes them (lung box, lung zone)."""
    from medforensics.io.reader import read_volume
    from medforensics.scan.dense import DenseDetector
    from medforensics.scan.detector import Calibration
    from medforensics.scan.result import ModelInfo
    from medforensics.train.dense_calibration import score_series

    det = DenseDetector(model, asdict(cfg), Calibration(), ModelInfo(name=cfg.model, version="", sha256=""))
    det.precision = cfg.precision
    return [score_series(det, read_volume(path)).raw for path in paths]


#: Share of validation scans tied at the top score above which calibration and the card warn (saturation).
TIES_WARN = 0.05


def saturated(tied: int, n: int) -> bool:
    """Whether ``tied`` of ``n`` validation scans at the top score mean the model's scores saturate."""
    return tied > 1 and tied > TIES_WARN * n


#: How far (calibrated score) the series threshold stays above the whole authentic training series.
WHOLE_SERIES_MARGIN = 0.01


def top_ties(scores: NDArray[np.float64], tampered: NDArray[Any]) -> tuple[int, int]:
    """How many ``scores`` tie at the top (within 1e-9), and how many of those are authentic."""
    at_top = scores >= scores.max() - 1e-9 if len(scores) else np.zeros(0, bool)
    return int(at_top.sum()), int((at_top & (tampered == 0)).sum())


def above_whole_series(thr: float, whole_raw: Sequence[float], ab: Sequence[float]) -> float:
    """``thr`` raised, where needed, to :data:`WHOLE_SERIES_MARGIN` above the highest calibrated score of
    the whole authentic series ``whole_raw`` (raw scores; half the distance to 1 at most)."""
    from medforensics.evaluate.calibration import apply_platt

    top = float(np.max(apply_platt(np.asarray(whole_raw, np.float64), ab)))
    return max(thr, min(top + WHOLE_SERIES_MARGIN, (top + 1.0) / 2))


def calibrate(
    val_scores: list[dict[str, Any]], max_fpr: float = 0.01, whole_authentic: list[float] | None = None
) -> dict[str, Any]:
    """Platt parameters on validation scan scores and the series threshold for <= ``max_fpr`` flagged.

    ``whole_authentic``: raw scores of whole authentic series of the *training* patients. The threshold is
    kept above them too, by :data:`WHOLE_SERIES_MARGIN` (calibrated score; half the distance to 1 at most):
    a whole chest CT offers many more places for a false alarm than the data set's crops, and with one
    validation patient the crops alone set it too low (conservative on purpose). The margin keeps such a
    series (the demo's CT is one) from flipping on another CPU's rounding.
    """
    from medforensics.evaluate.calibration import apply_platt, fit_platt
    from medforensics.scan.aggregate import series_threshold_at_fpr

    s = np.asarray([r["score"] for r in val_scores], np.float64)
    y = np.asarray([int(r["label"] in LABELS) for r in val_scores])
    a, b = fit_platt(s, y)
    cal = apply_platt(s, (a, b))
    thr = series_threshold_at_fpr(cal[y == 0], max_fpr)
    fitted = f"validation scans ({int((y == 0).sum())} authentic, {int(y.sum())} tampered)"
    tied, tied_authentic = top_ties(s, y)
    if saturated(tied, len(s)) and tied_authentic:
        log.warning(
            "%d of %d validation scans (%d authentic) tie at the top score %.6f: the model saturates",
            tied,
            len(s),
            tied_authentic,
            s.max(),
        )
    if whole_authentic:
        thr = above_whole_series(thr, whole_authentic, (a, b))
        fitted += (
            f"; kept above {len(whole_authentic)} whole authentic training series (by {WHOLE_SERIES_MARGIN})"
        )
    return {
        "platt": [a, b],
        "threshold": thr,
        "series_threshold": thr,
        "max_fpr": max_fpr,
        "fitted_on": fitted,
        "tied_at_top": tied,
        "tied_authentic": tied_authentic,
    }
