"""Keys and certificates: a test PKI (CA + signer) and PEM loading.

The test CA is for trials and tests. A site signs with a key and certificate from its own PKI.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from medforensics._atomic import atomic_path, check_writable
from medforensics.errors import ConfigError, InputError, OutputError


def _dsa_public_key_class() -> type[dsa.DSAPublicKey]:
    """cryptography's DSA public key class, fetched without the deprecation warning cryptography 48+ gives
    on that name (it was printed on every command's stderr): DSA signatures made elsewhere are still
    verified; this project never signs with DSA."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return dsa.DSAPublicKey


KeyAlgorithm = Literal["rsa", "ecdsa"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
DSAPublicKey = _dsa_public_key_class()
if TYPE_CHECKING:
    PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | dsa.DSAPublicKey
else:
    PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | DSAPublicKey
#: The last moment an X.509 validity date can hold.
_LAST_DATE = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


@dataclass(frozen=True)
class PkiFiles:
    """Paths of the files :func:`create_test_pki` writes."""

    ca_cert: Path
    ca_key: Path
    signer_cert: Path
    signer_key: Path


def _new_key(algorithm: KeyAlgorithm) -> PrivateKey:
    if algorithm == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise ConfigError(f"unknown key algorithm {algorithm!r}; choose rsa or ecdsa")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "medforensics test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    public_key: PublicKey,
    issuer: x509.Name,
    issuer_key: PrivateKey,
    not_before: dt.datetime,
    days: int,
    is_ca: bool,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca,
                content_commitment=not is_ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret atomically, readable by the owner only from the start."""
    with atomic_path(path, private=True) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)


def _write_public(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def create_test_pki(
    out_dir: str | os.PathLike[str],
    algorithm: KeyAlgorithm = "rsa",
    force: bool = False,
    days: int = 3650,
    common_name: str = "medforensics test signer",
    now: dt.datetime | None = None,
) -> PkiFiles:
    """Write a self-signed test CA and a signer certificate + key it issued (all PEM) into ``out_dir``.

    Files: ``ca.pem``, ``ca-key.pem``, ``signer.pem``, ``signer-key.pem`` (keys unencrypted, mode 0600).
    Existing files are never overwritten unless ``force``. Certificates start one hour before ``now`` so
    that a signature made at once is inside their validity.
    """
    out = Path(out_dir)
    pki = PkiFiles(out / "ca.pem", out / "ca-key.pem", out / "signer.pem", out / "signer-key.pem")
    targets = (pki.ca_cert, pki.ca_key, pki.signer_cert, pki.signer_key)
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise ConfigError(f"{existing[0].name} exists; pass --force to replace the keys", path=out)
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(hours=1)
    last_day = (_LAST_DATE - start).days  # X.509 dates end at 9999-12-31
    if not 1 <= days <= last_day:
        raise ConfigError(f"validity must be 1 to {last_day} days (to 9999-12-31), got {days}")
    if not 1 <= len(common_name) <= 64:  # X.509 limits a common name to 1-64 characters
        raise ConfigError(f"the signer name must be 1 to 64 characters, got {len(common_name)}")
    # before any key is made: every file can be written (a set half replaced would not match)
    check_writable(out, folder=True)
    for target in targets:
        check_writable(target)
    ca_key, signer_key = _new_key(algorithm), _new_key(algorithm)
    ca_name = _name("medforensics test CA")
    ca = _certificate(ca_name, ca_key.public_key(), ca_name, ca_key, start, days, is_ca=True)
    signer = _certificate(
        _name(common_name), signer_key.public_key(), ca_name, ca_key, start, days, is_ca=False
    )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot be written ({err.strerror or type(err).__name__})", path=out) from None
    pem, pkcs8, plain = (
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(pki.ca_key, ca_key.private_bytes(pem, pkcs8, plain))
    _write_private(pki.signer_key, signer_key.private_bytes(pem, pkcs8, plain))
    _write_public(pki.ca_cert, ca.public_bytes(pem))
    _write_public(pki.signer_cert, signer.public_bytes(pem))
    return pki


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {what}: {err.strerror or err}", path=path) from None


def load_private_key(path: str | os.PathLike[str], password: bytes | None = None) -> PrivateKey:
    """An RSA or EC private key from a PEM (or DER) file."""
    data = _read(path, "private key")
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=password)
        else:
            key = serialization.load_der_private_key(data, password=password)
    except (ValueError, TypeError) as err:
        raise InputError(f"not a usable private key ({err})", path=path) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InputError(f"unsupported key type {type(key).__name__}; use RSA or ECDSA", path=path)
    return key


def load_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """All X.509 certificates in a PEM bundle (or one DER certificate)."""
    data = _read(path, "certificate")
    try:
        certs = (
            x509.load_pem_x509_certificates(data)
            if b"-----BEGIN" in data
            else [x509.load_der_x509_certificate(data)]
        )
    except ValueError as err:
        raise InputError(f"not an X.509 certificate ({err})", path=path) from None
    if not certs:
        raise InputError("no certificate in file", path=path)
    return certs


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """The first X.509 certificate in a PEM or DER file."""
    return load_certificates(path)[0]


def public_keys_match(key: PrivateKey, cert: x509.Certificate) -> bool:
    """Whether ``cert`` certifies the public half of ``key``."""
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, fmt) == cert.public_key().public_bytes(der, fmt)


def describe_subject(cert: x509.Certificate) -> str:
    """The signer's common name (or the whole subject) for display."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()
