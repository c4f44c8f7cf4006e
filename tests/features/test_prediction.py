"""The learned pixel predictor leaves the scanner noise as residual; deficit stats find where it is gone."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medforensics.errors import InputError
from medforensics.features.prediction import (
    DEFICIT_NAMES,
    deficit_features,
    fit_predictor,
    prediction_residual,
)
from tests.features.test_features import _ct_like


def test_predictor_keeps_noise_and_predicts_smooth_anatomy() -> None:
    noisy = _ct_like(20, 48, seed=0)  # smooth anatomy + white noise of sd 0.03
    w = fit_predictor(noisy)
    assert w.shape == (25,)  # 24 neighbours and a bias
    res = prediction_residual(noisy, w)
    assert res.shape == (20, 44, 44)
    assert 0.03 <= res.std() <= 0.036  # the noise is what remains, not the anatomy
    clean = ndimage.gaussian_filter(_ct_like(5, 48, seed=1), (0, 3, 3))  # noise-free anatomy
    assert prediction_residual(clean, w).std() < 0.2 * res.std()
    # deterministic under its seed
    np.testing.assert_array_equal(w, fit_predictor(noisy))


def test_deficit_features_see_a_quiet_centre_and_a_quiet_image() -> None:
    rng = np.random.default_rng(2)
    res = rng.normal(0, 1, (3, 60, 60))
    res[1, 12:48, 12:48] *= 0.1  # in-painted centre: a tenth of the noise
    res[2] *= 0.1  # fully synthetic: quiet everywhere
    f = deficit_features(res)
    assert f.shape == (3, len(DEFICIT_NAMES))
    col = {n: f[:, i] for i, n in enumerate(DEFICIT_NAMES)}
    for kind in ("mad", "std"):
        assert abs(col[f"{kind}_centre_vs_ring"][0]) < 0.3
        assert col[f"{kind}_centre_vs_ring"][1] < np.log(0.1) + 0.3
        assert abs(col[f"{kind}_centre_vs_ring"][2]) < 0.3
        assert col[f"{kind}_median"][2] < col[f"{kind}_median"][0] - 2.0


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(InputError, match="predictor weights"):
        prediction_residual(np.zeros((1, 20, 20)), np.zeros(10))
    with pytest.raises(InputError, match="px"):
        fit_predictor(np.zeros((1, 4, 4)))
    with pytest.raises(InputError, match=">= 18 px"):
        deficit_features(np.zeros((1, 12, 12)))
