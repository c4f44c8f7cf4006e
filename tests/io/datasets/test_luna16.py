"""LUNA16 annotations.csv with a tiny MetaImage scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medforensics.errors import InputError
from medforensics.io.datasets.luna16 import luna16_nodules, read_luna16_annotations
from medforensics.io.metaimage import read_metaimage

UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860"


def _scan(tmp_path: Path) -> Path:
    arr = np.full((10, 32, 40), -900, np.int16)
    arr[6, 20, 12] = 60  # a one-voxel "nodule" at (z=6, y=20, x=12)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.75, 2.5))
    img.SetOrigin((-180.0, -150.0, -300.0))
    sitk.WriteImage(img, str(tmp_path / f"{UID}.mhd"))
    return tmp_path / f"{UID}.mhd"


def test_annotations_land_on_the_voxel(tmp_path: Path) -> None:
    vol = read_metaimage(_scan(tmp_path))
    x, y, z = -180.0 + 12 * 0.7, -150.0 + 20 * 0.75, -300.0 + 6 * 2.5
    csv = tmp_path / "annotations.csv"
    csv.write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm\n"
        f"{UID},{x},{y},{z},5.0\n"
        f"{UID},500.0,500.0,500.0,7.5\n"
        "\n"
        "1.2.3,1,2,3,4\n"
    )
    rows = read_luna16_annotations(csv)
    assert set(rows) == {UID, "1.2.3"} and len(rows[UID]) == 2
    nodules = luna16_nodules(vol, rows[UID])
    assert len(nodules) == 1  # the far-away one is outside the scan
    n = nodules[0]
    np.testing.assert_allclose(n.center_voxel, (6, 20, 12), atol=1e-6)
    assert vol.array[tuple(round(v) for v in n.center_voxel)] == 60
    assert n.diameter_mm == 5.0 and n.diameter_voxels == pytest.approx((2.0, 5.0 / 0.75, 5.0 / 0.7))
    assert len(luna16_nodules(vol, rows[UID], inside_only=False)) == 2


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("seriesuid,x,y,z,d\n", "header"),
        ("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2,1,2\n", "line 2"),
        ("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2,1,2,3,4\n1.2,a,2,3,4\n", "line 3"),
        ("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2,1,2,3,-4\n", "line 2"),
    ],
)
def test_bad_csv(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=reason) as err:
        read_luna16_annotations(path)
    assert str(path) in str(err.value)
