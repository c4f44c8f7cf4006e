"""The registry and every registered model: create, forward the right input kind, output shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medforensics.errors import ConfigError
from medforensics.models import FeatureModel, create_model, list_models, model_info
from medforensics.models.cnn3d import ATTACK_CLASSES, split_outputs

TEST_MODELS = list_models(include_test=True, pattern="test_*")
REAL_MODELS = list_models()


def _batch(name: str, n: int = 2, size: int | None = None) -> torch.Tensor:
    info = model_info(name)
    s = size or info.input_size
    spatial = (s, s, s) if info.input_kind == "3d" else (s, s)
    g = torch.Generator().manual_seed(0)
    return torch.rand((n, info.in_channels, *spatial), generator=g)


def test_zoo_lists_every_family_and_a_test_twin_for_each_model() -> None:
    expected = {
        "cnn",
        "cnn_25d",
        "resnet18",
        "resnet50",
        "mobilenetv2",
        "efficientnet_b0",
        "efficientnet_lite0",
        "vgg16",
        "densenet121",
        "inception_v3",
        "vit_small",
        "cnn3d",
        "svm",
        "random_forest",
        "decision_tree",
        "anomaly_gaussian",
        "anomaly_residual",
        "tamperseg3d",
    }
    assert expected <= set(REAL_MODELS)
    assert not any(n.startswith("test_") for n in REAL_MODELS)
    for name in REAL_MODELS:
        assert f"test_{name}" in TEST_MODELS
        assert model_info(f"test_{name}").input_kind == model_info(name).input_kind
    kinds = {model_info(n).input_kind for n in REAL_MODELS}
    assert kinds == {"2d", "2.5d", "3d", "features", "dense3d"}
    assert {model_info(n).family for n in REAL_MODELS} == {"cnn", "classical", "anomaly"}


@pytest.mark.parametrize(
    "name",
    [n for n in TEST_MODELS if model_info(n).family == "cnn" and model_info(n).input_kind != "dense3d"],
)
def test_tiny_cnn_forward_shape(name: str) -> None:
    info = model_info(name)
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(_batch(name, 3))
    assert out.shape == (3, info.num_classes)
    assert torch.isfinite(out).all()
    model4 = create_model(name, num_classes=4).eval()
    with torch.no_grad():
        assert model4(_batch(name, 2)).shape == (2, 4)


@pytest.mark.parametrize("name", [n for n in TEST_MODELS if model_info(n).family != "cnn"])
def test_feature_models_fit_and_predict_proba(name: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((24, 1, 32, 32)).astype(np.float32) * 0.5
    y = np.arange(24) % 2
    x[y == 1] += 0.3 * rng.random((12, 1, 32, 32)).astype(np.float32)
    model = create_model(name)
    assert isinstance(model, FeatureModel)
    p = model.fit(x, y).predict_proba(x[:5])
    assert p.shape == (5, 2)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ConfigError, match="resnet18"):
        create_model("resnet-18")
    with pytest.raises(ConfigError, match="unknown model"):
        model_info("zzzz")


def test_bad_keyword_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="keyword"):
        create_model("test_cnn", no_such_option=3)


def test_cnn3d_tamper_logit_matches_not_authentic_probability() -> None:
    model = create_model("test_cnn3d").eval()
    assert model_info("cnn3d").num_classes == len(ATTACK_CLASSES) == 3
    with torch.no_grad():
        logits = model(_batch("test_cnn3d", 4))
        tamper, probs = split_outputs(logits)
        tamper2, _ = model.predict(_batch("test_cnn3d", 4))
    assert tamper.shape == (4,) and probs.shape == (4, 3)
    torch.testing.assert_close(torch.sigmoid(tamper), 1 - probs[:, 0])
    torch.testing.assert_close(tamper, tamper2)


def test_cnn3d_takes_48_cubes() -> None:
    model = create_model("test_cnn3d").eval()
    with torch.no_grad():
        assert model(_batch("test_cnn3d", 1, size=48)).shape == (1, 3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [n for n in REAL_MODELS if model_info(n).family == "cnn" and model_info(n).input_kind != "dense3d"],
)
def test_real_models_forward_one_image_at_default_size(name: str) -> None:
    model = create_model(name).eval()
    n_params = sum(p.numel() for p in model.parameters())
    twin = sum(p.numel() for p in create_model(f"test_{name}").parameters())
    assert n_params > 10 * twin
    with torch.no_grad():
        assert model(_batch(name, 1)).shape == (1, model_info(name).num_classes)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"pretrained": "no"},
            "pretrained must be bool, got 'no'",
        ),  # was truthy: the ImageNet weights, silently
        ({"dropout": "high"}, "dropout must be float, got 'high'"),  # was a TypeError deep in the head
        ({"dropout": True}, "dropout must be float, got True"),
    ],
)
def test_model_kwargs_of_the_wrong_type_are_config_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model("test_efficientnet_lite0", **kw)


def test_model_kwargs_of_the_right_type_pass() -> None:
    create_model("test_efficientnet_lite0", pretrained=False, dropout=1)  # an int is a float
    create_model("test_cnn", dropout=0.25)


def test_every_model_module_is_imported_by_the_registry() -> None:
    """The registry imports the modules of ``MODULES`` on demand: each module of the package that registers
    a model is listed (a module left out would register nothing), and each listed one registers some."""
    from pathlib import Path

    import medforensics.models as pkg
    from medforensics.models import registry

    helpers = {"__init__", "registry", "blocks", "inference", "view_refine"}
    files = {p.stem for p in Path(pkg.__file__).parent.glob("*.py")} - helpers
    assert set(registry.MODULES) == files and len(registry.MODULES) == len(files)
    homes = {model_info(n).factory.__module__.rsplit(".", 1)[1] for n in list_models(include_test=True)}
    assert homes == files


def test_the_bundled_detectors_load_without_monai_or_scikit_learn() -> None:
    """A scan's imports and loading both bundled detectors leave MONAI and scikit-learn unimported (about
    1 s of a command's start); asking for a MONAI model imports it then."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import medforensics.scan.pipeline\n"
        "from medforensics.scan.detector import bundled_dir, load_detector\n"
        "load_detector(bundled_dir('detector')); load_detector(bundled_dir('detector2d'))\n"
        "print(sorted(m for m in ('monai', 'sklearn') if m in sys.modules))\n"
        "from medforensics.models import model_info\n"
        "model_info('densenet121')\n"
        "print('monai' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "True"]
