"""The enlarged-slices rule on single images and MR / radiograph series (scan.enlarged_images): real images
are not enlarged, generated images enlarged to a scanner's size are synthetic whatever the 2-D detector
says; and JPEG 2000 coding that empties one pixel parity is not read as an enlargement."""

from __future__ import annotations

import io
import json

import numpy as np
import torch
from PIL import Image

from medforensics.io.reader import read_volume
from medforensics.io.volume import Volume
from medforensics.report.json_report import report_json_text
from medforensics.scan.detector import Detector, report_info
from medforensics.scan.enlarged import CHECK, ENLARGED, SCORE, enlargement, phase_means
from medforensics.scan.enlarged_images import counted_units, image_trace
from medforensics.scan.pipeline import scan_volume
from medforensics.scan.result import ScanReport
from tests._testdata import pydicom_testdata


def _dcgan(key: str, n: int, size: int, mode: str) -> np.ndarray:
    """``n`` of the bundled DCGAN's ``key`` images (64 px) enlarged to ``size`` with ``mode``, integers."""
    from medforensics.forge.dcgan import bundled_weights, generate, load_generator, slerp_latents, to_units

    g = load_generator(bundled_weights(key))
    imgs = torch.from_numpy(generate(g, n, z=slerp_latents(g.cfg.nz, n, 0, span=0.35)))[:, None]
    kw = {} if mode == "nearest" else {"align_corners": False}
    big = torch.nn.functional.interpolate(imgs, size=(size, size), mode=mode, **kw)[:, 0].numpy()
    return np.round(to_units(big, key)).astype(np.float32)


def _rule_findings(res: object) -> list:
    return [f for f in res.findings if f.check == CHECK]  # type: ignore[attr-defined]


def test_real_images_are_not_enlarged(detector: Detector, det2d: Detector) -> None:
    """pydicom-data's real radiograph (CR, 1955 x 1841), shoulder MR (1024 x 1024) and 10-frame MR series:
    every phase ratio at least 3.5 times the cut, and their scans keep no rule finding."""
    for name in ("RG1_UNCR.dcm", "MR2_UNCR.dcm", "emri_small.dcm"):
        vol = read_volume(pydicom_testdata(name))
        assert enlargement(image_trace(vol))[1] >= 3.5 * ENLARGED, name
        res = scan_volume(vol, detector, detector2d=det2d, explain=None)
        assert res.error is None and not _rule_findings(res), name
        assert res.verdict == "authentic", name
        measured = res.extra["enlarged"]  # recorded, found or not
        assert measured["period"] is None and measured["phase_ratio"] >= 3.5 * ENLARGED, name


def test_generated_images_enlarged_are_synthetic_whatever_the_2d_detector_says(
    detector: Detector, det2d: Detector
) -> None:
    """The DCGAN's MR image enlarged 4-fold (bilinear) as one MR image, eight of them as an MR series, and
    its radiograph enlarged 8-fold (bilinear) and 3-fold (nearest) as DX images, two as a DX series:
    synthetic, label SYN, score >= the rule's, one ``enlarged`` finding over the whole image naming the
    period and the small image's size, findings sorted by score; the JSON names the check."""
    mr = _dcgan("mr", 8, 256, "bilinear")
    xray = _dcgan("xray", 1, 512, "bilinear")
    cases = {
        "one MR image": (
            Volume(mr[:1], modality="MR"),
            "the image is enlarged 4-fold from an image of about 64 x 64",
        ),
        "MR series": (
            Volume(mr, modality="MR"),
            "every slice is enlarged 4-fold from an image of about 64 x 64",
        ),
        "radiograph": (
            Volume(xray, modality="DX"),
            "the image is enlarged 8-fold from an image of about 64 x 64",
        ),
        "radiograph series": (
            Volume(_dcgan("xray", 2, 512, "bilinear"), modality="DX"),
            "every image is enlarged 8-fold from an image of about 64 x 64",
        ),
        "radiograph 3-fold": (
            Volume(_dcgan("xray", 1, 192, "nearest"), modality="DX"),
            "the image is enlarged 3-fold from an image of about 64 x 64",
        ),
    }
    for what, (vol, text) in cases.items():
        res = scan_volume(vol, detector, detector2d=det2d, explain=None, path=f"{what}.dcm")
        assert res.verdict == "synthetic" and res.label == "SYN", what
        assert res.score is not None and res.score >= SCORE, what
        found = _rule_findings(res)
        assert len(found) == 1 and found[0].type == "synthetic" and text in found[0].description, what
        assert found[0].bbox_voxel == (0, 0, 0, *vol.shape), what
        measured = res.extra["enlarged"]
        assert measured["period"] in (3, 4, 8) and measured["phase_ratio"] < ENLARGED, what
        scores = [f.score for f in res.findings]
        assert scores == sorted(scores, reverse=True), what
        text = report_json_text(ScanReport(model=report_info(detector), series=[res]), validate=True)
        rows = json.loads(text)["series"][0]["findings"]
        assert any(f.get("check") == CHECK for f in rows), what


