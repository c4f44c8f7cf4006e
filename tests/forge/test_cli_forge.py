"""``medforensics forge inject|remove|list`` on small real CT series (DICOM and NIfTI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from medforensics.cli import app
from medforensics.io.volume import Volume
from tests.forge._ctdata import chest_ct, ct_crop, dicom_series  # noqa: F401

runner = CliRunner()
CENTER = "6,65,45"  # right lung of the DICOM test series


def _run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["forge", *args])
    return res.exit_code, res.output  # stdout and stderr together


def _read_dir(folder: Path) -> dict[str, pydicom.Dataset]:
    dss = [pydicom.dcmread(p) for p in folder.iterdir()]
    return {str(d.SOPInstanceUID): d for d in dss}


def test_list() -> None:
    code, out = _run("list")
    assert code == 0 and "inject (FM):" in out and "copy-move" in out and "inpaint-remove" in out


def test_inject_dicom_as_attacker(dicom_series: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "fake"
    code, text = _run(
        "inject",
        "--input",
        str(dicom_series),
        "--center",
        CENTER,
        "--method",
        "blob-inject",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert code == 0, text
    side = json.loads((out / "forgery.json").read_text())
    assert side["method"] == "blob-inject" and side["label"] == "FM" and side["seed"] == 3
    assert side["center_voxel"] == [6, 65, 45] and len(side["center_mm"]) == 3 and side["input"]["sha256"]
    src, dst = _read_dir(dicom_series), _read_dir(out / side["series_folder"])
    assert src.keys() == dst.keys()  # same SOP Instance UIDs
    changed = 0
    for uid, a in src.items():
        b = dst[uid]
        assert b.SeriesInstanceUID == a.SeriesInstanceUID and b.StudyInstanceUID == a.StudyInstanceUID
        assert b.ImagePositionPatient == a.ImagePositionPatient and b.PatientName == a.PatientName
        changed += int((b.pixel_array != a.pixel_array).sum())
    import nibabel as nib

    mask = np.asarray(nib.load(out / "mask.nii.gz").dataobj)
    assert changed == side["changed_voxels"] == int(mask.sum()) > 0


def test_remove_auto_needs_annotations(dicom_series: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "o"
    code, text = _run(
        "remove",
        "--input",
        str(dicom_series),
        "--center",
        "auto",
        "--method",
        "inpaint-remove",
        "--out",
        str(out),
    )
    assert code == 2 and "annotations" in text and not out.exists()


@pytest.mark.parametrize(
    ("center", "message"),
    [("6,65,500", "outside"), ("6,65,1", "axis x"), ("0,65,45", "axis z"), ("1,2", "three integers")],
)
def test_bad_center_writes_nothing(dicom_series: Path, tmp_path: Path, center: str, message: str) -> None:  # noqa: F811
    out = tmp_path / "o"
    code, text = _run(
        "inject",
        "--input",
        str(dicom_series),
        "--center",
        center,
        "--method",
        "blob-inject",
        "--out",
        str(out),
    )
    assert code == 2 and message in text and len(text.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_non_ct_and_bad_method(tmp_path: Path, dicom_series: Path) -> None:  # noqa: F811
    from pydicom.data import get_testdata_file

    mr = Path(get_testdata_file("MR_small.dcm"))
    code, text = _run(
        "inject",
        "--input",
        str(mr),
        "--center",
        "auto",
        "--method",
        "blob-inject",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "CT" in text and not (tmp_path / "o").exists()
    code, text = _run(
        "remove", "--input", str(dicom_series), "--method", "blob-inject", "--out", str(tmp_path / "o")
    )
    assert code == 2 and "not a remove attack" in text
    out = str(tmp_path / "o")
    code, text = _run("inject", "--input", str(dicom_series), "--method", "nope", "--out", out)
    assert code == 2 and "'nope' is not an inject attack; known: blob-inject" in text


def test_nifti_in_nifti_out(ct_crop: Volume, tmp_path: Path) -> None:  # noqa: F811
    from medforensics.io.nifti import read_nifti, write_nifti

    src = tmp_path / "ct.nii.gz"
    write_nifti(ct_crop, src)
    out = tmp_path / "fake"
    code, text = _run(
        "inject", "--input", str(src), "--center", "10,60,50", "--method", "blob-inject", "--out", str(out)
    )
    assert code == 0, text
    fake, orig = read_nifti(out / "ct.nii.gz"), read_nifti(src)
    mask = read_nifti(out / "mask.nii.gz").array > 0
    np.testing.assert_array_equal(mask, fake.array != orig.array)
    np.testing.assert_allclose(fake.affine, orig.affine)


def test_auto_center_inject_and_default_ctgan(dicom_series: Path, tmp_path: Path) -> None:  # noqa: F811
    code, text = _run("inject", "--input", str(dicom_series), "--out", str(tmp_path / "a"), "--seed", "1")
    assert code == 0, text
    side = json.loads((tmp_path / "a" / "forgery.json").read_text())
    assert side["method"] == "ctgan-inject" and side["params"]["model"].startswith(
        "ctgan-inject.safetensors@"
    )
    z, y, x = side["center_voxel"]
    z0, y0, x0, z1, y1, x1 = side["bbox_voxel"]
    assert z0 <= z < z1 and y0 <= y < y1 and x0 <= x < x1


def test_train_gan_bad_kind(tmp_path: Path) -> None:
    code, text = _run("train-gan", "--kind", "paint", "--out", str(tmp_path / "w.safetensors"), "--tiny")
    assert code == 2 and "inject or remove" in text and not list(tmp_path.iterdir())


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["the input", "above the input", "inside the input", "a full folder"])
def test_out_that_would_destroy_data_is_refused_before_any_work(
    dicom_series: Path,  # noqa: F811
    tmp_path: Path,
    where: str,
) -> None:
    import shutil

    src = tmp_path / "in" / "series"
    shutil.copytree(dicom_series, src)
    (tmp_path / "in" / "notes.txt").write_text("keep me")
    full = tmp_path / "other"
    full.mkdir()
    (full / "unrelated.txt").write_text("keep me too")
    out = {
        "the input": src,
        "above the input": tmp_path / "in",
        "inside the input": src / "forged",
        "a full folder": full,
    }[where]
    before = _tree(tmp_path)
    code, text = _run("inject", "--input", str(src), "--center", CENTER, "--out", str(out))
    assert code == 2 and "Traceback" not in text and str(out) in text
    assert _tree(tmp_path) == before  # nothing deleted, nothing written


def test_a_rerun_may_replace_its_own_output_and_a_negative_seed_is_refused(
    dicom_series: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "fake"
    args = ["inject", "--input", str(dicom_series), "--center", CENTER, "--method", "blob-inject"]
    assert _run(*args, "--out", str(out))[0] == 0
    assert _run(*args, "--out", str(out), "--seed", "1")[0] == 0  # holds forgery.json: its own output
    code, text = _run(*args, "--out", str(tmp_path / "neg"), "--seed", "-1")
    assert code == 2 and "--seed must be 0 or more" in text and not (tmp_path / "neg").exists()


def test_a_broken_slice_in_the_input_folder_is_named_not_left_out(
    dicom_series: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    import shutil

    src = tmp_path / "series"
    shutil.copytree(dicom_series, src)
    victim = sorted(src.glob("*"))[0]
    victim.write_bytes(b"")  # was skipped: the forgery had one slice fewer
    code, text = _run("inject", "--input", str(src), "--center", CENTER, "--out", str(tmp_path / "o"))
    assert code == 2 and victim.name in text and "would lack this slice" in text


@pytest.mark.parametrize(
    "uid, kept",
    [
        (pydicom.uid.JPEGLSLossless, True),
        (pydicom.uid.DeflatedExplicitVRLittleEndian, True),
        (pydicom.uid.JPEG2000, False),  # lossy: not compressed a second time
    ],
)
def test_a_compressed_series_is_forged_in_its_own_lossless_syntax_or_said_decompressed(
    dicom_series: Path,  # noqa: F811
    tmp_path: Path,
    uid: str,
    kept: bool,
) -> None:
    # the forgery was always written uncompressed, and neither forgery.json nor the command said so
    import warnings

    src = tmp_path / "src"
    src.mkdir()
    for f in sorted(dicom_series.iterdir()):
        ds = pydicom.dcmread(f)
        if uid == pydicom.uid.DeflatedExplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = uid
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.compress(
                    uid,
                    generate_instance_uid=False,
                    **({"j2k_cr": [10]} if uid == pydicom.uid.JPEG2000 else {}),
                )
        ds.save_as(src / f.name, enforce_file_format=True)
    out = tmp_path / "fake"
    code, text = _run(
        "inject", "--input", str(src), "--center", CENTER, "--method", "blob-inject", "--out", str(out)
    )
    assert code == 0, text
    side = json.loads((out / "forgery.json").read_text())
    written = [pydicom.dcmread(out / "series" / n) for n in side["files"]]
    syntax = {str(d.file_meta.TransferSyntaxUID) for d in written}
    assert syntax == ({uid} if kept else {pydicom.uid.ExplicitVRLittleEndian})
    assert side["transfer_syntax"]["input"] == uid and side["transfer_syntax"]["output"] == syntax.pop()
    assert ("written uncompressed" in text) == (not kept) and ("note" in side["transfer_syntax"]) == (
        not kept
    )
    before = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(f) for f in src.iterdir())}
    changed = sum(
        not np.array_equal(d.pixel_array, before[str(d.SOPInstanceUID)].pixel_array) for d in written
    )
    assert 0 < changed < len(written)  # pixels decode, and only the slices around the blob changed


def test_noise_z_matched_is_recorded_and_refused_where_no_noise_is_matched(
    dicom_series: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``--noise-z matched`` reaches the attack (recorded in forgery.json's params); a bad value, or an
    attack without a noise touch-up, is a one-line error (exit 2) before anything is written."""
    out = tmp_path / "matched"
    code, text = _run(
        "remove", "--input", str(dicom_series), "--center", CENTER, "--method", "inpaint-remove",
        "--noise-z", "matched", "--out", str(out),
    )  # fmt: skip
    assert code == 0, text
    params = json.loads((out / "forgery.json").read_text())["params"]
    assert (params["noise_plane"], params["noise_z"]) == ("slice", "matched")
    for method, z, message in (
        ("inpaint-remove", "along", "noise_z must be one of"),
        ("clone-remove", "matched", "adds no noise"),
    ):
        bad = tmp_path / f"bad-{method}-{z}"
        code, text = _run(
            "remove", "--input", str(dicom_series), "--center", CENTER, "--method", method,
            "--noise-z", z, "--out", str(bad),
        )  # fmt: skip
        assert code == 2 and message in text and len(text.strip().splitlines()) == 1, text
        assert not bad.exists()


