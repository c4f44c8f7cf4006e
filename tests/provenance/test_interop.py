"""Interoperability with DCMTK dcmsign, the reference implementation: the full matrix.

signer in {medforensics, dcmsign} x tamper in {none, one pixel, one covered tag} x verifier in
{medforensics, dcmsign}, on two real files. Untampered must verify with both; tampered must fail with both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from medforensics.provenance.keys import PkiFiles, load_certificate, load_certificates, load_private_key
from medforensics.provenance.macstream import mac_stream
from medforensics.provenance.signature import sign_file
from medforensics.provenance.verify import verify_file

from .conftest import dcmsign, needs_dcmsign, sample_file, tamper_pixel, tamper_tag

pytestmark = needs_dcmsign

FILES = {"CT_small.dcm": "PatientName", "693_UNCR.dcm": "SliceLocation"}


def _sign(signer: str, src: Path, dst: Path, pki: PkiFiles) -> None:
    if signer == "medforensics":
        sign_file(
            src, dst, load_private_key(pki.signer_key), load_certificate(pki.signer_cert), profile="base"
        )
    else:
        proc = dcmsign("--sign", pki.signer_key, pki.signer_cert, "--profile-base", "+m2", src, dst)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("signer", ["medforensics", "dcmsign"])
@pytest.mark.parametrize("tamper", ["none", "pixel", "tag"])
def test_matrix(name: str, signer: str, tamper: str, pki: PkiFiles, tmp_path: Path) -> None:
    src = tmp_path / "in.dcm"
    shutil.copy(sample_file(name), src)
    signed = tmp_path / "signed.dcm"
    _sign(signer, src, signed, pki)
    if tamper == "pixel":
        tamper_pixel(signed)
    elif tamper == "tag":
        tamper_tag(signed, FILES[name])
    ours = verify_file(signed, load_certificates(pki.ca_cert))
    theirs = dcmsign("--verify", "+rg", "+cf", pki.ca_cert, signed)
    if tamper == "none":
        assert ours.status == "valid", ours.reason
        assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    else:
        assert ours.status == "invalid"
        assert "does not match" in (ours.reason or "")
        assert theirs.returncode == 101, theirs.stdout + theirs.stderr


def test_mac_stream_is_byte_identical_to_dcmsign(pki: PkiFiles, tmp_path: Path) -> None:
    """dcmsign --dump writes the bytes it feeds to the MAC: ours must be the same, for a plain CT,
    an implicit-VR RT plan with nested sequences, and JPEG 2000 encapsulated pixel data."""
    for name in ("CT_small.dcm", "rtplan.dcm", "JPEG2000.dcm"):
        signed, dump = tmp_path / f"s_{name}", tmp_path / f"{name}.mac"
        proc = dcmsign(
            "--sign", pki.signer_key, pki.signer_cert, "+m2", sample_file(name), signed, "--dump", dump
        )
        assert proc.returncode == 0, proc.stderr
        ds = pydicom.dcmread(signed)
        tags = [int(t) for t in ds.MACParametersSequence[0].DataElementsSigned]
        assert mac_stream(ds, tags, ds.DigitalSignaturesSequence[0]) == dump.read_bytes(), name


def test_dcmsign_legacy_and_creator_signatures_verify(pki: PkiFiles, tmp_path: Path) -> None:
    """dcmsign's default MAC (RIPEMD-160, legacy) and its creator profile verify with ours."""
    trusted = load_certificates(pki.ca_cert)
    for flags in (["+mr"], ["+ms"], ["--profile-creator", "+m5"]):
        out = tmp_path / f"{flags[-1].strip('+')}.dcm"
        proc = dcmsign("--sign", pki.signer_key, pki.signer_cert, *flags, sample_file("CT_small.dcm"), out)
        assert proc.returncode == 0, proc.stderr
        result = verify_file(out, trusted)
        assert result.status == "valid", (flags, result.reason)


def test_our_creator_compressed_and_implicit_files_verify_in_dcmsign(pki: PkiFiles, tmp_path: Path) -> None:
    key, cert = load_private_key(pki.signer_key), load_certificate(pki.signer_cert)
    cases = (
        ("JPEG2000.dcm", "base"),
        ("rtplan.dcm", "base"),
        ("CT_small.dcm", "creator"),
        ("image_dfl.dcm", "base"),
    )
    for name, profile in cases:  # image_dfl.dcm: deflated
        out = tmp_path / f"{profile}_{name}"
        sign_file(sample_file(name), out, key, cert, profile=profile)
        proc = dcmsign("--verify", "+rg", "+cf", pki.ca_cert, out)
        assert proc.returncode == 0, (name, proc.stdout + proc.stderr)


def test_ecdsa_both_ways(tmp_path: Path) -> None:
    from medforensics.provenance.keys import create_test_pki

    pki = create_test_pki(tmp_path / "ec", algorithm="ecdsa")
    ours = tmp_path / "ours.dcm"
    sign_file(
        sample_file("CT_small.dcm"),
        ours,
        load_private_key(pki.signer_key),
        load_certificate(pki.signer_cert),
        "none",
    )
    assert dcmsign("--verify", "+rg", "+cf", pki.ca_cert, ours).returncode == 0
    theirs = tmp_path / "theirs.dcm"
    assert (
        dcmsign(
            "--sign", pki.signer_key, pki.signer_cert, "+m2", sample_file("CT_small.dcm"), theirs
        ).returncode
        == 0
    )
    assert verify_file(theirs, load_certificates(pki.ca_cert)).status == "valid"


def test_signature_without_pixel_data_is_flagged(pki: PkiFiles, tmp_path: Path) -> None:
    out = tmp_path / "name_only.dcm"
    proc = dcmsign(
        "--sign",
        pki.signer_key,
        pki.signer_cert,
        "+m2",
        "--tag",
        "PatientName",
        sample_file("CT_small.dcm"),
        out,
    )
    assert proc.returncode == 0, proc.stderr
    result = verify_file(out, load_certificates(pki.ca_cert))
    assert result.status == "valid"
    assert "pixel data not covered" in (result.reason or "")
