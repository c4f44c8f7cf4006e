"""Single images (X-ray, MR or CT slices): routed to the 2-D synthesis detector and scored by it.

The bundled 2-D detector (``assets/detector2d/``, made by ``benchmarks/leaderboard/make_detector2d.py``) reads
64 x 64 images in [0, 1] "display-normalised" as it was trained: CT windowed to [-1000, 400] HU
(:data:`~medforensics.forge.dcgan_data.CT_WINDOW`), MR and X-ray scaled between their own 0.5 and 99.5
percentiles; whole images are area-averaged down to the input size (as the training crops were). Its
config's HU window is [0, 1], the identity on such inputs: the normalisation is the caller's, here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from medforensics.io.volume import Volume
from medforensics.scan.result import Finding, SeriesResult

if TYPE_CHECKING:
    from medforensics.scan.detector import Detector

#: Modalities of the images the bundled 2-D detector was trained on (CT, MR and X-ray: CR/DX and the 2-D
#: picture formats, which load as DX); others (US, NM, SEG, ...) are not scored by it.
MODALITIES_2D = ("CT", "MR", "CR", "DX", "DR", "RG")
#: Percentiles an MR or X-ray image is scaled between (as the detector's training images).
PERCENTILES = (0.5, 99.5)
#: At most this many pixels are sampled for the percentiles of a large image.
PERCENTILE_SAMPLE = 4_000_000


def image_2d_reason(volume: Volume, size: int) -> str | None:
    """Why a single image cannot be scored by a 2-D detector of input ``size`` (None: it can)."""
    _, ny, nx = volume.shape
    if min(ny, nx) < size:
        return f"image of {nx} x {ny} pixels: the 2-D detector reads images of at least {size} x {size}"
    return None


def normalise_2d(image: NDArray[Any], modality: str | None) -> NDArray[np.float32]:
    """``image`` (y, x) mapped to [0, 1] as the 2-D detector was trained: CT by the [-1000, 400] HU window,
    anything else between its 0.5 and 99.5 percentiles (sampled on a grid for a large image)."""
    from medforensics.forge.dcgan_data import CT_WINDOW

    img = np.asarray(image, np.float32)
    if modality == "CT":
        lo, hi = CT_WINDOW
    else:
        step = max(1, int(np.ceil(np.sqrt(img.size / PERCENTILE_SAMPLE))))
        lo, hi = (float(v) for v in np.percentile(img[::step, ::step], PERCENTILES))
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


def scan_2d(volume: Volume, detector2d: Detector, result: SeriesResult) -> None:
    """Score a single image with a 2-D synthesis detector (see module docs); a synthetic verdict gets one
    ``synthetic`` finding over the whole image. ``extra`` names the detector and the input it was given."""
    size = detector2d.spec.size
    crop = detector_input(volume.array[0], volume.modality, size)
    p, _pt = detector2d.score_images(crop[None])
    thr = detector2d.calibration.operating_threshold
    how = "CT window [-1000, 400] HU" if volume.modality == "CT" else "0.5-99.5 percentile scaling"
    # the report's model is the CT detector: say which one scored this image, and how
    result.extra.update(
        detector=detector2d.info.to_dict(), input=f"whole image, {how}, area-resized to {size} x {size}"
    )
    result.score = float(p[0])
    result.verdict = "synthetic" if p[0] >= thr else "authentic"
    result.label = "SYN" if p[0] >= thr else None
    if p[0] >= thr:
        _, ny, nx = volume.shape
        mm = volume.index_to_patient(np.array([0.0, ny / 2, nx / 2]))
        result.findings.append(
            Finding(
                "synthetic",
                float(p[0]),
                (0, ny // 2, nx // 2),
                (float(mm[0]), float(mm[1]), float(mm[2])),
                (0, 0, 0, 1, ny, nx),
                "whole image: synthesised (2-D synthesis detector)",
            )
        )
