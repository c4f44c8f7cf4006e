"""Self-contained HTML report of a scan: summary table, key slices with overlays, findings per series.

One file, no external resources: styles inline, images embedded as base64 PNG, every text escaped with
:func:`html.escape`. Series are identified by path and Series Instance UID only: no patient names or IDs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from medforensics import __version__
from medforensics._atomic import write_text_atomic
from medforensics.io.image2d import is_image2d_path
from medforensics.io.volume import Volume
from medforensics.logging import get_logger
from medforensics.report.dicom_common import ranked_findings, volume_for
from medforensics.report.html_figures import escape as _e
from medforensics.report.html_figures import key_slices_html
from medforensics.scan.clones import CLONE_SCORE, SOURCE_SCORE
from medforensics.scan.enlarged import SCORE as ENLARGED_SCORE
from medforensics.scan.metadata_checks import MEDIUM, SCANNER_SLICE_CORR, STRONG, WEAK
from medforensics.scan.result import BAD_SIGNATURES, Finding, ModelInfo, ScanReport, SeriesResult, scored_by

__all__ = ["LABELS", "VERDICT_COLOURS", "render_html", "write_html"]

log = get_logger("report.html")

#: Background colour of each verdict's badge.
VERDICT_COLOURS: dict[str, str] = {
    "authentic": "#1b7f3b",
    "tampered": "#c62828",
    "synthetic": "#8e24aa",
    "error": "#616161",
}

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#222;
background:#fafafa}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;
vertical-align:top;font-size:.9em}th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
td{overflow-wrap:break-word}td.wrap{overflow-wrap:anywhere;min-width:18em}td.num,td.nowrap{white-space:nowrap}
.verdict{color:#fff;padding:.1em .5em;border-radius:.3em;font-weight:600;white-space:nowrap}
.error,.alert{color:#b71c1c}.alert{font-weight:600}.meta{color:#555;font-size:.9em}
code{font-size:.85em;word-break:break-all}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top;max-width:100%}
figure img{image-rendering:pixelated;border:1px solid #999;margin:0 .3em .3em 0;max-width:100%;height:auto;
vertical-align:top}
figcaption{font-size:.85em;color:#333;max-width:60em}
dl.legend{font-size:.9em;max-width:75em}dl.legend dt{font-weight:600;margin-top:.4em}
dl.legend dd{margin-left:1.5em}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
@media print{body{margin:0;background:#fff;font-size:10pt}h2,section>p,dl.legend dt{break-after:avoid}
figure{display:block}figure,tr,dl.legend dd,.keep{break-inside:avoid}td.wrap{min-width:10em}
th,td{font-size:8pt}
a{color:inherit;text-decoration:none}}
"""

#: What each label means (the CT-GAN data set's names; a label is no diagnosis).
LABELS: dict[str, str] = {
    "TB": "untouched, no nodule-like blob",
    "TM": "untouched, a nodule-like blob is present",
    "FM": "tampered: an injected lesion",
    "FB": "tampered: a removed lesion",
    "SYN": "fully synthetic image",
}


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def _seq(values: Sequence[float] | None, digits: int | None = None) -> str:
    if values is None:
        return "–"
    parts = [str(int(v)) if digits is None else f"{float(v):.{digits}f}" for v in values]
    return "(" + ", ".join(parts) + ")"


def _badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#424242")
    return f'<span class="verdict" style="background:{colour}">{_e(verdict)}</span>'


def _size(s: SeriesResult) -> str:
    """Slices x rows x columns (or rows x columns of a 2-D image) and the voxel size in mm."""
    if not s.shape:
        return "–"
    z, y, x = (int(v) for v in s.shape)
    text = f"{y}×{x} px" if z == 1 else f"{z}×{y}×{x}"
    if s.spacing_mm and not is_image2d_path(s.path):  # PNG/JPEG/TIFF carry no pixel size in mm
        dz, dy, dx = (float(v) for v in s.spacing_mm)
        text += f"<br>{dy:.2f}×{dx:.2f} mm" if z == 1 else f"<br>{dz:.2f}×{dy:.2f}×{dx:.2f} mm"
    return text


