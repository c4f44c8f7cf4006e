"""Builders of small DICOM series from pydicom's real CT_small.dcm (shared by the DICOM tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset
from pydicom.uid import generate_uid

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]


def ct_slice(z: float, series_uid: str, k: int) -> FileDataset:
    """CT_small.dcm moved to z (mm) with its own SOPInstanceUID; stored pixels offset by 10*k."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = k + 1
    x, y, _ = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x, y, z]
    px = ds.pixel_array.astype(np.int16) + np.int16(10 * k)
    ds.PixelData = px.tobytes()
    return ds


def write_ct_series(
    folder: Path,
    zs: Sequence[float],
    series_uid: str | None = None,
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Write one file per z into ``folder`` (named ``names`` or shuffled-looking ``s<k>.dcm``)."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or generate_uid(entropy_srcs=[str(folder), *map(str, zs)])
    out = []
    for k, z in enumerate(zs):
        name = names[k] if names else f"s{(k * 7919) % 1000:03d}.dcm"
        path = folder / name
        ct_slice(z, uid, k).save_as(path, enforce_file_format=True)
        out.append(path)
    return out
