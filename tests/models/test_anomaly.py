"""The anomaly detectors are fitted on real images only and must flag alterations they never saw."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medforensics.errors import ConfigError, InputError
from medforensics.models import create_model
from tests.features.test_features import _ct_like

DETECTORS = ["test_anomaly_gaussian", "test_anomaly_residual"]


@pytest.mark.parametrize("name", DETECTORS)
def test_flags_unseen_alterations_above_every_real_image(name: str) -> None:
    real = _ct_like(40, 48, seed=0)[:, None]
    held_out = _ct_like(10, 48, seed=1)[:, None]
    model = create_model(name).fit(real, np.zeros(len(real), int))
    inpainted = held_out[:3].copy()
    for i in range(3):
        inpainted[i, 0, 14:34, 14:34] = ndimage.gaussian_filter(held_out[i, 0], 2.5)[14:34, 14:34]
    pasted = held_out[3:6].copy()
    pasted[:, :, 16:32, 16:32] = 0.95  # a bright blob with no noise at all
    scores_real = model.score(held_out[6:])
    assert model.score(inpainted).min() > scores_real.max()
    assert model.score(pasted).min() > scores_real.max()
    p = model.predict_proba(np.concatenate([held_out[6:], inpainted]))
    assert p[4:, 1].min() > p[:4, 1].max()


def test_fit_uses_only_authentic_rows_and_state_round_trips() -> None:
    x = _ct_like(30, 32, seed=2)[:, None]
    y = np.r_[np.zeros(20, int), np.ones(10, int)]
    x[20:] += 0.5  # "fake" rows far away: must not enter the density
    a = create_model("test_anomaly_gaussian").fit(x, y)
    b = create_model("test_anomaly_gaussian")
    b.load_state_dict(a.state_dict())
    np.testing.assert_allclose(a.score(x), b.score(x))
    assert a.score(x[20:]).min() > a.score(x[:20]).max()


@pytest.mark.parametrize("name", ["anomaly_gaussian", "anomaly_residual"])
def test_needs_enough_real_samples_and_binary(name: str) -> None:
    with pytest.raises(ConfigError, match="authentic"):
        create_model(name).fit(_ct_like(3, 32)[:, None], np.r_[0, 0, 1])
    with pytest.raises(ConfigError, match="num_classes"):
        create_model(name, num_classes=3)


def test_residual_detector_learns_from_authentic_rows_only_and_round_trips() -> None:
    x = _ct_like(30, 32, seed=2)[:, None]
    x[20:, 0] = ndimage.gaussian_filter(x[20:, 0], (0, 1.5, 1.5))  # "fake" rows: smoothed, noise gone
    y = np.r_[np.zeros(20, int), np.ones(10, int)]
    a = create_model("test_anomaly_residual").fit(x, y)
    only_real = create_model("test_anomaly_residual").fit(x[:20], np.zeros(20, int))
    for key, value in only_real.state_dict().items():
        np.testing.assert_array_equal(a.state_dict()[key], value)
    b = create_model("test_anomaly_residual")
    b.load_state_dict(a.state_dict())
    np.testing.assert_allclose(a.score(x), b.score(x))
    assert a.score(x[20:]).min() > a.score(x[:20]).max()


def test_residual_detector_counts_missing_noise_not_extra_noise() -> None:
    real = _ct_like(40, 48, seed=3)[:, None]
    model = create_model("test_anomaly_residual").fit(real, np.zeros(40, int))
    held_out = _ct_like(10, 48, seed=4)[:, None]
    noisier = held_out + np.random.default_rng(5).normal(0, 0.03, held_out.shape).astype(np.float32)
    quieter = 0.5 * (held_out + _ct_like(10, 48, seed=4)[:, None])  # same anatomy: noise halved
    quieter = ndimage.gaussian_filter(quieter, (0, 0, 1, 1))
    assert model.score(noisier).max() <= model.score(held_out).max() + 1e-6
    assert model.score(quieter).min() > model.score(held_out).max()


def test_residual_detector_refuses_state_that_cannot_be_its_own() -> None:
    good = create_model("test_anomaly_residual").fit(_ct_like(8, 32)[:, None], np.zeros(8, int))
    state = good.state_dict()
    for key, bad, why in [
        ("predictor", np.zeros(24), "predictor"),
        ("mu", np.zeros(5), "multiple"),
        ("sd", -np.ones(7), "positive"),
        ("mu", np.full(7, np.nan), "NaN"),
    ]:
        m = create_model("test_anomaly_residual")
        with pytest.raises(InputError, match=why):
            m.load_state_dict({**state, key: bad})
        assert not m.fitted
    with pytest.raises(ConfigError, match="before fit"):
        create_model("test_anomaly_residual").score(_ct_like(2, 32)[:, None])
    with pytest.raises(InputError, match="at least 16 px"):
        good.score(np.zeros((2, 1, 12, 12), np.float32))
    with pytest.raises(ConfigError, match="use fit"):
        create_model("test_anomaly_residual").fit_features(np.zeros((8, 7)), np.zeros(8, int))
