"""Realism report on a tiny data set: montage, histograms, JSON/Markdown with AUCs in [0, 1]."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import InputError
from medforensics.forge.realism import FEATURES, realism_report, region_features
from tests.forge._tiny_ct import shared_tiny_dataset


def test_report_on_tiny_dataset(tmp_path: Path) -> None:
    from PIL import Image

    data, _ = shared_tiny_dataset()
    out = tmp_path / "report"
    summary = realism_report(data, out)
    for name in ("montage.png", "hu_histograms.png", "realism.json", "realism.md"):
        assert (out / name).is_file(), name
    with Image.open(out / "montage.png") as im:
        assert im.width > 300 and im.height > 300
    saved = json.loads((out / "realism.json").read_text())
    assert saved["auc_per_method"] == summary["auc_per_method"]
    aucs = summary["auc_per_method"]
    assert "all" in aucs and any(k.startswith("FM:") for k in aucs) and any(k.startswith("FB:") for k in aucs)
    for k, v in aucs.items():
        assert v is not None and 0.0 <= v <= 1.0, k
    for k, det in summary["detector"].items():
        if k != "all":
            assert det["auc_matched"] is None or 0.0 <= det["auc_matched"] <= 1.0, k
    assert "real (TM)" in summary["hu_core"]
    assert "| method |" in (out / "realism.md").read_text()


def test_region_features_respond_to_texture() -> None:
    rng = np.random.default_rng(0)
    smooth = np.full((8, 20, 20), -800.0) + rng.normal(0, 5, (8, 20, 20))
    rough = np.full((8, 20, 20), -800.0) + rng.normal(0, 60, (8, 20, 20))
    fs, fr = region_features(smooth, (2.5, 0.7, 0.7)), region_features(rough, (2.5, 0.7, 0.7))
    assert fs.shape == (len(FEATURES),) and np.all(np.isfinite(fs))
    i = FEATURES.index("highpass_std")
    assert fr[i] > 5 * fs[i]


def test_rank_auc_matches_sklearn_and_ci_brackets_it() -> None:
    from sklearn.metrics import roc_auc_score

    from medforensics.forge.realism import auc_with_ci

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    prob = np.round(rng.random(60) + 0.3 * y, 1)  # ties on purpose
    auc, (lo, hi) = auc_with_ci(y, prob, seed=0)
    assert auc == pytest.approx(roc_auc_score(y, prob), abs=1e-12)
    assert lo < auc < hi and lo >= 0.0 and hi <= 1.0


def test_report_rejects_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        realism_report(tmp_path, tmp_path / "out")


def _manifest_edit(data: Path, tmp_path: Path, edit: str) -> Path:
    """A copy of the tiny data set whose manifest.csv is broken in one way (the first row, so the error
    comes before any scan past it is read)."""
    import csv
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(data, copy)
    path = copy / "manifest.csv"
    if edit == "columns":
        path.write_text("a,b\n1,2\n")
    elif edit == "binary":
        path.write_bytes(b"\xff\xfe" + path.read_bytes())
    else:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        tm = next(r for r in rows if r["type"] == "TM")
        rows.remove(tm)
        key, value = edit.split("=", 1)
        tm[key] = value
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(tm))
            w.writeheader()
            w.writerows([tm, *rows])
    return copy


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("columns", "no column uuid"),  # was KeyError
        ("binary", "not a readable manifest"),  # was UnicodeDecodeError
        ("z=abc", "row 1"),  # was ValueError
        ("z=99999", "outside the scan"),  # was IndexError
        ("z=-5", "outside the scan"),  # silently wrapped to the other end of the scan
        ("augmentation={not json", "row 1"),  # was JSONDecodeError
        ("augmentation=[1]", "row 1"),
        ("uuid=../../../fx/lidc1", "is not a scan name"),  # was ValueError from scan_path
    ],
)
def test_broken_manifest_is_one_input_error_naming_it(tmp_path: Path, edit: str, message: str) -> None:
    data, _ = shared_tiny_dataset()
    copy = _manifest_edit(data, tmp_path, edit)
    with pytest.raises(InputError, match=message) as err:
        realism_report(copy, tmp_path / "out")
    assert err.value.path == str(copy / "manifest.csv")
    assert not (tmp_path / "out").exists()
