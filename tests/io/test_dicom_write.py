"""DICOM series writing: round trips keep pixels, geometry, UIDs; inputs are never touched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medforensics.errors import InputError
from medforensics.io.dicom import read_dicom_series
from medforensics.io.dicom_write import write_dicom_series
from medforensics.io.volume import Volume
from tests.io._dicom_series import write_ct_series


def _file(name: str) -> Path:
    return Path(get_testdata_file(name))  # type: ignore[arg-type]


def _same(a: Volume, b: Volume) -> None:
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.spacing, b.spacing, atol=1e-6)
    np.testing.assert_allclose(a.origin, b.origin, atol=1e-6)
    np.testing.assert_allclose(a.direction, b.direction, atol=1e-6)
    assert a.modality == b.modality


def test_round_trip_series_keeps_everything(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "src", [10.0, 0.0, 5.0, 15.0])
    before = {f: f.read_bytes() for f in files}
    vol = read_dicom_series(files)
    out = write_dicom_series(vol, tmp_path / "out")
    assert [p.name for p in out] == [f"IM{n:06d}.dcm" for n in (2, 3, 1, 4)]  # by InstanceNumber, slice order
    back = read_dicom_series(out)
    _same(vol, back)
    for key in ("series_uid", "study_uid", "frame_of_reference_uid", "sop_instance_uids", "patient_hash"):
        assert back.metadata[key] == vol.metadata[key]
    assert {f: f.read_bytes() for f in files} == before  # inputs untouched
    ds = pydicom.dcmread(out[0])
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.Manufacturer == vol.datasets[0].Manufacturer  # source metadata kept


def test_tampered_pixels_written_back(tmp_path: Path) -> None:
    vol = read_dicom_series(write_ct_series(tmp_path / "src", [0.0, 5.0, 10.0]))
    fake = vol.array.copy()
    fake[1, 40:60, 40:60] = 60.0  # an "injected nodule" in HU
    fake[2, 0, 0] = 1e9  # beyond the stored range: clipped
    out = write_dicom_series(vol.with_array(fake), tmp_path / "out")
    back = read_dicom_series(out)
    np.testing.assert_array_equal(back.array[1], fake[1])
    assert back.array[2, 0, 0] == 32767 - 1024  # int16 max, rescaled
    np.testing.assert_array_equal(back.array[0], vol.array[0])


def test_new_uids(tmp_path: Path) -> None:
    vol = read_dicom_series(write_ct_series(tmp_path / "src", [0.0, 5.0]))
    back = read_dicom_series(write_dicom_series(vol, tmp_path / "out", new_uids=True))
    assert back.metadata["series_uid"] != vol.metadata["series_uid"]
    assert back.metadata["study_uid"] == vol.metadata["study_uid"]
    assert not set(back.metadata["sop_instance_uids"]) & set(vol.metadata["sop_instance_uids"])
    np.testing.assert_array_equal(back.array, vol.array)


@pytest.mark.parametrize(
    "name",
    ["MR_small_RLE.dcm", "693_J2KR.dcm", "MR_small_bigendian.dcm", "RG1_UNCR.dcm", "eCT_Supplemental.dcm"],
)
def test_round_trip_files(tmp_path: Path, name: str) -> None:
    vol = read_dicom_series(_file(name))
    out = write_dicom_series(vol, tmp_path / "out")
    back = read_dicom_series(out)
    _same(vol, back)
    assert back.metadata["sop_instance_uids"] == vol.metadata["sop_instance_uids"]
    assert back.metadata["transfer_syntax"] == pydicom.uid.ExplicitVRLittleEndian  # decompressed
    assert back.metadata["photometric"] == vol.metadata["photometric"]


def test_monochrome1_stored_values_restored(tmp_path: Path) -> None:
    src = pydicom.dcmread(_file("RG1_UNCR.dcm"))
    out = write_dicom_series(read_dicom_series(_file("RG1_UNCR.dcm")), tmp_path / "out")
    np.testing.assert_array_equal(pydicom.dcmread(out[0]).pixel_array, src.pixel_array)


def test_synthesized_series_from_geometry(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(-2000, 3000, size=(3, 8, 6)).astype(np.float32)
    direction = np.array([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]])  # axial: normal z, columns y, rows x
    vol = Volume(arr, spacing=(2.5, 0.7, 0.8), origin=(-10, 20, -30), direction=direction, modality="CT")
    out = write_dicom_series(vol, tmp_path / "out")
    back = read_dicom_series(out)
    _same(vol, back)
    ds = pydicom.dcmread(out[0])
    assert (float(ds.RescaleIntercept), float(ds.RescaleSlope)) == (-1024.0, 1.0)
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    # the default (axial) direction round-trips in order; non-integer values get a fitted rescale
    mr = Volume(arr / 7.0, spacing=(3.0, 1.0, 1.0), modality="MR")
    back_mr = read_dicom_series(write_dicom_series(mr, tmp_path / "mr"))
    np.testing.assert_allclose(back_mr.array, mr.array, atol=5000 / 7 / 65535)
    # a slice axis against the DICOM normal (row x col) reads back in reverse order, same physical geometry
    flipped = Volume(arr, spacing=(3.0, 1.0, 1.0), direction=np.eye(3), modality="MR")
    back_fl = read_dicom_series(write_dicom_series(flipped, tmp_path / "flipped"))
    np.testing.assert_allclose(back_fl.array, flipped.array[::-1], atol=5000 / 65535)
    for k in range(3):
        np.testing.assert_allclose(
            back_fl.index_to_patient([k, 2, 3]), flipped.index_to_patient([2 - k, 2, 3]), atol=1e-4
        )


def test_refuses_unsafe_targets(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "src", [0.0, 5.0], names=["IM000001.dcm", "IM000002.dcm"])
    vol = read_dicom_series(files)
    with pytest.raises(InputError, match="holds the input files"):
        write_dicom_series(vol, tmp_path / "src")
    other = tmp_path / "busy"
    other.mkdir()
    (other / "keep.txt").write_text("user data")
    with pytest.raises(InputError, match="not empty"):
        write_dicom_series(vol, other)
    assert (other / "keep.txt").read_text() == "user data"
    out = tmp_path / "out"
    write_dicom_series(vol, out)
    write_dicom_series(vol, out)  # an earlier output may be replaced
    assert sorted(p.name for p in out.iterdir()) == ["IM000001.dcm", "IM000002.dcm"]


def test_synthesized_series_keeps_given_uids_and_is_valid_dicom(tmp_path: Path) -> None:
    import shutil
    import subprocess

    arr = np.full((2, 8, 6), -1000.0, dtype=np.float32)
    meta = {"study_uid": "2.25.1", "series_uid": "2.25.2", "sop_instance_uids": ["2.25.3", "2.25.4"]}
    vol = Volume(arr, spacing=(2.5, 0.7, 0.8), modality="CT", metadata=meta)
    out = write_dicom_series(vol, tmp_path / "out")
    back = read_dicom_series(out)
    assert back.series_uid == "2.25.2" and back.metadata["study_uid"] == "2.25.1"
    assert back.metadata["sop_instance_uids"] == ["2.25.3", "2.25.4"]
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) not installed")
    report = subprocess.run(["dciodvfy", str(out[0])], capture_output=True, text=True, check=False)
    errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
    assert errors == []
