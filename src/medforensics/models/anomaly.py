"""Anomaly detector trained on authentic images only: Gaussian density of forensic features (PaDiM-style).

Fit: standardise the forensic features of real samples, estimate mean and a shrunk (Ledoit-Wolf) covariance.
Score: the Mahalanobis distance of a sample's features. It never sees an attack, so it can flag attacks
unseen in training. ``predict_proba`` maps the distance to a pseudo-probability with a logistic centred on
the 99th percentile of the training distances (calibrate on validation data for a true probability).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.covariance import LedoitWolf

from medforensics.errors import ConfigError
from medforensics.models.classical import FeatureModel
from medforensics.models.registry import register_model


class GaussianAnomalyDetector(FeatureModel):
    """Mahalanobis distance to the real-data feature distribution; ``num_classes`` must be 2."""

    family = "anomaly"

    def __init__(self, num_classes: int = 2, min_real: int = 8) -> None:
        if num_classes != 2:
            raise ConfigError("the anomaly detector scores real vs not-real only (num_classes=2)")
        super().__init__(2)
        self.min_real = min_real
        self.state: dict[str, NDArray[Any]] = {}

    def fit_features(
        self, f: NDArray[np.floating], y: NDArray[np.integer] | None = None
    ) -> GaussianAnomalyDetector:
        """Fit on the rows with label 0 (authentic); all rows when ``y`` is None."""
        f = np.asarray(f, dtype=np.float64)
        real = f if y is None else f[np.asarray(y) == 0]
        if len(real) < self.min_real:
            raise ConfigError(
                f"the anomaly detector needs >= {self.min_real} authentic samples, got {len(real)}"
            )
        mu, sd = real.mean(0), real.std(0) + 1e-6
        z = (real - mu) / sd
        lw = LedoitWolf().fit(z)
        self.state = {"mu": mu, "sd": sd, "centre": lw.location_, "precision": lw.precision_}
        d = self.score_features(f if y is None else real, _check=False)
        q50, q99 = np.percentile(d, [50, 99])
        self.state["scale"] = np.array([q99, max(q99 - q50, 1e-6)])
        self.fitted = True
        return self

    def score_features(self, f: NDArray[np.floating], _check: bool = True) -> NDArray[np.float64]:
        """Mahalanobis distance per row (higher = more anomalous)."""
        if _check:
            self._check_fitted()
        s = self.state
        z = (np.asarray(f, dtype=np.float64) - s["mu"]) / s["sd"] - s["centre"]
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", z, s["precision"], z), 0.0))

    def score(self, x: NDArray[np.floating]) -> NDArray[np.float64]:
        """Anomaly score of image arrays."""
        from medforensics.features import extract_features

        return self.score_features(extract_features(x))

    def predict_proba_features(self, f: NDArray[np.floating]) -> NDArray[np.float64]:
        d = self.score_features(f)
        q99, spread = self.state["scale"]
        p = 1.0 / (1.0 + np.exp(-np.clip((d - q99) / spread, -50, 50)))
        return np.stack([1 - p, p], 1)

    def state_dict(self) -> dict[str, NDArray[Any]]:
        self._check_fitted()
        return dict(self.state)

    def load_state_dict(self, state: dict[str, NDArray[Any]]) -> None:
        missing = {"mu", "sd", "centre", "precision", "scale"} - set(state)
        if missing:
            raise ConfigError(f"anomaly detector state lacks {sorted(missing)}")
        self.state = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
        self.fitted = True


@register_model("anomaly_gaussian", input_kind="features", input_size=64, family="anomaly")
def anomaly_gaussian(in_channels: int = 1, num_classes: int = 2) -> GaussianAnomalyDetector:
    """Gaussian density (Ledoit-Wolf) of forensic features of real images; score = Mahalanobis distance."""
    return GaussianAnomalyDetector(num_classes)


@register_model("test_anomaly_gaussian", input_kind="features", input_size=32, family="anomaly")
def test_anomaly_gaussian(in_channels: int = 1, num_classes: int = 2) -> GaussianAnomalyDetector:
    """Twin of ``anomaly_gaussian`` for tests."""
    return GaussianAnomalyDetector(num_classes, min_real=4)
