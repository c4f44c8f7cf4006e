"""DICOM reading on real files (pydicom / pydicom-data samples) and series built from CT_small.dcm."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medforensics.errors import InputError
from medforensics.io.dicom import is_dicom_file, read_dataset, read_dicom_series
from medforensics.io.dicom_frames import frame_infos
from medforensics.io.volume import AXIAL_DIRECTION
from medforensics.logging import short_hash
from tests.io._dicom_series import CT_SMALL, write_ct_series


def _file(name: str) -> Path:
    return Path(get_testdata_file(name))  # type: ignore[arg-type]


def _raw(name: str) -> tuple[pydicom.Dataset, np.ndarray]:
    ds = pydicom.dcmread(_file(name))
    return ds, ds.pixel_array


# ---------------------------------------------------------------- single files
def test_is_dicom_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello world, not an image\n" * 10)
    empty = tmp_path / "empty"
    empty.touch()
    assert is_dicom_file(CT_SMALL)
    assert is_dicom_file(_file("ExplVR_LitEndNoMeta.dcm"))  # no preamble, no file meta
    assert not is_dicom_file(text)
    assert not is_dicom_file(empty)
    assert not is_dicom_file(tmp_path / "missing.dcm")
    assert not is_dicom_file(tmp_path)


def test_ct_small_hounsfield_geometry_metadata() -> None:
    ds, raw = _raw("CT_small.dcm")
    vol = read_dicom_series(CT_SMALL)
    expected = raw.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array[0], expected)
    assert vol.modality == "CT"
    assert vol.spacing == (5.0, float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))  # SliceThickness
    np.testing.assert_allclose(vol.index_to_patient([0, 0, 0]), [float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(vol.direction[:, 2], [1, 0, 0])  # row cosines
    np.testing.assert_allclose(vol.direction[:, 1], [0, 1, 0])  # column cosines
    np.testing.assert_allclose(vol.direction[:, 0], [0, 0, 1])  # normal
    meta = vol.metadata
    assert meta["series_uid"] == ds.SeriesInstanceUID
    assert meta["study_uid"] == ds.StudyInstanceUID
    assert meta["sop_instance_uids"] == [ds.SOPInstanceUID]
    assert meta["patient_hash"] == short_hash(ds.PatientID)
    assert ds.PatientID not in repr(meta)
    assert meta["source_format"] == "dicom"
    assert meta["rescale"] == (1.0, -1024.0)
    assert meta["photometric"] == "MONOCHROME2"
    assert meta["bits_stored"] == 16
    assert meta["transfer_syntax"] == ds.file_meta.TransferSyntaxUID
    assert meta["warnings"] == []
    assert len(vol.datasets) == 1
    assert "PixelData" not in vol.datasets[0]
    assert vol.datasets[0].SOPInstanceUID == ds.SOPInstanceUID


def test_monochrome1_is_inverted() -> None:
    ds, raw = _raw("RG1_UNCR.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    vol = read_dicom_series(_file("RG1_UNCR.dcm"))
    hi = (1 << int(ds.BitsStored)) - 1
    np.testing.assert_array_equal(vol.array[0], (hi - raw).astype(np.float32))
    assert vol.modality == "CR"
    assert vol.spacing == (1.0, 1.0, 1.0)  # PixelSpacing is 0\\0 in this file: unusable, so 1 mm
    np.testing.assert_array_equal(vol.direction, AXIAL_DIRECTION)  # no IPP/IOP: default axial geometry
    assert vol.metadata["photometric"] == "MONOCHROME1"
    assert "window_center" in vol.metadata


@pytest.mark.parametrize(
    ("compressed", "reference", "syntax"),
    [
        ("MR_small_RLE.dcm", "MR_small.dcm", pydicom.uid.RLELossless),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm", pydicom.uid.JPEGLSLossless),
        ("MR_small_jp2klossless.dcm", "MR_small.dcm", pydicom.uid.JPEG2000Lossless),
        ("JPEG2000.dcm", "JPEG2000_UNC.dcm", pydicom.uid.JPEG2000),
        ("693_J2KR.dcm", "693_UNCR.dcm", pydicom.uid.JPEG2000Lossless),
        ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm", pydicom.uid.JPEGLSLossless),
    ],
)
def test_compressed_matches_uncompressed(compressed: str, reference: str, syntax: str) -> None:
    vol = read_dicom_series(_file(compressed))
    ref = read_dicom_series(_file(reference))
    assert vol.metadata["transfer_syntax"] == syntax
    np.testing.assert_array_equal(vol.array, ref.array)


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("JPEG-LL.dcm", pydicom.uid.JPEGLosslessSV1),
        ("JPGExtended.dcm", pydicom.uid.JPEGExtended12Bit),
        ("SC_rgb_jpeg.dcm", pydicom.uid.JPEGBaseline8Bit),
    ],
)
def test_jpeg_syntaxes_decode(name: str, syntax: str) -> None:
    ds = pydicom.dcmread(_file(name), stop_before_pixels=True)
    vol = read_dicom_series(_file(name))
    assert vol.metadata["transfer_syntax"] == syntax
    assert vol.shape == (1, int(ds.Rows), int(ds.Columns))
    assert float(vol.array.max()) > float(vol.array.min())


def test_rgb_becomes_luminance() -> None:
    _, raw = _raw("SC_rgb.dcm")
    vol = read_dicom_series(_file("SC_rgb.dcm"))
    lum = raw[..., 0] * 0.299 + raw[..., 1] * 0.587 + raw[..., 2] * 0.114
    np.testing.assert_allclose(vol.array[0], lum, atol=1e-3)
    assert "luminance" in vol.metadata["color_converted"]


def test_enhanced_ct_multiframe_uses_functional_groups() -> None:
    name = "eCT_Supplemental.dcm"
    ds, raw = _raw(name)
    infos = frame_infos(ds)
    vol = read_dicom_series(_file(name))
    assert vol.shape == (2, 512, 512)
    normal = vol.direction[:, 0]
    keys = [float(np.dot(i.position, normal)) for i in infos]  # type: ignore[arg-type]
    order = np.argsort(keys)
    assert vol.metadata["multiframe"]
    assert [f for _, f in vol.metadata["frame_sources"]] == order.tolist()
    for k, frame in enumerate(order):
        np.testing.assert_allclose(vol.index_to_patient([k, 0, 0]), infos[frame].position, atol=1e-4)
        expected = raw[frame].astype(np.float32) * infos[frame].slope + infos[frame].intercept
        np.testing.assert_array_equal(vol.array[k], expected)
    assert vol.spacing[0] == pytest.approx(10.0)
    assert infos[0].intercept == -1024.0  # from the Pixel Value Transformation functional group
    assert len(vol.datasets) == 1 and "PixelData" not in vol.datasets[0]


def test_legacy_multiframe_without_geometry() -> None:
    vol = read_dicom_series(_file("emri_small.dcm"))
    assert vol.shape == (10, 64, 64)
    assert vol.spacing[0] == pytest.approx(1.2)  # SpacingBetweenSlices
    assert any("no slice positions" in w for w in vol.metadata["warnings"])


# ---------------------------------------------------------------- series
def test_series_sorted_along_normal(tmp_path: Path) -> None:
    zs = [-70.0, -75.0, -65.0, -80.0, -60.0]  # written shuffled
    files = write_ct_series(tmp_path / "ser", zs)
    shuffled = files[:]
    random.Random(0).shuffle(shuffled)
    vol = read_dicom_series(shuffled)
    _, raw = _raw("CT_small.dcm")
    assert vol.shape == (5, 128, 128)
    assert vol.spacing[0] == pytest.approx(5.0)
    assert vol.metadata["warnings"] == []
    for k, z in enumerate(sorted(zs)):
        src = zs.index(z)  # stored values were offset by 10 * (index in zs)
        np.testing.assert_array_equal(vol.array[k], raw.astype(np.float32) + 10 * src - 1024)
        ipp = [float(v) for v in pydicom.dcmread(files[src], stop_before_pixels=True).ImagePositionPatient]
        np.testing.assert_allclose(vol.index_to_patient([k, 0, 0]), ipp, atol=1e-6)
    assert vol.metadata["slice_positions"] == sorted(zs)
    assert [d.ImagePositionPatient[2] for d in vol.datasets] == sorted(zs)
    assert all("PixelData" not in d for d in vol.datasets)
    assert len(vol.metadata["sop_instance_uids"]) == 5


def test_duplicate_and_irregular_positions_warn(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "s", [0.0, 2.0, 2.0, 4.0, 9.0], names=[f"a{k}.dcm" for k in range(5)])
    vol = read_dicom_series(files)
    assert vol.shape[0] == 4
    warns = vol.metadata["warnings"]
    assert any("duplicate slice position" in w and "kept a1.dcm" in w for w in warns)
    assert any("irregular slice spacing" in w and "2.000" in w and "5.000" in w for w in warns)
    assert vol.spacing[0] == pytest.approx(2.0)  # median gap
    assert vol.datasets[1].SOPInstanceUID == pydicom.dcmread(files[1]).SOPInstanceUID  # first kept


def test_several_series_rejected(tmp_path: Path) -> None:
    a = write_ct_series(tmp_path / "d", [0.0, 5.0], series_uid="1.2.3.4.1", names=["a1.dcm", "a2.dcm"])
    b = write_ct_series(tmp_path / "d", [0.0], series_uid="1.2.3.4.2", names=["b1.dcm"])
    with pytest.raises(InputError, match="files of 2 series"):
        read_dicom_series(a + b)


def test_mismatched_shape_and_orientation(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "m", [0.0, 5.0, 10.0])
    ds = pydicom.dcmread(files[2])
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, 1]
    ds.save_as(files[2])
    with pytest.raises(InputError, match="orientation differs"):
        read_dicom_series(files)
    ds = pydicom.dcmread(files[2])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.Rows, ds.Columns = 64, 256  # same byte count, other shape
    ds.save_as(files[2])
    with pytest.raises(InputError, match="image size"):
        read_dicom_series(files)


# ---------------------------------------------------------------- bad input
def _truncated(tmp_path: Path, cut: int) -> Path:
    data = CT_SMALL.read_bytes()
    out = tmp_path / f"cut{cut}.dcm"
    out.write_bytes(data[: cut if cut > 0 else len(data) + cut])
    return out


@pytest.mark.parametrize("cut", [141, 600, 1500, -19000, -10])
def test_truncated_file(tmp_path: Path, cut: int) -> None:
    with pytest.raises(InputError, match=r"truncat|corrupt|no Pixel Data") as err:
        read_dicom_series(_truncated(tmp_path, cut))
    assert err.value.path and err.value.path.endswith(".dcm")


def test_bad_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.touch()
    with pytest.raises(InputError, match="0 bytes"):
        read_dicom_series(empty)
    text = tmp_path / "x.dcm"
    text.write_text("not dicom at all " * 20)
    with pytest.raises(InputError, match="not DICOM"):
        read_dicom_series(text)
    with pytest.raises(InputError, match="does not exist"):
        read_dicom_series(tmp_path / "missing.dcm")
    with pytest.raises(InputError, match="no Pixel Data"):
        read_dicom_series(_file("rtstruct.dcm"))


def test_pixel_data_deleted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT_SMALL)
    del ds.PixelData
    out = tmp_path / "nopix.dcm"
    ds.save_as(out)
    with pytest.raises(InputError, match="no Pixel Data") as err:
        read_dicom_series(out)
    assert err.value.path == str(out)


def test_inconsistent_pixel_length(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT_SMALL)
    ds.Rows = 256
    out = tmp_path / "long.dcm"
    ds.save_as(out)
    with pytest.raises(InputError, match="inconsistent pixel data length"):
        read_dicom_series(out)


def test_unsupported_and_undecodable_syntax(tmp_path: Path) -> None:
    src = tmp_path / "jxl.dcm"
    shutil.copy(_file("JPEG2000.dcm"), src)
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.92"  # JPEG 2000 Part 2: no decoder in pydicom
    ds.save_as(src)
    with pytest.raises(InputError, match=r"unsupported transfer syntax JPEG 2000 Part 2 .*4\.92"):
        read_dicom_series(src)
    with pytest.raises(InputError, match=r"cannot decode pixel data \(JPEG Extended"):
        read_dicom_series(_file("JPEG-lossy.dcm"))  # a known-broken JPEG stream


def test_read_dataset_header_only_is_fast_and_pixel_free() -> None:
    ds = read_dataset(CT_SMALL, header_only=True)
    assert "PixelData" not in ds and ds.Rows == 128


def test_inputs_not_modified(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ro", [0.0, 5.0])
    before = [f.read_bytes() for f in files]
    read_dicom_series(files)
    assert [f.read_bytes() for f in files] == before


# ---------------------------------------------------------------- real LIDC slabs (../shared)
@pytest.mark.shared
@pytest.mark.parametrize(
    ("patient", "n"), [("LIDC-IDRI-0001", 16), ("LIDC-IDRI-0002", 12), ("LIDC-IDRI-0003", 11)]
)
def test_lidc_slabs(shared_data: Path, patient: str, n: int) -> None:
    files = sorted((shared_data / "lidc-idri-slabs" / patient).rglob("*.dcm"))
    vol = read_dicom_series(files)
    assert vol.shape == (n, 512, 512)
    named_z = sorted(float(f.stem) for f in files)  # files are named by their z position
    np.testing.assert_allclose(vol.metadata["slice_positions"], named_z, atol=1e-3)
    for k in range(n):
        assert vol.index_to_patient([k, 0, 0])[2] == pytest.approx(
            float(vol.datasets[k].ImagePositionPatient[2])
        )
    assert -1100 < float(np.median(vol.array)) < 500  # Hounsfield units
    assert vol.metadata["warnings"] == [] or all("irregular" in w for w in vol.metadata["warnings"])


@pytest.mark.parametrize(("frames", "expected"), [(None, 1), ("", 1), (0, 1), (1, 1), (7, 7), ("3", 3)])
def test_frame_count_reads_number_of_frames(frames: object, expected: int) -> None:
    from pydicom.dataset import Dataset

    from medforensics.io.dicom_frames import frame_count

    ds = Dataset()
    if frames is not None:
        ds.NumberOfFrames = frames
    assert frame_count(ds) == expected


def test_a_negative_frame_count_is_a_malformed_tag(tmp_path: Path) -> None:
    from medforensics.io.reader import read_volume

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.NumberOfFrames = -2  # was an internal error (IndexError) in the scan
    bad = tmp_path / "neg.dcm"
    ds.save_as(bad)
    with pytest.raises(InputError, match=r"malformed geometry or frame tags \(NumberOfFrames -2\)") as err:
        read_volume(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_a_zero_rescale_slope_is_a_malformed_tag(tmp_path: Path) -> None:
    from medforensics.io.reader import read_volume

    files = write_ct_series(tmp_path / "s", [0.0, 2.0, 4.0])
    ds = pydicom.dcmread(files[1])
    ds.RescaleSlope = 0  # every pixel would read the intercept (was a ZeroDivisionError in the scan)
    ds.save_as(files[1])
    with pytest.raises(InputError, match=r"malformed geometry or frame tags \(RescaleSlope 0\)") as err:
        read_volume(tmp_path / "s")
    assert files[1].name in str(err.value)


def test_a_palette_image_without_its_lookup_table_names_the_file(tmp_path: Path) -> None:
    from medforensics.io.reader import read_volume

    files = write_ct_series(tmp_path / "s", [0.0, 2.0, 4.0])
    for f in files:
        ds = pydicom.dcmread(f)
        ds.PhotometricInterpretation = "PALETTE COLOR"  # and no palette colour lookup table
        ds.save_as(f)
    with pytest.raises(InputError, match="cannot apply the palette") as err:
        read_volume(tmp_path / "s").array  # noqa: B018  (decoding happens on first access)
    assert any(f.name in str(err.value) for f in files) and "\n" not in str(err.value)


def test_parallel_orientation_cosines_count_as_no_orientation(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "s", [0.0, 2.0, 4.0, 6.0])
    for f in files:
        ds = pydicom.dcmread(f)
        ds.ImageOrientationPatient = [1, 0, 0, 1, 0, 0]  # row = column: no slice normal
        ds.save_as(f)
    vol = read_dicom_series(files)
    assert vol.shape[0] == 4  # stacked in instance order, not collapsed onto one position
    assert any(w.startswith("no slice positions/orientation") for w in vol.metadata["warnings"])


def test_a_frame_count_the_file_cannot_hold_is_refused_before_per_frame_work(tmp_path: Path) -> None:
    from medforensics.io.reader import read_volume

    files = write_ct_series(tmp_path / "s", [0.0, 2.0, 4.0])
    ds = pydicom.dcmread(files[0])
    ds.NumberOfFrames = 100000  # one 128 x 128 frame in the file
    ds.save_as(files[0])
    with pytest.raises(InputError, match="NumberOfFrames 100000 does not fit in the file") as err:
        read_volume(tmp_path / "s")
    assert files[0].name in str(err.value)


def test_a_malformed_tag_value_names_the_file() -> None:
    from medforensics.io.reader import read_volume

    bad = get_testdata_file("badVR.dcm")  # NumberOfFrames '1A' (VR IS)
    with pytest.raises(InputError, match="malformed geometry or frame tags") as err:
        read_volume(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
