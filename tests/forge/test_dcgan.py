"""DCGAN synthesis: tiny variant trains and generates; bundled weights load; the SYN attack works."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medforensics.errors import ConfigError, InputError
from medforensics.forge import dcgan as D
from medforensics.forge.dcgan_data import CropSampler, TrainingImages, ct_unwindow, ct_window
from medforensics.io.volume import Volume


def _tiny_data() -> TrainingImages:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ds = dcmread(str(get_testdata_file("CT_small.dcm")))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return TrainingImages([ct_window(hu)], ["pydicom CT_small.dcm"], flips=False, max_rotation_deg=5.0)


def test_tiny_variant_trains_one_step_and_generates() -> None:
    cfg = D.VARIANTS["test_dcgan"]
    g, d = D.build_dcgan(cfg, seed=0)
    sampler = CropSampler(_tiny_data(), cfg.size)
    gen = torch.Generator().manual_seed(0)
    before = [p.detach().clone() for p in g.parameters()]
    dl, gl, _ = D.train_steps(g, d, sampler, 1, batch_size=4, gen=gen)
    assert len(dl) == len(gl) == 1 and np.isfinite(dl[0]) and np.isfinite(gl[0])
    assert any(not torch.equal(a, b) for a, b in zip(before, g.parameters(), strict=True))
    imgs = D.generate(g, 3, seed=1)
    assert imgs.shape == (3, cfg.size, cfg.size) and imgs.min() >= -1 and imgs.max() <= 1
    np.testing.assert_array_equal(imgs, D.generate(g, 3, seed=1))


def test_crop_sampler_shape_range_and_determinism() -> None:
    sampler = CropSampler(_tiny_data(), 16)
    a = sampler.sample(5, torch.Generator().manual_seed(3))
    b = sampler.sample(5, torch.Generator().manual_seed(3))
    assert a.shape == (5, 1, 16, 16) and torch.equal(a, b)
    assert float(a.min()) >= -1 and float(a.max()) <= 1 and float(a.std()) > 0.05


def test_train_dcgan_writes_weights_and_record(tmp_path: Path) -> None:
    out = tmp_path / "tiny.safetensors"
    rec = D.train_dcgan(
        "ct", out, epochs=1, samples_per_epoch=8, batch_size=4, variant="test_dcgan", data=_tiny_data()
    )
    assert out.is_file() and rec["steps"] == 2
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["modality"] == "ct" and saved["hyperparameters"]["lr"] == 2e-4
    assert saved["data"]["sources"] == ["pydicom CT_small.dcm"] and len(saved["weights_sha256"]) == 64
    g = D.load_generator(out)
    assert D.generate(g, 2, seed=0).shape == (2, 16, 16)


@pytest.mark.parametrize("modality", ["ct", "xray", "mr"])
def test_bundled_weights_load_generate_and_are_small(modality: str) -> None:
    path = D.bundled_weights(modality)
    assert path.stat().st_size < 3_000_000
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["modality"] == modality and record["steps"] > 0 and record["seconds"] > 0
    imgs = D.generate(D.load_generator(path), 4, seed=0)
    assert imgs.shape == (4, 64, 64)
    assert float(imgs.std()) > 0.1  # not a constant image
    assert float(np.abs(imgs[0] - imgs[1]).mean()) > 0.02  # different latents, different images


def test_bad_weights_and_modality(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(InputError):
        D.load_generator(bad)
    with pytest.raises(InputError):
        D.load_generator(tmp_path / "missing.safetensors")
    with pytest.raises(ConfigError):
        D.bundled_weights("pet")
    with pytest.raises(ConfigError):
        D.DCGANConfig(size=48)


def test_ct_window_round_trip() -> None:
    hu = np.array([-1000.0, -300.0, 0.0, 400.0])
    np.testing.assert_allclose(ct_unwindow(ct_window(hu)), hu, atol=0.1)


def test_dcgan_synth_attack_replaces_slices_in_hu() -> None:
    from medforensics.forge.base import list_attacks, run_attack

    assert "dcgan-synth" in list_attacks("synthesize")
    vol = Volume(np.full((3, 40, 40), -800.0, np.float32), spacing=(2.5, 0.7, 0.7), modality="CT")
    out, mask, rec = run_attack("dcgan-synth", vol, seed=5)
    assert out.shape == vol.shape and mask.mean() > 0.9
    assert rec.label == "SYN" and rec.kind == "synthesize" and rec.params["model"] == "ct"
    assert out.array.min() >= -1000 and out.array.max() <= 400
    assert np.array_equal(out.array, np.round(out.array))  # integer HU like the source
    again, _, _ = run_attack("dcgan-synth", vol, seed=5)
    np.testing.assert_array_equal(out.array, again.array)
    assert not np.array_equal(out.array[0], out.array[2])  # slices vary along the latent path


def test_synthesize_writes_files_and_record(tmp_path: Path) -> None:
    from medforensics.forge.synthesis import synthesize_to_dir

    rec = synthesize_to_dir("xray", tmp_path / "x", n=3, seed=2)
    assert rec["format"] == "png" and len(rec["files"]) == 3 and rec["label"] == "SYN"
    assert all((tmp_path / "x" / f).is_file() for f in rec["files"])
    assert (tmp_path / "x" / "montage.png").is_file()
    saved = json.loads((tmp_path / "x" / "synthesis.json").read_text())
    assert saved["files"] == rec["files"] and saved["seed"] == 2
    rec = synthesize_to_dir("ct", tmp_path / "c", n=2, fmt="nifti", seed=2, montage=False)
    from medforensics.io.nifti import read_nifti

    vol = read_nifti(tmp_path / "c" / rec["files"][0])
    assert vol.shape == (1, 64, 64) and vol.array.min() >= -1001 and vol.array.max() <= 401
    with pytest.raises(ConfigError):
        synthesize_to_dir("ct", tmp_path / "d", n=1, fmt="jpeg")


def test_128_px_variant_generates_128_px() -> None:
    g, _ = D.build_dcgan(D.VARIANTS["dcgan-128"])
    assert D.generate(g, 1, seed=0).shape == (1, 128, 128)


def test_cli_synthesize_and_bad_modality(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medforensics.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app, ["forge", "synthesize", "--modality", "mr", "--n", "2", "--out", str(tmp_path / "m")]
    )
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "m" / "synthesis.json").read_text())
    assert rec["format"] == "dicom" and len(rec["files"]) == 2
    from medforensics.io.reader import read_volume

    vol = read_volume(tmp_path / "m" / rec["files"][0])
    assert vol.modality == "MR" and vol.shape == (1, 64, 64)
    res = runner.invoke(app, ["forge", "synthesize", "--modality", "pet", "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "pet" in res.output and not (tmp_path / "p").exists()
