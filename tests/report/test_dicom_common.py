"""Notes on series that get no SR/SEG: one line per series with a reason of its own, a sum of the rest."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medforensics.io.volume import Volume
from medforensics.report.dicom_seg import write_seg_for_report
from medforensics.scan.result import ScanReport
from tests.report._helpers import MODEL, make_report, make_series_result


def test_authentic_series_without_a_region_are_summed_up_and_named_in_the_log(
    tmp_path: Path, ct_series: Path, ct_volume: Volume, caplog: pytest.LogCaptureFixture
) -> None:
    _, authentic, error = make_report(ct_volume, str(ct_series)).series
    second = dataclasses.replace(authentic, path=str(ct_series) + "-second")
    nifti = dataclasses.replace(authentic, path=str(ct_series) + "-nifti")
    tampered = make_series_result(ct_volume, str(ct_series) + "-metadata-only")
    tampered.findings = [f for f in tampered.findings if f.type == "metadata"]  # tampered, nothing to segment
    scout = dataclasses.replace(error, path=str(ct_series) + "-localizer", not_assessed=True)
    scout.error = "CT localizer (scout/topogram, ImageType LOCALIZER): a projection image; not assessed"
    report = ScanReport(model=MODEL, series=[authentic, tampered, nifti, error, scout, second])
    nifti_volume = Volume(np.zeros((8, 64, 64), np.float32), metadata={"source_format": "nifti"})
    volumes = {s.path: ct_volume for s in (authentic, second, tampered)} | {nifti.path: nifti_volume}
    read: list[str] = []

    class Reading(dict[str, Volume]):  # a scan's volumes are read again on access: which ones are?
        def get(self, key: str, default: Any = None) -> Any:
            read.append(key)
            return super().get(key, default)

    notes: list[str] = []
    with caplog.at_level(logging.INFO, logger="medforensics.report.dicom"):
        written = write_seg_for_report(report, Reading(volumes), tmp_path / "seg", notes=notes)
    assert written == [] and not (tmp_path / "seg").exists()
    # no series with a region to segment: none of the scanned ones is read again
    assert not set(read) & set(volumes)
    assert notes == [  # series order, then the sum: the same lines on every run
        f"SEG skipped: {tampered.path}: no finding with a region to segment",
        f"SEG skipped: {error.path}: series was not scanned (no pixel data)",
        "SEG not written for 3 authentic series: no finding with a region to segment (-v names them)",
        "SEG not written for 1 series not assessed (localizers, reformats, thick slices, modalities no "
        "detector covers...: the scan says why) (-v names them)",
    ]
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"SEG skipped: {scout.path}: series was not scanned") for m in logged)
    for series in (authentic, second):  # -v still names each one
        assert f"SEG skipped: {series.path}: no finding with a region to segment" in logged


def test_no_sum_line_without_an_authentic_series_to_skip(
    tmp_path: Path, ct_series: Path, ct_volume: Volume
) -> None:
    error = make_report(ct_volume, str(ct_series)).series[2]
    notes: list[str] = []
    write_seg_for_report(ScanReport(model=MODEL, series=[error]), {}, tmp_path / "seg", notes=notes)
    assert notes == [f"SEG skipped: {error.path}: series was not scanned (no pixel data)"]


def test_sr_and_seg_writers_ask_for_headers_only(tmp_path: Path, ct_series: Path, ct_volume: Volume) -> None:
    """A scan's volumes are read again for the writers: the SR and SEG need headers and geometry only, so
    they ask for the volume without its pixels (:meth:`LazyVolumes.without_pixels`) where it can."""
    from medforensics.report.dicom_sr import write_sr_for_report

    tampered, authentic, _ = make_report(ct_volume, str(ct_series)).series
    authentic = dataclasses.replace(authentic, key="a")
    tampered = dataclasses.replace(tampered, key="t")
    report = ScanReport(model=MODEL, series=[tampered, authentic])
    asked: list[tuple[str, str]] = []

    class Volumes(dict[str, Volume]):
        def get(self, key: str, default: Any = None) -> Any:
            asked.append(("get", key))
            return super().get(key, default)

        def without_pixels(self, key: str) -> Volume | None:
            asked.append(("without_pixels", key))
            return super().get(key)

    volumes = Volumes({"a": ct_volume, "t": ct_volume})
    assert len(write_sr_for_report(report, volumes, tmp_path / "sr")) == 2
    assert len(write_seg_for_report(report, volumes, tmp_path / "seg")) == 1
    assert asked == [("without_pixels", "t"), ("without_pixels", "a"), ("without_pixels", "t")]


def test_reference_datasets_add_type2_attributes_to_new_datasets_only() -> None:
    """The SR's and SEG's evidence: the source headers with the empty Type 2 attributes highdicom expects,
    in new datasets (shallow: the elements are shared, not deep-copied); the sources are left as they were."""
    import pydicom
    from pydicom.dataset import FileMetaDataset

    from medforensics.report.dicom_common import reference_datasets

    src = pydicom.Dataset()
    src.PatientID, src.Rows = "P1", 64
    src.ReferencedImageSequence = [pydicom.Dataset()]
    src.file_meta = FileMetaDataset()
    src.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    (ref,) = reference_datasets([src])
    assert ref is not src and ref.PatientID == "P1" and ref.Rows == 64
    assert (
        ref.PatientName == ""
        and ref.StudyDate == ""
        and ref.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
    )
    assert "PatientName" not in src and "StudyDate" not in src and len(src) == 3


def test_authentic_series_not_read_from_dicom_are_summed_up_a_flagged_one_named(
    tmp_path: Path, ct_series: Path, ct_volume: Volume
) -> None:
    """A folder of NIfTI or PNG images gave one "SR skipped: ...: input is nifti, not DICOM" line per
    series; the authentic ones are now one line, a flagged one (whose findings no SR carries) still named."""
    from medforensics.report.dicom_sr import write_sr_for_report

    _, authentic, _ = make_report(ct_volume, str(ct_series)).series
    plain = [dataclasses.replace(authentic, path=f"{ct_series}-{k}.nii.gz") for k in range(3)]
    flagged = make_series_result(ct_volume, f"{ct_series}-t.nii.gz")
    report = ScanReport(model=MODEL, series=[*plain, flagged])
    nifti = Volume(np.zeros((8, 64, 64), np.float32), metadata={"source_format": "nifti"})
    notes: list[str] = []
    assert (
        write_sr_for_report(report, {s.path: nifti for s in report.series}, tmp_path / "sr", notes=notes)
        == []
    )
    assert notes == [
        f"SR skipped: {flagged.path}: input is nifti, not DICOM: nothing to reference",
        "SR not written for 3 authentic series read from NIfTI, MetaImage, NRRD or image files: not DICOM: "
        "nothing to reference (-v names them)",
    ]
