"""Provenance: DICOM digital signatures (PS3.15 Annex C, interoperable with DCMTK ``dcmsign``) and a
tamper-evident, hash-chained audit log.

Public API::

    create_test_pki(out_dir, algorithm="rsa") -> PkiFiles
    sign_file(src, dst, key, cert, profile="base", mac_algorithm="SHA256") -> (signature_uid, dataset)
    verify_file(path, trusted=None) -> SignatureResult(status, reason, signer, n_signatures, signatures)
    series_signature_status(paths, trusted=None)
        -> "valid" | "invalid" | "absent" | "untrusted" | "mixed" | "error"
    append_entry(action, subjects, details, log_path=None) / verify_log(log_path=None)
"""

from medforensics.provenance.audit import AuditCheck, AuditEntry, append_entry, default_log_path, verify_log
from medforensics.provenance.keys import (
    PkiFiles,
    create_test_pki,
    load_certificate,
    load_certificates,
    load_private_key,
)
from medforensics.provenance.signature import sign_dataset, sign_file
from medforensics.provenance.verify import (
    SignatureDetail,
    SignatureResult,
    combine_statuses,
    series_signature_status,
    verify_dataset,
    verify_file,
)

__all__ = [
    "AuditCheck",
    "AuditEntry",
    "PkiFiles",
    "SignatureDetail",
    "SignatureResult",
    "append_entry",
    "combine_statuses",
    "create_test_pki",
    "default_log_path",
    "load_certificate",
    "load_certificates",
    "load_private_key",
    "series_signature_status",
    "sign_dataset",
    "sign_file",
    "verify_dataset",
    "verify_file",
    "verify_log",
]
