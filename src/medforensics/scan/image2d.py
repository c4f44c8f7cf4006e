"""Single images (X-ray, MR or CT slices), MR series and radiograph series: scored by the 2-D synthesis
detector.

The bundled 2-D detector (``assets/detector2d/``, made by ``benchmarks/leaderboard/make_detector2d.py``) reads
64 x 64 images in [0, 1] "display-normalised" as it was trained: CT windowed to [-1000, 400] HU
(:data:`~medforensics.forge.dcgan_data.CT_WINDOW`), MR and X-ray scaled between their own 0.5 and 99.5
percentiles; whole images are area-averaged down to the input size (as the training crops were). Its
config's HU window is [0, 1], the identity on such inputs: the normalisation is the caller's, here.

An MR series (no 3-D MR detector is bundled) is scored slice by slice (:func:`scan_image_series`). The
calibration's per-image operating point is chosen on CT, MR and X-ray validation crops together, and on real
MR series one slice over it is no evidence (the first bundled network: 56 of 708 real slices over it), so a
series is flagged when a slice with content scores at least the detector's MR cut-off (:func:`mr_threshold`:
``calibration.json`` ``mr_slice_threshold``, set by ``make_detector2d.py`` as the lowest calibrated score of
1000 fresh DCGAN MR samples; the bundled four-network ensemble's: 0.883). On the 49 real MR series and images
that ``benchmarks/mr_false_alarms.py`` scores it flags none (highest slice 0.641; the previous single network,
held to 0.999, flagged 3: two 64 x 64 EPI and an FA map). Slices with almost no content (see
:func:`content_mask`) are not assessed: a blank image is no MR image.

A series of projection radiographs (CR, DX: a PA and a lateral view, say, which may differ in size; the
DICOM reader pads them into one array and records each size) is scored image by image at each image's own
size, and is synthetic when one image scores at least the per-image operating threshold, the point a single
radiograph is held to. Before, such a series was refused ("the detector scores CT volumes", or "image size
differs" when its views differed in size).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.io.dicom_tags import PROJECTION_MODALITIES
from medforensics.io.volume import Volume
from medforensics.scan.detector import Detector, report_info
from medforensics.scan.metadata_checks import air_level, lossy_finding
from medforensics.scan.result import Finding, SeriesResult

#: Modalities of the images the bundled 2-D detector was trained on (CT, MR and X-ray: CR/DX and the 2-D
#: picture formats, which load as DX); others (US, NM, SEG, ...) are not scored by it.
MODALITIES_2D = frozenset({"CT", "MR"}) | PROJECTION_MODALITIES
#: Percentiles an MR or X-ray image is scaled between (as the detector's training images).
PERCENTILES = (0.5, 99.5)
#: At most this many pixels are sampled for the percentiles of a large image.
PERCENTILE_SAMPLE = 4_000_000
#: The MR cut-off of a 2-D detector whose ``calibration.json`` sets none (the first bundled model's, set on
#: its own Platt map): an MR series is synthetic when one of its slices with content scores at least the
#: cut-off, a single MR image when it does (:func:`mr_threshold`; the cut-off belongs to its Platt map).
SERIES_SLICE_THRESHOLD = 0.999
#: A slice is assessed when at least this fraction of its pixels is over 10 % of the series' 0.5-99.5
#: percentile range (the rest: the empty ends of a head volume, air).
MIN_CONTENT = 0.05
#: What lossy compression means for the 2-D detector (see :func:`_lossy`).
LOSSY_2D = (
    "the 2-D detector's behaviour on lossy-compressed images is unmeasured, so read the verdict with care"
)
#: Slices scored per batch, and ``synthetic`` findings kept per series (the highest-scoring slices).
SLICE_BATCH, MAX_SLICE_FINDINGS = 64, 5


#: A CT slice is shown to the 2-D detector when it reads as HU, as the detector was trained on it: its darkest
#: tissue (:func:`~medforensics.scan.metadata_checks.air_level`, the 5th percentile with padding ignored) from
#: :data:`DARKEST_HU` (air, lung or fat: a crop inside the body has no air), and at least :data:`MIN_SOFT` of
#: its pixels at :data:`SOFT_HU` or more (soft tissue, bone). A real chest CT shifted by -1024 HU (a rescale
#: intercept applied twice) scored 0.35 as one slice and a median of 0.38 over its slices
#: (``scan.slice_synthesis``) without this (its darkest tissue -1155 to -1256 HU, soft tissue 0-0.3 %), one
#: stored as 8-bit display values 0.14 (darkest 3): false synthetic calls. Real chest slices hold 26-84 %
#: soft tissue, their darkest tissue -823 to -1049 HU; 499 of 500 DCGAN CT samples pass (the other, a crop
#: inside the body with no air or lung, is darkest at -527 HU).
DARKEST_HU = (-1300.0, -400.0)
SOFT_HU, MIN_SOFT = -300.0, 0.05


def hu_reading(image: NDArray[Any]) -> tuple[float, float]:
    """A CT slice's darkest tissue (HU) and the share of its pixels at :data:`SOFT_HU` or more."""
    return air_level(image), float((image >= SOFT_HU).mean())


