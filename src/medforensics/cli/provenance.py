"""``medforensics sign | verify | keys create | audit verify | audit show``: DICOM digital signatures
(PS3.15) and the hash-chained audit log. Thin: parse, call one library function, print."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medforensics.cli._errors import fail
from medforensics.errors import MedforensicsError

_AUDIT_HELP = "Audit log (default: $MEDFORENSICS_HOME/audit.sqlite, ~/.medforensics by default)."


def register(app: typer.Typer) -> None:
    """Attach ``sign``, ``verify`` and the ``keys`` and ``audit`` groups."""
    keys_app = typer.Typer(help="Test keys and certificates for signing.", no_args_is_help=True)
    audit_app = typer.Typer(
        help="The tamper-evident audit log of signing and verification.", no_args_is_help=True
    )
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")

    @keys_app.command("create")
    def keys_create_cmd(
        out: Path = typer.Option(
            ..., "--out", help="Folder for ca.pem, ca-key.pem, signer.pem, signer-key.pem."
        ),
        algorithm: str = typer.Option("rsa", "--algorithm", help="rsa (2048 bit) or ecdsa (P-256)."),
        days: int = typer.Option(3650, "--days", min=1, help="Certificate validity in days."),
        name: str = typer.Option("medforensics test signer", "--name", help="Signer common name."),
        force: bool = typer.Option(False, "--force", help="Replace existing keys in --out."),
    ) -> None:
        """Create a self-signed test CA and a signer certificate + private key it issued (PEM)."""
        from medforensics.provenance.keys import create_test_pki

        try:
            pki = create_test_pki(out, algorithm.lower(), force=force, days=days, common_name=name)  # type: ignore[arg-type]
        except MedforensicsError as err:
            raise fail(err) from None
        typer.echo(f"CA certificate:     {pki.ca_cert}   (give to verifiers: --ca)")
        typer.echo(f"signer certificate: {pki.signer_cert}")
        typer.echo(f"signer private key: {pki.signer_key}   (keep secret)")

    @app.command("sign")
    def sign_cmd(
        inputs: list[Path] = typer.Argument(..., help="DICOM files and/or series folders.", readable=False),
        key: Path = typer.Option(..., "--key", help="Signer private key (PEM, unencrypted)."),
        cert: Path = typer.Option(..., "--cert", help="Signer certificate (PEM)."),
        out: Path | None = typer.Option(None, "--out", help="Write signed copies here (same names)."),
        in_place: bool = typer.Option(False, "--in-place", help="Replace the input files (atomically)."),
        profile: str = typer.Option(
            "base", "--profile", help="base, creator (RSA profiles) or none (any key)."
        ),
        mac: str = typer.Option("SHA256", "--mac", help="MAC algorithm: SHA256, SHA384 or SHA512."),
        audit_log: Path | None = typer.Option(None, "--audit-log", help=_AUDIT_HELP),
        no_audit: bool = typer.Option(False, "--no-audit", help="Do not write an audit log entry."),
    ) -> None:
        """Add a DICOM digital signature (PS3.15) to each file; exit 2 if any file could not be signed."""
        from medforensics.errors import ConfigError
        from medforensics.provenance.batch import sign_inputs
        from medforensics.provenance.keys import load_certificate, load_private_key
        from medforensics.provenance.signature import check_signer

        try:
            private_key, certificate = load_private_key(key), load_certificate(cert)
            try:  # once, naming the files (sign_inputs checks it too, before any file)
                check_signer(private_key, certificate, profile, mac)
            except ConfigError as err:
                raise ConfigError(f"{err.reason} (--key {key}, --cert {cert})") from None
            outcomes, expansion = sign_inputs(
                inputs, private_key, certificate, out, in_place, profile, mac, audit_log, not no_audit
            )
        except MedforensicsError as err:
            raise fail(err) from None
        for o in outcomes:
            if o.error:
                typer.echo(f"error   {o.source}: {o.error}")
            else:
                typer.echo(f"signed  {o.source} -> {o.target}")
        n_bad = sum(1 for o in outcomes if o.error)
        skipped = f", {expansion.skipped_non_dicom} non-DICOM skipped" if expansion.skipped_non_dicom else ""
        typer.echo(f"{len(outcomes) - n_bad} signed, {n_bad} failed{skipped}", err=True)
        if not outcomes:
            typer.echo(f"error: {', '.join(map(str, inputs))}: no DICOM files to sign", err=True)
        if n_bad or not outcomes:
            raise typer.Exit(code=2)

    @app.command("verify")
    def verify_cmd(
        inputs: list[Path] = typer.Argument(..., help="DICOM files and/or series folders.", readable=False),
        ca: list[Path] = typer.Option([], "--ca", help="Trusted CA certificate(s) (PEM); repeatable."),
        json_out: Path | None = typer.Option(None, "--json", help="Also write the results as JSON here."),
        audit_log: Path | None = typer.Option(None, "--audit-log", help=_AUDIT_HELP),
        no_audit: bool = typer.Option(False, "--no-audit", help="Do not write an audit log entry."),
    ) -> None:
        """Check the digital signatures of each file: valid / invalid / absent / untrusted / error.

        Exit status 2 when any file is not valid.
        """
        from medforensics._atomic import check_not_input, write_text_atomic
        from medforensics.provenance.batch import verify_inputs
        from medforensics.provenance.keys import load_certificates

        try:
            if json_out is not None:  # before the work: the report must not overwrite an input
                check_not_input(json_out, inputs)
            trusted = [c for path in ca for c in load_certificates(path)] or None
            results, expansion = verify_inputs(inputs, trusted, audit_log, not no_audit)
        except MedforensicsError as err:
            raise fail(err) from None
        for r in results:
            res = r.result
            signer = f"  signer={res.signer!r}" if res.signer else ""
            reason = f"  ({res.reason})" if res.reason else ""
            typer.echo(f"{res.status:<9} {r.path}{signer}{reason}")
        counts: dict[str, int] = {}
        for r in results:
            counts[r.result.status] = counts.get(r.result.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no files"
        skipped = f", {expansion.skipped_non_dicom} non-DICOM skipped" if expansion.skipped_non_dicom else ""
        typer.echo(f"{len(results)} files: {summary}{skipped}", err=True)
        if json_out is not None:
            doc = {"files": [r.to_dict() for r in results], "counts": counts}
            write_text_atomic(json_out, json.dumps(doc, indent=2) + "\n")
        if not results:
            typer.echo(f"error: {', '.join(map(str, inputs))}: no DICOM files to verify", err=True)
        if not results or any(r.result.status != "valid" for r in results):
            raise typer.Exit(code=2)

    @audit_app.command("verify")
    def audit_verify_cmd(
        audit_log: Path | None = typer.Option(None, "--audit-log", help=_AUDIT_HELP),
    ) -> None:
        """Check the hash chain; exit 2 and name the first bad entry if anything was altered or removed."""
        from medforensics.provenance.audit import verify_log

        try:
            check = verify_log(audit_log)
        except MedforensicsError as err:
            raise fail(err) from None
        if check.ok:
            typer.echo(f"ok: {check.n_entries} entries, head {check.head_hash}")
            return
        typer.echo(f"TAMPERED: first bad entry {check.first_bad_seq}: {check.reason}")
        raise typer.Exit(code=2)

    @audit_app.command("show")
    def audit_show_cmd(
        audit_log: Path | None = typer.Option(None, "--audit-log", help=_AUDIT_HELP),
        last: int = typer.Option(20, "--last", min=0, help="Show the last N entries (0: all)."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    ) -> None:
        """Print audit log entries (UIDs and digests only) and the head hash."""
        from medforensics.provenance.audit import read_entries

        try:
            entries = read_entries(audit_log)
        except MedforensicsError as err:
            raise fail(err) from None
        shown = entries[-last:] if last else entries
        for e in shown:
            if as_json:
                typer.echo(json.dumps(e.to_dict(), sort_keys=True))
            else:
                counts = e.details.get("counts") if isinstance(e.details, dict) else None
                typer.echo(
                    f"{e.seq:>6}  {e.time}  {e.actor}  {e.action:<8} {len(e.subjects)} files {counts or ''}"
                )
        if not as_json:
            head = entries[-1].hash if entries else "(empty)"
            typer.echo(f"{len(entries)} entries; head {head}")
