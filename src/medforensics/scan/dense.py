"""CT scan with the dense tamper localiser (:mod:`medforensics.models.tamperseg`).

One pass over the volume brings it to the model grid (2.5 x 1.4 x 1.4 mm: block means slab by slab, so a
500-slice series never exists twice at full resolution, then a small zoom to the exact spacing); the lung
is segmented there, the box around it (plus a margin for juxtapleural lesions) goes through the network in
overlapping slabs (in as many in-plane mirror views as the calibration names, averaged; the bundle: 4, the
three after the first drawn only around voxels where the first reaches the calibration's screen,
:mod:`~medforensics.models.view_refine`), and the tamper map (``1 - p_authentic``, averaged over a 6 mm box)
is read inside the dilated lung:

* series score: its maximum (the strongest region decides), calibrated when the folder has Platt
  parameters; verdict ``tampered`` at the model's series threshold (chosen on validation scans);
* findings: the local maxima of the map above the threshold, at least :data:`PEAK_SEPARATION_MM` apart,
  each with its centre (:func:`~medforensics.models.tamperseg.region_centre`: the middle of the region
  around the peak, not the peak itself), a bounding box (the connected region above half its peak), its
  type (injected when solid tissue or a blob sits at the peak, else removed: see
  :data:`~medforensics.scan.nodules.NODULE_MATCH_MM`)
  and a heatmap (the map over its box, full resolution): a fully convolutional network's
  class-activation map *is* its explanation of that score;
* label: FM / FB from the top finding's type, else TM when a nodule-like blob is present (where: the
  series' ``extra.nodules``), else TB.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage

from medforensics._json import finite_numbers, is_finite_number
from medforensics.errors import InputError, MedforensicsError
from medforensics.features.noise_map import SlabCallback
from medforensics.io.volume import Volume
from medforensics.scan.clones import Keypoints, apply_clone_findings, clone_findings
from medforensics.scan.coverage import read_spacing_range, spacing_caveats
from medforensics.scan.detector import Calibration, calibration_and_info
from medforensics.scan.enlarged import enlarged_record
from medforensics.scan.nodules import find_nodules, holds_nodule, nodule_entries, untouched_nodules
from medforensics.scan.result import Finding, ModelInfo, SeriesResult
from medforensics.train.dense_config import slice_limit

#: Sub-folder of a dense detector folder holding its noise specialist (:meth:`DenseDetector.route`).
SPECIALIST_DIR = "uncorrelated"
#: Findings closer than this are one finding.
PEAK_SEPARATION_MM = 20.0
#: Margin (mm) around the lung mask that is still scored (nodules touching the pleura, mediastinal edge).
LUNG_MARGIN_MM = 8.0
MAX_FINDINGS = 5
#: Strongest map peaks listed in ``extra.top_candidates`` (flagged or not).
TOP_CANDIDATES = 3


@dataclass
class DenseMap:
    """The tamper evidence of one volume on the model grid (cropped to the lung box)."""

    evidence: NDArray[np.float32]
    prob: NDArray[
        np.float16
    ]  # (injected, removed) class probabilities; half precision keeps long series small
    lung: NDArray[np.bool_]
    scale: tuple[float, float, float]  # full-resolution voxels per model voxel
    offset: tuple[int, int, int]  # model-grid index of the crop's first voxel
    spacing: tuple[float, float, float]
    hu: NDArray[np.float32]  # the crop on the model grid, in HU
    #: median inter-slice noise correlation over the series' aerated lung (models with the zcorr channel)
    slice_corr: float | None = None
    #: the detector whose network drew the map and whose calibration scores it (a noise specialist routed
    #: to, see :meth:`DenseDetector.route`); None: the detector asked
    detector: Any = None
    #: where the other mirror views were drawn under a screen (:func:`~medforensics.models.view_refine.
    #: refine_views`'s account, with the screen level); None: every view everywhere
    refined: dict[str, Any] | None = None

    def to_full(self, idx: Any) -> NDArray[np.float64]:
        """Full-resolution (z, y, x) index of the centres of crop voxels ``idx``."""
        s = np.asarray(self.scale, np.float64)
        return (np.asarray(idx, np.float64) + np.asarray(self.offset) + 0.5) * s - 0.5

    def full_box(
        self, sl: tuple[slice, ...], shape: tuple[int, ...]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Full-resolution ``(lo, hi)`` (end exclusive, inside ``shape``) covered by crop slices ``sl``."""
        s = np.asarray(self.scale, np.float64)
        lo = np.floor((np.array([x.start for x in sl]) + self.offset) * s).astype(np.int64)
        hi = np.ceil((np.array([x.stop for x in sl]) + self.offset) * s).astype(np.int64)
        hi = np.minimum(np.maximum(hi, lo + 1), shape)
        return np.minimum(lo, hi - 1), hi