def _in_hu(darkest: float, soft: float) -> bool:
    """Whether a :func:`hu_reading` is that of a slice in HU (see :data:`DARKEST_HU`)."""
    return bool(np.isfinite(darkest) and DARKEST_HU[0] <= darkest <= DARKEST_HU[1] and soft >= MIN_SOFT)


def reads_as_hu(image: NDArray[Any]) -> bool:
    """Whether a CT slice reads as HU (see :data:`DARKEST_HU`)."""
    return _in_hu(*hu_reading(image))


def ct_units_reason(volume: Volume) -> str | None:
    """Why a single CT image is not shown to the 2-D detector (None: it reads as HU, :func:`reads_as_hu`)."""
    if volume.modality != "CT":
        return None
    darkest, soft = hu_reading(np.asarray(volume.array[0], np.float32))  # measured once
    if _in_hu(darkest, soft):
        return None
    return (
        f"CT image whose pixels do not read as HU (darkest tissue about {darkest:.0f} HU, {soft:.0%} of "
        f"pixels at {SOFT_HU:.0f} HU or more): the 2-D detector reads CT in HU; not assessed (rescale tags?)"
    )


def image_2d_reason(volume: Volume, size: int) -> str | None:
    """Why an image or a series of them cannot be scored by a 2-D detector of input ``size`` (None: it
    can): its smallest image is under ``size`` pixels on a side."""
    nz, shapes = volume.shape[0], volume.image_shapes
    ny, nx = min(shapes, key=min)
    if min(ny, nx) < size:
        unit = "slices" if volume.modality == "MR" else "images"
        what = "image" if nz == 1 else f"{volume.modality} series of {nz} {unit}"
        what += ", the smallest" if len(set(shapes)) > 1 else ""
        return f"{what} of {nx} x {ny} pixels: the 2-D detector reads images of at least {size} x {size}"
    return None


def percentile_range(img: NDArray[Any]) -> tuple[float, float]:
    """The image's :data:`PERCENTILES` (sampled on a grid of at most about :data:`PERCENTILE_SAMPLE`
    pixels)."""
    step = max(1, int(np.ceil(np.sqrt(img.size / PERCENTILE_SAMPLE))))
    lo, hi = (float(v) for v in np.percentile(img[::step, ::step], PERCENTILES))
    return lo, hi


