from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medforensics.io.nifti import write_nifti
from medforensics.io.volume import Volume
from medforensics.report import validate_report_dict
from medforensics.scan.detector import Detector
from medforensics.scan.pipeline import audit_scan, scan_paths, scan_volume
from medforensics.scan.result import ScanReport
from tests.scan._helpers import ct_crop


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, ct_series: Path) -> Path:
    """A folder of studies: the CT series, a corrupt DICOM, a 2-D PNG, an MR volume."""
    from PIL import Image

    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(ct_series, root / "ct")
    (root / "corrupt").mkdir()
    src = sorted(ct_series.glob("*.dcm"))[0].read_bytes()
    (root / "corrupt" / "bad.dcm").write_bytes(src[: len(src) // 2])
    (root / "xray").mkdir()
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(
        root / "xray" / "a.png"
    )
    mr = Volume(np.random.default_rng(1).random((12, 32, 32)).astype(np.float32) * 500, modality="MR")
    write_nifti(mr, root / "mr.nii.gz")
    return root


def _by_name(report, name: str):
    return next(s for s in report.series if Path(s.path).name == name)


def test_scan_mixed_folder(mixed: Path, detector: Detector) -> None:
    report, volumes = scan_paths([mixed], detector=detector, signatures=True)
    d = report.to_dict()
    assert validate_report_dict(d) == []
    ct = _by_name(report, "ct")
    assert ct.verdict == "tampered" and ct.error is None and 0 <= ct.score <= 1  # threshold 0 flags all
    assert ct.label in ("FM", "FB") and ct.signature == "absent"
    findings = d["series"][[s["path"] for s in d["series"]].index(ct.path)]["findings"]
    assert findings and [f["score"] for f in findings] == sorted((f["score"] for f in findings), reverse=True)
    image = [f for f in ct.findings if f.type in ("injected", "removed")]
    assert 1 <= len(image) <= 5
    for f in image:
        z0, y0, x0, z1, y1, x1 = f.bbox_voxel
        assert z0 <= f.center_voxel[0] < z1 and y0 <= f.center_voxel[1] < y1 and x0 <= f.center_voxel[2] < x1
        assert (
            f.heatmap.shape == (z1 - z0, y1 - y0, x1 - x0) and f.heatmap.min() >= 0 and f.heatmap.max() <= 1
        )
    bad = _by_name(report, "bad.dcm")
    assert bad.verdict == "error" and "truncated" in bad.error and "\n" not in bad.error
    assert "no 2-D detector bundled for modality" in _by_name(report, "a.png").error
    assert "modality MR" in _by_name(report, "mr.nii.gz").error
    # no detector for them here: outside what is covered, not failures (no 2-D detector given)
    assert _by_name(report, "a.png").not_assessed and _by_name(report, "mr.nii.gz").not_assessed
    assert not bad.not_assessed
    assert all(s.score is None and s.findings == [] for s in report.series if s.verdict == "error")
    assert report.exit_status == 0 and ct.path in volumes
    json.dumps(d)


def test_the_report_says_which_precision_the_network_ran_in(ct_series: Path, detector: Detector) -> None:
    """bf16 and fp32 scores differ by up to ~0.01, so the report names the arithmetic of this machine:
    bf16 only where it is native here (else the bf16 detector runs, and says it ran, in fp32)."""
    from medforensics.models.inference import bf16_native

    def ran_in() -> str:
        report, _ = scan_paths([ct_series], detector=detector, signatures=False, explain=None)
        d = report.to_dict()
        assert validate_report_dict(d) == []
        return str(d["model"]["precision"])

    assert detector.precision == "bf16" and "precision" not in detector.info.to_dict()
    assert ran_in() == ("bf16" if bf16_native("cpu") else "fp32")
    detector.precision = "fp32"
    try:
        assert ran_in() == "fp32"
    finally:
        detector.precision = "bf16"


def test_single_slice_and_thin_ct_are_errors(detector: Detector) -> None:
    one = ct_crop(nz=1)
    assert "single CT slice" in scan_volume(one, detector).error
    thin = ct_crop(nz=4)
    res = scan_volume(thin, detector)
    assert res.verdict == "error" and "only 4 slices" in res.error


def test_a_series_whose_slices_all_share_one_position_is_not_scored_as_one_image(
    tmp_path: Path, ct_series: Path, detector: Detector
) -> None:
    import pydicom

    folder = tmp_path / "one_position"
    shutil.copytree(ct_series, folder)
    files = sorted(folder.glob("*.dcm"))
    for f in files:  # every slice claims the first one's position
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [0.0, 0.0, 0.0]
        ds.save_as(f)
    report, _ = scan_paths([folder], detector=detector, signatures=False)
    (res,) = report.series
    assert res.verdict == "error" and res.score is None and "\n" not in res.error
    assert res.error.startswith(f"{len(files)} images at one slice position") and "not assessed" in res.error


def test_a_thick_spacing_assumed_without_positions_says_so(tmp_path: Path, ct_series: Path) -> None:
    import pydicom

    from medforensics.scan.pipeline import route_error

    folder = tmp_path / "no_positions"
    shutil.copytree(ct_series, folder)
    for f in folder.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        del ds.ImagePositionPatient
        ds.SliceThickness = 5.0
        ds.save_as(f)
    from medforensics.io.reader import read_volume

    vol = read_volume(folder)

    class _Det:
        max_slice_mm = 3.0

    reason = route_error(vol, None, _Det())  # type: ignore[arg-type]
    assert reason is not None and reason.startswith("slices 5 mm apart (assumed: no usable slice positions)")


def test_label_map_is_an_error_that_says_so_and_an_integer_mr_is_not_one(detector: Detector) -> None:
    lobes = np.zeros((12, 32, 32), np.float32)
    lobes[2:10, 4:28, 4:14], lobes[2:10, 4:28, 18:28] = 1.0, 2.0  # a two-label segmentation beside a CT
    res = scan_volume(Volume(lobes, spacing=(2.5, 1.0, 1.0), modality="MR"), detector)
    assert res.verdict == "error" and res.error.startswith("3 distinct integer values, not image intensities")
    assert "a label map or mask (scan the image it segments)" in res.error
    mr = np.round(np.random.default_rng(2).random((12, 32, 32)) * 900).astype(np.float32)  # integer MR pixels
    res = scan_volume(Volume(mr, spacing=(2.5, 1.0, 1.0), modality="MR"), detector)
    assert "modality MR" in res.error and "label map" not in res.error


def test_uncalibrated_random_detector_runs_authentic_path(tmp_path: Path, ct_series: Path) -> None:
    from tests.scan._helpers import tiny_detector_dir

    det = Detector.from_dir(tiny_detector_dir(tmp_path / "m", {"platt": [1.0, 0.0], "threshold": 1.0}))
    report, volumes = scan_paths([ct_series], detector=det, signatures=False, keep_volumes=False)
    s = report.series[0]
    assert s.verdict == "authentic" and s.label in ("TB", "TM") and volumes == {}
    assert not [f for f in s.findings if f.type in ("injected", "removed")]
    assert s.extra["candidates"] > 0 and len(s.extra["top_candidates"]) >= 1


def test_audit_entry_holds_no_paths(tmp_path: Path, ct_series: Path, detector: Detector) -> None:
    from medforensics.provenance import verify_log

    report, _ = scan_paths([ct_series], detector=detector, signatures=False, explain=None)
    log = tmp_path / "audit.sqlite"
    audit_scan(report, log_path=log)
    import sqlite3

    rows = sqlite3.connect(log).execute("SELECT action, subjects, details FROM entries").fetchall()
    assert rows[0][0] == "scan" and str(ct_series) not in rows[0][1] + rows[0][2]
    assert verify_log(log).ok


def test_lazy_volumes_hold_one_series_and_read_back_the_same(mixed: Path, detector: Detector) -> None:
    from medforensics.scan.volumes import LazyVolumes

    report, eager = scan_paths([mixed], detector=detector, signatures=False, explain=None)
    _, lazy = scan_paths([mixed], detector=detector, signatures=False, explain=None, keep_volumes="lazy")
    assert isinstance(lazy, LazyVolumes)
    assert set(lazy) == set(eager) and len(lazy) == len(eager)
    ct = _by_name(report, "ct").path
    np.testing.assert_array_equal(lazy[ct].array, eager[ct].array)
    assert lazy[ct] is lazy[ct]  # cached while it is the last one asked for
    other = next(k for k in lazy if k != ct)
    lazy[other]
    assert lazy._last is not None and lazy._last[0] == other  # the CT was dropped
    # what the SR and SEG writers get: headers and geometry, the pixels left in the files until used
    headers = lazy.without_pixels(ct)
    assert headers is not None and not isinstance(headers.array, np.ndarray)
    assert headers.shape == eager[ct].shape and len(headers.datasets) == len(eager[ct].datasets)
    np.testing.assert_array_equal(np.asarray(headers.array[:]), eager[ct].array)
    assert lazy.without_pixels("no such series") is None


def test_a_series_error_names_the_bad_slice(tmp_path: Path, ct_series: Path, detector: Detector) -> None:
    shutil.copytree(ct_series, tmp_path / "ct")
    victim = sorted((tmp_path / "ct").glob("*.dcm"))[3]
    victim.write_bytes(victim.read_bytes()[:2000])
    report, _ = scan_paths([tmp_path / "ct"], detector=detector)
    (res,) = report.series
    assert res.verdict == "error" and res.error.startswith(f"{victim.name}: truncated")


def test_a_slice_that_fails_in_a_streamed_read_is_named(tmp_path: Path, detector: Detector) -> None:
    """Streamed series decode their slices during the scan: a bad one found then is named too."""
    from medforensics.errors import InputError
    from medforensics.io.lazy import LazySlices

    bad = tmp_path / "ser" / "IM000007.dcm"

    class Failing(LazySlices):
        def _read(self, ks):  # type: ignore[no-untyped-def]
            raise InputError("cannot decode pixel data (JPEG 2000): broken stream", path=bad)

    vol = Volume(Failing((40, 64, 64)), spacing=(2.5, 1.0, 1.0), modality="CT")
    res = scan_volume(vol, detector, path=str(tmp_path / "ser"))
    assert (
        res.verdict == "error"
        and res.error == f"{bad.name}: cannot decode pixel data (JPEG 2000): broken stream"
    )


def test_a_slab_too_large_for_memory_blames_the_header_or_the_size(
    detector: Detector,
) -> None:
    """A compressed series whose Rows/Columns lie (60000 x 60000) fails when a slab is allocated: the reason
    says so instead of calling it an internal error."""
    from medforensics.io.lazy import LazySlices

    class Huge(LazySlices):
        def _read(self, ks):  # type: ignore[no-untyped-def]
            raise MemoryError("Unable to allocate 67.1 GiB for an array with shape (20, 60000, 60000)")

    res = scan_volume(Volume(Huge((40, 64, 64)), spacing=(2.5, 1.0, 1.0), modality="CT"), detector)
    assert res.verdict == "error" and res.error.startswith("out of memory for its pixels (Unable to allocate")
    assert "a corrupt image size in its header" in res.error and "internal error" not in res.error


def test_several_series_in_one_folder_keep_their_own_volumes(
    tmp_path: Path, ct_series: Path, detector: Detector
) -> None:
    """The folder is both series' path: their reports must each be built from their own series."""
    import pydicom

    from medforensics.io.dicom_write import write_dicom_series
    from medforensics.io.reader import read_volume
    from medforensics.report.dicom_common import volume_for
    from medforensics.report.dicom_sr import write_sr_for_report

    vol = read_volume(ct_series)
    other = vol.with_array(np.asarray(vol.array)[:-4], spacing=vol.spacing, datasets=vol.datasets[:-4])
    write_dicom_series(other, tmp_path / "b", new_uids=True)
    both = tmp_path / "both"
    shutil.copytree(ct_series, both)
    for f in sorted((tmp_path / "b").glob("*.dcm")):
        shutil.copy(f, both / f"b_{f.name}")
    for keep in (True, "lazy"):
        report, volumes = scan_paths(
            [both], detector=detector, signatures=False, explain=None, keep_volumes=keep
        )
        assert [s.path for s in report.series] == [str(both)] * 2 and len(volumes) == 2
        uids = {s.series_uid for s in report.series}
        assert len(uids) == 2
        for s in report.series:
            v = volume_for(s, volumes)
            assert v is not None and v.shape == tuple(s.shape)
            assert {str(d.SeriesInstanceUID) for d in v.datasets} == {s.series_uid}
    written = write_sr_for_report(report, volumes, tmp_path / "sr")
    assert len(written) == 2
    n_slices = {s.series_uid: s.shape[0] for s in report.series}
    for path in written:
        ev = pydicom.dcmread(path).CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
        assert len(ev) == 1 and str(ev[0].SeriesInstanceUID) in path.name  # its own series, not the other
        assert len(ev[0].ReferencedSOPSequence) == n_slices[str(ev[0].SeriesInstanceUID)]


def test_single_images_the_2d_detector_was_not_trained_for_get_a_reason(detector: Detector) -> None:
    det2d = Detector.default("detector2d")
    rng = np.random.default_rng(0)
    xray = rng.random((1, 128, 128)).astype(np.float32)
    cases = {
        "tiny": (Volume(xray[:, :8, :8].copy(), modality="DX"), "image of 8 x 8 pixels"),
        "flat": (Volume(np.zeros((1, 128, 128), np.float32), modality="DX"), "same value"),
        "us": (Volume(xray, modality="US"), "no 2-D detector bundled for modality US"),
        "seg": (Volume(xray, modality="SEG"), "a DICOM SEG (segmentation), not an image"),
        # a SEG's mask of one value is a SEG first (before: "every voxel has the same value")
        "seg mask": (Volume(np.ones((1, 128, 128), np.float32), modality="SEG"), "DICOM SEG"),
        "dose": (Volume(xray, modality="RTDOSE"), "an RT dose grid, not an image"),
        "nm": (Volume(xray, modality="NM"), "no 2-D detector bundled for modality NM"),
        "nan": (Volume(np.where(xray > 0.5, np.nan, xray).astype(np.float32), modality="DX"), "NaN"),
    }
    not_covered = {"us", "seg", "seg mask", "dose", "nm"}  # no alarm, not a failure: "not assessed"
    for name, (vol, reason) in cases.items():
        res = scan_volume(vol, detector, detector2d=det2d, path=name)
        assert res.verdict == "error" and reason in res.error, (name, res.error)
        assert res.not_assessed == (name in not_covered), name
    ok = scan_volume(Volume(xray, modality="DX"), detector, detector2d=det2d, path="ok")
    assert ok.error is None and ok.verdict in ("authentic", "synthetic")


def test_nan_or_infinite_voxels_make_a_series_error_not_a_broken_report(detector: Detector) -> None:
    vol = ct_crop()
    for bad in (np.nan, np.inf):
        arr = np.array(vol.array, np.float32)
        arr[5:8, 40:60, 40:60] = bad
        res = scan_volume(vol.with_array(arr), detector, explain=None, path="ct")
        assert res.verdict == "error" and "NaN or infinite" in res.error and res.score is None
        assert validate_report_dict(ScanReport(model=detector.info, series=[res]).to_dict()) == []


def test_a_volume_of_one_value_is_not_assessed(detector: Detector) -> None:
    air = Volume(np.full((40, 64, 64), -1024.0, np.float32), spacing=(2.5, 0.7, 0.7), modality="MR")
    res = scan_volume(air, detector, explain=None, path="air")
    assert res.verdict == "error" and res.error == "every voxel has the same value: nothing to assess"


def test_non_finite_scores_blame_the_detector_and_the_report_is_still_written(tmp_path: Path) -> None:
    import torch

    from medforensics.report import write_json
    from medforensics.scan.pipeline import NON_FINITE_SCORES
    from tests.scan._helpers import tiny_detector_dir

    det = Detector.from_dir(tiny_detector_dir(tmp_path / "m", {"platt": [1.0, 0.0], "threshold": 0.0}))
    with torch.no_grad():
        for p in det.model.parameters():
            p.fill_(float("nan"))  # a model with NaN weights: the input is fine, its scores are not
    res = scan_volume(ct_crop(), det, explain=None, path="ct")
    assert res.verdict == "error" and res.error == NON_FINITE_SCORES and "voxel" not in res.error
    report = ScanReport(model=det.info, series=[res])
    write_json(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["series"][0]["error"] == NON_FINITE_SCORES


def test_finite_json_replaces_non_finite_numbers_with_none() -> None:
    from medforensics.scan.pipeline import finite_json

    extra = {"a": [1.0, float("nan"), {"b": np.float32("inf")}], "c": "x", "d": 2}
    assert finite_json(extra) == {"a": [1.0, None, {"b": None}], "c": "x", "d": 2}


def test_a_coronal_series_is_scanned_in_axial_order_and_reported_in_its_own(detector: Detector) -> None:
    """The detectors read axial arrays: a coronal stack of the same CT gets the same findings, its voxel
    centres, boxes and heatmaps in the coronal array's own order (before session 26 the coronal array
    was scored as it is, and a nodule injected in it went unseen)."""
    axial = ct_crop()
    sz, sy, sx = axial.spacing
    direction = axial.direction[:, [1, 0, 2]].copy()
    direction[:, 1] *= -1  # coronal images: rows run head to feet
    coronal = Volume(
        np.ascontiguousarray(axial.array.transpose(1, 0, 2)[:, ::-1]),
        spacing=(sy, sz, sx),
        origin=tuple(axial.index_to_patient((axial.shape[0] - 1, 0, 0))),
        direction=direction,
        modality="CT",
    )
    amap = coronal.axial_axes()
    a, c = scan_volume(axial, detector), scan_volume(coronal, detector)
    assert c.shape == coronal.shape and c.score == pytest.approx(a.score)
    fa = [f for f in a.findings if f.type != "metadata"]
    fc = [f for f in c.findings if f.type != "metadata"]
    assert len(fa) == len(fc) > 0
    for f, g in zip(fa, fc, strict=True):
        assert g.score == pytest.approx(f.score)
        np.testing.assert_allclose(g.center_mm, f.center_mm, atol=1e-4)
        np.testing.assert_allclose(
            coronal.index_to_patient(g.center_voxel), axial.index_to_patient(f.center_voxel), atol=1e-4
        )
        z0, y0, x0, z1, y1, x1 = f.bbox_voxel
        q0, r0, s0, q1, r1, s1 = g.bbox_voxel
        np.testing.assert_array_equal(
            amap.array_to_source(axial.array[z0:z1, y0:y1, x0:x1]), coronal.array[q0:q1, r0:r1, s0:s1]
        )
        np.testing.assert_array_equal(amap.array_to_source(f.heatmap), g.heatmap)
    assert [t["center_voxel"] for t in c.extra["top_candidates"]] == [
        [int(v) for v in amap.index_to_source(t["center_voxel"])] for t in a.extra["top_candidates"]
    ]


def test_slice_spacing_and_count_are_judged_in_the_axial_layout_the_detector_scores() -> None:
    """A coronal series is scored axially (scan.orientation): its axial slice spacing is its row spacing.
    A coronal reformat of 5 mm axial slices was scored (its 0.7 mm coronal spacing passed the 3 mm limit);
    one of 1 mm axial slices stored 4 mm apart was refused; 6 axial slices passed the 8-slice minimum."""
    from medforensics.io.volume import AXIAL_DIRECTION
    from medforensics.scan.pipeline import route_error

    class _Det:
        max_slice_mm = 3.0

    coronal = AXIAL_DIRECTION[:, [1, 0, 2]]  # axis 0 along +y (anterior to posterior), axis 1 along +z
    arr = np.random.default_rng(0).normal(0.0, 300.0, (20, 30, 20)).astype(np.float32)
    thick = Volume(arr, spacing=(0.7, 5.0, 0.7), direction=coronal, modality="CT")
    reason = route_error(thick, None, _Det())  # type: ignore[arg-type]
    assert reason is not None and reason.startswith("slices 5 mm apart")
    thin = Volume(arr, spacing=(4.0, 1.0, 0.7), direction=coronal, modality="CT")
    assert route_error(thin, None, _Det()) is None  # type: ignore[arg-type]
    few = Volume(arr[:, :6], spacing=(0.7, 2.5, 0.7), direction=coronal, modality="CT")
    reason = route_error(few, None, _Det())  # type: ignore[arg-type]
    assert reason is not None and reason.startswith("only 6 slices")
    axial = Volume(arr, spacing=(2.5, 0.7, 0.7), modality="CT")  # the axial layout itself: unchanged
    assert route_error(axial, None, _Det()) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ijk_to_ras", "name"),
    [
        (np.diag([0.8, 0.9, 2.0]), "ras"),  # the usual NIfTI: i to the right, j to the front
        (np.array([[-0.8, 0, 0], [0, 0, -2.0], [0, 0.9, 0]]), "coronal"),  # k front to back, j feet to head
    ],
)
def test_extra_read_as_takes_the_reported_indices_to_the_nifti_file_voxels(
    tmp_path: Path, detector: Detector, ijk_to_ras: np.ndarray, name: str
) -> None:
    """read_nifti lays a file out axially, so the JSON's voxel indices are not the file's: on a RAS NIfTI of
    the forged demo CT they mapped through the file's affine 181 mm from the finding's center_mm (611 mm on
    a coronal one). extra.read_as says how to take them to the file's own (k, j, i)."""
    import nibabel as nib

    from medforensics.io.nifti import read_nifti
    from medforensics.io.volume import AxisMap

    data = np.zeros((24, 20, 12), np.float32)  # (i, j, k)
    mark = (3, 15, 8)
    data[mark] = 7.0
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = ijk_to_ras, (-10.0, 20.0, 30.0)
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / f"{name}.nii"))
    vol = read_nifti(tmp_path / f"{name}.nii")
    res = scan_volume(vol, detector)
    how = res.extra["read_as"]
    view = np.argwhere(np.asarray(vol.array) == 7.0)[0]
    amap = AxisMap(tuple(how["axes"]), tuple(how["flipped"]), vol.shape)
    zyx = amap.index_to_source(view)
    assert tuple(int(v) for v in zyx[::-1]) == mark and how["file_shape"] == [12, 20, 24]
    ras = affine @ np.r_[zyx[::-1], 1.0]
    assert np.allclose(vol.index_to_patient(view), [-ras[0], -ras[1], ras[2]])
    assert "read_as" not in scan_volume(Volume(data.transpose(2, 1, 0)), detector).extra  # own layout


