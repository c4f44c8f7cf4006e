"""Lossy coding of CT slices as a PACS archive may store them, and decoding them again.

Archives keep CT lossy to save space: JPEG 2000 with the irreversible wavelet at a compression ratio,
JPEG-LS near-lossless, or 12-bit JPEG (process 4, "JPEG Extended"). The detector reads the noise such coding
changes (on the demo CT, JPEG 2000 at 20:1 raised an authentic series' score from 0.13 to 0.73, session 50),
so a lossy series is scored against an operating point fitted on lossy copies
(:mod:`medforensics.train.dense_calibration`). Each slice is coded as a 12-bit DICOM image (stored HU + 1024,
clipped to 0-4095: BitsStored 12, as most CT series are stored) with pydicom's encoders (OpenJPEG, CharLS)
and decoded again; 12-bit JPEG, which pydicom cannot encode, with DCMTK's ``dcmcjpeg +ee`` and ``dcmdjpeg``
(Debian's ``dcmtk``; :func:`missing_coder` says when it is absent), which may rescale the stored values
(the rescale tags are applied).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Codecs by name: (coder, setting): JPEG 2000 irreversible at a compression ratio, JPEG-LS near-lossless
#: at a largest error (stored units), 12-bit JPEG at a quality (DCMTK).
LOSSY_CODECS: dict[str, tuple[str, float]] = {
    "j2k-10": ("j2k", 10.0),
    "j2k-20": ("j2k", 20.0),
    "jls-3": ("jls", 3.0),
    "jpeg-90": ("jpeg12", 90.0),
    "jpeg-75": ("jpeg12", 75.0),
}
#: What a model is trained with unless its config says otherwise: the codecs pydicom's own encoders write
#: (no program outside Python needed). The bundled detector's lossy point adds both JPEG ones (session 59).
DEFAULT_LOSSY_CODECS: tuple[str, ...] = ("j2k-10", "j2k-20", "jls-3")
#: Programs a coder needs.
_PROGRAMS = {"jpeg12": ("dcmcjpeg", "dcmdjpeg")}
#: Stored value of -1024 HU in the 12-bit layout (RescaleIntercept -1024).
OFFSET_HU = 1024.0


def slice_dataset(hu: NDArray[Any]) -> Any:
    """One CT slice (HU) as a 12-bit DICOM dataset, Explicit VR Little Endian."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, (ds.Rows, ds.Columns) = "CT", hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = f"{-OFFSET_HU:g}", "1"
    ds.PixelData = np.clip(np.round(hu) + OFFSET_HU, 0, 4095).astype(np.uint16).tobytes()
    return ds


def decoded_hu(ds: Any) -> NDArray[np.float32]:
    """A dataset's pixels in HU (its rescale applied)."""
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    return np.asarray(ds.pixel_array, np.float32) * slope + intercept


def missing_coder(codecs: Iterable[str]) -> str | None:
    """Why ``codecs`` cannot be coded here (a program a coder needs is not on the PATH), or None."""
    for codec in codecs:
        coder = LOSSY_CODECS[codec][0] if codec in LOSSY_CODECS else codec
        absent = [p for p in _PROGRAMS.get(coder, ()) if shutil.which(p) is None]
        if absent:
            return (
                f"lossy codec {codec!r} needs DCMTK's {' and '.join(absent)} (Debian: apt-get install dcmtk)"
            )
    return None


def _jpeg12(hu: NDArray[Any], quality: float) -> NDArray[np.float32]:
    import pydicom

    with tempfile.TemporaryDirectory(prefix="medforensics-jpeg-") as tmp:
        plain, jpeg, back = (Path(tmp) / n for n in ("plain.dcm", "jpeg.dcm", "back.dcm"))
        slice_dataset(np.asarray(hu)).save_as(plain, enforce_file_format=True)
        for cmd in (
            ["dcmcjpeg", "+ee", "+q", f"{quality:g}", str(plain), str(jpeg)],
            ["dcmdjpeg", str(jpeg), str(back)],
        ):
            subprocess.run(cmd, check=True, capture_output=True)
        return decoded_hu(pydicom.dcmread(back))


def code_slice(hu: NDArray[Any], coder: str, setting: float) -> NDArray[np.float32]:
    """Slice ``hu`` coded with ``coder`` (``j2k``: compression ratio ``setting``; ``jls``: largest error
    ``setting``; ``jpeg12``: 12-bit JPEG at quality ``setting``, with DCMTK) and decoded again (HU)."""
    from pydicom.uid import JPEG2000, JPEGLSNearLossless

    if coder == "jpeg12":
        return _jpeg12(hu, setting)
    ds = slice_dataset(np.asarray(hu))
    if coder == "j2k":
        ds.compress(JPEG2000, j2k_cr=[float(setting)])
    elif coder == "jls":
        ds.compress(JPEGLSNearLossless, jls_error=int(setting))
    else:
        raise ValueError(f"unknown lossy coder {coder!r}")
    return decoded_hu(ds)


def lossy_copy(array: NDArray[Any], codec: str) -> NDArray[np.float32]:
    """Every slice of ``array`` (z, y, x; HU) coded with ``codec`` (:data:`LOSSY_CODECS`) and decoded."""
    if codec not in LOSSY_CODECS:
        raise ValueError(f"unknown lossy codec {codec!r}; known: {', '.join(LOSSY_CODECS)}")
    coder, setting = LOSSY_CODECS[codec]
    return np.stack([code_slice(z, coder, setting) for z in np.asarray(array, np.float32)])