def scored_zone(lung: NDArray[np.bool_], spacing: tuple[float, float, float]) -> NDArray[np.bool_]:
    """Where the tamper map is read: the lung dilated by about :data:`LUNG_MARGIN_MM`."""
    from medforensics.scan.candidates import mask_box

    iterations = max(int(np.ceil(LUNG_MARGIN_MM / s)) for s in spacing)
    zone = np.zeros(lung.shape, bool)
    # on the lung's box widened by the reach: nothing beyond it can be reached (the same mask, less work)
    box = mask_box(lung, (iterations,) * 3)
    if box is not None:
        zone[box] = ndimage.binary_dilation(lung[box], ndimage.generate_binary_structure(3, 1), iterations)
    return zone


#: Model grid spacings (mm) a dense detector may read: voxel sizes CT has (as the readers' limits).
GRID_MM_RANGE = (0.1, 20.0)


def check_grid_config(config: Any, path: Path) -> None:
    """Raise :class:`InputError` naming ``path`` (a dense model's ``config.json``) when what the scan reads
    from it is off: ``target_mm`` not 3 finite spacings within :data:`GRID_MM_RANGE` (a grid of 1e6 mm
    hangs the block means, 0 divides by zero), ``hu_window`` not 2 finite numbers low < high, a
    ``max_slice_mm`` that is not a positive finite number. Checked at load, before any series is read."""
    if not isinstance(config, dict):
        raise InputError(f"not a JSON object ({type(config).__name__})", path=path)
    lo, hi = GRID_MM_RANGE
    target = finite_numbers(config.get("target_mm", (2.5, 1.4, 1.4)), 3)
    if target is None or not all(lo <= v <= hi for v in target):
        why = f"target_mm must be 3 voxel sizes within {lo:g}-{hi:g} mm, not {config.get('target_mm')!r}"
        raise InputError(why, path=path)
    window = finite_numbers(config.get("hu_window", (-1000.0, 400.0)), 2)
    if window is None or not window[0] < window[1]:
        why = (
            f"hu_window must be 2 finite numbers [low, high] with low < high, not {config.get('hu_window')!r}"
        )
        raise InputError(why, path=path)
    for key in ("max_slice_mm", "max_pixel_mm"):
        limit = config.get(key)
        if limit is not None and (not is_finite_number(limit) or limit <= 0):
            raise InputError(f"{key} must be a positive number, not {limit!r}", path=path)


