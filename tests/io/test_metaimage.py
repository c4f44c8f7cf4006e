"""MetaImage reading/writing: ITK geometry to (z, y, x) LPS, real CT geometry, bad files."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from medforensics.errors import InputError
from medforensics.io.metaimage import read_metaimage, write_metaimage
from medforensics.io.payload import size_text
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


def _flipped_itk(flips: tuple[int, int, int]) -> sitk.Image:
    """A 9-slice int16 image whose axes run along ``flips`` (x, y, z): read, it is reoriented by flips."""
    arr = np.random.default_rng(3).integers(-1000, 1500, (9, 6, 7)).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.7, 2.5))
    img.SetDirection(tuple(np.diag([float(f) for f in flips]).ravel()))
    return img


@pytest.mark.parametrize("name", ["v.mhd", "v.mha", "vz.mhd", "vz.mha"])
@pytest.mark.parametrize("flips", [(1, 1, 1), (-1, 1, -1), (1, 1, -1)])
def test_streamed_metaimage_reads_like_the_whole_file(
    tmp_path: Path, name: str, flips: tuple[int, int, int]
) -> None:
    """Raw and zlib-compressed, detached and LOCAL, stored feet-last or mirrored: read a z-range at a time."""
    from medforensics.io.metaimage_pixels import MetaImagePixels

    path = tmp_path / name
    sitk.WriteImage(_flipped_itk(flips), str(path), useCompression=name.startswith("vz"))
    whole = read_metaimage(path, modality="CT")
    lazy = read_metaimage(path, modality="CT", stream_above=0)
    assert isinstance(lazy.array, MetaImagePixels) and isinstance(whole.array, np.ndarray)
    assert lazy.array.compressed == name.startswith("vz")
    assert (whole.metadata.get("reoriented") is not None) == (flips != (1, 1, 1))
    np.testing.assert_array_equal(lazy.direction, whole.direction)
    np.testing.assert_array_equal(lazy.origin, whole.origin)
    np.testing.assert_array_equal(np.asarray(lazy.array), whole.array)
    for key in (slice(2, 7), 4, -1, 0, (slice(None), slice(None, None, 2), 3), slice(7, 2, -2), slice(1, 3)):
        np.testing.assert_array_equal(lazy.array[key], whole.array[key])  # forwards, then back
    assert lazy.metadata["pixel_type"] == whole.metadata["pixel_type"] == "16-bit signed integer"
    assert isinstance(read_metaimage(path, stream_above=whole.array.nbytes).array, np.ndarray)
    if name.startswith("vz"):  # compressed files are inflated by the reader itself: the same as SimpleITK's
        plain = tmp_path / f"plain{path.suffix}"
        sitk.WriteImage(_flipped_itk(flips), str(plain))
        np.testing.assert_array_equal(read_metaimage(plain, modality="CT").array, whole.array)


def test_corrupt_compressed_metaimage_is_an_error_not_zeros(tmp_path: Path) -> None:
    """SimpleITK fills data it cannot inflate with zeros and only prints "Uncompress failed"."""
    sitk.WriteImage(_flipped_itk((1, 1, 1)), str(tmp_path / "z.mhd"), useCompression=True)
    data = tmp_path / "z.zraw"
    raw = bytearray(data.read_bytes())
    for i in range(20, len(raw), 13):
        raw[i] ^= 0x55
    data.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="corrupt compressed MetaImage data") as err:
        read_metaimage(tmp_path / "z.mhd")
    assert str(data) in str(err.value) and "\n" not in str(err.value)


def test_streamed_metaimage_big_endian_float_and_header_at_end(tmp_path: Path) -> None:
    """Hand-written headers: MSB doubles after a skipped header, and HeaderSize = -1 (data at the end)."""
    arr = np.random.default_rng(4).normal(size=(5, 3, 4))
    head = "NDims = 3\nDimSize = 4 3 5\nElementSpacing = 1 1 2\nElementType = MET_DOUBLE\n"
    (tmp_path / "be.raw").write_bytes(b"\0" * 16 + arr.astype(">f8").tobytes())
    be = "ElementByteOrderMSB = True\nHeaderSize = 16\nElementDataFile = be.raw\n"
    (tmp_path / "be.mhd").write_text(head + be)
    (tmp_path / "end.raw").write_bytes(b"junk" + arr.astype("<f8").tobytes())
    (tmp_path / "end.mhd").write_text(head + "HeaderSize = -1\nElementDataFile = end.raw\n")
    data = arr.astype("<f8").tobytes()  # two zlib streams one after the other, as a chunked writer leaves
    (tmp_path / "two.zraw").write_bytes(zlib.compress(data[:200]) + zlib.compress(data[200:]))
    (tmp_path / "two.mhd").write_text(head + "CompressedData = True\nElementDataFile = two.zraw\n")
    for name in ("be.mhd", "end.mhd", "two.mhd"):
        lazy = read_metaimage(tmp_path / name, modality="MR", stream_above=0)
        assert not isinstance(lazy.array, np.ndarray)
        np.testing.assert_array_equal(lazy.array[3:], arr[3:].astype(np.float32))
        np.testing.assert_array_equal(lazy.array[1:4], arr[1:4].astype(np.float32))
        np.testing.assert_array_equal(np.asarray(lazy.array), arr.astype(np.float32))
        if name != "two.mhd":
            np.testing.assert_array_equal(np.asarray(lazy.array), read_metaimage(tmp_path / name).array)


def test_streamed_metaimage_names_truncated_data(tmp_path: Path) -> None:
    sitk.WriteImage(_flipped_itk((1, 1, 1)), str(tmp_path / "r.mhd"))
    raw = tmp_path / "r.raw"
    raw.write_bytes(raw.read_bytes()[:-10])
    with pytest.raises(InputError, match="truncated") as err:
        read_metaimage(tmp_path / "r.mhd", stream_above=0)  # raw: found before any slice is read
    assert str(raw) in str(err.value)
    sitk.WriteImage(_flipped_itk((1, 1, 1)), str(tmp_path / "z.mha"), useCompression=True)
    z = tmp_path / "z.mha"
    z.write_bytes(z.read_bytes()[:-200])
    vol = read_metaimage(z, modality="CT", stream_above=0)
    assert vol.array[:1].shape == (1, 6, 7)  # compressed: found at the read that runs short
    with pytest.raises(InputError) as err:
        np.asarray(vol.array)
    assert str(z) in str(err.value) and "\n" not in str(err.value)


def test_short_data_and_bad_dimensions_get_their_own_reason(tmp_path: Path) -> None:
    sitk.WriteImage(_itk_image(), str(tmp_path / "b.mhd"))
    raw = tmp_path / "b.raw"
    full = raw.stat().st_size
    raw.write_bytes(raw.read_bytes()[: full // 2])
    half = size_text(full // 2)
    why = rf"truncated MetaImage data: .* need {size_text(full)}, data file .*b\.raw' holds {half}"
    with pytest.raises(InputError, match=why):
        read_metaimage(tmp_path / "b.mhd")
    header = (tmp_path / "b.mhd").read_text()
    dims = next(line for line in header.splitlines() if line.startswith("DimSize"))
    (tmp_path / "c.mhd").write_text(header.replace(dims, "DimSize = -5 0 abc").replace("b.raw", "c.raw"))
    (tmp_path / "c.raw").write_bytes(b"\0" * full)
    with pytest.raises(InputError, match="DimSize '-5 0 abc' is not 3 positive whole numbers"):
        read_metaimage(tmp_path / "c.mhd")


def test_a_header_itk_cannot_parse_says_why_and_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """ITK prints its parse errors on fd 2 and raises "No such file or directory" for a file that exists."""
    (tmp_path / "v.raw").write_bytes(np.zeros((2, 3, 4), np.int16).tobytes())
    head = "NDims = 3\nDimSize = 4 3 2\nElementSpacing = 1\nElementType = MET_SHORT\n"  # one spacing
    (tmp_path / "v.mhd").write_text(head + "ElementDataFile = v.raw\n")
    capfd.readouterr()
    with pytest.raises(InputError, match="its header cannot be parsed: ") as err:
        read_metaimage(tmp_path / "v.mhd")
    assert "No such file or directory" not in str(err.value) and "\n" not in str(err.value)
    out, printed = capfd.readouterr()
    assert printed == "" and out == ""


def test_native_stderr_restores_the_descriptor_and_returns_the_lines() -> None:
    import os

    from medforensics.io._native import native_stderr

    with native_stderr() as lines:
        os.write(2, b"first line\n\n  second  \n")
    assert lines == ["first line", "second"]
    with native_stderr() as again:  # fd 2 is back where it was: a second capture starts empty
        pass
    assert again == []
