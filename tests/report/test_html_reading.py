"""HTML report as a radiologist and a security analyst read it: what the numbers mean, where the key slice
is, pictures sized for a page, flagged series up front, escaping, valid markup, print layout."""

from __future__ import annotations

import base64
import html.parser
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medforensics.io.volume import Volume
from medforensics.report.html import ATTENTION_NAMED, render_html
from medforensics.scan.result import Finding, ModelInfo, ScanReport, SeriesResult
from tests.report._helpers import MODEL, make_report, make_series_result

_IMG = re.compile(
    r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" width="(\d+)" height="(\d+)" alt="([^"]*)"'
)


def _images(text: str) -> list[tuple[Image.Image, int, str]]:
    """(decoded PNG, displayed width, alt) of every embedded image, in page order."""
    return [
        (Image.open(io.BytesIO(base64.b64decode(data))), int(width), alt)
        for data, width, _, alt in _IMG.findall(text)
    ]


class _Balance(html.parser.HTMLParser):
    """Every non-void element closed, in order."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_report_says_what_score_threshold_label_and_coordinates_mean(ct_volume: Volume) -> None:
    text = render_html(make_report(ct_volume, "s"), None)
    assert "How to read this report" in text and "operating threshold 0.500" in text
    assert "tamper score, from 0 (no evidence) to 1" in text and "not a probability of disease" in text
    assert "TM: untouched, a nodule-like blob is present" in text and "not a diagnosis" in text
    assert "does not see ground-glass (subsolid) nodules, so TB does not rule a nodule out" in text
    assert "patient coordinates (DICOM LPS" in text and "Time (s)" in text
    # each series says the threshold its own score was held to, and what its label means
    assert "score 0.930 (threshold 0.500)" in text and "label FM (tampered: an injected lesion)" in text
    assert "8×64×64<br>" in text and " mm</td>" in text


def test_metadata_scores_read_as_strengths_with_their_check(tmp_path: Path, ct_volume: Volume) -> None:
    report = make_report(ct_volume, "s")
    report.series[0].findings.append(Finding("metadata", 0.3, description="d", check="rescale_varies"))
    text = render_html(report, None)
    assert "0.700 (medium)" in text and "0.300 (weak)" in text and "<code>rescale_varies</code>" in text
    assert "0.910 (" not in text  # a detector score gets no strength word


def test_key_slice_caption_places_the_slice_and_names_the_window(ct_volume: Volume) -> None:
    text = render_html(make_report(ct_volume, "s"), {"s": ct_volume})
    position = float(ct_volume.index_to_patient([3, 32, 32])[2])
    assert f"slice z=3 (of 0-7, in position order), InstanceNumber 4, patient z {position:.1f} mm" in text
    assert "shown with the lung window (centre -600 HU, width 1500 HU)" in text


def test_zoom_is_centred_on_the_finding_and_shows_the_heatmap_inside_the_box(ct_volume: Volume) -> None:
    text = render_html(make_report(ct_volume, "s"), {"s": ct_volume})
    shown = {alt: image for image, _, alt in _images(text)}
    zoom = np.asarray(shown["finding 1: zoom"].convert("RGB")).astype(int)
    heat = np.asarray(shown["finding 1: zoom with heatmap"].convert("RGB")).astype(int)
    green = (zoom == (0, 255, 64)).all(axis=2)
    ys, xs = np.nonzero(green)
    # the box (rows 20-30, cols 24-36 of the slice) sits in the middle of the crop around it
    h, w = green.shape
    assert abs((ys.min() + ys.max()) / 2 - h / 2) < h / 8 and abs((xs.min() + xs.max()) / 2 - w / 2) < w / 8
    changed = (zoom != heat).any(axis=2)
    assert changed.any()
    inside = np.zeros_like(changed)
    inside[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    assert not (changed & ~inside).any()  # the heatmap stays inside the box


def test_whole_slice_findings_come_after_regions_as_one_small_panel(ct_volume: Volume) -> None:
    series = make_series_result(ct_volume, "s")
    _, ny, nx = ct_volume.shape
    gap = Finding(
        "metadata", 0.95, (6, ny // 2, nx // 2), None, (6, 0, 0, 7, ny, nx), "gap", check="slice_gap"
    )
    series.findings.append(gap)
    report = ScanReport(model=MODEL, series=[series])
    text = render_html(report, {"s": ct_volume}, max_findings=3)
    alts = [alt for _, _, alt in _images(text)]
    # ranked first by score, but pictured after the region findings, without zoom or a duplicate overlay
    assert alts[0] == "finding 2: slice with box" and "finding 1: zoom" not in alts
    assert "Finding 1: metadata (slice_gap), score 0.950" not in text  # 3 regions fill the 3 places
    text = render_html(report, {"s": ct_volume}, max_findings=5)
    images = _images(text)
    assert images[-1][2] == "finding 1: slice with box" and max(images[-1][0].size) <= 256
    assert "Finding 1: metadata (slice_gap), score 0.950; slice z=6" in text
    assert "concerns the whole slice, not a region within it" in text


def test_a_large_radiograph_is_reduced_not_embedded_full_size() -> None:
    pydicom_data = pytest.importorskip("pydicom.data")
    from medforensics.io.reader import read_volume

    path = pydicom_data.get_testdata_file("RG1_UNCR.dcm", download=False)
    if path is None:
        pytest.skip("pydicom-data's RG1_UNCR.dcm is not installed")
    xray = read_volume(path)
    series = SeriesResult(
        path=str(path), modality=xray.modality, shape=xray.shape, verdict="synthetic", score=0.9
    )
    _, ny, nx = xray.shape
    series.findings = [Finding("synthetic", 0.9, (0, ny // 2, nx // 2), None, (0, 0, 0, 1, ny, nx))]
    report = ScanReport(model=MODEL, series=[series])
    text = render_html(report, {str(path): xray})
    (image, width, _), *_ = _images(text)
    assert max(image.size) <= 512 and width <= 512  # 1841 x 1955 before
    assert len(text) < 600_000
    assert "2-D synthesis detector (not the CT model" in text and "concerns the whole image" in text
    # a series scored by its own detector (scan records it in extra.detector) is held to that one's threshold
    series.extra["detector"] = ModelInfo("cnn2d", "1", "ab" * 32, threshold=0.0021).to_dict()
    assert "threshold of cnn2d 0.002" in render_html(report, {str(path): xray})
    series.extra["detector"]["name"] = "a&b"  # escaped once, not twice
    assert "threshold of a&amp;b 0.002" in render_html(report, {str(path): xray})
    del series.extra["detector"]
    series.findings, series.verdict = [], "authentic"
    (thumb, _, _), *_ = _images(render_html(report, {str(path): xray}))
    assert max(thumb.size) <= 256 and "max-width:100%" in text


def test_needs_attention_lists_flagged_series_and_bad_signatures(ct_volume: Volume) -> None:
    report = make_report(ct_volume, "s")
    report.series[1].signature = "invalid"
    text = render_html(report, None)
    attention = text.split("Needs attention:", 1)[1].split("</p>", 1)[0]
    assert 'tampered (1): <a href="#series-1">1. s</a>' in attention
    assert "signature invalid (1)" in attention and "error (1)" in attention
    assert '<span class="alert">invalid</span>' in text
    many = ScanReport(
        model=MODEL,
        series=[SeriesResult(path=f"p{i}", verdict="tampered") for i in range(ATTENTION_NAMED + 1)],
    )
    assert 'tampered (6): <a href="#series-1">1</a>, <a href="#series-2">2</a>' in render_html(many, None)
    calm = ScanReport(model=MODEL, series=[SeriesResult(path="a", verdict="authentic", signature="valid")])
    assert "Needs attention: none" in render_html(calm, None)


def test_patient_derived_strings_are_escaped_and_markup_is_valid(ct_volume: Volume) -> None:
    path = 'scans/a<b&"c/IM1.dcm'
    report = make_report(ct_volume, path)
    report.series[0].findings.append(
        Finding("metadata", 0.7, description="Manufacturer '<b>Evil & \"Co\"</b>'", check="tag:Manufacturer")
    )
    report.skipped = [{"path": 'x/<img src=x onerror="alert(1)">', "reason": "not DICOM & <odd>"}]
    text = render_html(report, {path: ct_volume})
    assert "a&lt;b&amp;&quot;c/IM1.dcm" in text and path not in text
    assert "&lt;b&gt;Evil &amp; &quot;Co&quot;&lt;/b&gt;" in text and "<b>Evil" not in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text and "not DICOM &amp; &lt;odd&gt;" in text
    assert "<script" not in text and not re.search(r'(src|href)="(?!data:image/png;base64,|#series-)', text)
    checker = _Balance()
    checker.feed(text)
    assert checker.errors == [] and checker.stack == []


def test_print_layout_keeps_headings_with_their_first_picture(ct_volume: Volume) -> None:
    text = render_html(make_report(ct_volume, "s"), {"s": ct_volume})
    assert "@media print" in text and ".keep{break-inside:avoid}" in text.replace(
        "figure,tr,dl.legend dd,", ""
    )
    section = text.split('<section id="series-1">', 1)[1]
    keep = section.split("</div>", 1)[0]
    assert keep.startswith('<div class="keep">') and "<h2>" in keep and keep.count("<figure") == 1


def test_png_inputs_show_no_invented_pixel_size() -> None:
    png = SeriesResult(path="a.png", shape=(1, 64, 64), spacing_mm=(1.0, 1.0, 1.0), verdict="authentic")
    dcm = SeriesResult(path="b.dcm", shape=(1, 64, 64), spacing_mm=(1.0, 0.2, 0.2), verdict="authentic")
    text = render_html(ScanReport(model=ModelInfo("m", "1", "0" * 64), series=[png, dcm]), None)
    assert '<td class="nowrap">64×64 px</td>' in text and "64×64 px<br>0.20×0.20 mm" in text


def test_without_thumbnails_authentic_series_get_no_picture_and_are_not_read(ct_volume: Volume) -> None:
    from collections.abc import Iterator, Mapping

    class Counting(Mapping[str, Volume]):
        def __init__(self) -> None:
            self.read: list[str] = []

        def __getitem__(self, key: str) -> Volume:
            self.read.append(key)
            return ct_volume

        def __iter__(self) -> Iterator[str]:
            return iter(["s", "s-copy", "t-copy"])

        def __len__(self) -> int:
            return 3

    report = make_report(ct_volume, "s")
    untrusted = SeriesResult(
        path="t-copy", modality="CT", shape=ct_volume.shape, spacing_mm=ct_volume.spacing,
        verdict="authentic", score=0.02, label="TB", signature="untrusted",
    )  # fmt: skip
    report.series.append(untrusted)
    for s, key in zip(report.series, ("s", "s-copy", "", "t-copy"), strict=True):
        s.key = key
    volumes = Counting()
    full = render_html(report, volumes)
    assert sorted(set(volumes.read)) == ["s", "s-copy", "t-copy"]
    volumes.read.clear()
    lean = render_html(report, volumes, thumbnails=False)
    assert sorted(set(volumes.read)) == ["s", "t-copy"]  # the flagged one and the bad signature
    assert lean.count("No picture: authentic series are listed without one (--no-thumbnails).") == 1
    assert len(_images(full)) - len(_images(lean)) == 1 and len(lean) < len(full)
    # by default: pictures up to THUMBNAILS_UP_TO series (4 here), none above (an archive's report)
    import medforensics.report.html as report_html

    volumes.read.clear()
    assert len(_images(render_html(report, volumes, thumbnails=None))) == len(_images(full))
    assert sorted(set(volumes.read)) == ["s", "s-copy", "t-copy"]
    volumes.read.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_html, "THUMBNAILS_UP_TO", 3)
        auto = render_html(report, volumes)
        assert sorted(set(volumes.read)) == ["s", "t-copy"]
        assert "(a report of more than 3 series; --thumbnails draws them)" in auto
        volumes.read.clear()
        render_html(report, volumes, thumbnails=True)
        assert sorted(set(volumes.read)) == ["s", "s-copy", "t-copy"]