class DenseDetector:
    """A trained :class:`~medforensics.models.tamperseg.TamperSegNet` folder with its calibration."""

    kind = "dense3d"
    #: Reads a volume slab by slab only (:func:`~medforensics.train.dense_data.model_input` and the metadata
    #: checks), so a long series may be handed over decoded on demand.
    streams = True
    #: Whether a scan also searches the series for a duplicated region (``scan.clones``; ``scan
    #: --no-clone-check`` sets it False on the loaded detector).
    clone_check = True
    #: Where a CT volume is searched for a copy: ``"lungs"`` (across slices, :mod:`~medforensics.scan.clones`)
    #: or ``"body"`` (also every slice alone within the body, :mod:`~medforensics.scan.image_clones`; ``scan
    #: --clone-region body``).
    clone_region = "lungs"

    def __init__(self, model: Any, config: dict[str, Any], calibration: Calibration, info: ModelInfo) -> None:
        from medforensics.models.blocks import fold_batchnorm

        # scoring only: BatchNorm folded into the convolutions (a copy: a model still in training is not
        # touched); the same map to float rounding, about 5 % of a scan's time less
        self.model = fold_batchnorm(model)
        self.config = config
        self.calibration = calibration
        self.info = info
        self.precision = "bf16"
        self.target_mm = tuple(float(v) for v in config.get("target_mm", (2.5, 1.4, 1.4)))
        self.hu_window = tuple(float(v) for v in config.get("hu_window", (-1000.0, 400.0)))
        #: Slice spacing (mm) beyond which a series is not assessed (config ``max_slice_mm``, else
        #: MAX_SLICE_FACTOR x the model grid's): trained on 1.25-2.5 mm slices, the bundled model found
        #: none of 18 attacks on two real 5 mm chest CTs (benchmarks/scan_accuracy/README.md).
        self.max_slice_mm = slice_limit(config.get("max_slice_mm"), self.target_mm[0])
        #: In-plane pixel size (mm) beyond which a CT is not assessed (config ``max_pixel_mm``; None: no
        #: limit): the bundled model, trained on 0.68-0.82 mm pixels, localised 19 of 40 attacks and flagged
        #: 3 of 16 authentic series with 2 x 2 pixels averaged (benchmarks/scan_accuracy/README.md).
        pixel = config.get("max_pixel_mm")
        self.max_pixel_mm: float | None = None if pixel is None else float(pixel)
        #: Voxel sizes of the CTs it was trained and validated on (``metrics.json`` ``data_spacing``, set by
        #: :meth:`from_dir`): a series outside them gets caveats (:mod:`medforensics.scan.coverage`).
        self.data_spacing: dict[str, tuple[float, float]] = {}
        #: The noise specialist (a model trained with config ``noise_only``, in :data:`SPECIALIST_DIR`):
        #: it draws the map of a series held to the uncorrelated-noise operating point, see :meth:`route`.
        self.specialist: DenseDetector | None = None

    def route(self, slice_corr: float | None) -> DenseDetector:
        """The detector for a series with median inter-slice noise correlation ``slice_corr``: the noise
        specialist where its own calibration holds the series to its uncorrelated-noise operating point
        (noise added to the whole series after reconstruction), else this one."""
        sp = self.specialist
        if sp is not None and sp.calibration.threshold_for(slice_corr)[1] == "uncorrelated noise":
            return sp
        return self

    def attach_specialist(self, specialist: DenseDetector, where: str | Path) -> None:
        """Use ``specialist`` (loaded from ``where``) for series with uncorrelated noise; it must read the
        same model input (grid, channels) and hold an uncorrelated-noise operating point."""
        keys = ("target_mm", "noise_channel", "zcorr_channel")
        same = all(specialist.config.get(k) == self.config.get(k) for k in keys)
        if not same or not self.config.get("zcorr_channel"):
            why = f"noise specialist does not read this detector's input ({', '.join(keys)}; zcorr needed)"
            raise InputError(why, path=where)
        if specialist.calibration.uncorrelated is None:
            raise InputError("noise specialist has no uncorrelated-noise operating point", path=where)
        self.specialist = specialist

    @classmethod
    def from_dir(cls, folder: str | Path) -> DenseDetector:
        """Load ``model.safetensors`` + ``config.json`` (+ ``calibration.json``, ``metrics.json``)."""
        from medforensics.errors import ConfigError
        from medforensics.train.checkpoint import WEIGHTS, load_weights
        from medforensics.train.dense import model_from_config

        folder = Path(folder)
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            metrics_path = folder / "metrics.json"
            metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
        except (OSError, ValueError) as err:
            raise InputError(f"unreadable dense model folder ({err})", path=folder) from None
        check_grid_config(config, folder / "config.json")
        try:
            net = model_from_config(config)
        except ConfigError:
            raise InputError(
                f"not a dense model folder (model {config.get('model')!r})", path=folder
            ) from None
        model = load_weights(net, folder / WEIGHTS)
        calib, info = calibration_and_info(folder, config["model"], metrics)
        det = cls(model, config, calib, info)
        det.data_spacing = read_spacing_range(metrics, metrics_path)
        if (folder / SPECIALIST_DIR / "config.json").is_file():
            det.attach_specialist(cls.from_dir(folder / SPECIALIST_DIR), folder / SPECIALIST_DIR)
        return det

    # ------------------------------------------------------------------ the map
    def tamper_map(self, volume: Volume, on_slab: SlabCallback | None = None) -> DenseMap:
        """Model-grid evidence over the lung box of ``volume`` (see module docs); ``on_slab`` sees the
        full-resolution slabs as they are read (:func:`~medforensics.train.dense_data.model_input`)."""
        from medforensics._alloc import release_free_memory
        from medforensics.forge.lung import lung_mask
        from medforensics.models.tamperseg import tamper_evidence
        from medforensics.models.view_refine import screened_map
        from medforensics.train.dense import model_input

        g = model_input(
            volume.array,
            volume.spacing,
            self.target_mm,  # type: ignore[arg-type]
            bool(self.config.get("noise_channel")),
            on_slab=on_slab,
            zcorr=bool(self.config.get("zcorr_channel")),
        )
        low, scale, sp = g.hu, g.scale, g.spacing
        lung = lung_mask(low, sp)
        if not lung.any():
            raise MedforensicsError("no lung found: the CT detector scores chest CT")
        zone = scored_zone(lung, sp)
        box = ndimage.find_objects(zone.astype(np.uint8))[0]
        src = self.route(g.slice_corr)
        img = g.channels(src.hu_window, box, release=True)  # type: ignore[arg-type]
        # the network input holds what is needed of the channels, and only the box of the rest is kept:
        # the model-grid arrays are freed before inference (on a 600-slice grid, 300 MB each)
        hu_box, lung_box, in_zone = low[box].copy(), lung[box].copy(), zone[box].copy()
        slice_corr = g.slice_corr
        del g, low, lung, zone
        release_free_memory()
        cal = src.calibration
        prob, refined = screened_map(
            src.model,
            img,
            sp,
            cal.views,
            cal.screen_level(),
            src.precision,
            zone=in_zone,
        )
        del img
        release_free_memory()  # the network's activations, before the findings and the nodule search
        ev = tamper_evidence(prob, sp).numpy()
        types = prob[1:].to(torch.float16).numpy()
        del prob
        ev = np.where(in_zone, ev, 0.0).astype(np.float32)
        z0, y0, x0 = (int(s.start) for s in box)
        return DenseMap(ev, types, lung_box, scale, (z0, y0, x0), sp, hu_box, slice_corr, src, refined)

    def calibrated(self, p: float) -> float:
        """Platt-calibrated score (identity without calibration)."""
        return float(self.calibration.apply(np.asarray([p], np.float64))[0])


