"""Verify DICOM digital signatures: per file ``valid`` / ``invalid`` / ``absent`` / ``untrusted`` / ``error``.

- ``valid``: every signature's MAC and signature check out and its certificate was valid when it signed
  (and, when trusted CA certificates are given, was issued by one of them and has not expired).
- ``invalid``: some signature does not match the data (a signed element or a pixel changed), or it cannot
  be checked (missing MAC parameters or certificate, unknown MAC algorithm, corrupt signature).
- ``untrusted``: the signatures match the data but a signer certificate is not from a trusted CA, or was
  expired / not yet valid.
- ``absent``: no Digital Signatures Sequence in the file.
- ``error``: the file cannot be read as DICOM.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cryptography import x509
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import UID
from pydicom.valuerep import DT

from medforensics.errors import InputError
from medforensics.provenance.keys import describe_subject
from medforensics.provenance.macstream import (
    EXPLICIT_VR_LE,
    element_vr,
    encode_dataset,
    is_signable,
    signature_item_stream,
)
from medforensics.provenance.signature import MAC_ALGORITHMS, der_trim, digest, read_dicom, verify_digest

Status = Literal["valid", "invalid", "absent", "untrusted", "error"]
SeriesStatus = Literal["valid", "invalid", "absent", "untrusted", "mixed", "error"]
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


@dataclass(frozen=True)
class SignatureDetail:
    """The check of one signature item."""

    uid: str | None
    location: str
    status: Status
    reason: str | None
    signer: str | None
    mac_algorithm: str | None
    signed_at: str | None
    n_elements: int
    covers_pixel_data: bool


@dataclass(frozen=True)
class SignatureResult:
    """Signature status of one file (``signer``, ``reason``: from the signature that decided it)."""

    status: Status
    reason: str | None
    signer: str | None
    n_signatures: int
    signatures: tuple[SignatureDetail, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _signature_containers(ds: Dataset, location: str = "main") -> list[tuple[str, Dataset]]:
    """Data sets (main, sequence items) with a Digital Signatures Sequence, outside Original Attributes."""
    found: list[tuple[str, Dataset]] = []
    if 0xFFFAFFFA in ds:
        found.append((location, ds))
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset yields elements, not tags
        if (
            int(tag) in (0xFFFAFFFA, 0x04000561) or element_vr(ds, tag) != "SQ"
        ):  # 0400,0561: Original Attributes
            continue
        for i, item in enumerate(ds[tag].value):
            found.extend(
                _signature_containers(item, f"{location}/({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X})[{i}]")
            )
    return found


def _explicit_little(uid: str) -> bool:
    """Whether a MAC Calculation Transfer Syntax encodes as Explicit VR Little Endian (incl. encapsulated)."""
    if uid == EXPLICIT_VR_LE:
        return True
    ts = UID(uid)
    return ts.is_transfer_syntax and ts.is_little_endian and not ts.is_implicit_VR


def _signed_at(item: Dataset) -> dt.datetime:
    value = DT(str(item.DigitalSignatureDateTime).strip())
    when = dt.datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond
    )
    return when.replace(tzinfo=value.tzinfo or dt.UTC)


def _trust_problem(
    cert: x509.Certificate, signed_at: dt.datetime, trusted: list[x509.Certificate] | None, now: dt.datetime
) -> str | None:
    """Why the signer certificate is not acceptable, or None."""
    if signed_at < cert.not_valid_before_utc:
        return f"certificate not yet valid at signature time ({cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC)"
    if signed_at > cert.not_valid_after_utc:
        return f"certificate expired before signature time ({cert.not_valid_after_utc:%Y-%m-%d} UTC)"
    if trusted is None:
        return None
    if now > cert.not_valid_after_utc:
        return f"certificate expired {cert.not_valid_after_utc:%Y-%m-%d}"
    if any(t == cert for t in trusted):  # the signer certificate itself is trusted
        return None
    for ca in trusted:
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except Exception:
            continue
        if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
            return f"issuing CA certificate not valid now ({ca.not_valid_after_utc:%Y-%m-%d})"
        return None
    return f"certificate of {describe_subject(cert)!r} not issued by a trusted CA"


def _check(
    container: Dataset,
    location: str,
    item: Dataset,
    mac_items: dict[int, Dataset],
    trusted: list[x509.Certificate] | None,
    now: dt.datetime,
) -> SignatureDetail:
    uid = str(item.get("DigitalSignatureUID", "")) or None
    info: dict[str, Any] = {"uid": uid, "location": location, "signer": None, "mac_algorithm": None}
    info.update(signed_at=None, n_elements=0, covers_pixel_data=False)

    def result(status: Status, reason: str | None) -> SignatureDetail:
        return SignatureDetail(status=status, reason=reason, **info)

    if "MACIDNumber" not in item:
        return result("invalid", "signature item has no MAC ID Number")
    params = mac_items.get(int(item.MACIDNumber))
    if params is None:
        return result("invalid", f"no MAC Parameters item for MAC ID {int(item.MACIDNumber)}")
    mac_algorithm = str(params.get("MACAlgorithm", "")).strip().upper()
    info["mac_algorithm"] = mac_algorithm or None
    if mac_algorithm not in MAC_ALGORITHMS:
        return result(
            "invalid", f"unknown MAC algorithm {mac_algorithm!r}" if mac_algorithm else "no MAC algorithm"
        )
    xfer = str(params.get("MACCalculationTransferSyntaxUID", "")).strip()
    if not _explicit_little(xfer):
        return result("invalid", f"unsupported MAC calculation transfer syntax {xfer or '(none)'}")
    signed = params.get("DataElementsSigned")
    tags = [int(t) for t in (signed if isinstance(signed, list | MultiValue) else [signed] if signed else [])]
    if not tags:
        return result("invalid", "no Data Elements Signed")
    info["n_elements"] = len(tags)
    info["covers_pixel_data"] = any(t in _PIXEL_TAGS for t in tags)
    signature = bytes(item.get("Signature") or b"")
    if not signature:
        return result("invalid", "no Signature value")
    cert_type = str(item.get("CertificateType", "")).strip()
    if cert_type != "X509_1993_SIG":
        return result("invalid", f"unsupported certificate type {cert_type or '(none)'}")
    cert_bytes = bytes(item.get("CertificateOfSigner") or b"")
    if not cert_bytes:
        return result("invalid", "no Certificate of Signer")
    try:
        cert = x509.load_der_x509_certificate(der_trim(cert_bytes))
    except ValueError:
        return result("invalid", "corrupt Certificate of Signer")
    info["signer"] = describe_subject(cert)
    try:
        signed_at = _signed_at(item)
    except (AttributeError, ValueError, TypeError):
        return result("invalid", "missing or malformed Digital Signature DateTime")
    info["signed_at"] = signed_at.isoformat()
    unsignable = [t for t in tags if t in container and not is_signable(container, Tag(t))]
    if unsignable:
        return result(
            "invalid",
            f"signed element ({unsignable[0] >> 16:04X},{unsignable[0] & 0xFFFF:04X}) is not signable",
        )
    try:
        mac_digest = digest(encode_dataset(container, tags) + signature_item_stream(item), mac_algorithm)
        ok = verify_digest(cert.public_key(), signature, mac_digest, mac_algorithm)  # type: ignore[arg-type]
    except ValueError as err:
        return result("invalid", str(err))
    if not ok:
        return result("invalid", "signature does not match the data (signed elements or pixels changed)")
    problem = _trust_problem(cert, signed_at, trusted, now)
    if problem:
        return result("untrusted", problem)
    return result("valid", None)


def verify_dataset(
    ds: Dataset, trusted: list[x509.Certificate] | None = None, now: dt.datetime | None = None
) -> SignatureResult:
    """Check every digital signature in ``ds`` (main data set and sequence items).

    ``trusted``: CA (or signer) certificates to accept; None checks integrity and the certificate's
    validity at signing time only, and says so in ``reason``.
    """
    now = now or dt.datetime.now(dt.UTC)
    details: list[SignatureDetail] = []
    for location, container in _signature_containers(ds):
        mac_items = {
            int(m.MACIDNumber): m for m in container.get("MACParametersSequence", []) if "MACIDNumber" in m
        }
        for item in container[0xFFFAFFFA].value:
            try:
                details.append(_check(container, location, item, mac_items, trusted, now))
            except Exception as err:
                reason = " ".join(f"cannot check signature ({type(err).__name__}: {err})".split())
                uid = str(item.get("DigitalSignatureUID", "")) or None
                details.append(SignatureDetail(uid, location, "invalid", reason, None, None, None, 0, False))
    if not details:
        return SignatureResult("absent", None, None, 0)
    decisive: tuple[Status, ...] = ("invalid", "untrusted")
    for status in decisive:
        bad = [d for d in details if d.status == status]
        if bad:
            decided: str | None = (
                bad[0].reason
                if len(details) == 1
                else f"signature {details.index(bad[0]) + 1}/{len(details)}: {bad[0].reason}"
            )
            return SignatureResult(status, decided, bad[0].signer, len(details), tuple(details))
    notes = []
    if "PixelData" in ds and not any(d.covers_pixel_data for d in details if d.location == "main"):
        notes.append("pixel data not covered by any signature")
    if trusted is None:
        notes.append("signer not checked against a trusted CA")
    return SignatureResult("valid", "; ".join(notes) or None, details[0].signer, len(details), tuple(details))


def verify_file(
    path: str | os.PathLike[str],
    trusted: list[x509.Certificate] | None = None,
    now: dt.datetime | None = None,
) -> SignatureResult:
    """Signature status of one DICOM file; never raises for bad input (status ``error`` instead)."""
    try:
        ds = read_dicom(path)
    except InputError as err:
        return SignatureResult("error", err.reason, None, 0)
    try:
        return verify_dataset(ds, trusted, now)
    except Exception as err:
        return SignatureResult("error", " ".join(f"{type(err).__name__}: {err}".split()), None, 0)


def combine_statuses(statuses: Iterable[str]) -> SeriesStatus:
    """One status for a series from its files' statuses.

    ``invalid`` if any file is invalid (a finding on its own); else ``untrusted`` if any is untrusted;
    ``valid`` / ``absent`` / ``error`` if all files agree; ``error`` for unsigned files beside files that
    could not be checked (gone or unreadable: no file was seen signed, so nothing says only some are);
    otherwise ``mixed`` (some files signed, some not or not checkable — itself suspicious: files may have
    been added to a signed series).
    """
    seen = set(statuses)
    worst: tuple[SeriesStatus, ...] = ("invalid", "untrusted")
    for status in worst:
        if status in seen:
            return status
    if len(seen) == 1:
        return seen.pop()  # type: ignore[return-value]
    if seen == {"absent", "error"}:
        return "error"
    return "absent" if not seen else "mixed"


def series_signature_status(
    paths: Iterable[str | os.PathLike[str]], trusted: list[x509.Certificate] | None = None
) -> SeriesStatus:
    """Signature status of a series given its files: see :func:`combine_statuses`."""
    return combine_statuses(verify_file(p, trusted).status for p in paths)
