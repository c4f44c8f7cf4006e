"""Ensembles: averaged probabilities, members stacked from separate trainings, loaded as one folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medforensics.errors import ConfigError
from medforensics.models import create_model
from medforensics.models.ensemble import ProbabilityMean, stack_members


def _members(n: int) -> list[torch.nn.Module]:
    out = []
    for k in range(n):
        torch.manual_seed(k)
        out.append(create_model("test_cnn").eval())
    return out


def test_output_is_the_log_of_the_members_mean_probabilities() -> None:
    members = _members(3)
    x = torch.rand(5, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = torch.stack([torch.softmax(m(x), 1) for m in members]).mean(0)
        got = ProbabilityMean(members)(x)
    torch.testing.assert_close(got.exp(), want)
    torch.testing.assert_close(torch.softmax(got, 1), want)  # a softmax reads the mean unchanged


def test_one_confident_member_does_not_decide_alone() -> None:
    """Probabilities are averaged, not logits: 0.999 and three 0.1 give 0.32 (logits would give 0.85)."""

    class Fixed(torch.nn.Module):
        def __init__(self, p: float) -> None:
            super().__init__()
            self.logit = float(np.log(p / (1 - p)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[0.0, self.logit]]).expand(len(x), 2)

    ens = ProbabilityMean([Fixed(0.999), Fixed(0.1), Fixed(0.1), Fixed(0.1)])
    p = torch.softmax(ens(torch.zeros(2, 1, 4, 4)), 1)[:, 1]
    torch.testing.assert_close(p, torch.full((2,), (0.999 + 0.3) / 4))


def test_stacked_members_load_into_the_registered_ensemble() -> None:
    members = _members(2)
    ens = create_model("test_cnn_ensemble", members=2).eval()
    ens.load_state_dict(stack_members([m.state_dict() for m in members]))
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ens(x), ProbabilityMean(members)(x))


def test_members_of_other_architectures_or_counts_are_refused() -> None:
    small = create_model("test_cnn").state_dict()
    other = create_model("test_cnn", num_classes=3).state_dict()
    other = {k + "x": v for k, v in other.items()}
    with pytest.raises(ConfigError, match="member 1 has other weights"):
        stack_members([small, other])
    with pytest.raises(ConfigError, match="at least one member"):
        stack_members([])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="members must be"):
            create_model("test_cnn_ensemble", members=bad)


def test_an_ensemble_folder_loads_as_a_2d_detector(tmp_path: Path) -> None:
    """A folder naming ``test_cnn_ensemble`` with stacked weights loads through the scan's detector and
    scores as the members' mean; the weights must match the member count the config names."""
    from medforensics.scan.detector import load_detector
    from medforensics.train.checkpoint import save_tensors
    from medforensics.train.config import config_from_dict

    members = _members(2)
    cfg = config_from_dict(
        {
            "model": "test_cnn_ensemble",
            "model_kwargs": {"members": 2},
            "out": str(tmp_path),
            "data": {"task": "binary", "size": 32, "hu_window": [0.0, 1.0]},
        },
        training=False,
    )
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    save_tensors(stack_members([m.state_dict() for m in members]), tmp_path / "model.safetensors")
    det = load_detector(tmp_path)
    assert det.info.name == "test_cnn_ensemble" and det.spec.kind == "2d" and det.spec.size == 32
    det.precision = "fp32"
    crops = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    p, _ = det.score_images(crops)
    with torch.no_grad():
        want = ProbabilityMean(members)(torch.from_numpy(crops)[:, None]).exp()[:, 1].double().numpy()
    np.testing.assert_allclose(p, want, rtol=1e-5)
    (tmp_path / "config.json").write_text(json.dumps({**cfg.to_dict(), "model_kwargs": {"members": 3}}))
    from medforensics.errors import InputError

    with pytest.raises(InputError, match="weights do not fit"):
        load_detector(tmp_path)


def test_cnn_ensemble_trains_end_to_end_and_reloads(tmp_path: Path) -> None:
    """Trained directly (the averaged network fitted as one), the ensemble learns a learnable task and
    its folder reloads to the same outputs: what ``medforensics benchmark`` runs for ``cnn_ensemble``."""
    from medforensics.train import config_from_dict, train
    from medforensics.train.checkpoint import load_trained
    from tests.train.test_loop import tiny_source

    cfg = config_from_dict(
        {
            "model": "test_cnn_ensemble",
            "model_kwargs": {"members": 2},
            "out": str(tmp_path / "run"),
            "epochs": 8,
            "batch_size": 8,
            "lr": 1e-2,
            "early_stopping_patience": 50,
            "data": {"size": 32, "task": "binary"},
        }
    )
    res = train(cfg, tiny_source(labels=("TB", "FM")))
    assert res.metrics["val"]["operating_point"]["roc_auc"] >= 0.9
    model, _, _ = load_trained(res.out)
    assert isinstance(model, ProbabilityMean) and len(model.members) == 2
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    torch.testing.assert_close(p.sum(1), torch.ones(4))
