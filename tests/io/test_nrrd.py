"""NRRD reading: SimpleITK geometry, a hand-written RAS-space header, detached headers, bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medforensics.data._probe import probe_file
from medforensics.errors import InputError
from medforensics.io.nrrd import read_nrrd
from medforensics.io.reader import discover, load, read_volume
from tests.io.test_metaimage import _itk_image


def test_geometry_matches_simpleitk(tmp_path: Path) -> None:
    img = _itk_image()
    sitk.WriteImage(img, str(tmp_path / "tiny.nrrd"), useCompression=True)
    vol = read_nrrd(tmp_path / "tiny.nrrd", modality="CT")
    assert vol.shape == (4, 5, 6) and vol.metadata["source_format"] == "nrrd"
    assert vol.spacing == pytest.approx((2.5, 0.8, 0.7))
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(img))
    for xyz in [(0, 0, 0), (5, 4, 3), (2, 1, 3)]:
        expected = img.TransformIndexToPhysicalPoint(xyz)
        np.testing.assert_allclose(vol.index_to_patient(xyz[::-1]), expected, atol=1e-6)
    head = probe_file(tmp_path / "tiny.nrrd")  # the catalogue's header-only probe agrees
    assert head.shape == (4, 5, 6) and head.spacing == pytest.approx((2.5, 0.8, 0.7))
    probed = head.geometry_volume().index_to_patient((3, 4, 5))
    np.testing.assert_allclose(probed, vol.index_to_patient((3, 4, 5)))


def _ras_nrrd(path: Path, arr: np.ndarray) -> None:
    """A gzip NRRD in right-anterior-superior space, written by hand (as 3D Slicer may write one)."""
    nz, ny, nx = arr.shape
    header = (
        "NRRD0004\ntype: short\ndimension: 3\nspace: right-anterior-superior\n"
        f"sizes: {nx} {ny} {nz}\nspace directions: (0.5,0,0) (0,0.6,0) (0,0,5)\n"
        "kinds: domain domain domain\nendian: little\nencoding: gzip\nspace origin: (10,20,-30)\n\n"
    )
    path.write_bytes(header.encode() + gzip.compress(arr.astype("<i2").tobytes()))


def test_ras_space_becomes_lps(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(-1000, 1500, (3, 4, 5)).astype(np.int16)
    _ras_nrrd(tmp_path / "ras.nrrd", arr)
    vol = read_nrrd(tmp_path / "ras.nrrd")
    assert vol.modality == "CT" and vol.spacing == pytest.approx((5.0, 0.6, 0.5))
    # RAS (x, y, z) = (10 + 0.5 i, 20 + 0.6 j, -30 + 5 k) is LPS (-x, -y, z); the volume is reoriented to
    # the closest axial orientation, so find the voxel by position and compare values
    for k, j, i in [(0, 0, 0), (2, 3, 4), (1, 2, 0)]:
        lps = np.array([-(10 + 0.5 * i), -(20 + 0.6 * j), -30 + 5 * k])
        zyx = np.rint(vol.patient_to_index(lps)).astype(int)
        assert vol.array[tuple(zyx)] == arr[k, j, i]


def test_detached_header_is_one_series(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    (tmp_path / "v.raw.gz").write_bytes(gzip.compress(arr.tobytes()))
    (tmp_path / "v.nhdr").write_text(
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 4 3 2\n"
        "space directions: (1,0,0) (0,1,0) (0,0,2)\nendian: little\nencoding: gzip\n"
        "space origin: (0,0,0)\ndata file: v.raw.gz\n"
    )
    found = discover([tmp_path])
    assert [(s.kind, s.path.name) for s in found.series] == [("nrrd", "v.nhdr")]
    assert found.skipped == []  # the data file belongs to its header, it is not a stray file
    np.testing.assert_array_equal(load(found.series[0]).array, arr)
    (tmp_path / "v.raw.gz").unlink()
    with pytest.raises(InputError, match=r"v\.raw\.gz.*missing"):
        read_volume(tmp_path / "v.nhdr")


def test_bad_files(tmp_path: Path) -> None:
    sitk.WriteImage(_itk_image(), str(tmp_path / "good.nrrd"), useCompression=True)
    data = (tmp_path / "good.nrrd").read_bytes()
    truncated = tmp_path / "truncated.nrrd"
    truncated.write_bytes(data[: len(data) - 40])
    not_nrrd = tmp_path / "text.nrrd"
    not_nrrd.write_text("hello\n")
    empty = tmp_path / "empty.nrrd"
    empty.write_bytes(b"")
    vector = tmp_path / "vector.nrrd"
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3), str(vector))
    for path in (truncated, not_nrrd, empty, vector, tmp_path / "absent.nrrd"):
        with pytest.raises(InputError) as err:
            read_nrrd(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
