"""Signing and verification without DCMTK: statuses, bad input, profiles, key types."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from medforensics.errors import ConfigError, InputError
from medforensics.provenance.keys import (
    PkiFiles,
    create_test_pki,
    load_certificate,
    load_certificates,
    load_private_key,
)
from medforensics.provenance.macstream import is_signable_tag, signable_tags
from medforensics.provenance.signature import der_trim, sign_file
from medforensics.provenance.verify import combine_statuses, series_signature_status, verify_file

from .conftest import sample_file, tamper_pixel, tamper_tag


def _sign(pki: PkiFiles, src: Path, dst: Path, profile: str = "base", **kw: object) -> str:
    uid, _ = sign_file(
        src, dst, load_private_key(pki.signer_key), load_certificate(pki.signer_cert), profile, **kw
    )  # type: ignore[arg-type]
    return uid


def _edit(path: Path, edit: object) -> None:
    ds = pydicom.dcmread(path)
    edit(ds)  # type: ignore[operator]
    ds.save_as(path)


def test_signable_tag_rules() -> None:
    assert not is_signable_tag(0x00100000)  # group length
    assert not is_signable_tag(0x00020010)  # file meta
    assert not is_signable_tag(0xFFFAFFFA)  # Digital Signatures Sequence
    assert not is_signable_tag(0x4FFE0001)  # MAC Parameters Sequence
    assert not is_signable_tag(0xFFFCFFFC)  # trailing padding
    assert is_signable_tag(0x00100010) and is_signable_tag(0x7FE00010)
    ds = Dataset()
    ds.PatientName = "A"
    ds.add_new(0x00091010, "UN", b"\x01\x02")
    assert signable_tags(ds) == [0x00100010]


def test_sign_verify_valid_and_input_untouched(pki: PkiFiles, ct_file: Path, tmp_path: Path) -> None:
    before = ct_file.read_bytes()
    out = tmp_path / "out" / "ct.dcm"
    uid = _sign(pki, ct_file, out)
    assert ct_file.read_bytes() == before
    result = verify_file(out, load_certificates(pki.ca_cert))
    assert (result.status, result.reason, result.n_signatures) == ("valid", None, 1)
    assert result.signer == "medforensics test signer"
    assert result.signatures[0].uid == uid and result.signatures[0].covers_pixel_data
    assert verify_file(ct_file).status == "absent"
    no_ca = verify_file(out)
    assert no_ca.status == "valid" and "not checked" in (no_ca.reason or "")


@pytest.mark.parametrize("tamper", ["pixel", "PatientName", "SliceLocation"])
def test_tampering_is_invalid(pki: PkiFiles, ct_file: Path, tamper: str) -> None:
    _sign(pki, ct_file, ct_file)
    tamper_pixel(ct_file) if tamper == "pixel" else tamper_tag(ct_file, tamper)
    result = verify_file(ct_file, load_certificates(pki.ca_cert))
    assert result.status == "invalid"
    assert "does not match the data" in (result.reason or "")


def test_removed_element_is_invalid(pki: PkiFiles, ct_file: Path) -> None:
    _sign(pki, ct_file, ct_file)
    _edit(ct_file, lambda ds: delattr(ds, "SliceLocation"))
    assert verify_file(ct_file).status == "invalid"


def test_creator_profile_covers_pixels_and_geometry_not_demographics(pki: PkiFiles, ct_file: Path) -> None:
    _sign(pki, ct_file, ct_file, profile="creator")
    tags = [int(t) for t in pydicom.dcmread(ct_file).MACParametersSequence[0].DataElementsSigned]
    assert {0x7FE00010, 0x00080018, 0x0020000E, 0x00200032, 0x00201041} <= set(tags)
    assert 0x00100010 not in tags
    _edit(ct_file, lambda ds: setattr(ds, "PatientName", "Corrected^Name"))
    assert verify_file(ct_file).status == "valid"
    tamper_tag(ct_file, "SliceLocation")
    assert verify_file(ct_file).status == "invalid"


def test_untrusted_ca(pki: PkiFiles, other_pki: PkiFiles, ct_file: Path) -> None:
    _sign(pki, ct_file, ct_file)
    result = verify_file(ct_file, load_certificates(other_pki.ca_cert))
    assert result.status == "untrusted" and "not issued by a trusted CA" in (result.reason or "")


def test_expired_certificate_is_untrusted(tmp_path: Path, ct_file: Path) -> None:
    then = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    old = create_test_pki(tmp_path / "old", days=1, now=then)
    with pytest.raises(ConfigError, match="not valid now"):
        _sign(old, ct_file, tmp_path / "refused.dcm")
    _sign(old, ct_file, ct_file, now=then)  # signed while valid; the certificate has expired since
    assert verify_file(ct_file).status == "valid"  # integrity and validity at signing time
    result = verify_file(ct_file, load_certificates(old.ca_cert))
    assert result.status == "untrusted" and "expired" in (result.reason or "")


def test_two_signatures_both_checked(pki: PkiFiles, other_pki: PkiFiles, ct_file: Path) -> None:
    _sign(pki, ct_file, ct_file)
    _sign(other_pki, ct_file, ct_file, profile="creator")
    ds = pydicom.dcmread(ct_file)
    assert [int(i.MACIDNumber) for i in ds.DigitalSignaturesSequence] == [0, 1]
    trusted = load_certificates(pki.ca_cert) + load_certificates(other_pki.ca_cert)
    assert verify_file(ct_file, trusted).n_signatures == 2
    assert verify_file(ct_file, trusted).status == "valid"
    assert verify_file(ct_file, load_certificates(pki.ca_cert)).status == "untrusted"


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            lambda ds: setattr(ds.MACParametersSequence[0], "MACAlgorithm", "WHIRLPOOL"),
            "unknown MAC algorithm",
        ),
        (
            lambda ds: delattr(ds.DigitalSignaturesSequence[0], "CertificateOfSigner"),
            "no Certificate of Signer",
        ),
        (
            lambda ds: setattr(ds.DigitalSignaturesSequence[0], "CertificateOfSigner", b"\x30\x03junk!"),
            "corrupt",
        ),
        (lambda ds: setattr(ds.DigitalSignaturesSequence[0], "Signature", b"\x00" * 256), "does not match"),
        (lambda ds: setattr(ds.DigitalSignaturesSequence[0], "MACIDNumber", 7), "no MAC Parameters item"),
        (lambda ds: delattr(ds, "MACParametersSequence"), "no MAC Parameters item"),
        (
            lambda ds: setattr(ds.MACParametersSequence[0], "DataElementsSigned", []),
            "no Data Elements Signed",
        ),
    ],
)
def test_broken_signatures_are_invalid_not_crashes(
    pki: PkiFiles, ct_file: Path, edit: object, reason: str
) -> None:
    _sign(pki, ct_file, ct_file)
    _edit(ct_file, edit)
    result = verify_file(ct_file, load_certificates(pki.ca_cert))
    assert result.status == "invalid"
    assert reason in (result.reason or ""), result.reason


def test_bad_files_get_a_status(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not dicom")
    assert verify_file(text).status == "error"
    assert verify_file(tmp_path / "missing.dcm").status == "error"
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes(sample_file("CT_small.dcm").read_bytes()[:2000])
    assert verify_file(truncated).status in ("error", "absent")


def test_file_without_pixel_data(pki: PkiFiles, tmp_path: Path) -> None:
    out = tmp_path / "plan.dcm"
    _sign(pki, sample_file("rtplan.dcm"), out)  # implicit VR LE, nested sequences, no pixels
    result = verify_file(out, load_certificates(pki.ca_cert))
    assert result.status == "valid" and not result.signatures[0].covers_pixel_data


def test_changed_list_of_signed_elements_is_invalid(pki: PkiFiles, ct_file: Path) -> None:
    from medforensics.provenance.signature import sign_dataset
    from medforensics.provenance.verify import verify_dataset

    ds = pydicom.dcmread(ct_file)
    sign_dataset(ds, load_private_key(pki.signer_key), load_certificate(pki.signer_cert))
    assert verify_dataset(ds).status == "valid"
    ds.MACParametersSequence[0].DataElementsSigned = [0x00080018]  # claim only SOP Instance UID was signed
    assert verify_dataset(ds).status == "invalid"


def test_key_and_profile_checks(pki: PkiFiles, other_pki: PkiFiles, ct_file: Path, tmp_path: Path) -> None:
    ec = create_test_pki(tmp_path / "ec", algorithm="ecdsa")
    key, cert = load_private_key(ec.signer_key), load_certificate(ec.signer_cert)
    with pytest.raises(ConfigError, match="requires an RSA key"):
        sign_file(ct_file, tmp_path / "x.dcm", key, cert, "base")
    sign_file(ct_file, tmp_path / "ec.dcm", key, cert, "none")
    assert verify_file(tmp_path / "ec.dcm", load_certificates(ec.ca_cert)).status == "valid"
    with pytest.raises(ConfigError, match="does not match"):
        sign_file(
            ct_file,
            tmp_path / "y.dcm",
            load_private_key(pki.signer_key),
            load_certificate(other_pki.signer_cert),
        )
    with pytest.raises(ConfigError, match="not allowed"):
        _sign(pki, ct_file, tmp_path / "z.dcm", mac_algorithm="MD5")
    with pytest.raises(InputError, match="not a DICOM file"):
        _sign(pki, pki.ca_cert, tmp_path / "w.dcm")
    with pytest.raises(ConfigError, match="exists"):
        create_test_pki(ec.ca_cert.parent, algorithm="ecdsa")
    assert not (tmp_path / "x.dcm").exists()


def test_der_trim_and_series_status(pki: PkiFiles, ct_file: Path, tmp_path: Path) -> None:
    der = load_certificate(pki.ca_cert).public_bytes(
        __import__("cryptography").hazmat.primitives.serialization.Encoding.DER
    )
    assert der_trim(der + b"\x00") == der
    signed = tmp_path / "s.dcm"
    _sign(pki, ct_file, signed)
    plain = tmp_path / "p.dcm"
    shutil.copy(ct_file, plain)
    assert series_signature_status([signed]) == "valid"
    assert series_signature_status([signed, plain]) == "mixed"
    assert series_signature_status([plain]) == "absent"
    assert combine_statuses(["valid", "invalid", "absent"]) == "invalid"
    assert combine_statuses(["valid", "untrusted"]) == "untrusted"
    # an unsigned series with a file gone during the scan: the check failed, nothing was signed (before:
    # "mixed", an alarm saying only some files are signed); a signed one with a file gone stays "mixed"
    gone = tmp_path / "gone.dcm"
    assert series_signature_status([plain, gone]) == "error"
    assert series_signature_status([signed, gone]) == "mixed"
    assert series_signature_status([signed, plain, gone]) == "mixed"


def test_a_truncated_image_is_not_signed(pki: PkiFiles, ct_file: Path, tmp_path: Path) -> None:
    """A signature would vouch for a file whose pixels cannot be read: refused, nothing written."""
    cut = tmp_path / "cut.dcm"
    data = ct_file.read_bytes()
    cut.write_bytes(data[: len(data) - 4096])  # the end of the Pixel Data is gone
    with pytest.raises(InputError, match=r"inconsistent pixel data length.*truncated or corrupt"):
        _sign(pki, cut, tmp_path / "signed.dcm")
    assert not (tmp_path / "signed.dcm").exists() and cut.read_bytes() == data[: len(data) - 4096]
