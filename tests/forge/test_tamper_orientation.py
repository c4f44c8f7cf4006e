"""``forge inject|remove`` on a series stored in another order than axial head-first supine (coronal,
sagittal, prone, feet first): the attack works on the axial view and the result, the mask and the ground
truth come back in the series' own order, so one seed forges the same voxels whatever the storage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import InputError
from medforensics.forge.tamper import tamper_series
from medforensics.io.dicom_write import write_dicom_series
from medforensics.io.reader import read_volume
from medforensics.io.volume import Volume
from tests.forge._ctdata import chest_ct, ct_crop  # noqa: F401

#: (axes, flipped) of a stored layout relative to the axial one: view axis t is stored axis axes[t].
LAYOUTS = {
    "coronal": ((1, 0, 2), (False, False, False)),  # slices along y, rows head to feet reversed below
    "prone_feet_first": ((0, 1, 2), (True, True, False)),
    "sagittal": ((2, 0, 1), (False, True, False)),
}


def _stored(vol: Volume, axes: tuple[int, int, int], flips: tuple[bool, ...]) -> Volume:
    """The same anatomy with its array axes permuted and reversed, the patient mapping unchanged."""
    arr = vol.array.transpose(axes)[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    first = np.zeros(3)
    for axis, flip in zip(axes, flips, strict=True):
        first[axis] = vol.shape[axis] - 1 if flip else 0
    direction = np.stack([vol.direction[:, axes[t]] * (-1.0 if flips[t] else 1.0) for t in range(3)], axis=1)
    spacing = tuple(vol.spacing[a] for a in axes)
    origin = tuple(float(v) for v in vol.index_to_patient(first))
    return Volume(np.ascontiguousarray(arr), spacing, origin, direction, modality="CT")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def axial(ct_crop: Volume, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("axial") / "s"
    write_dicom_series(ct_crop, out)
    return out


def _forge(
    src: Path, out: Path, kind: str, method: str, center: tuple[int, int, int] | None
) -> tuple[Volume, dict]:
    tamper_series(src, out, kind, center, method, seed=3)
    return read_volume(out / "series", whole=True), json.loads((out / "forgery.json").read_text())


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize(
    ("kind", "method", "pinned"),
    [("inject", "blob-inject", False), ("remove", "inpaint-remove", True)],
)
def test_a_reformatted_series_is_forged_as_its_axial_view(
    ct_crop: Volume,  # noqa: F811
    axial: Path,
    tmp_path: Path,
    layout: str,
    kind: str,
    method: str,
    pinned: bool,
) -> None:
    axes, flips = LAYOUTS[layout]
    stored = _stored(ct_crop, axes, flips)
    src = tmp_path / layout
    write_dicom_series(stored, src)
    orig = read_volume(src, whole=True)
    base_centre = other_centre = None
    if pinned:  # the same point of the patient, as a voxel of each series
        point = ct_crop.index_to_patient((10, 60, 50))
        base_centre = tuple(int(v) for v in np.rint(ct_crop.patient_to_index(point)))
        other_centre = tuple(int(v) for v in np.rint(orig.patient_to_index(point)))
    ref, ref_side = _forge(axial, tmp_path / "ref", kind, method, base_centre)  # type: ignore[arg-type]
    got, side = _forge(src, tmp_path / "got", kind, method, other_centre)  # type: ignore[arg-type]
    assert got.shape == orig.shape and np.allclose(got.direction, orig.direction)
    assert not orig.axial_axes().is_identity
    # the same forged voxels, in the series' own order
    np.testing.assert_array_equal(replace(got, datasets=[]).reoriented_axial().array, ref.array)
    # truth: the same patient point, the series' own voxel of it, the box holding every changed voxel
    assert side["center_mm"] == pytest.approx(ref_side["center_mm"], abs=1e-3)
    assert np.allclose(orig.index_to_patient(side["center_voxel"]), side["center_mm"], atol=1e-3)
    assert side["params"]["center"] == side["center_voxel"]
    changed = np.argwhere(got.array != orig.array)
    assert list(changed.min(0)) + list(changed.max(0) + 1) == side["bbox_voxel"]
    assert side["changed_voxels"] == ref_side["changed_voxels"] == len(changed)
    amap = orig.axial_axes()
    assert side["attacked_as"] == {"axes": list(amap.axes), "flipped": list(amap.flipped)}
    from medforensics.io.nifti import read_nifti

    mask = read_nifti(tmp_path / "got" / "mask.nii.gz")
    assert int(mask.array.sum()) == len(changed)


def test_a_centre_outside_a_reformatted_series_names_its_own_shape(ct_crop: Volume, tmp_path: Path) -> None:  # noqa: F811
    stored = _stored(ct_crop, *LAYOUTS["coronal"])
    src = tmp_path / "cor"
    write_dicom_series(stored, src)
    with pytest.raises(InputError, match=r"outside the volume of shape \(128, 20, 171\)"):
        tamper_series(src, tmp_path / "o", "inject", (5, 60, 50), "blob-inject")
    with pytest.raises(InputError, match=r"too close to the border .* axial view: z = series axis 1"):
        tamper_series(src, tmp_path / "o", "inject", (60, 0, 50), "blob-inject")
    assert not (tmp_path / "o").exists()
