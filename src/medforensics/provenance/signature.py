"""Create DICOM digital signatures: MAC Parameters (4FFE,0001) and Digital Signatures (FFFA,FFFA) items.

A new signature adds one item to each sequence of the main data set, linked by MAC ID Number:

- MAC Parameters item: MAC ID Number, MAC Calculation Transfer Syntax UID (Explicit VR Little Endian),
  MAC Algorithm (SHA256 by default), Data Elements Signed (the tags covered);
- Digital Signatures item: MAC ID Number, Digital Signature UID, Digital Signature DateTime, Certificate
  Type ``X509_1993_SIG``, Certificate of Signer (DER), Signature.

The signature is RSA PKCS#1 v1.5 (or ECDSA, DER) over the digest of the MAC stream
(:mod:`~medforensics.provenance.macstream`), as DCMTK's ``dcmsign`` makes and checks it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pydicom
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from medforensics._atomic import write_bytes_atomic
from medforensics.errors import ConfigError, InputError
from medforensics.provenance.keys import DSAPublicKey, PrivateKey, PublicKey, public_keys_match
from medforensics.provenance.macstream import EXPLICIT_VR_LE, mac_stream
from medforensics.provenance.profiles import Profile, get_profile

CERTIFICATE_TYPE = "X509_1993_SIG"
#: MAC algorithms (defined terms) that verification understands.
MAC_ALGORITHMS: dict[str, str] = {
    "RIPEMD160": "ripemd160",
    "SHA1": "sha1",
    "MD5": "md5",
    "SHA256": "sha256",
    "SHA384": "sha384",
    "SHA512": "sha512",
}
#: MAC algorithms new signatures may use (current PS3.15; the others are verify-only legacy).
SIGNING_MACS: tuple[str, ...] = ("SHA256", "SHA384", "SHA512")
_CRYPTO_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "SHA1": hashes.SHA1,
    "MD5": hashes.MD5,
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
#: DER DigestInfo prefix for RIPEMD-160 (PKCS#1), which ``cryptography`` has no hash class for.
_RIPEMD160_DIGEST_INFO = bytes.fromhex("3021300906052b2403020105000414")


def digest(data: bytes, mac_algorithm: str) -> bytes:
    """The MAC (a plain digest) of ``data``; ValueError for an unknown or unavailable algorithm."""
    name = MAC_ALGORITHMS.get(mac_algorithm.strip().upper())
    if name is None:
        raise ValueError(f"unknown MAC algorithm {mac_algorithm!r}")
    try:
        return hashlib.new(name, data).digest()
    except ValueError:
        raise ValueError(f"MAC algorithm {mac_algorithm} is not available in this Python's OpenSSL") from None


def sign_digest(key: PrivateKey, mac_digest: bytes, mac_algorithm: str) -> bytes:
    """RSA PKCS#1 v1.5 or ECDSA (DER, padded to even length) signature of a precomputed digest."""
    algo = Prehashed(_CRYPTO_HASHES[mac_algorithm]())
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(mac_digest, padding.PKCS1v15(), algo)
    sig = key.sign(mac_digest, ec.ECDSA(algo))
    return sig + b"\x00" if len(sig) % 2 else sig


def der_trim(data: bytes) -> bytes:
    """Drop the pad byte DICOM adds to odd-length DER (certificates, DSA/ECDSA signatures)."""
    if len(data) < 2 or data[0] != 0x30:
        return data
    first = data[1]
    if first < 0x80:
        total = 2 + first
    else:
        n = first & 0x7F
        total = 2 + n + int.from_bytes(data[2 : 2 + n], "big")
    return data[:total] if total <= len(data) else data


def verify_digest(public_key: PublicKey, signature: bytes, mac_digest: bytes, mac_algorithm: str) -> bool:
    """Whether ``signature`` signs ``mac_digest``; ValueError for an unsupported key/algorithm pair."""
    mac_algorithm = mac_algorithm.strip().upper()
    if isinstance(public_key, rsa.RSAPublicKey):
        if mac_algorithm == "RIPEMD160":
            try:
                recovered = public_key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
            except InvalidSignature:
                return False
            return recovered == _RIPEMD160_DIGEST_INFO + mac_digest
        try:
            public_key.verify(
                signature, mac_digest, padding.PKCS1v15(), Prehashed(_CRYPTO_HASHES[mac_algorithm]())
            )
        except InvalidSignature:
            return False
        return True
    if isinstance(public_key, ec.EllipticCurvePublicKey | DSAPublicKey):
        if mac_algorithm not in _CRYPTO_HASHES:
            raise ValueError(
                f"MAC algorithm {mac_algorithm} with a {type(public_key).__name__} is not supported"
            )
        algo = Prehashed(_CRYPTO_HASHES[mac_algorithm]())
        try:
            if isinstance(public_key, ec.EllipticCurvePublicKey):
                public_key.verify(der_trim(signature), mac_digest, ec.ECDSA(algo))
            else:
                public_key.verify(der_trim(signature), mac_digest, algo)
        except InvalidSignature:
            return False
        return True
    raise ValueError(f"unsupported public key type {type(public_key).__name__}")


def _even(data: bytes) -> bytes:
    return data + b"\x00" if len(data) % 2 else data


