"""Sample sources, cutting, task labels and patient-level splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import ConfigError
from medforensics.train.data import ArraySource, collect_splits, crop_stack, cut_sample, window


def _source(
    labels: list[str], groups: list[str] | None = None, splits: list[str] | None = None
) -> ArraySource:
    arrays = [np.full((1, 16, 16), i, np.float32) for i in range(len(labels))]
    return ArraySource(arrays, labels, groups or [f"p{i}" for i in range(len(labels))], splits)


def test_patient_level_split_never_cuts_a_patient() -> None:
    labels = ["TB", "FM", "TM", "FB"] * 10
    groups = [f"p{i // 4}" for i in range(40)]
    s = collect_splits(_source(labels, groups), "binary", 0.2, 0.2, seed=1)
    sets = [set(s[k].groups) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(len(s[k]) for k in s) == 40 and len(s["test"]) == 8 and len(s["val"]) == 8
    assert set(s["train"].y) == {0, 1}
    a = collect_splits(_source(labels, groups), "attack", seed=1)
    assert sorted(set(a["train"].y)) == [0, 1, 2]
    lab = collect_splits(_source(labels, groups), "label", seed=1)
    assert {lab["train"].labels[i]: int(lab["train"].y[i]) for i in range(len(lab["train"]))} == {
        "TB": 0,
        "TM": 1,
        "FB": 2,
        "FM": 3,
    }


def test_leave_one_attack_out_keeps_excluded_type_in_test_only() -> None:
    labels = ["TB", "FM", "FB"] * 10
    groups = [f"p{i // 3}" for i in range(30)]
    s = collect_splits(_source(labels, groups), "binary", seed=0, exclude_types=["FB"])
    assert "FB" not in s["train"].labels + s["val"].labels
    assert "FB" in s["test"].labels


@pytest.mark.parametrize(
    ("labels", "groups", "splits", "message"),
    [
        ([], None, None, "empty"),
        (["TB"] * 6, None, None, "of one class"),
        (
            ["TB", "FM", "TB", "FM"],
            ["a", "a", "b", "c"],
            ["train", "test", "val", "train"],
            "leaks a patient",
        ),
        (["SYN", "SYN", "SYN"], None, None, "no class for SYN: 3 SYN samples left out: no sample left"),
        (["TB", "XX", "TB", "FM"], None, None, r"unknown label\(s\) \['XX'\]"),
        (["TB", "FM", "TB", "FM"], None, ["train", "train", "test", "test"], "no validation"),
        (["TB", "FM", "TB"], None, ["train", "train", "holdout"], "split must be one of"),
    ],
)
def test_bad_data_sets(
    labels: list[str], groups: list[str] | None, splits: list[str] | None, message: str
) -> None:
    task = "attack" if "SYN" in labels else "binary"  # the attack task has no class for SYN
    with pytest.raises(ConfigError, match=message):
        collect_splits(_source(labels, groups, splits), task)


def test_mixed_shapes_rejected() -> None:
    src = ArraySource([np.zeros((1, 8, 8)), np.zeros((1, 9, 9))], ["TB", "FM"], ["a", "b"])
    with pytest.raises(ConfigError, match="different shapes"):
        collect_splits(src, "binary")


def test_cutting_2d_25d_3d() -> None:
    vol = np.arange(20 * 40 * 40, dtype=np.float32).reshape(20, 40, 40)
    crop = crop_stack(vol, (2.0, 0.7, 0.7), (10, 20, 20), size=8, slices=1)
    assert crop.shape == (1, 8, 8)
    np.testing.assert_array_equal(crop[0], vol[10, 16:24, 16:24] + 0.5 * 41)  # half-pixel centre: bilinear
    stack = cut_sample(vol, (2.0, 0.7, 0.7), (10, 20, 20), "2.5d", 8, slices=5)
    assert stack.shape == (5, 8, 8)
    np.testing.assert_allclose(stack[0] - stack[2], -2 * 1600)
    cube = cut_sample(vol, (2.0, 0.7, 0.7), (10, 20, 20), "3d", 16)
    assert cube.shape == (1, 16, 16, 16)
    # 1 mm steps: along z that is half a slice, along y about 1.43 rows
    dz = np.diff(cube[0, :, 8, 8]).mean()
    assert abs(dz - 0.5 * 1600) < 1
    w = window(np.array([-2000.0, -1000.0, 400.0, 900.0]), (-1000, 400))
    np.testing.assert_allclose(w, [0, 0, 1, 1])


def test_forge_layout_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Look-alike forge data set: NIfTI scans, labels.csv, splits.csv, a sidecar for the TB row."""
    import json
    import sys
    import types

    from medforensics.io.nifti import read_nifti, write_nifti

    try:
        import medforensics.io.reader  # noqa: F401
    except ImportError:  # the generic reader is not built yet: NIfTI is all this test needs
        monkeypatch.setitem(
            sys.modules, "medforensics.io.reader", types.SimpleNamespace(read_volume=read_nifti)
        )
    from medforensics.io.volume import Volume
    from medforensics.train.data import ForgeDatasetSource

    rng = np.random.default_rng(0)
    (tmp_path / "scans").mkdir()
    (tmp_path / "sidecars").mkdir()
    rows, splits = [], []
    for i, kind in enumerate(["TB", "FM", "TM", "FB"]):
        uuid = f"scan{i}"
        arr = rng.normal(-700, 50, (24, 48, 48)).astype(np.float32)
        write_nifti(
            Volume(arr, spacing=(2.0, 0.8, 0.8), modality="CT"), tmp_path / "scans" / f"{uuid}.nii.gz"
        )
        rows.append(f"{kind},{uuid},0,0,0" if kind == "TB" else f"{kind},{uuid},12,20,24")
        splits.append(f"{uuid},patient{i // 2},{'train' if i < 2 else 'val'}")
    (tmp_path / "labels.csv").write_text("type,uuid,z,x,y\n" + "\n".join(rows) + "\n")
    (tmp_path / "splits.csv").write_text("uuid,patient,split\n" + "\n".join(splits) + "\n")
    (tmp_path / "sidecars" / "scan0.json").write_text(
        json.dumps({"center_voxel": [5, 10, 10], "method": "none"})
    )
    src = ForgeDatasetSource(tmp_path, "3d", 16)
    samples = list(src)
    assert [s.label for s in samples] == ["TB", "FM", "TM", "FB"]
    assert samples[0].meta["center_voxel"] == [5.0, 10.0, 10.0]
    assert all(s.array.shape == (1, 16, 16, 16) and 0 <= s.array.min() <= s.array.max() <= 1 for s in samples)
    assert [s.meta["split"] for s in samples] == ["train", "train", "val", "val"]
    assert {s.group for s in samples} == {"patient0", "patient1"}


