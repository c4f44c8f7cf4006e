"""The anomaly detector is fitted on real images only and must flag an alteration it never saw."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medforensics.errors import ConfigError
from medforensics.models import create_model
from tests.features.test_features import _ct_like


def test_flags_unseen_alterations_above_every_real_image() -> None:
    real = _ct_like(40, 48, seed=0)[:, None]
    held_out = _ct_like(10, 48, seed=1)[:, None]
    model = create_model("test_anomaly_gaussian").fit(real, np.zeros(len(real), int))
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


def test_needs_enough_real_samples_and_binary() -> None:
    with pytest.raises(ConfigError, match="authentic"):
        create_model("anomaly_gaussian").fit(_ct_like(3, 32)[:, None], np.zeros(3, int))
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("anomaly_gaussian", num_classes=3)