def peaks(
    ev: NDArray[np.float32], spacing: tuple[float, float, float], floor: float
) -> list[tuple[int, ...]]:
    """Local maxima of ``ev`` >= ``floor``, strongest first, :data:`PEAK_SEPARATION_MM` apart."""
    size = [max(3, round(PEAK_SEPARATION_MM / s) | 1) for s in spacing]
    is_max = ev == ndimage.maximum_filter(ev, size=size)
    keep: list[tuple[int, ...]] = []
    sp = np.asarray(spacing)
    # maxima above the floor, strongest first, then those at it in index order (what one stable sort of
    # both gives); the flat floor outside the lung holds most maxima and is rarely needed
    for above in (np.greater, np.equal):  # the floor's mask is made only when it is reached
        cand = np.argwhere(is_max & above(ev, floor))
        cand = cand[np.argsort(-ev[tuple(cand.T)], kind="stable")]
        for c in cand:
            if all(np.linalg.norm((c - np.asarray(k)) * sp) >= PEAK_SEPARATION_MM for k in keep):
                keep.append(tuple(int(v) for v in c))
            if len(keep) >= MAX_FINDINGS:
                return keep
    return keep


def _finding(volume: Volume, dm: DenseMap, det: DenseDetector, peak: tuple[int, ...]) -> Finding:
    from medforensics.models.tamperseg import peak_region, region_centre

    region = peak_region(dm.evidence, peak)
    p_inj = float(dm.prob[0][region].mean(dtype=np.float32))
    p_rem = float(dm.prob[1][region].mean(dtype=np.float32))
    # the type: a flagged region holding a nodule had one put there; one without had it taken away (the
    # network's own injected/removed split is reported but not trusted: on ds6's validation scans it typed
    # 14 of 51 right, both kinds of edit leaving the same noise trace). See nodules.NODULE_MATCH_MM.
    kind = "injected" if holds_nodule(dm, peak) else "removed"
    sl = ndimage.find_objects(region.astype(np.uint8))[0]
    lo, hi = dm.full_box(sl, volume.shape)
    centre_f = dm.to_full(region_centre(region, peak, dm.spacing))
    centre = tuple(int(np.clip(round(c), 0, n - 1)) for c, n in zip(centre_f, volume.shape, strict=True))
    box = dm.evidence[sl]
    heat = ndimage.zoom(
        box,
        [(b - a) / n for a, b, n in zip(lo, hi, box.shape, strict=True)],
        order=1,
        grid_mode=True,
        mode="nearest",
    )
    heat = np.clip(heat[: hi[0] - lo[0], : hi[1] - lo[1], : hi[2] - lo[2]], 0.0, None).astype(np.float32)
    heat = heat / max(float(heat.max()), 1e-6)
    mm = volume.index_to_patient(np.asarray(centre, np.float64))
    size = (hi - lo) * np.asarray(volume.spacing)
    return Finding(
        kind,
        det.calibrated(float(dm.evidence[peak])),
        centre,  # type: ignore[arg-type]
        (float(mm[0]), float(mm[1]), float(mm[2])),
        (int(lo[0]), int(lo[1]), int(lo[2]), int(hi[0]), int(hi[1]), int(hi[2])),
        f"{kind} region, about {size[2]:.0f} x {size[1]:.0f} x {size[0]:.0f} mm "
        f"(p injected {p_inj:.2f}, p removed {p_rem:.2f})",
        heatmap=heat,
        mask=heat >= 0.5,
    )


