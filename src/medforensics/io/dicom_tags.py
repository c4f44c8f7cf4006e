"""Header tags the DICOM reader falls back on, each fallback recorded as a reader warning.

* :func:`series_modality`: a file without a Modality tag gets the modality its SOP class implies (CT, MR,
  CR, DX, ...) or ``OT``, and a warning starting ``no Modality tag`` (scan's reasons then say so rather than
  "modality OT").
* :func:`spacing_warning`: a PixelSpacing (or ImagerPixelSpacing) that is present but not two positive
  numbers ("0\\0"), or none at all in a CT, MR or PET image, means 1 mm pixels assumed, with a warning.
"""

from __future__ import annotations

import math

from pydicom.dataset import Dataset

#: SOP class UIDs of single-modality image storage classes and their modality (PS3.4 B.5).
SOP_CLASS_MODALITY = {
    "1.2.840.10008.5.1.4.1.1.1": "CR",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.1.2": "MG",
    "1.2.840.10008.5.1.4.1.1.1.2.1": "MG",
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.2.1": "CT",
    "1.2.840.10008.5.1.4.1.1.2.2": "CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.4.1": "MR",
    "1.2.840.10008.5.1.4.1.1.4.3": "MR",
    "1.2.840.10008.5.1.4.1.1.6.1": "US",
    "1.2.840.10008.5.1.4.1.1.20": "NM",
    "1.2.840.10008.5.1.4.1.1.128": "PT",
    "1.2.840.10008.5.1.4.1.1.130": "PT",
}

#: Modalities of projection radiographs. Each image of such a series is an exposure of its own (a PA and a
#: lateral view), not a slice of a volume, and the images may differ in size (portrait and landscape).
PROJECTION_MODALITIES = frozenset({"CR", "DX", "DR", "RG"})

#: Modalities whose image IODs require PixelSpacing (Type 1 in CT Image, MR Image and the PET Image Plane
#: module): a slice of them without it has been stripped or badly exported, and says so.
SPACING_REQUIRED = frozenset({"CT", "MR", "PT"})

BACKSLASH = "\\"
#: Tags a pixel spacing is read from, in order (as :func:`medforensics.io.dicom_frames.FrameInfo` does).
SPACING_TAGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")


def series_modality(ds: Dataset, warnings: list[str]) -> str:
    """The Modality of ``ds``; without one, that of its SOP class (else ``OT``), and a warning appended to
    ``warnings``."""
    value = str(ds.get("Modality") or "").strip()
    if value:
        return value
    sop = str(ds.get("SOPClassUID", "") or "")
    inferred = SOP_CLASS_MODALITY.get(sop)
    if inferred is None:
        warnings.append(f"no Modality tag and SOP class {sop or 'missing'} implies none: read as OT")
        return "OT"
    warnings.append(f"no Modality tag: {inferred} assumed from its SOP class {sop}")
    return inferred


def spacing_warning(ds: Dataset) -> str | None:
    """A warning when ``ds`` has a pixel-spacing tag but none of them holds two positive numbers, or has none
    at all though its modality's images must have one (:data:`SPACING_REQUIRED`): the reader then assumes
    1 mm pixels. None when one is valid, or when there is none in an image that need not have one (a
    secondary capture, a photograph)."""
    bad = []
    for kw in SPACING_TAGS:
        value = ds.get(kw)
        if value is None or value == "":
            continue
        items = [value] if isinstance(value, str | int | float) else list(value)
        try:
            nums = [float(v) for v in items]
        except (TypeError, ValueError):
            nums = []
        if len(nums) == 2 and all(v > 0 and math.isfinite(v) for v in nums):
            return None
        bad.append(f"{kw} {BACKSLASH.join(str(v) for v in items)}")
    if not bad:
        modality = str(ds.get("Modality") or "").strip() or SOP_CLASS_MODALITY.get(
            str(ds.get("SOPClassUID", ""))
        )
        if modality in SPACING_REQUIRED:
            return (
                f"no PixelSpacing in a {modality} image: 1 mm pixels assumed (distances in mm are not real)"
            )
        return None
    return f"{', '.join(bad)}: not a pixel spacing, 1 mm pixels assumed (distances in mm are not real)"
