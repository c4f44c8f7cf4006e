"""HTML report: self-contained, escaped, no patient identity, key slices embedded."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from medforensics.io.volume import Volume
from medforensics.report.html import VERDICT_COLOURS, write_html
from medforensics.scan.result import ModelInfo, ScanReport, SeriesResult
from tests.report._helpers import FAKE_PATIENT_ID, FAKE_PATIENT_NAME, make_report

_PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _pngs(text: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(m))) for m in _PNG.findall(text)]


def test_html_report_of_real_ct(tmp_path: Path, ct_series: Path, ct_volume: Volume) -> None:
    path = str(ct_series) + "/<study & co>"  # a path that needs escaping
    report = make_report(ct_volume, path)
    out = write_html(report, {path: ct_volume, path + "-copy": ct_volume}, tmp_path / "report.html")
    text = out.read_text(encoding="utf-8")

    assert text.startswith("<!DOCTYPE html>")
    assert len(re.findall(r'<tr class="series-row">', text)) == 3
    assert html.escape(path) in text and "<study & co>" not in text
    assert "/data/&lt;broken&gt;&amp;series" in text and "no pixel data" in text
    assert VERDICT_COLOURS["tampered"] in text and VERDICT_COLOURS["error"] in text
    assert ct_volume.series_uid is not None and ct_volume.series_uid in text
    # description text is escaped too
    assert "rescale &lt;intercept&gt; disagrees &amp; more" in text
    # self-contained: no external resources
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    assert "<script" not in text and "<link" not in text
    # no patient identity from the source headers
    assert FAKE_PATIENT_NAME not in text and "Fakename" not in text and FAKE_PATIENT_ID not in text

    images = _pngs(text)
    # tampered: injected (slice, zoom, zoom + heatmap), removed and the point (slice, zoom each);
    # authentic copy: a thumbnail of the middle slice only
    assert len(images) == 8
    plain, zoom, heat = images[0], images[1], images[2]
    assert min(plain.size) >= 256 and zoom.size == heat.size  # 64 px enlarged
    a, b = np.asarray(zoom.convert("RGB")), np.asarray(heat.convert("RGB"))
    assert (a != b).any()  # the heatmap of finding 1 is blended into its zoom
    assert ((np.asarray(plain.convert("RGB")) == (0, 255, 64)).all(axis=2)).sum() > 100  # the green box
    assert "Finding 1: injected, score 0.910; slice z=3 (of 0-7, in position order), InstanceNumber 4" in text
    assert "Finding 3: removed" in text and "Finding 4: synthetic" in text and "no evidence map" in text


def test_html_without_volumes_is_text_only(tmp_path: Path) -> None:
    series = SeriesResult(path="x.nii.gz", verdict="authentic", score=0.1, modality="CT", seconds=0.2)
    report = ScanReport(
        model=ModelInfo("m", "1", "0" * 64), series=[series], skipped=[{"path": "a<b", "reason": "r"}]
    )
    text = write_html(report, None, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No images available" in text and not _PNG.search(text)
    assert "a&lt;b" in text and "Skipped inputs" in text
    # the legend says what a duplicated region's fixed scores are (they are not the detector's)
    assert "a fixed 0.990 at its likely copy and 0.980 at its source" in text
    assert "for enlarged or synthetic slices a fixed 0.950" in text  # scan.enlarged's, scan.slice_synthesis'
    assert "a series or image enlarged from smaller images (check enlarged)" in text
    assert "(check synthetic_slices), is synthetic at 0.950" in text
    assert "run in" not in text  # no precision recorded: none claimed
    report.model = ModelInfo("m", "1", "0" * 64, precision="fp32")
    assert "run in fp32" in write_html(report, None, tmp_path / "r2.html").read_text(encoding="utf-8")


def test_html_says_when_a_series_was_held_to_the_uncorrelated_noise_threshold(tmp_path: Path) -> None:
    noisy = SeriesResult(path="n.nii.gz", verdict="authentic", score=0.8, modality="CT")
    noisy.extra.update(operating_point="uncorrelated noise", slice_noise_corr=0.031, threshold=0.824)
    plain = SeriesResult(path="p.nii.gz", verdict="authentic", score=0.1, modality="CT")
    plain.extra.update(operating_point="scanner noise", slice_noise_corr=0.33, threshold=0.715)
    report = ScanReport(model=ModelInfo("m", "1", "0" * 64), series=[noisy, plain])
    text = write_html(report, None, tmp_path / "r.html").read_text(encoding="utf-8")
    assert text.count("Noise uncorrelated between slices") == 1
    assert "median correlation 0.031" in text and "threshold 0.824" in text
    assert "finds much less in such series" in text and "Scored by the noise specialist" not in text
    noisy.extra["network"] = "noise specialist (0123456789ab)"
    text = write_html(report, None, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Scored by the noise specialist (0123456789ab)" in text and "finds much less" not in text
    noisy.extra.update(operating_point="lossy coding", threshold=0.838)  # stored lossy: its own point
    text = write_html(report, None, tmp_path / "r.html").read_text(encoding="utf-8")
    assert text.count("Stored lossy: held to the threshold fitted on lossy copies") == 1
    assert "0.838" in text and "Noise uncorrelated" not in text


def test_html_shows_each_caveat_of_a_series_escaped(tmp_path: Path) -> None:
    odd = SeriesResult(path="o.nii.gz", verdict="authentic", score=0.3, modality="CT")
    odd.extra["caveats"] = ["pixels 0.98 mm, coarser than <0.82 mm>", "slices 3.00 mm apart"]
    plain = SeriesResult(path="p.nii.gz", verdict="authentic", score=0.1, modality="CT")
    report = ScanReport(model=ModelInfo("m", "1", "0" * 64), series=[odd, plain])
    text = write_html(report, None, tmp_path / "r.html").read_text(encoding="utf-8")
    assert text.count("Caveat: ") == 2
    assert "Caveat: pixels 0.98 mm, coarser than &lt;0.82 mm&gt;" in text and "Caveat: slices 3.00" in text
    assert "byte-for-byte copy" not in text
    plain.extra["same_as"] = "exports/<a>"
    text = write_html(report, None, tmp_path / "r.html").read_text(encoding="utf-8")
    assert text.count("A byte-for-byte copy of exports/&lt;a&gt;: its result, not scanned again.") == 1


def test_html_2d_image_uses_auto_window(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    xray = Volume(rng.normal(1000, 50, (1, 40, 50)).astype(np.float32), modality="CR")
    report = make_report(xray, "cxr.png")
    report.series[0].findings = [f for f in report.series[0].findings if f.center_voxel is None]
    text = write_html(report, {"cxr.png": xray}, tmp_path / "r.html").read_text(encoding="utf-8")
    first = np.asarray(_pngs(text)[0].convert("L"))
    assert first.std() > 20  # percentile window: visible texture, not a flat lung-window grey


def test_a_radiograph_of_a_series_is_placed_by_image_not_table_position() -> None:
    """In a series of radiographs a key image is named by its index and InstanceNumber; there is no table
    position to give (the reader stacks exposures in instance order), unlike a CT slice's."""
    from pydicom.dataset import Dataset

    from medforensics.report.html_figures import slice_place

    def with_numbers(modality: str) -> Volume:
        datasets = [Dataset() for _ in range(3)]
        for k, ds in enumerate(datasets):
            ds.InstanceNumber = k + 1
        return Volume(np.zeros((3, 8, 8), np.float32), modality=modality, datasets=datasets)

    assert slice_place(with_numbers("DX"), 2) == "image 2 (of 0-2, in instance order), InstanceNumber 3"
    ct = slice_place(with_numbers("CT"), 2)
    assert ct.startswith("slice z=2 (of 0-2, in position order), InstanceNumber 3") and "patient z" in ct


