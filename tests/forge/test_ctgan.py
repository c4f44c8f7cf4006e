"""CT-GAN in-painters: tiny training runs, the attacks with trained and with the bundled weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import ConfigError
from medforensics.forge.base import create_attack, run_attack
from medforensics.forge.ctgan.attack import bundled_weights
from medforensics.forge.ctgan.model import PatchDiscriminator3D, UNet3D
from medforensics.forge.ctgan.train import train_gan
from medforensics.io.volume import Volume
from tests.forge._ctdata import chest_ct, ct_crop  # noqa: F401

CENTER = (10, 60, 50)


def test_model_shapes() -> None:
    import torch

    g, d = UNet3D(base=4, depth=2), PatchDiscriminator3D(base=4)
    x = torch.zeros(1, 3, 32, 32, 32)
    with torch.no_grad():
        y = g(x)
        assert y.shape == (1, 1, 32, 32, 32) and float(y.abs().max()) <= 1
        assert d(x, y).shape == (1, 1, 8, 8, 8)


@pytest.mark.parametrize("kind", ["inject", "remove"])
def test_tiny_training_and_attack(kind: str, tmp_path: Path, ct_crop: Volume) -> None:  # noqa: F811
    out = tmp_path / f"{kind}.safetensors"
    rec = train_gan(kind, tiny=True, epochs=1, seed=1, out=out, sources=[ct_crop])
    saved = json.loads(out.with_suffix(".json").read_text())
    assert out.is_file() and saved["epochs_run"] == 1 and saved["seed"] == 1 and saved["torch"]
    assert saved["cubes_seen"] == rec["cubes_seen"] > 0 and len(saved["losses"]) == 1
    if kind == "inject":
        assert saved["data"]["nodule_source"].startswith("parametric")
    attack = create_attack(f"ctgan-{kind}", weights=out)
    params = attack.sample_params(ct_crop, np.random.default_rng(0), center=CENTER)
    a, mask, r = attack.apply(ct_crop, params, seed=4)
    b, _, _ = attack.apply(ct_crop, params, seed=4)
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(mask, a.array != ct_crop.array)
    assert mask.any() and r.params["model"].startswith(out.name)


def test_train_rejects_bad_kind() -> None:
    with pytest.raises(ConfigError):
        train_gan("paint", tiny=True)


@pytest.mark.parametrize("kind", ["inject", "remove"])
def test_bundled_weights_small_with_record(kind: str) -> None:
    w = bundled_weights(kind)
    assert w.is_file() and w.stat().st_size < 5_000_000
    rec = json.loads(w.with_suffix(".json").read_text())
    assert rec["kind"] == kind and rec["seconds"] > 0 and rec["losses"]


def test_bundled_inject_makes_a_nodule(ct_crop: Volume) -> None:  # noqa: F811
    before = ct_crop.array.copy()
    out, mask, rec = run_attack("ctgan-inject", ct_crop, seed=0, center=CENTER)
    again, _, _ = run_attack("ctgan-inject", ct_crop, seed=0, center=CENTER)
    np.testing.assert_array_equal(out.array, again.array)
    np.testing.assert_array_equal(ct_crop.array, before)
    np.testing.assert_array_equal(mask, out.array != ct_crop.array)
    z, y, x = CENTER
    assert (
        out.array[z, y - 1 : y + 2, x - 1 : x + 2].mean()
        > before[z, y - 1 : y + 2, x - 1 : x + 2].mean() + 300
    )
    assert rec.kind == "inject" and rec.label == "FM" and out.metadata == ct_crop.metadata


def test_bundled_remove_erases_a_nodule(ct_crop: Volume) -> None:  # noqa: F811
    fake, _, rec = run_attack("blob-inject", ct_crop, seed=3, center=CENTER)
    fake.metadata = {
        **fake.metadata,
        "nodules": [{"center_voxel": CENTER, "diameter_mm": rec.params["diameter_mm"]}],
    }
    out, _mask, rec2 = run_attack("ctgan-remove", fake, seed=0)
    assert tuple(rec2.center_voxel) == CENTER and rec2.label == "FB"
    z, y, x = CENTER
    assert out.array[z, y - 1 : y + 2, x - 1 : x + 2].mean() < -500
