"""Sign and verify many files (files and series folders), logging each run to the audit log."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from medforensics.errors import ConfigError, InputError, MedforensicsError, absent_reason
from medforensics.logging import get_logger
from medforensics.provenance.audit import append_entry, check_appendable
from medforensics.provenance.keys import PrivateKey, describe_subject
from medforensics.provenance.signature import check_signer, read_dicom, sign_file
from medforensics.provenance.verify import SignatureResult, verify_dataset

log = get_logger("provenance")


@dataclass(frozen=True)
class InputFile:
    """A file to process and its name relative to the input it came from (used for ``--out``)."""

    path: Path
    relative: Path


@dataclass
class Expansion:
    """Files found in the inputs, how many folder members were skipped as not DICOM, and the inputs that
    do not exist (reported per input: a batch goes on past them)."""

    files: list[InputFile] = field(default_factory=list)
    skipped_non_dicom: int = 0
    missing: list[Path] = field(default_factory=list)


def _looks_like_dicom(path: Path) -> bool:
    """The DICM magic; a file that cannot be read is kept too, so that it is reported with its reason
    rather than counted among the non-DICOM files."""
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return True
    return head[128:132] == b"DICM"


def expand_inputs(inputs: Sequence[str | os.PathLike[str]], exclude: Path | None = None) -> Expansion:
    """Files named directly, plus the DICOM files (``DICM`` magic) under each folder, sorted.

    Hidden files and anything under ``exclude`` (e.g. the output folder) are left out; a file reached
    twice (named twice, or named and inside a named folder) is taken once. A missing input is listed in
    ``missing``.
    """
    out = Expansion()
    excluded = exclude.resolve() if exclude is not None else None
    seen: set[Path] = set()

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.files.append(InputFile(path, rel))

    for raw in inputs:
        root = Path(raw)
        if root.is_file():
            add(root, Path(root.name))
        elif root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                rel = path.relative_to(root)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if excluded is not None and path.resolve().is_relative_to(excluded):
                    continue
                if _looks_like_dicom(path):
                    add(path, rel)
                else:
                    out.skipped_non_dicom += 1
        else:
            out.missing.append(root)
    return out


def _uids(ds: Any) -> dict[str, str]:
    uids = {}
    for keyword, key in (
        ("SOPInstanceUID", "sop_instance_uid"),
        ("SeriesInstanceUID", "series_instance_uid"),
    ):
        value = ds.get(keyword)
        if value:
            uids[key] = str(value)
    return uids


@dataclass(frozen=True)
class FileVerification:
    """Verification of one file plus what the audit log records about it."""

    path: Path
    result: SignatureResult
    sha256: str | None
    uids: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the path is the caller's input, for the caller's own report)."""
        return {"path": str(self.path), "sha256": self.sha256, **self.uids, **self.result.to_dict()}


def verify_one(
    path: Path, trusted: list[x509.Certificate] | None, now: dt.datetime | None = None
) -> FileVerification:
    """Verify one file, never raising for bad input."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return FileVerification(
            path, SignatureResult("error", f"cannot read: {err.strerror or err}", None, 0), None, {}
        )
    sha = hashlib.sha256(data).hexdigest()
    try:
        ds = read_dicom(io.BytesIO(data), path=path)
    except InputError as err:
        return FileVerification(path, SignatureResult("error", err.reason, None, 0), sha, {})
    try:
        result = verify_dataset(ds, trusted, now)
    except Exception as err:
        result = SignatureResult("error", " ".join(f"{type(err).__name__}: {err}".split()), None, 0)
    return FileVerification(path, result, sha, _uids(ds))


def _audit(
    action: str,
    subjects: list[dict[str, Any]],
    details: dict[str, Any],
    audit_log: Path | None,
    enabled: bool,
) -> None:
    if enabled:
        append_entry(action, subjects, details, log_path=audit_log)


def verify_inputs(
    inputs: Sequence[str | os.PathLike[str]],
    trusted: list[x509.Certificate] | None = None,
    audit_log: Path | None = None,
    audit: bool = True,
) -> tuple[list[FileVerification], Expansion]:
    """Verify every file in ``inputs``; append one ``verify`` entry to the audit log."""
    if audit:
        check_appendable(audit_log)  # a log that cannot take the entry fails before the work, not after
    expansion = expand_inputs(inputs)
    results = [verify_one(f.path, trusted) for f in expansion.files]
    results += [
        FileVerification(p, SignatureResult("error", absent_reason(p), None, 0), None, {})
        for p in expansion.missing
    ]
    counts = Counter(r.result.status for r in results)
    subjects = [{**r.uids, "sha256": r.sha256, "status": r.result.status} for r in results]
    details: dict[str, Any] = {
        "counts": dict(counts),
        "trusted_cas": [_fingerprint(c) for c in trusted or []],
    }
    _audit("verify", subjects, details, audit_log, audit)
    return results, expansion


def _reason(err: Exception) -> str:
    """One line for a file that could not be signed: our own reason, the OS's, or the library's
    (first line, type named: a malformed element deep in pydicom)."""
    if isinstance(err, MedforensicsError):
        return err.reason
    if isinstance(err, OSError):
        return err.strerror or str(err)
    first = (str(err).strip().splitlines() or [""])[0]
    what = f"{type(err).__name__}: {first[:160]}" if first else type(err).__name__
    return f"malformed file ({what})"


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class SignOutcome:
    """One file's signing: the output path and signature UID, or the error."""

    source: Path
    target: Path | None
    uid: str | None = None
    error: str | None = None