def _signature(s: SeriesResult) -> str:
    if not s.signature:
        return "–"
    return (
        f'<span class="alert">{_e(s.signature)}</span>' if s.signature in BAD_SIGNATURES else _e(s.signature)
    )


def _label(s: SeriesResult) -> str:
    if not s.label:
        return "–"
    meaning = LABELS.get(s.label)
    return f'<span title="{_e(meaning)}">{_e(s.label)}</span>' if meaning else _e(s.label)


def _threshold(s: SeriesResult, model: ModelInfo) -> str:
    """The threshold the series' score was held to, in words."""
    if isinstance(s.extra.get("detector"), dict):  # scored by another detector than the report's model
        own = scored_by(s, model)
        return f"threshold of {own.name}" + ("" if own.threshold is None else f" {_num(own.threshold)}")
    if s.shape and int(s.shape[0]) == 1:
        return "threshold of the 2-D synthesis detector (not the CT model's)"
    value = s.extra.get("threshold", model.threshold)
    return "threshold not recorded" if value is None else f"threshold {_num(value)}"


def _summary_row(index: int, s: SeriesResult) -> str:
    error = f'<span class="{"meta" if s.not_assessed else "error"}">{_e(s.error)}</span>' if s.error else ""
    cells = [
        f'<td class="num">{index}</td>',
        f'<td class="wrap"><a href="#series-{index}">{_e(s.path)}</a><br>'
        f"<code>{_e(s.series_uid or '–')}</code></td>",
        f"<td>{_e(s.modality or '–')}</td>",
        f'<td class="nowrap">{_size(s)}</td>',
        f"<td>{_badge('not assessed' if s.not_assessed else s.verdict)}</td>",
        f'<td class="num">{_num(s.score)}</td>',
        f"<td>{_label(s)}</td>",
        f"<td>{_signature(s)}</td>",
        f'<td class="num">{len(s.findings)}</td>',
        f'<td class="num">{_num(s.seconds, 2)}</td>',
        f"<td>{error}</td>",
    ]
    return f'<tr class="series-row">{"".join(cells)}</tr>'


def _finding_score(f: Finding) -> str:
    """The score, with the strength it stands for where it is a fixed evidence level, not a detector score."""
    text = _num(f.score)
    if f.type == "metadata":
        level = "strong" if f.score >= STRONG else "medium" if f.score >= MEDIUM else "weak"
        return f"{text} ({level})"
    return text


def _finding_type(f: Finding) -> str:
    """The type, and for a metadata finding the test behind it (as the JSON's ``check``)."""
    return _e(f.type) + (f"<br><code>{_e(f.check)}</code>" if f.check else "")


def _findings_table(findings: list[Finding]) -> str:
    if not findings:
        return "<p>No findings.</p>"
    head = (
        "<tr><th>#</th><th>Type</th><th>Score</th><th>Centre voxel (z, y, x)</th>"
        "<th>Centre mm, patient (x, y, z)</th><th>Box voxel (z0, y0, x0, z1, y1, x1)</th>"
        "<th>Description</th></tr>"
    )
    rows = [
        f'<tr><td class="num">{rank}</td><td class="nowrap">{_finding_type(f)}</td>'
        f'<td class="num">{_finding_score(f)}</td>'
        f'<td class="nowrap">{_seq(f.center_voxel)}</td><td class="nowrap">{_seq(f.center_mm, 1)}</td>'
        f"<td>{_seq(f.bbox_voxel)}</td><td>{_e(f.description)}</td></tr>"
        for rank, f in enumerate(findings, start=1)
    ]
    return f'<table class="findings"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _operating_point(s: SeriesResult) -> list[str]:
    """A line on the series' own threshold when the detector held it to the uncorrelated-noise or the
    lossy-coding one."""
    corr, thr = s.extra.get("slice_noise_corr"), s.extra.get("threshold")
    if s.extra.get("operating_point") == "lossy coding":
        return [
            '<p class="meta">Stored lossy: held to the threshold fitted on lossy copies of the validation '
            f"series, {_num(thr)}. Lossy coding smooths and blocks the noise the detector reads: it finds "
            "much less in such series.</p>"
        ]
    if s.extra.get("operating_point") != "uncorrelated noise":
        return []
    network = str(s.extra.get("network", "main"))
    who = (
        f"Scored by the {_e(network)}, a network trained on such series"
        if network.startswith("noise specialist")
        else "The detector finds much less in such series"
    )
    lo, hi = SCANNER_SLICE_CORR
    return [
        f'<p class="meta">Noise uncorrelated between slices (median correlation {_num(corr)}; scanners '
        f"measured {lo:.2f}-{hi:.2f}): noise added to the whole series, or thick slices that do not overlap. "
        f"Held to threshold {_num(thr)}. {who}.</p>"
    ]


