"""Self-contained HTML report of a scan: summary table, key slices with overlays, findings per series.

One file, no external resources: styles inline, images embedded as base64 PNG, every text escaped with
:func:`html.escape`. Series are identified by path and Series Instance UID only: no patient names or IDs.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from medforensics import __version__
from medforensics._atomic import write_text_atomic
from medforensics.io.volume import Volume
from medforensics.logging import get_logger
from medforensics.report.dicom_common import ranked_findings, volume_for
from medforensics.report.overlays import finding_panels, middle_slice_png
from medforensics.scan.metadata_checks import SCANNER_SLICE_CORR
from medforensics.scan.result import Finding, ScanReport, SeriesResult

__all__ = ["VERDICT_COLOURS", "render_html", "write_html"]

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
.verdict{color:#fff;padding:.1em .5em;border-radius:.3em;font-weight:600}
.error{color:#b71c1c}.meta{color:#555;font-size:.9em}code{font-size:.85em;word-break:break-all}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figure img{image-rendering:pixelated;border:1px solid #999;margin-right:.3em}
figcaption{font-size:.85em;color:#333;max-width:40em}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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


def _img(png: bytes, width: int, height: int, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}" alt="{_e(alt)}">'


def _display_size(volume: Volume, width: int, height: int) -> tuple[int, int]:
    """Width and height in CSS pixels keeping the physical aspect of the slice (row vs column spacing)."""
    _, sy, sx = volume.spacing
    ratio = sy / sx if sx > 0 and sy > 0 else 1.0
    return width, max(1, round(height * ratio))


def _summary_row(index: int, s: SeriesResult) -> str:
    shape = "×".join(str(v) for v in s.shape) if s.shape else "–"
    error = f'<span class="error">{_e(s.error)}</span>' if s.error else ""
    cells = [
        f'<td class="num">{index}</td>',
        f'<td><a href="#series-{index}">{_e(s.path)}</a><br><code>{_e(s.series_uid or "–")}</code></td>',
        f"<td>{_e(s.modality or '–')}</td>",
        f"<td>{_e(shape)}</td>",
        f"<td>{_badge(s.verdict)}</td>",
        f'<td class="num">{_num(s.score)}</td>',
        f"<td>{_e(s.label or '–')}</td>",
        f"<td>{_e(s.signature or '–')}</td>",
        f'<td class="num">{len(s.findings)}</td>',
        f'<td class="num">{_num(s.seconds, 2)}</td>',
        f"<td>{error}</td>",
    ]
    return f'<tr class="series-row">{"".join(cells)}</tr>'


def _findings_table(findings: list[Finding]) -> str:
    if not findings:
        return "<p>No findings.</p>"
    head = (
        "<tr><th>#</th><th>Type</th><th>Score</th><th>Centre voxel (z, y, x)</th>"
        "<th>Centre mm (x, y, z)</th><th>Box voxel (z0, y0, x0, z1, y1, x1)</th><th>Description</th></tr>"
    )
    rows = [
        f'<tr><td class="num">{rank}</td><td>{_e(f.type)}</td><td class="num">{_num(f.score)}</td>'
        f"<td>{_seq(f.center_voxel)}</td><td>{_seq(f.center_mm, 1)}</td><td>{_seq(f.bbox_voxel)}</td>"
        f"<td>{_e(f.description)}</td></tr>"
        for rank, f in enumerate(findings, start=1)
    ]
    return f'<table class="findings">{head}{"".join(rows)}</table>'


def _key_slices(findings: list[Finding], volume: Volume, max_findings: int) -> str:
    parts: list[str] = []
    located = [(rank, f) for rank, f in enumerate(findings, start=1) if f.center_voxel or f.bbox_voxel]
    for rank, finding in located[:max_findings]:
        key = finding_panels(volume, finding)
        if key is None:
            continue
        width, height = _display_size(volume, key.width, key.height)
        heat = "heatmap and box" if key.has_heatmap else "box (no heatmap)"
        caption = (
            f"Finding {rank}: {finding.type}, score {float(finding.score):.3f}, axial slice z={key.z}; {heat}"
        )
        parts.append(
            "<figure>"
            + _img(key.plain_png, width, height, f"finding {rank} slice")
            + _img(key.overlay_png, width, height, f"finding {rank} overlay")
            + f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    if not parts:
        png, width, height = middle_slice_png(volume)
        width, height = _display_size(volume, width, height)
        z = volume.shape[0] // 2
        parts.append(
            f"<figure>{_img(png, width, height, 'middle slice')}"
            f"<figcaption>{_e(f'No located finding; middle axial slice z={z}')}</figcaption></figure>"
        )
    return "".join(parts)


def _operating_point(s: SeriesResult) -> list[str]:
    """A line on the series' own threshold when the detector held it to the uncorrelated-noise one."""
    if s.extra.get("operating_point") != "uncorrelated noise":
        return []
    corr, thr = s.extra.get("slice_noise_corr"), s.extra.get("threshold")
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


