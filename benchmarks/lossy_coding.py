"""Lossy coding of CT slices as a PACS archive might store them, for the benchmarks that measure what it
does to a check or a verdict (``resampling.py --lossy``, ``lossy_scans.py``).

JPEG 2000 (irreversible, at a compression ratio) and JPEG-LS near-lossless are the package's
(:mod:`medforensics.forge.lossy`: each slice a 12-bit DICOM image, coded with pydicom's encoders and decoded
again; 12-bit JPEG (process 4) with DCMTK's ``dcmcjpeg +ee`` and ``dcmdjpeg``, which may rescale the stored
values: the rescale tags are applied).
"""

from __future__ import annotations

from typing import Any

from medforensics.forge.lossy import lossy_copy

#: column name -> the codec of :data:`medforensics.forge.lossy.LOSSY_CODECS`
CODECS: dict[str, str] = {
    "J2K 10:1": "j2k-10",
    "J2K 20:1": "j2k-20",
    "JPEG-LS near 3": "jls-3",
    "JPEG q90": "jpeg-90",
    "JPEG q75": "jpeg-75",
}


def coded_volume(array: Any, codec: str) -> Any:
    """Every slice of ``array`` (z, y, x; HU) coded with ``codec`` (a column name of :data:`CODECS`) and
    decoded again (:func:`~medforensics.forge.lossy.lossy_copy`)."""
    return lossy_copy(array, CODECS[codec])
