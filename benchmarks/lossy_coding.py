"""Lossy coding of CT slices as a PACS archive might store them, for the benchmarks that measure what it
does to a check or a verdict (``resampling.py --lossy``, ``lossy_scans.py``).

JPEG 2000 (irreversible, at a compression ratio) and JPEG-LS near-lossless are the package's
(:mod:`medforensics.forge.lossy`: each slice a 12-bit DICOM image, coded with pydicom's encoders and decoded
again; 12-bit JPEG (process 4) with DCMTK's ``dcmcjpeg +ee`` and ``dcmdjpeg``, which may rescale the stored
values: the rescale tags are applied).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medforensics.forge.lossy import code_slice

#: name -> (coder, its setting)
CODECS: dict[str, tuple[str, float]] = {
    "J2K 10:1": ("j2k", 10.0),
    "J2K 20:1": ("j2k", 20.0),
    "JPEG-LS near 3": ("jls", 3),
    "JPEG q90": ("jpeg12", 90),
    "JPEG q75": ("jpeg12", 75),
}


def coded(hu: Any, codec: str) -> Any:
    """Slice ``hu`` coded with ``codec`` (:data:`CODECS`) and decoded again (HU, float32)."""
    coder, setting = CODECS[codec]
    return code_slice(hu, coder, setting)


def coded_volume(array: Any, codec: str) -> Any:
    """Every slice of ``array`` (z, y, x; HU) coded with ``codec`` and decoded again."""
    return np.stack([coded(z, codec) for z in np.asarray(array, np.float32)])