def plan_outputs(files: Sequence[InputFile], out_dir: Path | None, in_place: bool) -> list[Path]:
    """Where each signed file goes: ``out_dir/<relative name>``, or the input itself with ``in_place``."""
    if in_place == (out_dir is not None):
        raise ConfigError("give either --out DIR or --in-place")
    if in_place:
        return [f.path for f in files]
    assert out_dir is not None
    targets = [out_dir / f.relative for f in files]
    seen: dict[Path, Path] = {}
    for f, target in zip(files, targets, strict=True):
        key = target.resolve()
        if key == f.path.resolve():
            raise ConfigError(f"output {target} would overwrite its input; use --in-place to mean that")
        if key in seen:
            raise ConfigError(f"{f.path} and {seen[key]} would both be written to {target}")
        seen[key] = f.path
    return targets


def sign_inputs(
    inputs: Sequence[str | os.PathLike[str]],
    key: PrivateKey,
    cert: x509.Certificate,
    out_dir: Path | None = None,
    in_place: bool = False,
    profile: str = "base",
    mac_algorithm: str = "SHA256",
    audit_log: Path | None = None,
    audit: bool = True,
) -> tuple[list[SignOutcome], Expansion]:
    """Sign every file in ``inputs`` into ``out_dir`` (or in place); append one ``sign`` audit entry. A key,
    certificate, profile or MAC algorithm unfit to sign is a :class:`ConfigError` before any file is read."""
    check_signer(key, cert, profile, mac_algorithm)
    if audit:
        check_appendable(audit_log)  # before any file is signed
    if out_dir is not None:
        real_out = Path(os.path.realpath(out_dir))
        for raw in inputs:
            if Path(raw).is_dir() and real_out == Path(os.path.realpath(raw)):
                raise ConfigError(f"--out {out_dir} is the input folder; use --in-place to replace its files")
    expansion = expand_inputs(inputs, exclude=out_dir)
    targets = plan_outputs(expansion.files, out_dir, in_place)
    outcomes: list[SignOutcome] = []
    subjects: list[dict[str, Any]] = []
    for f, target in zip(expansion.files, targets, strict=True):
        try:
            before = hashlib.sha256(f.path.read_bytes()).hexdigest()
            uid, ds = sign_file(f.path, target, key, cert, profile, mac_algorithm)
        except Exception as err:  # one malformed file must not stop the batch (pydicom raises many kinds)
            reason = _reason(err)
            outcomes.append(SignOutcome(f.path, None, error=reason))
            subjects.append({"status": "error"})
            log.info("not signed: %s", reason)
            continue
        after = hashlib.sha256(target.read_bytes()).hexdigest()
        outcomes.append(SignOutcome(f.path, target, uid))
        subjects.append(
            {**_uids(ds), "signature_uid": uid, "sha256_before": before, "sha256": after, "status": "signed"}
        )
    for p in expansion.missing:
        outcomes.append(SignOutcome(p, None, error=absent_reason(p)))
        subjects.append({"status": "error"})
    details = {
        "profile": profile,
        "mac_algorithm": mac_algorithm.upper(),
        "signer": describe_subject(cert),
        "signer_certificate_sha256": _fingerprint(cert),
        "in_place": in_place,
        "counts": dict(Counter(s["status"] for s in subjects)),
    }
    _audit("sign", subjects, details, audit_log, audit)
    return outcomes, expansion
