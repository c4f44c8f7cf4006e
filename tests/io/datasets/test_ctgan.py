"""CT-GAN tamper data-set layout: label files and a look-alike folder of tiny DICOM scans."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medforensics.errors import InputError
from medforensics.io.datasets.ctgan import (
    CTGANDataset,
    CTGANLabel,
    experiment_name,
    index_scans,
    read_ctgan_labels,
    write_ctgan_labels,
)


def _write_series(folder: Path, n_slices: int = 4, seed: int = 0) -> None:
    """A tiny axial series made from pydicom's CT_small.dcm, slices 2.5 mm apart, new UIDs."""
    folder.mkdir(parents=True)
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid = generate_uid(entropy_srcs=[str(folder), str(seed)])
    z0 = float(template.ImagePositionPatient[2])
    for k in range(n_slices):
        ds = template.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [*template.ImagePositionPatient[:2], z0 + 2.5 * k]
        ds.SliceLocation = z0 + 2.5 * k
        ds.InstanceNumber = n_slices - k  # file order and instance order differ from position order
        ds.save_as(folder / f"slice{(k * 7) % n_slices}.dcm")


@pytest.fixture
def lookalike(tmp_path: Path) -> Path:
    root = tmp_path / "ctgan"
    _write_series(root / "EXP1_blind" / "1001")
    _write_series(root / "EXP2_open" / "1001", seed=1)
    _write_series(root / "EXP1_blind" / "2002")
    write_ctgan_labels(
        [
            CTGANLabel("FM", "1001", 2, 40, 70),
            CTGANLabel("TB", "2002"),
            CTGANLabel("TB", "2002"),  # a repeated row, as in the real labels_exp2.csv
            CTGANLabel("TM", "3003", 1, 5, 5),  # no scan
        ],
        root / "labels_exp1.csv",
    )
    write_ctgan_labels([CTGANLabel("FB", "1001", 3, 64, 10)], root / "labels_exp2.csv")
    return root


def test_write_read_round_trip(tmp_path: Path) -> None:
    rows = [CTGANLabel("FM", "1", 10, 20, 30), CTGANLabel("TB", "2"), CTGANLabel("SYN", "3")]
    path = write_ctgan_labels(rows, tmp_path / "labels.csv")
    assert path.read_text().splitlines() == ["type,uuid,z,x,y", "FM,1,10,20,30", "TB,2,0,0,0", "SYN,3,0,0,0"]
    back = read_ctgan_labels(path)
    assert back == rows and [r.line for r in back] == [2, 3, 4]
    assert [r.has_location for r in back] == [True, False, False]
    with pytest.raises(ValueError):
        write_ctgan_labels([CTGANLabel("XX", "1")], tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()
    assert experiment_name(Path("labels_exp2.csv")) == "exp2" and experiment_name(Path("labels.csv")) == ""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("kind,uuid,z,x,y\n", "header"),
        ("type,uuid,z,x,y\nFM,1,1,2,3\nQQ,1,1,2,3\n", "line 3"),
        ("type,uuid,z,x,y\nFM,1,1.5,2,3\n", "line 2"),
        ("type,uuid,z,x,y\nFM,1,1,2\n", "line 2"),
        ("type,uuid,z,x,y\nFM,,1,2,3\n", "line 2"),
        ("type,uuid,z,x,y\nFM,1,-1,2,3\n", "line 2"),
    ],
)
def test_bad_label_rows(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "labels_exp9.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=reason) as err:
        read_ctgan_labels(path)
    assert str(path) in str(err.value)


def test_lookalike_layout(lookalike: Path) -> None:
    ds = CTGANDataset(lookalike)
    assert len(ds) == 3 and ds.duplicates == 1
    assert [(m.uuid, m.experiment) for m in ds.missing] == [("3003", "exp1")]
    assert ds.counts() == {"exp1": {"FM": 1, "TB": 1}, "exp2": {"FB": 1}}
    by_key = {(s.experiment, s.label): s for s in ds}
    fm, tb, fb = by_key["exp1", "FM"], by_key["exp1", "TB"], by_key["exp2", "FB"]
    assert fm.series_path == lookalike / "EXP1_blind" / "1001"
    assert fb.series_path == lookalike / "EXP2_open" / "1001"  # the experiment's own copy of the scan
    assert tb.location is None and tb.series_path.name == "2002"
    assert fm.location is not None and fm.location.center_voxel == (2.0, 70.0, 40.0)  # (z, y, x) from z,x,y
    assert np.isnan(fm.location.center_mm).all()
    assert len(ds.scans()) == 3


def test_sample_load_and_locate(lookalike: Path) -> None:
    fm = next(s for s in CTGANDataset(lookalike) if s.label == "FM")
    vol = fm.load()
    assert vol.shape == (4, 128, 128) and vol.modality == "CT"
    located = fm.locate(vol)
    assert located is not None and located.label == "FM"
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ipp = np.array(template.ImagePositionPatient, dtype=float)
    dr, dc = (float(v) for v in template.PixelSpacing)
    expected = ipp + np.array([40 * dc, 70 * dr, 2 * 2.5])  # axial, identity orientation
    np.testing.assert_allclose(located.center_mm, expected, atol=1e-3)
    outside = CTGANLabel("FM", "1001", 9, 40, 70)
    fm.row, fm.location = outside, type(fm.location)((9.0, 70.0, 40.0), (0.0, 0.0, 0.0))
    with pytest.raises(InputError, match="outside"):
        fm.locate(vol)


def test_missing_root_or_labels(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        CTGANDataset(tmp_path / "nope")
    with pytest.raises(InputError, match="label file"):
        CTGANDataset(tmp_path)


@pytest.mark.shared
def test_real_label_files(shared_data: Path, tmp_path: Path) -> None:
    files = sorted((shared_data / "ctgan-labels").glob("labels_exp*.csv"))
    counts = {experiment_name(f): Counter(r.type for r in read_ctgan_labels(f)) for f in files}
    assert counts == {
        "exp1": {"FB": 61, "FM": 34, "TM": 23, "TB": 15},
        "exp2": {"TM": 12, "FB": 11, "FM": 7, "TB": 6},
    }
    for f in files:
        assert all(r.has_location == (r.type != "TB") for r in read_ctgan_labels(f))
    ds = CTGANDataset(tmp_path, label_files=files)
    assert ds.duplicates == 6  # TB rows repeated: 1779 x4 and 2104 x3 in exp1, 1610 x2 in exp2
    assert len(ds) == 0 and len(ds.missing) == 133 + 36 - 6  # the scans are not available offline
    assert Counter((m.experiment, m.uuid) for m in ds.missing)[("exp1", "2997")] == 5


def test_forge_sidecar_masks_are_not_taken_for_scans(tmp_path: Path) -> None:
    """A forge data set keeps ``masks/<uuid>.nii.gz`` beside ``scans/<uuid>/``: only the scan is indexed."""
    uid = "0a1b2c3d-0000-4000-8000-000000000001"
    (tmp_path / "scans" / uid).mkdir(parents=True)
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / f"{uid}.nii.gz").write_bytes(b"not a scan")
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / f"{uid}.nii").write_bytes(b"not a scan")
    found = index_scans(tmp_path, {uid})
    assert found == {uid: [tmp_path / "scans" / uid]}