def test_image_clone_forges_a_radiograph_file_and_a_ct_slice(tmp_path: Path, dicom_series: Path) -> None:  # noqa: F811
    """``forge remove --method image-clone`` on a real CR (a crop of pydicom-data's chest CR): one file out,
    the same UIDs, only the pixels of the recorded disc changed. On a CT series one slice is edited the same
    way, within the patient's body; every other slice and every UID is kept."""
    from medforensics.forge.lung import body_mask
    from tests.io._radiographs import rg1_pixels, write_radiographs

    (src,) = write_radiographs(tmp_path / "cr", [rg1_pixels()[700:1300, 600:1200]])
    before = src.read_bytes()
    out = tmp_path / "forged"
    code, text = _run(
        "remove", "--input", str(src), "--method", "image-clone", "--seed", "2", "--out", str(out)
    )
    assert code == 0, text
    assert src.read_bytes() == before  # the input is not modified
    side = json.loads((out / "forgery.json").read_text())
    assert side["method"] == "image-clone" and side["label"] == "FB" and side["changed_voxels"] > 0
    (written,) = (out / "series").iterdir()
    a, b = pydicom.dcmread(src), pydicom.dcmread(written)
    assert a.SOPInstanceUID == b.SOPInstanceUID and a.SeriesInstanceUID == b.SeriesInstanceUID
    changed = np.argwhere(a.pixel_array != b.pixel_array)
    _, y, x = side["center_voxel"]
    r = side["params"]["radius_px"]
    assert len(changed) == side["changed_voxels"] and np.hypot(*(changed + 0.5 - [y, x]).T).max() <= r
    ct_out = tmp_path / "ct"
    code, text = _run("remove", "--input", str(dicom_series), "--method", "image-clone", "--out", str(ct_out))
    assert code == 0, text
    side = json.loads((ct_out / "forgery.json").read_text())
    r = side["params"]["radius_px"]
    forged = {d.SOPInstanceUID: d for d in map(pydicom.dcmread, (ct_out / "series").iterdir())}
    edited = []
    for f in sorted(dicom_series.iterdir()):
        a = pydicom.dcmread(f)
        b = forged.pop(a.SOPInstanceUID)  # every instance kept, with its UIDs
        assert a.SeriesInstanceUID == b.SeriesInstanceUID
        if not np.array_equal(a.pixel_array, b.pixel_array):
            edited.append(
                a.pixel_array.astype(np.float32) * float(a.RescaleSlope) + float(a.RescaleIntercept)
            )
    assert not forged and len(edited) == 1
    body = body_mask(edited[0])
    for _, y, x in (side["params"]["center"], side["params"]["donor_center"]):
        assert body[y - r : y + r, x - r : x + r].all()


def test_image_clone_on_a_png_writes_a_png(tmp_path: Path) -> None:
    """A 16-bit PNG radiograph in, a 16-bit PNG of the same name out beside forgery.json, differing from the
    input exactly in the recorded voxels."""
    from PIL import Image

    from tests.io._radiographs import rg1_pixels

    src = tmp_path / "chest.png"
    Image.fromarray(rg1_pixels()[700:1300, 600:1200]).save(src)
    out = tmp_path / "forged"
    code, text = _run(
        "remove", "--input", str(src), "--method", "image-clone", "--seed", "4", "--out", str(out)
    )
    assert code == 0, text
    side = json.loads((out / "forgery.json").read_text())
    assert side["series_folder"] == "." and side["files"] == ["chest.png"] and "transfer_syntax" not in side
    a, b = np.asarray(Image.open(src)), np.asarray(Image.open(out / "chest.png"))
    assert a.dtype == b.dtype == np.uint16 and a.shape == b.shape
    assert int((a != b).sum()) == side["changed_voxels"] > 0