def test_the_forges_synthesis_of_a_1024_pixel_mr_is_synthetic(detector: Detector, det2d: Detector) -> None:
    """``forge``'s ``dcgan-synth`` of pydicom-data's 1024 x 1024 shoulder MR (its 64-pixel image enlarged
    16-fold, bilinear, stored as integers as a DICOM writer would): synthetic by the rule, period 16."""
    from medforensics.forge.dcgan import DCGANSynth

    mr2 = read_volume(pydicom_testdata("MR2_UNCR.dcm"))
    attack = DCGANSynth()
    syn = attack.apply(mr2, attack.sample_params(mr2, np.random.default_rng(0)), seed=0)[0]
    syn = syn.with_array(np.round(np.asarray(syn.array)), spacing=syn.spacing)
    res = scan_volume(syn, detector, detector2d=det2d, explain=None, path="mr2_syn.dcm")
    found = _rule_findings(res)
    assert res.verdict == "synthetic" and len(found) == 1
    assert "enlarged 16-fold from an image of about 64 x 64" in found[0].description


def test_an_mr_image_below_the_detector_cut_is_found_by_the_rule_alone(
    det2d: Detector, detector: Detector
) -> None:
    """A DCGAN MR image enlarged 4-fold scores under the 2-D detector's MR cut-off (session 74's probe:
    0.06-0.93 against 0.883); the rule is what calls it synthetic: without its finding it would be
    authentic."""
    from medforensics.scan.image2d import scan_2d
    from medforensics.scan.result import SeriesResult

    vols = [Volume(im[None], modality="MR") for im in _dcgan("mr", 8, 256, "bilinear")]
    below = []
    for vol in vols:
        only_2d = SeriesResult(path="x", modality="MR", shape=vol.shape)
        scan_2d(vol, det2d, only_2d)
        if only_2d.verdict == "authentic":
            below.append(vol)
    assert below, "every DCGAN image was over the MR cut-off: pick images the detector misses"
    for vol in below:
        res = scan_volume(vol, detector, detector2d=det2d, explain=None)
        assert res.verdict == "synthetic" and len(_rule_findings(res)) == 1


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    lo, hi = np.percentile(image, (0.5, 99.5))
    buf = io.BytesIO()
    Image.fromarray(np.clip((image - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=quality
    )
    buf.seek(0)
    return np.asarray(Image.open(buf), np.float32)


def test_a_real_radiograph_coded_as_jpeg_is_not_enlarged() -> None:
    """pydicom-data's CR coded as 8-bit JPEG at quality 30: its block edges put 93 % of the energy on two
    of every 8 pixels (a phase ratio of 0.07 at period 8, read as an 8-fold enlargement before such phases
    were left untested); now nothing is found. A bilinear enlargement's phases lie between the block
    edges: still found."""
    rg1 = np.asarray(read_volume(pydicom_testdata("RG1_UNCR.dcm")).array[0], np.float32)
    coded = Volume(_jpeg(rg1, 30)[None], modality="CR")
    assert enlargement(image_trace(coded), block_edges=True)[0] == 8  # what the CT rule would say
    assert enlargement(image_trace(coded), block_edges=False)[0] == 0
    xray = _dcgan("xray", 1, 512, "bilinear")
    assert enlargement(image_trace(Volume(xray, modality="DX")), block_edges=False)[0] == 8


def test_what_it_does_not_find() -> None:
    """Stated limits: noise added after the enlargement (2 % of the range), 8-bit JPEG coding after it
    (quality 90: its ringing fills the empty phases), a bicubic 4-fold enlargement and a nearest-neighbour
    one by 4 or 8 (its steps on JPEG's block edges) are not found in images."""
    mr = _dcgan("mr", 2, 256, "bilinear")
    span = float(np.percentile(mr, 99.5) - np.percentile(mr, 0.5))
    noisy = mr + 0.02 * span * np.random.default_rng(0).standard_normal(mr.shape).astype(np.float32)
    assert enlargement(image_trace(Volume(noisy, modality="MR")), block_edges=False)[0] == 0
    coded = Volume(_jpeg(_dcgan("xray", 1, 512, "bilinear")[0], 90)[None], modality="DX")
    assert enlargement(image_trace(coded), block_edges=False)[0] == 0
    bicubic = Volume(_dcgan("mr", 2, 256, "bicubic"), modality="MR")
    assert enlargement(image_trace(bicubic), block_edges=False)[0] == 0
    for size in (256, 512):
        nearest = image_trace(Volume(_dcgan("mr", 2, size, "nearest"), modality="MR"))
        assert enlargement(nearest, block_edges=False)[0] == 0
        assert enlargement(nearest)[0] == size // 64  # a CT volume's rule still finds them
    three = image_trace(Volume(_dcgan("mr", 2, 192, "nearest"), modality="MR"))
    assert enlargement(three, block_edges=False)[0] == 3


def test_counted_units_leave_the_background_out() -> None:
    """An MR's background (under 2 % of its range) falls under the counted range; its 99.5 percentile lands
    near the top of it, whatever the MR's own scale."""
    from medforensics.scan.resampling import COUNTED_HU

    img = np.array([[0.0, 10.0, 500.0, 1000.0]], np.float32)
    for scale in (1.0, 37.0):
        out = counted_units(img * scale, 0.0, 1000.0 * scale)
        assert out[0, 0] < COUNTED_HU[0] and out[0, 1] < COUNTED_HU[0]
        assert COUNTED_HU[0] < out[0, 2] < out[0, 3] < COUNTED_HU[1]


def test_a_slice_coded_until_one_parity_is_empty_is_not_enlarged() -> None:
    """pydicom-data's 693_UNCI (a real head CT slice decoded from lossy JPEG 2000: odd pixels along rows hold
    1/3000 of the even ones' second-difference energy) read 0.04 at period 4 before the parity limit; its
    rows are now not tested and nothing is found. The same slice coded losslessly (693_UNCR) is tested."""
    coded = read_volume(pydicom_testdata("693_UNCI.dcm"))
    trace = image_trace(coded)
    assert trace.sums is not None and trace.counts is not None
    assert phase_means(trace.sums[0], trace.counts[0], 4) is None
    assert enlargement(trace)[0] == 0
    plain = image_trace(read_volume(pydicom_testdata("693_UNCR.dcm")))
    assert plain.sums is not None and plain.counts is not None
    assert phase_means(plain.sums[0], plain.counts[0], 4) is not None
    period, ratio = enlargement(plain)
    assert period == 0 and ratio >= 3 * ENLARGED
