"""The enlarged-slices rule (:mod:`~medforensics.scan.enlarged`) on single images, MR series and radiograph
series: a generated image enlarged to a scanner's size, whatever generator made it.

The 2-D synthesis detector knows the generators it was trained on (this project's DCGAN); the trace of an
enlargement does not depend on the generator. An image made at 64-128 pixels and enlarged 3-16-fold by
interpolation (bilinear, nearest, a smooth bicubic) has pixels between the small image's samples whose
second difference vanishes; an MR or radiograph is sampled at every pixel by its acquisition, and an MR
scanner's own interpolation (zero-filling k-space) leaves a band-limited image with no such phases. The
CT rule's trace and cuts are used as they are: CT in HU; any other modality mapped onto the same scale
(:func:`counted_units`): its background (under :data:`BACKGROUND` of the series' 0.5-99.5 percentile
range above its 0.5 percentile) is left out as CT's air is, and its 99.5 percentile lands near CT's upper
counted bound, so that the floor on the energy (``enlarged.MIN_ENERGY``) reads the same share of the range.
Periods up to 16 are searched (:data:`IMAGE_PERIODS`), and periods whose energy sits on JPEG's block edges
are not (``enlarged.on_block_edges``): radiographs and MR travel as 8-bit JPEG.

Measured (session 75, ``benchmarks/enlarged_images.py``, ``benchmarks/enlarged_images.md``): real MR,
radiographs and CT slices (the MR false-alarm suite, pydicom's and pydicom-data's files, NIH ChestX-ray14's
two; 91 as stored, 50 single images coded as 8-bit JPEG at quality 10-90): none found, the lowest phase
ratio 0.533. This project's DCGAN images enlarged 3-16-fold: bilinear 27 of 27 (as integers), nearest 21
of 27 (not by 4 or 8: its steps lie on JPEG's block edges). Not found: noise added after the enlargement
(2 % of the range), most 8-bit bilinear enlargements by 10-16, bicubic ones by 3-5, a 2-fold enlargement
and sizes no whole multiple of the generator's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.io.dicom_tags import PROJECTION_MODALITIES
from medforensics.io.volume import Volume
from medforensics.scan.enlarged import EnlargedTrace, enlarged_finding, enlarged_record, mark_synthetic
from medforensics.scan.image2d import percentile_range, read_slices
from medforensics.scan.resampling import COUNTED_HU
from medforensics.scan.result import SeriesResult

#: Share of the series' 0.5-99.5 percentile range above its 0.5 percentile under which a pixel is
#: background (an MR's air, a radiograph's unexposed border): left out of the trace as CT's air is.
BACKGROUND = 0.02
#: Where the 99.5 percentile lands on the HU scale of the trace (its counted range: ``COUNTED_HU``): 50 HU
#: under the upper bound, so only the brightest few tenths of a percent are left out, as CT's bone is.
TOP_UNITS = COUNTED_HU[1] - 50.0
#: Where the background cut lands: just above the trace's lower bound.
BOTTOM_UNITS = COUNTED_HU[0] + 10.0
#: Periods searched in an image: the CT rule's and up to 16 (a 64-pixel image enlarged to 1024, a
#: 128-pixel one to 2048, as radiographs and some MR are stored).
IMAGE_PERIODS = tuple(range(3, 17))


def counted_units(image: NDArray[Any], lo: float, hi: float) -> NDArray[np.float32]:
    """``image`` of a modality without HU on the trace's HU scale: ``lo``/``hi`` (the series' 0.5 and 99.5
    percentiles) give the background cut (:data:`BACKGROUND`), mapped to :data:`BOTTOM_UNITS`, and the top,
    mapped to :data:`TOP_UNITS`; background pixels fall below the counted range."""
    base = lo + BACKGROUND * (hi - lo)
    scale = (TOP_UNITS - BOTTOM_UNITS) / max(hi - base, 1e-6)
    out = (np.asarray(image, np.float32) - np.float32(base)) * np.float32(scale) + np.float32(BOTTOM_UNITS)
    out[np.asarray(image) <= base] = COUNTED_HU[0] - 1000.0
    return out


def image_trace(volume: Volume) -> EnlargedTrace:
    """The enlarged-slices trace of a single image, an image series or a CT volume's axial view (every
    ``step``-th slice, each cut to its own size: slices of another size than the first summed are skipped),
    a lazy series read only there. CT stays in HU; other modalities go through :func:`counted_units`."""
    nz = volume.shape[0]
    trace = EnlargedTrace(nz)
    ks = np.arange(0, nz, trace.step)
    shapes = volume.image_shapes
    imgs = [im[: shapes[k][0], : shapes[k][1]] for k, im in zip(ks, read_slices(volume, ks), strict=True)]
    if volume.modality != "CT":
        sample = np.concatenate([im.ravel() for im in imgs])
        lo, hi = percentile_range(sample[None])
        imgs = [counted_units(im, lo, hi) for im in imgs]
    for k, im in zip(ks, imgs, strict=True):
        trace.add(int(k), im[None])
    return trace


def add_enlarged_images(volume: Volume, result: SeriesResult) -> None:
    """Search a scored single image or image series for enlarged slices: found, one ``synthetic`` finding
    (check ``enlarged``) over the whole of it, and the result is synthetic
    (:func:`~medforensics.scan.enlarged.mark_synthetic`: score at least 0.95) whatever the 2-D detector
    said; its slice findings stay. ``extra["enlarged"]`` records what was measured, found or not."""
    if result.error is not None:
        return
    unit = "image" if volume.shape[0] == 1 or volume.modality in PROJECTION_MODALITIES else "slice"
    # radiographs and MR travel as 8-bit JPEG (files, exports, secondary captures): phases on its block
    # edges are not taken for an enlargement
    trace = image_trace(volume)
    result.extra["enlarged"] = enlarged_record(trace, block_edges=False, periods=IMAGE_PERIODS)
    found = enlarged_finding(trace, volume, unit, block_edges=False, periods=IMAGE_PERIODS)
    if found is None:
        return
    result.findings = sorted([found, *result.findings], key=lambda f: -f.score)
    mark_synthetic(result)