def normalise_2d(image: NDArray[Any], modality: str | None) -> NDArray[np.float32]:
    """``image`` (y, x) mapped to [0, 1] as the 2-D detector was trained: CT by the [-1000, 400] HU window,
    anything else between its 0.5 and 99.5 percentiles (sampled on a grid for a large image)."""
    from medforensics.forge.dcgan_data import CT_WINDOW

    img = np.asarray(image, np.float32)
    if modality == "CT":
        lo, hi = CT_WINDOW
    else:
        lo, hi = percentile_range(img)
        if hi <= lo:
            hi = lo + 1.0
    out = img - np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


def detector_input(image: NDArray[Any], modality: str | None, size: int) -> NDArray[np.float32]:
    """The ``(size, size)`` detector input of one image: :func:`normalise_2d`, then an area-average
    resize (no aliasing of a large radiograph's noise into the 64-pixel input)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(normalise_2d(image, modality))[None, None]
    with torch.no_grad():
        return F.interpolate(x, size=(size, size), mode="area")[0, 0].numpy()


def mr_threshold(detector2d: Detector) -> float:
    """The slice score from which an MR image or series is synthetic for ``detector2d``."""
    own = detector2d.calibration.mr_slice_threshold
    return SERIES_SLICE_THRESHOLD if own is None else own


def scan_2d(volume: Volume, detector2d: Detector, result: SeriesResult) -> None:
    """Score a single image with a 2-D synthesis detector (see module docs); a synthetic verdict gets one
    ``synthetic`` finding over the whole image. ``extra`` names the detector and the input it was given."""
    size = detector2d.spec.size
    crop = detector_input(volume.array[0], volume.modality, size)
    p, _pt = detector2d.score_images(crop[None])
    # an MR image is held to the MR slice cut-off: at the calibrated point 7 % of real MR slices are over
    mr = volume.modality == "MR"
    thr = mr_threshold(detector2d) if mr else detector2d.calibration.operating_threshold
    how = "CT window [-1000, 400] HU" if volume.modality == "CT" else "0.5-99.5 percentile scaling"
    # the report's model is the CT detector: say which one scored this image, how, and against what
    result.extra.update(
        detector=report_info(detector2d).to_dict(),
        input=f"whole image, {how}, area-resized to {size} x {size}",
        threshold=thr,
    )
    result.score = float(p[0])
    result.verdict = "synthetic" if p[0] >= thr else "authentic"
    result.label = "SYN" if p[0] >= thr else None
    if p[0] >= thr:
        result.findings.append(
            _slice_finding(volume, 0, float(p[0]), "whole image: synthesised (2-D synthesis detector)")
        )
    _lossy(volume, result)


def _slice_finding(volume: Volume, k: int, score: float, description: str) -> Finding:
    """A ``synthetic`` finding covering the whole of slice ``k`` (centred on it, in voxels and mm)."""
    ny, nx = volume.image_shapes[k]
    mm = volume.index_to_patient(np.array([float(k), ny / 2, nx / 2]))
    return Finding(
        "synthetic",
        score,
        (k, ny // 2, nx // 2),
        (float(mm[0]), float(mm[1]), float(mm[2])),
        (k, 0, 0, k + 1, ny, nx),
        description,
    )


def read_slices(volume: Volume, ks: range | NDArray[np.int64]) -> NDArray[np.float32]:
    """Slices ``ks`` (a range of step 1, or any indices) of ``volume`` (an in-memory array, or a lazy one
    that reads only those)."""
    arr = volume.array
    if isinstance(arr, np.ndarray):
        if isinstance(ks, range) and ks.step == 1:
            return np.asarray(arr[ks.start : ks.stop], np.float32)  # a view, no copy
        return np.asarray(arr[np.asarray(ks)], np.float32)
    return np.asarray(arr.read([int(k) for k in ks]), np.float32)


def content_mask(volume: Volume) -> NDArray[np.bool_]:
    """Slices with content: at least :data:`MIN_CONTENT` of their pixels over 10 % of the series' 0.5-99.5
    percentile range (judged on a pixel grid of at most about a million pixels per series)."""
    nz, ny, nx = volume.shape
    step = max(1, int(np.ceil(np.sqrt(ny * nx * nz / 1_000_000))))
    batches = (range(k, min(k + SLICE_BATCH, nz)) for k in range(0, nz, SLICE_BATCH))
    grid = np.concatenate([read_slices(volume, ks)[:, ::step, ::step] for ks in batches])
    lo, hi = (float(v) for v in np.percentile(grid, PERCENTILES))
    return np.asarray((grid > lo + 0.1 * (hi - lo)).mean(axis=(1, 2)) >= MIN_CONTENT)


def scan_image_series(volume: Volume, detector2d: Detector, result: SeriesResult) -> None:
    """Score every image of an MR series or a projection radiograph series with the 2-D detector (see module
    docs), each at its own size (``Volume.image_shapes``). An MR series is synthetic when a slice with content
    (:func:`content_mask`) scores at least :func:`mr_threshold`; a radiograph series (a few exposures,
    such as a PA and a lateral view) when an image that is not blank scores at least the per-image operating
    threshold, as a single radiograph is judged. Each such image (the top :data:`MAX_SLICE_FINDINGS`) is a
    ``synthetic`` finding located at its index. ``extra``'s ``slices_*`` keys count images."""
    nz, mr = volume.shape[0], volume.modality == "MR"
    unit = "slice" if mr else "image"
    size, shapes = detector2d.spec.size, volume.image_shapes
    keep = content_mask(volume) if mr else np.ones(nz, bool)
    p = np.full(nz, np.nan)
    for k in range(0, nz, SLICE_BATCH):
        ks = range(k, min(k + SLICE_BATCH, nz))
        imgs = [im[: shapes[i][0], : shapes[i][1]] for i, im in zip(ks, read_slices(volume, ks), strict=True)]
        if not mr:  # a blank exposure (one value throughout) is no radiograph
            keep[k : ks.stop] = [float(im.max()) > float(im.min()) for im in imgs]
        inputs = np.stack([detector_input(im, volume.modality, size) for im in imgs])
        p[k : ks.stop] = detector2d.score_images(inputs)[0]
    if not keep.any():
        has = f"({MIN_CONTENT:.0%} of pixels above background)" if mr else "(each is one value throughout)"
        result.error = f"none of the {nz} {unit}s has content {has}"
        return
    p[~keep] = np.nan
    thr = detector2d.calibration.operating_threshold
    cut = mr_threshold(detector2d) if mr else thr
    flagged = [int(k) for k in np.argsort(-np.nan_to_num(p, nan=-1.0)) if p[k] >= cut]
    result.extra.update(
        detector=report_info(detector2d).to_dict(),
        input=f"each {unit}, 0.5-99.5 percentile scaling, area-resized to {size} x {size}",
        slices_assessed=int(keep.sum()),
        slices_over_image_threshold=int((p >= thr).sum()),
        slices_synthetic=len(flagged),
        threshold=cut,
        series_rule=f"synthetic if {'a slice with content' if mr else 'an image'} scores >= {cut}",
        slice_scores=[None if np.isnan(v) else round(float(v), 6) for v in p],
    )
    result.score = float(np.nanmax(p))
    result.verdict = "synthetic" if flagged else "authentic"
    result.label = "SYN" if flagged else None
    of = f"{len(flagged)} of {int(keep.sum())} {unit}s"
    for k in flagged[:MAX_SLICE_FINDINGS]:
        text = f"{unit} {k}: synthesised (2-D synthesis detector, {of})"
        result.findings.append(_slice_finding(volume, k, float(p[k]), text))
    _lossy(volume, result)


def _lossy(volume: Volume, result: SeriesResult) -> None:
    """Add the ``lossy_compression`` metadata finding of a lossy-compressed image or MR series (the CT path
    adds its own with the metadata checks)."""
    found = lossy_finding(volume, LOSSY_2D)
    if found is not None:
        result.findings.append(found)
