"""Lesions from a label map: one nodule per connected component, on the image's grid only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medforensics.errors import InputError
from medforensics.forge.dataset_sources import load_source, nodule_sites
from medforensics.io.datasets import label_map_beside, label_map_nodules


def _write(arr: np.ndarray, path: Path, spacing: tuple[float, float, float] = (0.8, 0.8, 2.0)) -> Path:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)  # x, y, z
    img.SetOrigin((-100.0, -50.0, 20.0))
    sitk.WriteImage(img, str(path), useCompression=True)
    return path


def _ct_and_labels(tmp_path: Path) -> tuple[Path, np.ndarray]:
    ct = np.full((20, 64, 64), -800, np.int16)
    z, y, x = np.ogrid[:20, :64, :64]
    big = ((z - 10) * 2.0) ** 2 + ((y - 20) * 0.8) ** 2 + ((x - 20) * 0.8) ** 2 <= 8.0**2  # 16 mm
    small = ((z - 5) * 2.0) ** 2 + ((y - 45) * 0.8) ** 2 + ((x - 44) * 0.8) ** 2 <= 3.0**2  # 6 mm
    ct[big | small] = 40
    ct[:, :, :3] = 400  # bone, so that the values read as CT
    _write(ct, tmp_path / "ct.nrrd")
    return _write((big | small).astype(np.uint8), tmp_path / "ct_label.nrrd"), ct


def test_components_are_nodules(tmp_path: Path) -> None:
    labels, _ = _ct_and_labels(tmp_path)
    src = load_source(tmp_path / "ct.nrrd", name="t", label_map=labels)
    found = sorted(src.nodules, key=lambda n: n.center_voxel[0])
    assert [tuple(round(c) for c in n.center_voxel) for n in found] == [(5, 45, 44), (10, 20, 20)]
    assert found[0].diameter_mm == pytest.approx(6.0, rel=0.2)
    assert found[1].diameter_mm == pytest.approx(16.0, rel=0.1)
    np.testing.assert_allclose(found[1].center_mm, (-100 + 20 * 0.8, -50 + 20 * 0.8, 20 + 10 * 2.0))
    assert nodule_sites(src, max_mm=10.0) == [(5, 45, 44)]  # only the small one may be removed


def test_label_map_on_another_grid_is_an_error(tmp_path: Path) -> None:
    labels, ct = _ct_and_labels(tmp_path)
    moved = _write(np.zeros_like(ct, np.uint8), tmp_path / "moved_label.nrrd", spacing=(0.8, 0.8, 2.5))
    vol = load_source(tmp_path / "ct.nrrd", name="t", label_map=labels).volume
    assert len(label_map_nodules(labels, vol)) == 2
    with pytest.raises(InputError, match=r"moved_label\.nrrd.*does not match"):
        label_map_nodules(moved, vol)


def test_label_map_beside_the_image_is_found_by_name(tmp_path: Path) -> None:
    labels, _ = _ct_and_labels(tmp_path)  # ct.nrrd + ct_label.nrrd
    assert label_map_beside(tmp_path / "ct.nrrd") == labels
    assert label_map_beside(labels) is None  # a label map has no label map
    assert len(load_source(tmp_path / "ct.nrrd", name="t").nodules) == 2  # used without being named
    (tmp_path / "ct.nrrd").rename(tmp_path / "case_image.nrrd")
    labels.rename(tmp_path / "case_label.nrrd")
    assert label_map_beside(tmp_path / "case_image.nrrd") == tmp_path / "case_label.nrrd"
    (tmp_path / "case_label.nrrd").unlink()
    assert label_map_beside(tmp_path / "case_image.nrrd") is None
    assert load_source(tmp_path / "case_image.nrrd", name="t").nodules == []


def test_image_stem_splits_known_suffixes_and_skips_label_maps() -> None:
    from medforensics.io.datasets.labelmap import image_stem

    assert image_stem("lung1_image.nrrd") == ("lung1_image", ".nrrd")
    assert image_stem("CT.NII.GZ") == ("CT", ".NII.GZ")  # the longer suffix, case kept
    assert image_stem("lung1_label.nrrd") is None and image_stem("notes.txt") is None
    assert image_stem("a.mha", (".nrrd",)) is None