def scan_ct_dense(volume: Volume, det: DenseDetector, result: SeriesResult) -> None:
    """Fill ``result`` for a CT volume with the dense detector (see module docs)."""
    from medforensics.scan.metadata_checks import (
        PixelStats,
        metadata_findings,
        noise_finding,
        scored_as_lossy,
    )

    stats = PixelStats(volume.shape[0])  # gathered while the grid is built: one pass over the pixels
    # the duplicated-region check's keypoints, gathered in the same pass
    keypoints = Keypoints() if det.clone_check else None

    def on_slab(z0: int, block: NDArray[np.float32]) -> None:
        stats.add(z0, block)
        if keypoints is not None:
            keypoints.add(z0, block)

    with torch.inference_mode():
        dm = det.tamper_map(volume, on_slab=on_slab)
    meta = metadata_findings(volume, stats)
    result.extra["enlarged"] = enlarged_record(stats.enlarged)  # the rule's measure, found or not
    src: DenseDetector = dm.detector or det  # its network drew the map: its calibration scores it
    # a lossy record alone does not move the threshold: the encoding or the pixels must show it
    recorded = next((f for f in meta if f.check == "lossy_compression"), None)
    lossy = recorded is not None and scored_as_lossy(volume, stats)
    if recorded is not None and not lossy:
        recorded.description += (
            "; but its pixels carry no lossy coding grid (JPEG blocks, JPEG 2000 wavelet), so the detector "
            "holds it to its lossless operating point"
        )
    thr, operating_point = src.calibration.threshold_for(dm.slice_corr, lossy)
    if operating_point == "uncorrelated noise" and src.calibration.uncorrelated is not None:
        noisy = noise_finding(volume, dm.slice_corr, src.calibration.uncorrelated[0])
        if noisy is not None:
            meta = sorted([*meta, noisy], key=lambda f: -f.score)
    raw_max = float(dm.evidence.max())
    score = src.calibrated(raw_max)
    tampered = score >= thr
    with ThreadPoolExecutor(1) as pool:
        # an authentic series' TB/TM label needs the whole-lung nodule search, which leaves a core idle
        # part of the time: it runs beside the findings and the duplicated-region search (each reads only)
        nodules = None if tampered else pool.submit(find_nodules, dm)
        top = peaks(dm.evidence, dm.spacing, floor=float(np.min(dm.evidence)))
        # peaks come strongest first: the flagged ones and the TOP_CANDIDATES reported are a prefix, and
        # only those get a finding (each costs a local blob search)
        n_flagged = sum(src.calibrated(float(dm.evidence[p])) >= thr for p in top)
        findings = [_finding(volume, dm, src, p) for p in top[: max(TOP_CANDIDATES, n_flagged)]]
        clones = clone_findings(volume, keypoints) if keypoints is not None else None
    flagged = [fd for fd in findings if fd.score >= thr]
    result.score = score
    result.verdict = "tampered" if tampered else "authentic"
    untouched = [] if nodules is None else untouched_nodules(volume, dm, nodules.result(), raw_max)
    if nodules is None:
        result.label = "FM" if flagged[0].type == "injected" else "FB"
    else:
        result.label = "TM" if untouched else "TB"
    result.findings = flagged + meta
    caveats = spacing_caveats(volume.spacing, src.data_spacing)
    if caveats:
        result.extra["caveats"] = caveats
    result.extra.update(
        detector="dense",
        grid_mm=[round(s, 3) for s in dm.spacing],
        scored_voxels=int(dm.evidence.size),
        lung_ml=round(float(dm.lung.sum()) * float(np.prod(dm.spacing)) / 1000.0, 1),
        slice_noise_corr=None if dm.slice_corr is None else round(dm.slice_corr, 4),
        operating_point=operating_point,
        threshold=round(thr, 6),
        network="main" if src is det else f"noise specialist ({src.info.sha256[:12]})",
        mirror_views=src.calibration.views,
        top_candidates=[
            {"score": round(fd.score, 6), "center_voxel": list(fd.center_voxel or ()), "type": fd.type}
            for fd in findings[:TOP_CANDIDATES]
        ],
    )
    if dm.refined is not None:  # the other views drawn in boxes only: where, and how much of the volume
        result.extra["views_screened"] = dm.refined
    if clones is not None:
        apply_clone_findings(result, *clones)
    if result.verdict == "authentic":  # what its TB/TM label rests on (empty: TB); a clone makes it FB/FM
        result.extra["nodules"] = nodule_entries(volume, dm, untouched)
