"""``medforensics data ...`` through the CLI: exit codes, one-line errors, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from medforensics.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFORENSICS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDFORENSICS_SHARED_DATA", "")


def test_list_json_has_pydicom_sample() -> None:
    result = runner.invoke(app, ["data", "list", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    by_name = {e["name"]: e for e in payload["entries"]}
    assert by_name["pydicom:CT_small"]["shape"] == [1, 128, 128]
    assert by_name["pydicom:CT_small"]["modality"] == "CT"
    assert payload["skipped"] == []


def test_list_table() -> None:
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    assert "pydicom:CT_small" in result.stdout
    assert "128×128" in result.stdout


def test_show_writes_png(tmp_path: Path) -> None:
    out = tmp_path / "ct.png"
    result = runner.invoke(app, ["data", "show", "pydicom:CT_small", "--out", str(out), "--window", "40,400"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.width == 512  # 128 px enlarged 4x
        assert img.height > 512


def test_show_unknown_name_is_one_line_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "show", "pydicom:CT_smal", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: pydicom:CT_smal: unknown sample")
    assert "pydicom:CT_small" in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_show_bad_window_and_slice_exit_2(tmp_path: Path) -> None:
    out = str(tmp_path / "x.png")
    bad_window = runner.invoke(app, ["data", "show", "pydicom:CT_small", "-o", out, "--window", "sideways"])
    assert bad_window.exit_code == 2
    assert "unknown window" in bad_window.stderr
    bad_slice = runner.invoke(app, ["data", "show", "pydicom:CT_small", "--out", out, "--slice", "5"])
    assert bad_slice.exit_code == 2
    assert "slice 5 outside 0..0" in bad_slice.stderr


def test_register_list_unregister(tmp_path: Path) -> None:
    import shutil

    from pydicom.data import get_testdata_file

    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(str(get_testdata_file("MR_small.dcm", download=False)), folder / "mr.dcm")
    (folder / "junk.dcm").write_bytes(b"not dicom at all")
    assert runner.invoke(app, ["data", "register", str(folder), "--name", "study"]).exit_code == 0
    listed = runner.invoke(app, ["data", "list", "--json"])
    assert listed.exit_code == 0
    payload = json.loads(listed.stdout)
    assert [e["name"] for e in payload["entries"] if e["source"] == "user"]
    assert any(Path(s["path"]).name == "junk.dcm" for s in payload["skipped"])
    table = runner.invoke(app, ["data", "list"])
    assert "junk.dcm" in table.stdout and "skipped 1" in table.stdout
    assert runner.invoke(app, ["data", "unregister", "study"]).exit_code == 0
    again = runner.invoke(app, ["data", "unregister", "study"])
    assert again.exit_code == 2 and "no registered folder" in again.stderr


def test_register_missing_folder_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "register", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope'}: not a folder"


@pytest.mark.parametrize("kind", ["png", "dcm", "nifti"])
def test_show_never_writes_over_the_sample_it_shows(tmp_path: Path, kind: str) -> None:
    """A fuzz (session 25): ``data show SAMPLE --out <the sample's own file>`` replaced it by the PNG."""
    import shutil

    import numpy as np
    from pydicom.data import get_testdata_file

    from medforensics.io.nifti import write_nifti
    from medforensics.io.volume import Volume

    folder = tmp_path / "study"
    folder.mkdir()
    if kind == "dcm":
        shutil.copy(str(get_testdata_file("CT_small.dcm", download=False)), folder / "ct.dcm")
    elif kind == "png":
        Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8)).save(
            folder / "cxr.png"
        )
    else:
        write_nifti(Volume(np.zeros((4, 16, 16), np.float32) - 500, modality="CT"), folder / "ct.nii.gz")
    (sample,) = list(folder.iterdir())
    before = sample.read_bytes()
    assert runner.invoke(app, ["data", "register", str(folder), "--name", "study"]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["data", "list", "--json"]).stdout)
    (name,) = [e["name"] for e in listed["entries"] if e["source"] == "user"]
    res = runner.invoke(app, ["data", "show", name, "--out", str(sample)])
    assert res.exit_code == 2 and "overwrite the input" in res.stderr, res.output
    assert sample.read_bytes() == before
    assert runner.invoke(app, ["data", "show", name, "--out", str(tmp_path / "shown.png")]).exit_code == 0
