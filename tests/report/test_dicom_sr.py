"""DICOM Comprehensive 3D SR of a real CT series: readable, valid, referencing the scanned instances."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medforensics.errors import InputError
from medforensics.io.volume import Volume
from medforensics.report import codes
from medforensics.report.dicom_sr import write_sr, write_sr_for_report
from medforensics.scan.image2d import mr_threshold
from medforensics.scan.result import Finding
from tests.report._helpers import MODEL, dciodvfy_errors, make_report, make_series_result


@pytest.fixture(scope="module")
def sr_file(tmp_path_factory: pytest.TempPathFactory, ct_series: Path, ct_volume: Volume) -> Path:
    series = make_series_result(ct_volume, str(ct_series))
    return write_sr(series, ct_volume, tmp_path_factory.mktemp("sr") / "sr.dcm", model=MODEL)


def _code(item: object) -> tuple[str, str]:
    return (item.value, item.scheme_designator)  # type: ignore[attr-defined]


def test_sr_references_the_scanned_series(sr_file: Path, ct_volume: Volume) -> None:
    ds = pydicom.dcmread(sr_file)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.Modality == "SR" and ds.CompletionFlag == "COMPLETE"
    assert ds.StudyInstanceUID == ct_volume.metadata["study_uid"]
    assert ds.SeriesInstanceUID != ct_volume.series_uid
    assert ds.SOPInstanceUID not in ct_volume.metadata["sop_instance_uids"]
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert [s.SeriesInstanceUID for s in evidence] == [ct_volume.series_uid]
    referenced = {i.ReferencedSOPInstanceUID for i in evidence[0].ReferencedSOPSequence}
    assert referenced == set(ct_volume.metadata["sop_instance_uids"])
    assert ds.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == codes.SCHEME


def test_sr_content_verdict_and_scores(sr_file: Path, ct_volume: Volume) -> None:
    sr = hd.sr.srread(sr_file)
    report = sr.content
    (verdict_group, metadata_group) = report.get_image_measurement_groups()
    assert verdict_group.tracking_identifier == "Series verdict"
    assert verdict_group.get_measurements(name=codes.TAMPER_PROBABILITY)[0].value == pytest.approx(0.93)
    values = {_code(q.name): _code(q.value) for q in verdict_group.get_qualitative_evaluations()}
    assert values[_code(codes.TAMPER_VERDICT)] == _code(codes.VERDICT_CODES["tampered"])
    assert values[_code(codes.CTGAN_LABEL)] == _code(codes.LABEL_CODES["FM"])
    assert metadata_group.tracking_identifier == "Finding 2"  # rank 2: the metadata finding (0.70)
    params = [
        item.TextValue
        for item in metadata_group[0].ContentSequence  # the group's container
        if item.ConceptNameCodeSequence[0].CodeMeaning == "Algorithm Parameters"
    ]
    assert "check=air_level" in params  # the metadata test, as the JSON's check

    rois = report.get_planar_roi_measurement_groups()
    assert [g.tracking_identifier for g in rois] == ["Finding 1", "Finding 3", "Finding 4"]
    scores = [g.get_measurements()[0].value for g in rois]
    assert scores == pytest.approx([0.91, 0.42, 0.30])
    names = [_code(g.get_measurements()[0].name) for g in rois]  # synthetic: synthesis probability
    assert names == [_code(codes.TAMPER_PROBABILITY)] * 2 + [_code(codes.SYNTHESIS_PROBABILITY)]
    types = [_code(g.get_qualitative_evaluations(name=codes.TAMPER_FINDING_TYPE)[0].value) for g in rois]
    assert types == [_code(codes.FINDING_TYPE_CODES[t]) for t in ("injected", "removed", "synthetic")]

    box = rois[0].roi
    assert (
        box.graphic_type.value == "POLYGON"
        and box.frame_of_reference_uid == ct_volume.metadata["frame_of_reference_uid"]
    )
    points = np.asarray(box.value)
    assert np.allclose(points[0], points[-1])  # closed
    # on the centre slice (z = 3) and spanning the box edges (y 20..30, x 24..36 voxels)
    index = ct_volume.patient_to_index(points)
    assert np.allclose(index[:, 0], 3, atol=1e-3)
    assert np.allclose(sorted(set(np.round(index[:, 1], 3))), [19.5, 29.5])
    assert np.allclose(sorted(set(np.round(index[:, 2], 3))), [23.5, 35.5])
    assert rois[2].roi.graphic_type.value == "POINT"


def test_sr_passes_dciodvfy_and_dsrdump(sr_file: Path) -> None:
    errors, output = dciodvfy_errors(sr_file)
    assert "Comprehensive3DSR" in output
    assert errors == [], output
    exe = shutil.which("dsrdump")
    if exe is None:
        pytest.skip("dsrdump (DCMTK) not installed")
    run = subprocess.run([exe, str(sr_file)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Tamper probability" in run.stdout and "Injected lesion" in run.stdout


def test_sr_for_report_skips_non_dicom_and_errors(tmp_path: Path, ct_series: Path, ct_volume: Volume) -> None:
    report = make_report(ct_volume, str(ct_series))
    nifti = Volume(
        np.zeros((8, 64, 64), dtype=np.float32), modality="CT", metadata={"source_format": "nifti"}
    )
    notes: list[str] = []
    written = write_sr_for_report(
        report, {str(ct_series): ct_volume, str(ct_series) + "-copy": nifti}, tmp_path / "sr", notes=notes
    )
    assert [p.name for p in written] == [f"000_{ct_volume.series_uid}_SR.dcm"]
    # the error named; the authentic NIfTI series summed up (one line for any number of them)
    assert len(notes) == 2 and "no pixel data" in notes[0]
    assert (
        notes[1].startswith("SR not written for 1 authentic series read from NIfTI")
        and "not DICOM" in notes[1]
    )
    assert sorted(p.name for p in (tmp_path / "sr").iterdir()) == [written[0].name]


def test_sr_inputs_are_not_modified(tmp_path: Path, ct_series: Path, ct_volume: Volume) -> None:
    before = [ds.to_json() for ds in ct_volume.datasets[:2]]
    files_before = {p.name: p.read_bytes() for p in ct_series.iterdir()}
    write_sr(make_series_result(ct_volume, str(ct_series)), ct_volume, tmp_path / "a.dcm", model=MODEL)
    assert [ds.to_json() for ds in ct_volume.datasets[:2]] == before
    assert {p.name: p.read_bytes() for p in ct_series.iterdir()} == files_before


def test_sr_of_error_series_refused(ct_volume: Volume, tmp_path: Path) -> None:
    series = make_series_result(ct_volume, "x")
    series.verdict, series.error = "error", "unreadable"
    with pytest.raises(InputError, match="unreadable"):
        write_sr(series, ct_volume, tmp_path / "x.dcm", model=MODEL)
    assert not (tmp_path / "x.dcm").exists()


def test_sr_of_a_single_image_without_frame_of_reference(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    from medforensics.io.reader import read_volume

    source = get_testdata_file("SC_rgb.dcm")
    assert source is not None
    volume = read_volume(source)
    assert not volume.metadata.get("frame_of_reference_uid")
    series = make_series_result(volume, source)
    series.findings = [
        Finding("synthetic", 0.3, center_voxel=(0, 2, 2)),
        Finding("injected", 0.9, (0, 12, 15), None, (0, 10, 10, 1, 14, 20)),
    ]
    out = write_sr(series, volume, tmp_path / "sc.dcm", model=MODEL)
    box, point = (g.roi for g in hd.sr.srread(out).content.get_planar_roi_measurement_groups())
    assert isinstance(point, hd.sr.ImageRegion) and np.allclose(point.value, [[2.5, 2.5]])
    assert box.graphic_type.value == "POLYLINE"  # closed: the 2-D form of a polygon
    assert np.allclose(box.value, [[10, 10], [20, 10], [20, 14], [10, 14], [10, 10]])  # (column, row) edges
    errors, output = dciodvfy_errors(out)
    assert errors == [], output


def test_sr_of_an_mr_series_names_the_2d_detector(tmp_path: Path) -> None:
    """An MR series scored by the 2-D synthesis detector (emri_small, two frames replaced by DCGAN slices):
    the SR's algorithm is that detector (name, threshold) and its scores are 'Synthesis probability', not
    the CT detector's 'Tamper probability'; dciodvfy finds no errors."""
    from pydicom.data import get_testdata_file

    from medforensics.forge.dcgan import bundled_weights, generate, load_generator
    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import Detector
    from medforensics.scan.pipeline import scan_volume

    source = get_testdata_file("emri_small.dcm", download=False)
    if source is None:
        pytest.skip("pydicom-data emri_small.dcm not installed")
    volume = read_volume(source)
    arr = np.asarray(volume.array).copy()
    fake = generate(load_generator(bundled_weights("mr")), 2, seed=11)
    arr[[2, 6]] = (np.clip(fake, -1, 1) + 1) * 0.5 * float(arr.max())
    det2d = Detector.default("detector2d")
    series = scan_volume(volume.with_array(arr, spacing=volume.spacing), det2d, detector2d=det2d, path=source)
    assert series.verdict == "synthetic" and len(series.findings) == 2, series.error
    out = write_sr(series, volume, tmp_path / "mr.dcm", model=MODEL)
    ds = pydicom.dcmread(out)
    text = "\n".join(str(e.value) for e in ds.iterall() if e.keyword in ("TextValue", "CodeMeaning"))
    assert "medforensics cnn_ensemble" in text and f"threshold={mr_threshold(det2d):.6g}" in text
    assert MODEL.name not in text.replace("medforensics cnn_ensemble", "")
    assert "Synthesis probability" in text and "Tamper probability" not in text
    errors, output = dciodvfy_errors(out)
    assert errors == [], output


