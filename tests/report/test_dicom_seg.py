"""DICOM SEG of the tamper regions of a real CT series: readable, valid, masks where the findings are."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medforensics.errors import InputError
from medforensics.io.volume import Volume
from medforensics.report import codes
from medforensics.report.dicom_common import tracking_uid
from medforensics.report.dicom_seg import finding_mask, write_seg, write_seg_for_report, write_segs
from medforensics.report.dicom_sr import write_sr
from medforensics.scan.result import Finding
from tests.report._helpers import MODEL, dciodvfy_errors, make_report, make_series_result


@pytest.fixture(scope="module")
def seg_file(tmp_path_factory: pytest.TempPathFactory, ct_series: Path, ct_volume: Volume) -> Path:
    series = make_series_result(ct_volume, str(ct_series))
    return write_seg(series, ct_volume, tmp_path_factory.mktemp("seg") / "seg.dcm", model=MODEL)


def test_seg_header_and_references(seg_file: Path, ct_volume: Volume) -> None:
    ds = pydicom.dcmread(seg_file)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and ds.SegmentationType == "BINARY"
    assert ds.StudyInstanceUID == ct_volume.metadata["study_uid"]
    assert ds.SeriesInstanceUID != ct_volume.series_uid
    assert ds.FrameOfReferenceUID == ct_volume.metadata["frame_of_reference_uid"]
    referenced = ds.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == ct_volume.series_uid
    uids = ct_volume.metadata["sop_instance_uids"]
    # only the slices the boxes cover (2..4 and 5..7) are segmented
    assert [i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence] == uids[2:8]


def test_seg_segments_and_masks(seg_file: Path, ct_series: Path, ct_volume: Volume) -> None:
    seg = hd.seg.segread(seg_file)
    assert seg.number_of_segments == 2  # the point and the metadata finding have no region
    first, second = seg.get_segment_description(1), seg.get_segment_description(2)
    assert first.segment_label == "Finding 1: injected 0.910" and second.segment_label.startswith("Finding 3")
    assert first.segmented_property_type.value == codes.FINDING_TYPE_CODES["injected"].value
    assert second.segmented_property_type.value == codes.FINDING_TYPE_CODES["removed"].value
    assert first.segmented_property_category.value == "49755003"
    algorithm = first.algorithm_identification[0]
    assert algorithm.AlgorithmName == "medforensics test_model" and algorithm.AlgorithmVersion == "1.2"
    assert MODEL.sha256 in algorithm.AlgorithmParameters
    # tracking UIDs match the SR's
    series = make_series_result(ct_volume, str(ct_series))
    injected = next(f for f in series.findings if f.type == "injected")
    assert first.tracking_uid == tracking_uid(series, 1, injected)

    uids = ct_volume.metadata["sop_instance_uids"]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids[2:8], segment_numbers=[1, 2])
    expected = np.zeros((8, 64, 64, 2), dtype=bool)
    expected[2:5, 22:28, 27:33, 0] = True  # the injected finding's mask inside its box (2, 20, 24, ...)
    expected[5:8, 36:44, 36:44, 1] = True  # the removed finding has no mask: its whole box
    assert np.array_equal(pixels.astype(bool), expected[2:8])


def test_seg_passes_dciodvfy(seg_file: Path) -> None:
    errors, output = dciodvfy_errors(seg_file)
    assert "Segmentation" in output
    assert errors == [], output


def test_seg_for_report_and_notes(tmp_path: Path, ct_series: Path, ct_volume: Volume) -> None:
    report = make_report(ct_volume, str(ct_series))
    notes: list[str] = []
    volumes = {str(ct_series): ct_volume, str(ct_series) + "-copy": ct_volume}
    written = write_seg_for_report(report, volumes, tmp_path / "seg", notes=notes)
    assert [p.name for p in written] == [f"000_{ct_volume.series_uid}_SEG.dcm"]
    assert "no pixel data" in notes[0] and notes[1].startswith("SEG not written for 1 authentic series: ")
    sr = write_sr(report.series[0], ct_volume, tmp_path / "sr.dcm", model=MODEL)
    sr_uids = {g.tracking_uid for g in hd.sr.srread(sr).content.get_planar_roi_measurement_groups()}
    seg_uids = {
        d.tracking_uid for d in (hd.seg.segread(written[0]).get_segment_description(n) for n in (1, 2))
    }
    assert seg_uids < sr_uids  # every segment is a finding of the SR


def test_seg_without_regions_refused(tmp_path: Path, ct_volume: Volume) -> None:
    series = make_series_result(ct_volume, "x")
    series.findings = [f for f in series.findings if f.bbox_voxel is None]
    with pytest.raises(InputError, match="no finding with a region"):
        write_seg(series, ct_volume, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def test_finding_mask_clips_and_checks_shape() -> None:
    shape = (4, 10, 10)
    inside = finding_mask(Finding("injected", 0.5, bbox_voxel=(-1, 8, 8, 2, 12, 12)), shape)
    assert inside is not None and inside.sum() == 2 * 2 * 2 and inside[0:2, 8:10, 8:10].all()
    mask = np.zeros((3, 4, 4), dtype=bool)
    mask[0, 0, 0] = mask[2, 3, 3] = True  # (−1, 8, 8) is clipped away; (1, 11, 11) too
    assert finding_mask(Finding("injected", 0.5, bbox_voxel=(-1, 8, 8, 2, 12, 12), mask=mask), shape) is None
    wrong = finding_mask(
        Finding("injected", 0.5, bbox_voxel=(0, 0, 0, 2, 2, 2), mask=np.ones((1, 1, 1), bool)), shape
    )
    assert wrong is not None and wrong.sum() == 8  # mis-shaped mask: the whole box
    assert finding_mask(Finding("metadata", 0.5), shape) is None
    assert finding_mask(Finding("injected", 0.5, bbox_voxel=(5, 0, 0, 6, 2, 2)), shape) is None


def test_seg_of_a_multiframe_source_maps_frames(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    from medforensics.io.reader import read_volume

    source = get_testdata_file("eCT_Supplemental.dcm")  # enhanced CT, 2 frames stored in reverse z order
    assert isinstance(source, str)
    volume = read_volume(source)
    frame_of_z1 = volume.metadata["frame_sources"][1][1] + 1  # 1-based source frame of array slice 1
    series = make_series_result(volume, source)
    series.findings = [Finding("injected", 0.8, (1, 100, 100), None, (1, 90, 90, 2, 110, 110))]
    out = write_seg(series, volume, tmp_path / "mf.dcm", model=MODEL)
    ds = pydicom.dcmread(out)
    assert ds.NumberOfFrames == 1
    derivation = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert int(derivation.ReferencedFrameNumber) == frame_of_z1
    errors, output = dciodvfy_errors(out)
    assert errors == [], output


def test_seg_of_an_image_without_frame_of_reference(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    from medforensics.io.reader import read_volume

    source = get_testdata_file("SC_rgb.dcm")
    assert isinstance(source, str)
    volume = read_volume(source)
    series = make_series_result(volume, source)
    series.findings = [Finding("synthetic", 0.9, (0, 12, 15), None, (0, 10, 10, 1, 14, 20))]
    out = write_seg(series, volume, tmp_path / "sc.dcm", model=MODEL)
    pixels = hd.seg.segread(out).get_pixels_by_source_instance(
        source_sop_instance_uids=volume.metadata["sop_instance_uids"], segment_numbers=[1]
    )
    assert pixels.shape == (1, 100, 100, 1) and pixels.sum() == 4 * 10 and pixels[0, 10:14, 10:20].all()
    errors, output = dciodvfy_errors(out)
    assert errors == [], output


def test_seg_of_a_radiograph_in_a_series_of_two_sizes(tmp_path: Path) -> None:
    """A CR series whose views differ in size (the reader pads them into one array): the SEG of a finding on
    the smaller view has that view's rows and columns and references it alone (before, highdicom refused the
    padded mask); findings on views of two sizes cannot share one SEG, which says so, and ``write_segs`` (what
    ``scan --seg`` runs) writes one per size."""
    from medforensics.io.reader import read_volume
    from tests.io._radiographs import rg1_pixels, write_radiographs

    px = rg1_pixels()
    write_radiographs(tmp_path / "xr", [px, px[:600, :800]])
    volume = read_volume(tmp_path / "xr")
    assert volume.shape == (2, 1955, 1841)
    series = make_series_result(volume, str(tmp_path / "xr"))
    series.findings = [Finding("synthetic", 0.9, (1, 300, 400), None, (1, 0, 0, 2, 600, 800))]
    out = write_seg(series, volume, tmp_path / "seg.dcm", model=MODEL)
    seg = hd.seg.segread(out)
    assert (seg.Rows, seg.Columns) == (600, 800)
    refs = [r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
    assert refs == [volume.metadata["sop_instance_uids"][1]]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=refs, segment_numbers=[1])
    assert pixels.shape == (1, 600, 800, 1) and pixels.all()
    errors, output = dciodvfy_errors(out)
    assert errors == [], output
    series.findings.append(Finding("synthetic", 0.8, (0, 977, 920), None, (0, 0, 0, 1, 1955, 1841)))
    with pytest.raises(InputError, match="differ in size"):
        write_seg(series, volume, tmp_path / "seg2.dcm", model=MODEL)
    # one SEG per size, instances of one SEG series; the top finding's view first, its segment keeps its rank
    both = write_segs(series, volume, tmp_path / "both.dcm", model=MODEL)
    assert [p.name for p in both] == ["both.dcm", "both_2.dcm"]
    segs = [hd.seg.segread(p) for p in both]
    assert [(s.Rows, s.Columns) for s in segs] == [(600, 800), (1955, 1841)]
    assert segs[0].SeriesInstanceUID == segs[1].SeriesInstanceUID and [s.InstanceNumber for s in segs] == [
        1,
        2,
    ]
    assert [s.SegmentSequence[0].SegmentLabel.split(":")[0] for s in segs] == ["Finding 1", "Finding 2"]
    refs = [
        r.ReferencedSOPInstanceUID for r in segs[1].ReferencedSeriesSequence[0].ReferencedInstanceSequence
    ]
    assert refs == [volume.metadata["sop_instance_uids"][0]]
    for p in both:
        errors, output = dciodvfy_errors(p)
        assert errors == [], output


def test_a_seg_in_a_scanned_folder_is_not_assessed_from_its_header(
    tmp_path: Path, seg_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A PACS export holding AI results (medforensics' own SEG among them): before, the SEG's frames were
    read as a volume (a warning "irregular slice spacing" about a mask), then the series was an error. Now
    its header says what it is: not assessed, its pixels never read, no warning."""
    import medforensics.scan.pipeline as pipeline
    from medforensics.scan.detector import Detector

    loaded: list[str] = []
    real_load = pipeline.load
    monkeypatch.setattr(
        pipeline, "load", lambda ref, *a, **k: loaded.append(str(ref.path)) or real_load(ref, *a, **k)
    )
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "seg.dcm").write_bytes(seg_file.read_bytes())
    report, _ = pipeline.scan_paths([folder], detector=Detector.default())
    (res,) = report.series
    assert res.not_assessed and res.verdict == "error" and res.score is None
    assert res.error is not None and res.error.startswith("a DICOM SEG (segmentation), not an image")
    assert loaded == [] and not [r for r in caplog.records if r.levelname == "WARNING"]
    assert report.exit_status == 2  # nothing was scanned