def _one_scan_layout(root: Path, label_row: str = "FM,s0,5,10,10") -> Path:
    """A forge-like folder with one NIfTI scan (10 x 20 x 20), its label row and a record."""
    import json

    from medforensics.io.nifti import write_nifti
    from medforensics.io.volume import Volume

    (root / "scans").mkdir(parents=True)
    (root / "records").mkdir()
    arr = np.random.default_rng(0).normal(-700, 40, (10, 20, 20)).astype(np.float32)
    write_nifti(Volume(arr, spacing=(2.0, 1.0, 1.0), modality="CT"), root / "scans" / "s0.nii.gz")
    (root / "labels.csv").write_text(f"type,uuid,z,x,y\n{label_row}\n")
    (root / "records" / "s0.json").write_text(json.dumps({"method": "blob-inject"}))
    return root


@pytest.mark.parametrize(
    "centre", [None, "abc", [1, 2], 5, {"a": 1}, [float("nan")] * 3, [True, 1, 1], ["1", 2, 3]]
)
def test_a_record_centre_that_is_not_three_numbers_names_the_record(tmp_path: Path, centre: object) -> None:
    import json

    from medforensics.errors import InputError
    from medforensics.train.data import ForgeDatasetSource

    root = _one_scan_layout(tmp_path / "ds", "TB,s0,0,0,0")
    (root / "records" / "s0.json").write_text(json.dumps({"method": "none", "center_voxel": centre}))
    with pytest.raises(InputError, match=r"s0\.json: center_voxel must be three finite numbers"):
        list(ForgeDatasetSource(root, "2d", 16))  # was a TypeError/ValueError/IndexError (internal error)


def test_rows_and_record_centres_outside_the_scan_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    from medforensics.train.data import ForgeDatasetSource

    root = _one_scan_layout(tmp_path / "ds", "FM,s0,500,10,10")
    src = ForgeDatasetSource(root, "2d", 16)
    with caplog.at_level("WARNING"):
        assert list(src) == []
    assert "skipped a FM row of scan" in caplog.text and len(src.skipped) == 1  # was silent
    (root / "labels.csv").write_text("type,uuid,z,x,y\nTB,s0,0,0,0\n")
    (root / "records" / "s0.json").write_text(json.dumps({"method": "none", "center_voxel": [1e300] * 3}))
    caplog.clear()
    src = ForgeDatasetSource(root, "2d", 16)
    with caplog.at_level("WARNING"):
        assert list(src) == []  # was an OverflowError
    assert "lies outside the scan" in caplog.text


def test_a_split_file_that_is_a_folder_is_an_error(tmp_path: Path) -> None:
    from medforensics.errors import InputError
    from medforensics.train.data import ForgeDatasetSource

    root = _one_scan_layout(tmp_path / "ds")
    (root / "splits.csv").mkdir()
    with pytest.raises(InputError, match=r"splits\.csv: is not a file"):
        ForgeDatasetSource(root, "2d", 16)  # was ignored: every sample scored as test