def test_html_shows_where_the_nodule_of_a_tm_label_is(tmp_path: Path) -> None:
    """An untouched series labelled TM shows the blob its label rests on (``extra.nodules``), boxed, in place
    of the middle-slice thumbnail; a row it cannot place falls back to that thumbnail."""
    rng = np.random.default_rng(0)
    ct = Volume(
        rng.normal(-850, 20, (20, 300, 300)).astype(np.float32), spacing=(2.5, 0.7, 0.7), modality="CT"
    )
    ct.array[12, 140:160, 180:200] = 30.0  # the nodule, on slice 12
    tm = SeriesResult(path="tm.nii.gz", verdict="authentic", score=0.1, modality="CT", label="TM")
    tm.extra["nodules"] = [
        {"center_voxel": [12, 150, 190], "center_mm": [1.0, 2.0, 3.0], "diameter_mm": 14.0, "hu": 30.0}
    ]
    broken = SeriesResult(path="b.nii.gz", verdict="authentic", score=0.1, modality="CT", label="TM")
    broken.extra["nodules"] = [{"center_voxel": "not a voxel"}]
    report = ScanReport(model=ModelInfo("m", "1", "0" * 64), series=[tm, broken])
    text = write_html(report, {"tm.nii.gz": ct, "b.nii.gz": ct}, tmp_path / "r.html").read_text("utf-8")
    assert text.count("Label TM rests on this nodule-like blob") == 1
    assert "labelled TM shows the nodule-like blob its label rests on" in text  # the legend says so
    assert "about 14 mm, 30 HU at its centre; slice z=12 (of 0-19" in text
    assert text.count("No located finding. The middle slice, slice z=10") == 1  # the unplaceable row
    slice_png, zoom, thumb = _pngs(text)
    assert max(slice_png.size) <= 256 and max(thumb.size) <= 256  # thumbnails, as without a blob
    green = (np.asarray(slice_png.convert("RGB")) == (0, 255, 64)).all(axis=2)
    ys, xs = np.nonzero(green)
    scale = slice_png.size[0] / 300
    # the box is around the blob: 14 mm wide (10 pixels of 0.7 mm each side) at (150, 190)
    assert abs(ys.mean() / scale - 150) < 4 and abs(xs.mean() / scale - 190) < 4
    assert 14 <= (xs.max() - xs.min()) / scale * 0.7 <= 20
    assert (np.asarray(zoom.convert("RGB")) == (0, 255, 64)).all(axis=2).any()
