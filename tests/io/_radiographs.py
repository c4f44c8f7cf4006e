"""Series of real radiographs (pydicom-data's chest CR, RG1_UNCR.dcm) in files of one series, for the reader,
scan and report tests of projection radiograph series whose images differ in size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from pydicom.dataset import FileDataset
from pydicom.uid import generate_uid


def rg1_path() -> Path:
    """pydicom-data's RG1_UNCR.dcm: a real chest CR (1955 x 1841, MONOCHROME1, 15 bits)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCR.dcm", download=False)
    if path is None:
        pytest.skip("pydicom-data RG1_UNCR.dcm not installed")
    return Path(str(path))


def rg1_pixels() -> NDArray[np.uint16]:
    """The stored pixels of RG1_UNCR.dcm."""
    return np.asarray(pydicom.dcmread(rg1_path()).pixel_array, np.uint16)


def radiograph(pixels: NDArray[np.uint16], series_uid: str, number: int, bits: int = 15) -> FileDataset:
    """RG1_UNCR.dcm's header with ``pixels`` (any size; MONOCHROME1 at 15 bits as stored, else MONOCHROME2)
    as instance ``number`` of ``series_uid``."""
    ds = pydicom.dcmread(rg1_path())
    ds.SeriesInstanceUID = series_uid
    ds.InstanceNumber = number
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(number)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if bits != 15:
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsStored, ds.HighBit = bits, bits - 1
    ds.Rows, ds.Columns = (int(v) for v in pixels.shape)
    ds.PixelData = np.ascontiguousarray(pixels, np.uint16).tobytes()
    return ds


def write_radiographs(
    folder: Path, images: Sequence[NDArray[np.uint16]], bits: Sequence[int] | None = None
) -> list[Path]:
    """``images`` as one CR series in ``folder``, instance k + 1 for image k, the files named in the reverse
    order (``f<n - k>.dcm``) so that only the instance numbers give the order."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid(entropy_srcs=[str(folder), str(len(images))])
    out = []
    for k, px in enumerate(images):
        path = folder / f"f{len(images) - k}.dcm"
        radiograph(px, uid, k + 1, 15 if bits is None else bits[k]).save_as(path, enforce_file_format=True)
        out.append(path)
    return out