def test_sr_names_the_threshold_the_series_was_held_to(
    tmp_path: Path, ct_volume: Volume, ct_series: Path
) -> None:
    """A CT series held to an operating point of its own (uncorrelated noise, lossy coding) says that
    threshold among the algorithm's parameters, not the report model's scanner-noise one."""
    series = make_series_result(ct_volume, str(ct_series))
    series.extra.update(detector="dense", operating_point="lossy coding", threshold=0.838)
    out = write_sr(series, ct_volume, tmp_path / "sr.dcm", model=MODEL)
    ds = pydicom.dcmread(out)
    text = "\n".join(str(e.value) for e in ds.iterall() if e.keyword == "TextValue")
    assert "threshold=0.838" in text and f"threshold={MODEL.threshold:.6g}" not in text
    del series.extra["threshold"]  # none recorded: the report model's
    ds = pydicom.dcmread(write_sr(series, ct_volume, tmp_path / "sr2.dcm", model=MODEL))
    text = "\n".join(str(e.value) for e in ds.iterall() if e.keyword == "TextValue")
    assert f"threshold={MODEL.threshold:.6g}" in text and "precision=" not in text
    model = replace(MODEL, precision="fp32")  # the arithmetic the scan ran in, when the report knows it
    ds = pydicom.dcmread(write_sr(series, ct_volume, tmp_path / "sr3.dcm", model=model))
    assert "precision=fp32" in "\n".join(str(e.value) for e in ds.iterall() if e.keyword == "TextValue")