def _series_section(
    index: int, s: SeriesResult, volumes: Mapping[str, Volume] | None, max_findings: int
) -> str:
    findings = ranked_findings(s)
    out = [
        f'<section id="series-{index}"><h2>{index}. {_e(s.path)}</h2>',
        f'<p class="meta">Series UID <code>{_e(s.series_uid or "–")}</code> · {_e(s.modality or "–")} · '
        f"verdict {_badge(s.verdict)} · score {_num(s.score)}</p>",
    ]
    if s.error:
        out.append(f'<p class="error">Error: {_e(s.error)}</p>')
    out += _operating_point(s)
    if s.verdict != "error":
        volume = volume_for(s, volumes)
        if volume is None:
            out.append('<p class="meta">No images available for this series.</p>')
        else:
            try:
                out.append(_key_slices(findings, volume, max_findings))
            except Exception as exc:  # a picture must never cost the report
                log.warning("series %s: key slices not rendered (%s)", s.series_uid, type(exc).__name__)
                reason = _e(type(exc).__name__)
                out.append(f'<p class="meta">Key slices could not be rendered ({reason}).</p>')
        out.append(_findings_table(findings))
    out.append("</section>")
    return "\n".join(out)


def render_html(
    report: ScanReport, volumes: Mapping[str, Volume] | None = None, *, max_findings: int = 3
) -> str:
    """The report as one HTML string (see :func:`write_html`)."""
    model = report.model
    threshold = f" · operating threshold {model.threshold:.3f}" if model.threshold is not None else ""
    version = report.tool_version or __version__
    counts = {v: sum(s.verdict == v for s in report.series) for v in VERDICT_COLOURS}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    head = (
        "<tr><th>#</th><th>Series</th><th>Modality</th><th>Shape</th><th>Verdict</th><th>Score</th>"
        "<th>Label</th><th>Signature</th><th>Findings</th><th>Seconds</th><th>Error</th></tr>"
    )
    rows = "".join(_summary_row(i, s) for i, s in enumerate(report.series, start=1))
    body = [
        "<h1>medforensics scan report</h1>",
        f'<p class="meta">medforensics {_e(version)} · model {_e(model.name)} {_e(model.version)} '
        f"(sha256 <code>{_e(model.sha256[:16])}</code>){_e(threshold)} · {len(report.series)} series: "
        f"{_e(summary or 'none')}</p>",
        "<h2>Summary</h2>",
        f'<table class="summary"><thead>{head}</thead><tbody>{rows}</tbody></table>',
    ]
    if report.skipped:
        items = "".join(
            f"<tr><td>{_e(item.get('path'))}</td><td>{_e(item.get('reason'))}</td></tr>"
            for item in report.skipped
        )
        body.append(
            '<h2>Skipped inputs</h2><table class="skipped"><tr><th>Path</th><th>Reason</th></tr>'
            f"{items}</table>"
        )
    body += [_series_section(i, s, volumes, max_findings) for i, s in enumerate(report.series, start=1)]
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
) -> Path:
    """Write the HTML report to ``path`` atomically.

    ``volumes`` maps ``SeriesResult.path`` (or the series UID) to the series' :class:`Volume` for the key
    slices (the top ``max_findings`` located findings of each series); it may be lazy (each volume is
    looked up once) or None (text only).
    """
    out = write_text_atomic(path, render_html(report, volumes, max_findings=max_findings))
    log.info("wrote HTML report %s (%d series)", out.name, len(report.series))
    return out
