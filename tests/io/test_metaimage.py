"""MetaImage reading/writing: ITK geometry to (z, y, x) LPS, real CT geometry, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from medforensics.errors import InputError
from medforensics.io.metaimage import read_metaimage, write_metaimage
from medforensics.io.volume import AXIAL_DIRECTION, Volume
from tests.io.test_volume import assert_same_image


def _itk_image() -> sitk.Image:
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 1000  # (z, y, x)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.8, 2.5))  # x, y, z
    img.SetOrigin((-150.0, -120.5, 30.0))
    c, s = np.cos(0.4), np.sin(0.4)
    img.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    return img


def test_geometry_matches_simpleitk(tmp_path: Path) -> None:
    img = _itk_image()
    sitk.WriteImage(img, str(tmp_path / "tiny.mhd"))
    assert (tmp_path / "tiny.raw").exists()
    vol = read_metaimage(tmp_path / "tiny.mhd", modality="CT")
    assert vol.shape == (4, 5, 6)
    assert vol.spacing == pytest.approx((2.5, 0.8, 0.7))
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(img))
    for xyz in [(0, 0, 0), (5, 4, 3), (2, 1, 3)]:
        expected = img.TransformIndexToPhysicalPoint(xyz)
        np.testing.assert_allclose(vol.index_to_patient(xyz[::-1]), expected, atol=1e-9)
    assert vol.metadata["modality_source"] == "argument"


def test_real_ct_slice_geometry_equals_dicom(tmp_path: Path) -> None:
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    dicom = sitk.ReadImage(path)  # SimpleITK's own DICOM reader (GDCM), independent of ours
    plain = sitk.GetImageFromArray(sitk.GetArrayFromImage(dicom))
    plain.CopyInformation(dicom)  # geometry only: no patient tags in the .mha
    sitk.WriteImage(plain, str(tmp_path / "ct.mha"))
    vol = read_metaimage(tmp_path / "ct.mha")
    assert vol.modality == "CT" and vol.metadata["modality_source"] == "heuristic"
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(vol.array[0], hu)
    row_cos, col_cos = np.array(ds.ImageOrientationPatient[:3]), np.array(ds.ImageOrientationPatient[3:])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    ipp = np.array(ds.ImagePositionPatient, dtype=float)
    for r, c in [(0, 0), (127, 0), (5, 100)]:
        expected = ipp + c * dc * row_cos + r * dr * col_cos
        np.testing.assert_allclose(vol.index_to_patient((0, r, c)), expected, atol=1e-4)


@pytest.mark.parametrize("name", ["out.mha", "out.mhd"])
def test_write_round_trip(tmp_path: Path, name: str) -> None:
    vol = Volume(
        array=np.random.default_rng(1).normal(size=(3, 4, 5)),
        spacing=(2.0, 0.5, 0.6),
        origin=(1.0, 2.0, 3.0),
        direction=np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]),
    )
    write_metaimage(vol, tmp_path / name)
    back = read_metaimage(tmp_path / name)
    assert_same_image(vol, back)  # the x axis ran right-to-left: reoriented, same image in space
    np.testing.assert_allclose(back.direction, AXIAL_DIRECTION, atol=1e-12)
    expected = {name} if name.endswith(".mha") else {name, "out.raw"}
    assert {p.name for p in tmp_path.iterdir()} == expected


def test_2d_metaimage_is_one_slice(tmp_path: Path) -> None:
    img = sitk.GetImageFromArray(np.ones((5, 6), np.uint8))
    img.SetSpacing((0.3, 0.4))
    sitk.WriteImage(img, str(tmp_path / "flat.mha"))
    vol = read_metaimage(tmp_path / "flat.mha")
    assert vol.shape == (1, 5, 6) and vol.spacing[1:] == pytest.approx((0.4, 0.3))


def test_bad_files(tmp_path: Path) -> None:
    sitk.WriteImage(_itk_image(), str(tmp_path / "a.mhd"))
    (tmp_path / "a.raw").unlink()
    with pytest.raises(InputError, match=r"a\.raw"):
        read_metaimage(tmp_path / "a.mhd")
    sitk.WriteImage(_itk_image(), str(tmp_path / "b.mhd"))
    raw = tmp_path / "b.raw"
    raw.write_bytes(raw.read_bytes()[:50])  # truncated data
    bad_header = tmp_path / "c.mhd"
    bad_header.write_text("this is not\na header\n")
    empty = tmp_path / "d.mha"
    empty.write_bytes(b"")
    for path in (tmp_path / "b.mhd", bad_header, empty, tmp_path / "absent.mhd"):
        with pytest.raises(InputError) as err:
            read_metaimage(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