def test_scan_follows_the_reading_of_headers_before_the_series(ct_series: Path, detector: Detector) -> None:
    discovered: list[tuple[int, int]] = []
    series: list[tuple[int, int, str]] = []
    scan_paths(
        [ct_series],
        detector=detector,
        signatures=False,
        explain=None,
        keep_volumes=False,
        on_progress=lambda i, n, label: series.append((i, n, label)),
        on_discovery=lambda done, total: discovered.append((done, total)),
    )
    n = len(list(ct_series.glob("*.dcm")))
    assert discovered[0] == (0, n) and discovered[-1] == (n, n)
    assert [(i, total) for i, total, _ in series] == [(0, 1), (1, 1)]  # the series' own calls unchanged


def test_a_series_is_scanned_with_numpy_blas_on_one_thread(
    detector: Detector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan's numpy products are small and many run on the thread helpers' threads: BLAS is held to one
    thread while a series is scanned (it competed with them and torch for the cores), and given back
    after."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import medforensics.scan.pipeline as pipeline

    def blas_threads() -> list[int]:
        return [int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"]

    seen: list[list[int]] = []
    real = pipeline.scan_axial
    monkeypatch.setattr(pipeline, "scan_axial", lambda *a, **k: seen.append(blas_threads()) or real(*a, **k))
    with threadpool_limits(2, user_api="blas"):
        res = scan_volume(ct_crop(), detector)
        after = blas_threads()
    assert res.error is None and seen and seen[0] and set(seen[0]) == {1}
    assert set(after) == {2}
