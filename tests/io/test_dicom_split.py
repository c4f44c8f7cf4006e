"""A series an export split over folders is scanned as one series; copies and stray slices are not joined."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from medforensics.io.reader import discover, load
from tests.io._dicom_series import ct_slice, write_ct_series

UID = "1.2.826.0.1.77"


def _z(path: Path) -> float:
    return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])


def _split_export(root: Path) -> Path:
    """Six slices 2.5 mm apart, written as one series, then moved three to a folder (DIR000, DIR001)."""
    files = write_ct_series(root / "whole", [2.5 * k for k in range(6)], series_uid=UID)
    cd = root / "cd"
    for k, f in enumerate(sorted(files, key=_z)):
        (cd / f"DIR00{k // 3}").mkdir(parents=True, exist_ok=True)
        shutil.move(f, cd / f"DIR00{k // 3}" / f.name)
    return cd


def test_the_parts_of_a_split_series_are_one_series_again(tmp_path: Path) -> None:
    cd = _split_export(tmp_path)
    found = discover([cd])
    assert [(s.path, len(s.files), s.series_uid) for s in found.series] == [(cd, 6, UID)]
    vol = load(found.series[0])
    assert vol.shape[0] == 6 and abs(vol.spacing[0] - 2.5) < 1e-6


def test_a_copy_and_a_stray_slice_of_the_series_stay_series_of_their_own(tmp_path: Path) -> None:
    cd = _split_export(tmp_path)
    shutil.copytree(cd / "DIR000", cd / "copy")  # the same instances again
    (cd / "ref").mkdir()
    ct_slice(100.0, UID, 99).save_as(cd / "ref" / "ref_scan.dcm", enforce_file_format=True)  # far away
    found = discover([cd])
    got = sorted((s.path.relative_to(cd).as_posix(), len(s.files)) for s in found.series)
    assert got == [(".", 6), ("copy", 3), ("ref/ref_scan.dcm", 1)]


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")
def test_parts_with_malformed_geometry_are_not_joined_and_discovery_goes_on(tmp_path: Path) -> None:
    cd = _split_export(tmp_path)
    bad = next((cd / "DIR001").iterdir())
    ds = pydicom.dcmread(bad)
    tag = pydicom.tag.Tag("NumberOfFrames")
    ds[tag] = pydicom.dataelem.RawDataElement(tag, "IS", 2, b"x ", 0, False, True)  # does not parse
    ds.save_as(bad)
    found = discover([cd])
    got = sorted((s.path.relative_to(cd).as_posix(), len(s.files)) for s in found.series)
    assert got == [("DIR000", 3), ("DIR001", 3)]


def test_a_slice_s_stack_geometry_is_what_the_reader_reads_and_multi_frame_has_none() -> None:
    import numpy as np

    from medforensics.io.dicom_frames import frame_infos
    from medforensics.io.dicom_split import stack_slice

    ds = ct_slice(7.5, UID, 3)
    got, info = stack_slice(ds), frame_infos(ds)[0]
    assert got is not None and got.size == (int(ds.Rows), int(ds.Columns))
    assert np.array_equal(got.position, info.position) and np.array_equal(got.orientation, info.orientation)
    assert got.sop == info.sop_instance_uid == ds.SOPInstanceUID
    ds.NumberOfFrames = 3
    assert stack_slice(ds) is None  # a multi-frame object is not a slice of a stack
    ds.NumberOfFrames = -1
    assert stack_slice(ds) is None  # does not parse: the reader reports it, discovery does not join
    del ds.NumberOfFrames, ds.ImagePositionPatient
    assert stack_slice(ds) is None  # no position: nothing to stack by
