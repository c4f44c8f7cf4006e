from __future__ import annotations

import numpy as np
import pytest
import torch

from medforensics.errors import ConfigError
from medforensics.explain.heatmap import explain, last_conv_layer, resample_to_box
from medforensics.models import create_model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("test_cnn3d", num_classes=3).eval()


@pytest.mark.parametrize("method", ["gradcam", "occlusion"])
def test_heatmap_shape_and_range(model: torch.nn.Module, method: str) -> None:
    x = np.random.default_rng(0).random((1, 16, 16, 16)).astype(np.float32)
    x[:, 6:10, 6:10, 6:10] = 1.0
    h = explain(model, x, class_idx=1, method=method)
    assert h.shape == (16, 16, 16) and h.dtype == np.float32
    assert h.min() >= 0.0 and h.max() <= 1.0 and h.max() > h.min()


def test_gradcam_target_is_the_last_conv_block(model: torch.nn.Module) -> None:
    name = last_conv_layer(model)
    assert name.startswith("net.features")
    with pytest.raises(ConfigError):
        last_conv_layer(torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError):
        explain(model, np.zeros((1, 16, 16, 16), np.float32), 1, method="magic")


def test_gradcam_leaves_no_hooks_and_the_same_map_each_time(model: torch.nn.Module) -> None:
    import pickle

    x = np.random.default_rng(1).random((1, 16, 16, 16)).astype(np.float32)
    count = lambda: sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())  # noqa: E731
    before = count()
    first = explain(model, x, class_idx=2, method="gradcam")
    second = explain(model, x, class_idx=2, method="gradcam")
    assert count() == before  # MONAI's GradCAM registers two hooks per call and never removes them
    np.testing.assert_array_equal(first, second)
    pickle.dumps(model)  # a hook left behind is a local function: the model could not go to a worker


def test_resample_to_box_places_the_peak() -> None:
    heat = np.zeros((16, 16, 16), np.float32)
    heat[12, 3, 8] = 1.0  # cube voxel (12, 3, 8): index = centre + (c - 7.5) * step
    centre, step = (20.0, 50.0, 60.0), (0.5, 1.0, 1.0)
    box = (15, 40, 50, 26, 60, 70)
    out = resample_to_box(heat, centre, step, box)
    assert out.shape == (11, 20, 20)
    peak = np.unravel_index(int(np.argmax(out)), out.shape)
    expect = (20 + (12 - 7.5) * 0.5 - 15, 50 + (3 - 7.5) - 40, 60 + (8 - 7.5) - 50)
    assert np.allclose(peak, expect, atol=1.0)