def _next_mac_id(ds: Dataset) -> int:
    used = {
        int(item.MACIDNumber)
        for seq in ("MACParametersSequence", "DigitalSignaturesSequence")
        for item in ds.get(seq, [])
        if "MACIDNumber" in item
    }
    return next(i for i in range(65536) if i not in used)


def mac_transfer_syntax(ds: Dataset) -> str:
    """Explicit VR Little Endian, or the file's own transfer syntax when its pixel data are encapsulated.

    Encapsulated (compressed) pixel data cannot be expressed in a native transfer syntax, so DCMTK names
    the compressed one; the byte stream is Explicit VR Little Endian either way.
    """
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return str(uid) if uid is not None and uid.is_encapsulated else EXPLICIT_VR_LE


def signature_datetime(now: dt.datetime | None = None) -> str:
    """A DICOM DT with microseconds and UTC offset, as DCMTK writes it."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return now.strftime("%Y%m%d%H%M%S.%f") + "+0000"


def check_signer(
    key: PrivateKey,
    cert: x509.Certificate,
    profile: str = "base",
    mac_algorithm: str = "SHA256",
    now: dt.datetime | None = None,
) -> Profile:
    """The signing profile named ``profile`` once the key, certificate and MAC algorithm are fit to sign
    with it ``now``; :class:`ConfigError` otherwise. Batch signing checks this once, before any file."""
    prof = get_profile(profile)
    if mac_algorithm.upper() not in SIGNING_MACS:
        raise ConfigError(
            f"MAC algorithm {mac_algorithm.upper()} is not allowed for new signatures; use "
            f"{', '.join(SIGNING_MACS)}"
        )
    if prof.rsa_only and not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"the {prof.name} profile requires an RSA key; use --profile none for ECDSA")
    if not public_keys_match(key, cert):
        raise ConfigError("the certificate does not match the private key")
    when = now or dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise ConfigError(
            f"the signer certificate is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
        )
    return prof


def sign_dataset(
    ds: Dataset,
    key: PrivateKey,
    cert: x509.Certificate,
    profile: str = "base",
    mac_algorithm: str = "SHA256",
    now: dt.datetime | None = None,
    path: str | None = None,
) -> str:
    """Add one digital signature to the main data set ``ds`` (in place); return its Digital Signature UID."""
    when = now or dt.datetime.now(dt.UTC)
    prof = check_signer(key, cert, profile, mac_algorithm, when)
    mac_algorithm = mac_algorithm.upper()
    tags = prof.select(ds, path)
    mac_id = _next_mac_id(ds)
    item = Dataset()
    item.MACIDNumber = mac_id
    item.DigitalSignatureUID = generate_uid()
    item.DigitalSignatureDateTime = signature_datetime(when)
    item.CertificateType = CERTIFICATE_TYPE
    item.CertificateOfSigner = _even(cert.public_bytes(serialization.Encoding.DER))
    mac_digest = digest(mac_stream(ds, tags, item), mac_algorithm)
    item.Signature = sign_digest(key, mac_digest, mac_algorithm)
    params = Dataset()
    params.MACIDNumber = mac_id
    params.MACCalculationTransferSyntaxUID = mac_transfer_syntax(ds)
    params.MACAlgorithm = mac_algorithm
    params.DataElementsSigned = tags
    for keyword, new in (("MACParametersSequence", params), ("DigitalSignaturesSequence", item)):
        if keyword in ds:
            ds[keyword].value.append(new)
        else:
            setattr(ds, keyword, Sequence([new]))
    return str(item.DigitalSignatureUID)


def read_dicom(
    source: str | os.PathLike[str] | io.BytesIO, path: str | os.PathLike[str] | None = None
) -> Dataset:
    """Read a DICOM file (a path, or an in-memory copy of ``path``); InputError with a one-line reason."""
    if path is None and not isinstance(source, io.BytesIO):
        path = source
    try:
        return pydicom.dcmread(source)
    except InvalidDicomError:
        raise InputError("not a DICOM file", path=path) from None
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror or err}", path=path) from None
    except Exception as err:
        raise InputError(f"unreadable DICOM ({type(err).__name__}: {err})", path=path) from None


def sign_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    key: PrivateKey,
    cert: x509.Certificate,
    profile: str = "base",
    mac_algorithm: str = "SHA256",
    now: dt.datetime | None = None,
) -> tuple[str, Dataset]:
    """Sign the DICOM file ``src`` and write the result atomically to ``dst`` (may equal ``src``).

    The written bytes are read back and the new signature verified before ``dst`` is replaced.
    Returns the Digital Signature UID and the signed data set.
    """
    from medforensics.io.dicom_pixels import check_pixel_length
    from medforensics.provenance.verify import verify_dataset  # verify imports this module

    ds = read_dicom(src)
    try:
        check_pixel_length(ds, Path(src))  # a signature would vouch for a broken file
    except (ValueError, TypeError) as err:
        raise InputError(f"malformed image tags ({err})", path=src) from None
    uid = sign_dataset(ds, key, cert, profile, mac_algorithm, now, path=str(src))
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    data = buf.getvalue()
    check = verify_dataset(pydicom.dcmread(io.BytesIO(data)), trusted=None)
    mine = [s for s in check.signatures if s.uid == uid]
    if not mine or mine[0].status != "valid":
        reason = mine[0].reason if mine else "signature missing after writing"
        raise InputError(f"signed file does not verify when read back ({reason})", path=src)
    write_bytes_atomic(Path(dst), data)
    return uid, ds