def _caveats(s: SeriesResult) -> list[str]:
    """The series' caveats (``extra["caveats"]``: voxel sizes outside what the model was trained on), and
    that it is a copy of an earlier series of the scan (``extra["same_as"]``)."""
    out = [f'<p class="meta">Caveat: {_e(str(c))}</p>' for c in s.extra.get("caveats") or []]
    if s.extra.get("same_as"):
        first = _e(str(s.extra["same_as"]))
        out.append(f'<p class="meta">A byte-for-byte copy of {first}: its result, not scanned again.</p>')
    return out


def _series_meta(s: SeriesResult, model: ModelInfo) -> str:
    parts = [
        f"Series UID <code>{_e(s.series_uid or '–')}</code>",
        *([_e(s.modality)] if s.modality else []),
        f"verdict {_badge(s.verdict)}",
    ]
    if s.score is not None:
        parts.append(f"score {_num(s.score)} ({_e(_threshold(s, model))})")
    if s.label:
        meaning = LABELS.get(s.label)
        parts.append(f"label {_e(s.label)}" + (f" ({_e(meaning)})" if meaning else ""))
    if s.signature:
        parts.append(f"signature {_signature(s)}")
    if s.shape:
        parts.append(f"size {_size(s).replace('<br>', ', ')}")
    return '<p class="meta">' + " · ".join(parts) + "</p>"


def _series_section(
    index: int,
    s: SeriesResult,
    volumes: Mapping[str, Volume] | None,
    max_findings: int,
    model: ModelInfo,
    no_pictures: str | None = None,
) -> str:
    findings = ranked_findings(s)
    head = [f"<h2>{index}. {_e(s.path)}</h2>", _series_meta(s, model)]
    if s.error:
        head.append(
            f'<p class="meta">Not assessed: {_e(s.error)}</p>'
            if s.not_assessed
            else f'<p class="error">Error: {_e(s.error)}</p>'
        )
    head += _operating_point(s) + _caveats(s)
    figures: list[str] = []
    if s.verdict == "authentic" and s.signature not in BAD_SIGNATURES and no_pictures is not None:
        why = _e(no_pictures)
        head.append(f'<p class="meta">No picture: authentic series are listed without one ({why}).</p>')
    elif s.verdict != "error":
        volume = volume_for(s, volumes)
        if volume is None:
            head.append('<p class="meta">No images available for this series.</p>')
        else:
            try:
                figures = key_slices_html(findings, volume, max_findings, s.extra.get("nodules"))
            except Exception as exc:  # a picture must never cost the report
                log.warning("series %s: key slices not rendered (%s)", s.series_uid, type(exc).__name__)
                reason = _e(type(exc).__name__)
                head.append(f'<p class="meta">Key slices could not be rendered ({reason}).</p>')
    # the heading stays on one printed page with the first figure
    out = [f'<section id="series-{index}"><div class="keep">', *head, *figures[:1], "</div>", *figures[1:]]
    if s.verdict != "error":
        out.append(_findings_table(findings))
    out.append("</section>")
    return "\n".join(out)


#: Up to this many series needing attention are named by path at the top; more are listed by number.
ATTENTION_NAMED = 5
#: Authentic series get a thumbnail by default in a report of up to this many series (an archive's report
#: would otherwise carry hundreds of pictures of series needing nothing: 90 KB and a re-read each).
THUMBNAILS_UP_TO = 50


