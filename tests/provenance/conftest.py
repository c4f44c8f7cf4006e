"""Fixtures for provenance tests: a test PKI and real small DICOM files from installed packages."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medforensics.provenance.keys import PkiFiles, create_test_pki

DCMSIGN = shutil.which("dcmsign")
needs_dcmsign = pytest.mark.skipif(DCMSIGN is None, reason="DCMTK dcmsign not installed")


def sample_file(name: str) -> Path:
    """A pydicom / pydicom-data test file (pydicom-data files are installed, never downloaded)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not installed")
    return Path(str(path))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    """An RSA test CA + signer."""
    return create_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    """A second, unrelated RSA test CA + signer."""
    return create_test_pki(tmp_path_factory.mktemp("pki2"))


@pytest.fixture()
def ct_file(tmp_path: Path) -> Path:
    """A private copy of pydicom's CT_small.dcm (explicit VR LE, a sequence, private tags)."""
    dst = tmp_path / "ct.dcm"
    shutil.copy(sample_file("CT_small.dcm"), dst)
    return dst


def dcmsign(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run DCMTK's dcmsign (never waits for a password)."""
    assert DCMSIGN is not None
    return subprocess.run(
        [DCMSIGN, *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def tamper_pixel(path: Path) -> None:
    """Change one pixel value (first byte of Pixel Data)."""
    ds = pydicom.dcmread(path)
    data = bytearray(ds.PixelData)
    data[len(data) // 2] ^= 0x01
    ds.PixelData = bytes(data)
    ds.save_as(path)


def tamper_tag(path: Path, keyword: str) -> None:
    """Change one covered attribute."""
    ds = pydicom.dcmread(path)
    value = ds.data_element(keyword)
    assert value is not None
    if keyword == "PatientName":
        ds.PatientName = "Forged^Name"
    else:
        ds.SliceLocation = float(ds.SliceLocation) + 5.0
    ds.save_as(path)