def test_caveats_are_text_evaluations_of_the_series_group(
    tmp_path: Path, ct_series: Path, ct_volume: Volume
) -> None:
    series = make_series_result(ct_volume, str(ct_series))
    series.extra["caveats"] = ["pixels 0.98 mm, coarser than the 0.68-0.82 mm pixels", "slices 3.00 mm apart"]
    out = write_sr(series, ct_volume, tmp_path / "sr.dcm", model=MODEL)
    (verdict_group, _) = hd.sr.srread(out).content.get_image_measurement_groups()
    items = verdict_group[0].ContentSequence
    texts = [i.value for i in items if i.ValueType == "TEXT" and _code(i.name) == _code(codes.SCAN_CAVEAT)]
    assert texts == series.extra["caveats"]
    errors, output = dciodvfy_errors(out)
    assert errors == [], output
    exe = shutil.which("dsrdump")
    if exe is None:
        pytest.skip("dsrdump (DCMTK) not installed")
    run = subprocess.run([exe, str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "Scan caveat" in run.stdout and "slices 3.00 mm apart" in run.stdout


def test_a_tm_label_says_in_the_sr_where_its_nodule_is(
    tmp_path: Path, ct_series: Path, ct_volume: Volume
) -> None:
    """A TM series' blobs (``extra.nodules``) are TEXT items "CT-GAN label basis" of the verdict group; an
    unreadable row is left out, and a series with another label gets none."""
    series = make_series_result(ct_volume, str(ct_series))
    series.label = "TM"
    series.extra["nodules"] = [
        {"center_voxel": [3, 30, 40], "center_mm": [1.04, -2.0, 3.5], "diameter_mm": 14.2, "hu": 30.4},
        {"center_voxel": "broken"},
    ]
    out = write_sr(series, ct_volume, tmp_path / "sr.dcm", model=MODEL)
    (verdict_group, _) = hd.sr.srread(out).content.get_image_measurement_groups()
    items = verdict_group[0].ContentSequence
    texts = [i.value for i in items if i.ValueType == "TEXT" and _code(i.name) == _code(codes.LABEL_BASIS)]
    assert texts == [
        "nodule-like blob, untouched: voxel (z, y, x) (3, 30, 40), patient (x, y, z) (1.0, -2.0, 3.5) mm, "
        "about 14 mm, 30 HU at its centre"
    ]
    errors, output = dciodvfy_errors(out)
    assert errors == [], output
    series.label = "FB"  # a tampered series' label comes from its finding: no blob is its basis
    out = write_sr(series, ct_volume, tmp_path / "sr2.dcm", model=MODEL)
    (verdict_group, _) = hd.sr.srread(out).content.get_image_measurement_groups()
    assert not any(_code(i.name) == _code(codes.LABEL_BASIS) for i in verdict_group[0].ContentSequence)


def test_a_ct_synthetic_slices_finding_names_the_2d_detector(
    tmp_path: Path, ct_volume: Volume, ct_series: Path
) -> None:
    """A CT series called synthetic by the 2-D synthesis detector's median over its slices: that finding's
    algorithm is the 2-D detector with the cut the median met (the sampled one here), the series verdict's
    the report's CT model; the SR stays valid."""
    series = make_series_result(ct_volume, str(ct_series))
    centre = tuple(ct_volume.index_to_patient([1, 32, 32]))
    whole = Finding(
        "synthetic", 0.95, (1, 32, 32), centre, (0, 0, 0, *ct_volume.shape),
        description="the 2-D synthesis detector calls the slices synthetic", check="synthetic_slices",
    )  # fmt: skip
    series.findings, series.verdict, series.label, series.score = [whole], "synthetic", "SYN", 0.95
    d2 = {"name": "cnn_ensemble", "version": "v2d", "sha256": "ab" * 32, "threshold": 0.0662}
    series.extra["synthetic_slices"] = {
        "median": 0.01, "threshold": 0.0662, "sampled_median": 0.97, "sampled_cut": 0.5, "detector": d2,
    }  # fmt: skip
    out = write_sr(series, ct_volume, tmp_path / "sr.dcm", model=MODEL)
    ds = pydicom.dcmread(out)
    names = [str(e.value) for e in ds.iterall() if e.keyword == "TextValue"]
    text = "\n".join(names)
    assert f"medforensics {MODEL.name}" in text and "medforensics cnn_ensemble" in text
    assert "check=synthetic_slices" in text and "threshold=0.5" in text
    errors, output = dciodvfy_errors(out)
    assert errors == [], output