def _attention(report: ScanReport) -> str:
    """Links to the series a reader must look at (flagged, not scanned, or with a bad signature), grouped
    by reason; by path when there are few, by number (the summary table's #) when there are many."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(report.series, start=1):
        if s.verdict != "authentic" and not s.not_assessed:  # a localizer, dose screen...: no alarm
            groups.setdefault(s.verdict, []).append(i)
        if s.signature in BAD_SIGNATURES:
            groups.setdefault(f"signature {s.signature}", []).append(i)
    quiet = [i for i, s in enumerate(report.series, start=1) if s.not_assessed]
    note = (
        f'<p class="meta">Not assessed, no alarm ({len(quiet)}): {_links(report, quiet)}</p>' if quiet else ""
    )
    if not groups:
        return (
            '<p class="meta">Needs attention: none (every assessed series authentic, no bad signature).</p>'
            + note
        )
    named = sum(map(len, groups.values())) <= ATTENTION_NAMED
    parts = [f"{_e(reason)} ({len(ix)}): {_links(report, ix, named)}" for reason, ix in groups.items()]
    return '<p><span class="alert">Needs attention:</span> ' + "; ".join(parts) + "</p>" + note


def _links(report: ScanReport, indices: list[int], named: bool | None = None) -> str:
    """Links to series (1-based summary numbers), by path when ``named`` (default: when few)."""
    if named is None:
        named = len(indices) <= ATTENTION_NAMED
    return ", ".join(
        f'<a href="#series-{i}">{i}. {_e(report.series[i - 1].path)}</a>'
        if named
        else f'<a href="#series-{i}">{i}</a>'
        for i in indices
    )


def _legend(report: ScanReport) -> str:
    thr = report.model.threshold
    at = f" (here {thr:.3f})" if thr is not None else ""
    labels = "; ".join(f"{k}: {v}" for k, v in LABELS.items())
    items = [
        (
            "Score (series)",
            "the detector's tamper score, from 0 (no evidence) to 1 (strongest), calibrated on validation "
            f"scans when the model carries calibration; verdict tampered when it reaches the threshold{at}. "
            "A series with noise added after reconstruction may be held to a higher threshold (said in its "
            "section). 2-D images are scored by the 2-D synthesis detector, with its own threshold. A "
            "duplicated region (the same noise in two places) makes a series tampered at "
            f"{CLONE_SCORE:.3f}; a series or image enlarged from smaller images (check enlarged), or a "
            "CT whose slices the 2-D synthesis detector calls synthetic (check synthetic_slices), is "
            f"synthetic at {ENLARGED_SCORE:.3f} at least. A score is evidence of editing, not a probability "
            "of disease.",
        ),
        (
            "Score (finding)",
            "injected, removed, synthetic: the detector's score of that region, on the same scale, or for a "
            f"duplicated region (so described) a fixed {CLONE_SCORE:.3f} at its likely copy and "
            f"{SOURCE_SCORE:.3f} at its source, or for enlarged or synthetic slices a fixed "
            f"{ENLARGED_SCORE:.3f}; metadata: "
            f"a fixed evidence strength ({STRONG} strong, {MEDIUM} medium, {WEAK} weak), not a probability; "
            "signature: 1.000, a signature that does not verify.",
        ),
        (
            "Label",
            f"the CT-GAN data set's names, not a diagnosis: {labels}. An untouched series labelled TM shows "
            "the nodule-like blob its label rests on (the blob finder's call). The finder looks for solid, "
            "round blobs: it does not see ground-glass (subsolid) nodules, so TB does not rule a nodule out.",
        ),
        (
            "Signature",
            "DICOM digital signatures (PS3.15): valid; invalid (the data changed after signing); untrusted "
            "(signer not among the trusted CAs given with --ca); mixed (not every file alike); absent (not "
            "signed); – (not DICOM, or not checked).",
        ),
        (
            "Coordinates",
            "voxel (z, y, x): 0-based indices, z counting slices in position order (not InstanceNumber, "
            "given in the captions); mm: patient coordinates (DICOM LPS: x to the patient's left, y to the "
            "back, z to the head); box: voxel ranges, end excluded.",
        ),
        ("Size", "slices × rows × columns (or rows × columns of a 2-D image); voxel size in mm, same order."),
        ("Time (s)", "seconds spent reading and scoring the series."),
    ]
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return f'<h2>How to read this report</h2><dl class="legend">{body}</dl>'


def render_html(
    report: ScanReport,
    volumes: Mapping[str, Volume] | None = None,
    *,
    max_findings: int = 3,
    thumbnails: bool | None = None,
) -> str:
    """The report as one HTML string (see :func:`write_html`)."""
    model = report.model
    # why authentic series get no picture (None: they get one)
    no_pictures = "--no-thumbnails" if thumbnails is False else None
    if thumbnails is None and len(report.series) > THUMBNAILS_UP_TO:
        no_pictures = f"a report of more than {THUMBNAILS_UP_TO} series; --thumbnails draws them"
    threshold = f" · operating threshold {model.threshold:.3f}" if model.threshold is not None else ""
    if model.precision:
        threshold += f" · run in {model.precision}"
    version = report.tool_version or __version__
    counts = {v: sum(s.verdict == v and not s.not_assessed for s in report.series) for v in VERDICT_COLOURS}
    counts["not assessed"] = sum(s.not_assessed for s in report.series)
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    if report.skipped:
        summary += f"; {len(report.skipped)} input(s) skipped"
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        "<tr><th>#</th><th>Series</th><th>Modality</th><th>Size</th><th>Verdict</th><th>Score</th>"
        "<th>Label</th><th>Signature</th><th>Findings</th><th>Time (s)</th><th>Error</th></tr>"
    )
    rows = "".join(_summary_row(i, s) for i, s in enumerate(report.series, start=1))
    body = [
        "<h1>medforensics scan report</h1>",
        f'<p class="meta">Written {written} by medforensics {_e(version)} · CT model {_e(model.name)} '
        f"{_e(model.version)} (sha256 <code>{_e(model.sha256[:16])}</code>){_e(threshold)} · "
        f"{len(report.series)} series: {_e(summary or 'none')}</p>",
        _attention(report),
        "<h2>Summary</h2>",
        f'<table class="summary"><thead>{head}</thead><tbody>{rows}</tbody></table>',
    ]
    if report.skipped:
        items = "".join(
            f"<tr><td>{_e(item.get('path'))}</td><td>{_e(item.get('reason'))}</td></tr>"
            for item in report.skipped
        )
        body.append(
            '<h2>Skipped inputs</h2><table class="skipped"><thead><tr><th>Path</th><th>Reason</th></tr>'
            f"</thead><tbody>{items}</tbody></table>"
        )
    body.append(_legend(report))
    body += [
        _series_section(i, s, volumes, max_findings, model, no_pictures)
        for i, s in enumerate(report.series, start=1)
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>medforensics scan report</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_html(
    report: ScanReport,
    volumes: Mapping[str, Volume] | None,
    path: str | Path,
    *,
    max_findings: int = 3,
    thumbnails: bool | None = None,
) -> Path:
    """Write the HTML report to ``path`` atomically.

    ``volumes`` maps ``SeriesResult.path`` (or the series UID) to the series' :class:`Volume` for the key
    slices (the top ``max_findings`` located findings of each series); it may be lazy (each volume is
    looked up once) or None (text only). Without ``thumbnails`` an authentic series with a good or no
    signature gets no picture (its volume is not looked up): an archive's report of 1000 series is then
    about 90 MB and 4 minutes of re-reading smaller (a 256-px thumbnail each otherwise). ``None`` (the
    default): thumbnails for a report of up to :data:`THUMBNAILS_UP_TO` series, none above.
    """
    html = render_html(report, volumes, max_findings=max_findings, thumbnails=thumbnails)
    out = write_text_atomic(path, html)
    log.info("wrote HTML report %s (%d series)", out.name, len(report.series))
    return out
