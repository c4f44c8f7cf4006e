"""Anomaly detectors trained on authentic images only; they never see an attack.

- ``anomaly_gaussian`` (PaDiM-style): the Mahalanobis distance of a sample's forensic features to their
  Gaussian density (Ledoit-Wolf covariance) over real samples.
- ``anomaly_residual`` (a denoising residual, after Back-in-Time Diffusion's idea with a linear predictor
  instead of a diffusion model): a pixel predictor is learned on real images; a sample's score is how much
  less prediction residual (scanner noise) it carries than real images do, in its centre against its own
  surround and overall (:mod:`medforensics.features.prediction`). Deficits only count: in-painting,
  synthesis and smoothing remove noise; more noise than usual is not evidence of tampering. The centre is
  the crop's: crops are cut around a candidate (a data set's label location, a scan's candidate).

``predict_proba`` maps a score to a pseudo-probability with a logistic centred on the 99th percentile of
the training scores (calibrate on validation data for a true probability).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.covariance import LedoitWolf

from medforensics.errors import ConfigError, InputError
from medforensics.models.classical import FeatureModel
from medforensics.models.registry import register_model


class AnomalyDetector(FeatureModel):
    """Shared part: binary only, a fit on authentic rows, the logistic map of scores, array state."""

    family = "anomaly"
    state_keys: frozenset[str] = frozenset()

    def __init__(self, num_classes: int = 2, min_real: int = 8) -> None:
        if num_classes != 2:
            raise ConfigError("the anomaly detector scores real vs not-real only (num_classes=2)")
        super().__init__(2)
        self.min_real = min_real
        self.state: dict[str, NDArray[Any]] = {}

    def _real_rows(self, f: NDArray[Any], y: NDArray[np.integer] | None) -> NDArray[Any]:
        real = f if y is None else f[np.asarray(y) == 0]
        if len(real) < self.min_real:
            raise ConfigError(
                f"the anomaly detector needs >= {self.min_real} authentic samples, got {len(real)}"
            )
        return real

    def features(self, x: NDArray[np.floating]) -> NDArray[np.float32]:
        """The feature rows this detector scores, for image arrays (any sample layout)."""
        from medforensics.features import extract_features

        return extract_features(x)

    def score_features(self, f: NDArray[np.floating], _check: bool = True) -> NDArray[np.float64]:
        raise NotImplementedError

    def score(self, x: NDArray[np.floating]) -> NDArray[np.float64]:
        """Anomaly score of image arrays (higher = more anomalous)."""
        return self.score_features(self.features(x))

    def predict_proba(self, x: NDArray[np.floating]) -> NDArray[np.float64]:
        return self.predict_proba_features(self.features(x))

    def _set_scale(self, real_features: NDArray[np.floating]) -> None:
        d = self.score_features(real_features, _check=False)
        q50, q99 = np.percentile(d, [50, 99])
        self.state["scale"] = np.array([q99, max(q99 - q50, 1e-6)])
        self.fitted = True

    def predict_proba_features(self, f: NDArray[np.floating]) -> NDArray[np.float64]:
        d = self.score_features(f)
        q99, spread = self.state["scale"]
        p = 1.0 / (1.0 + np.exp(-np.clip((d - q99) / spread, -50, 50)))
        return np.stack([1 - p, p], 1)

    def state_dict(self) -> dict[str, NDArray[Any]]:
        self._check_fitted()
        return dict(self.state)

    def load_state_dict(self, state: dict[str, NDArray[Any]]) -> None:
        missing = (self.state_keys | {"scale"}) - set(state)
        if missing:
            raise ConfigError(f"anomaly detector state lacks {sorted(missing)}")
        self.state = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
        self.fitted = True


class GaussianAnomalyDetector(AnomalyDetector):
    """Mahalanobis distance to the real-data feature distribution; ``num_classes`` must be 2."""

    state_keys = frozenset({"mu", "sd", "centre", "precision"})

    def fit_features(
        self, f: NDArray[np.floating], y: NDArray[np.integer] | None = None
    ) -> GaussianAnomalyDetector:
        """Fit on the rows with label 0 (authentic); all rows when ``y`` is None."""
        real = self._real_rows(np.asarray(f, dtype=np.float64), y)
        mu, sd = real.mean(0), real.std(0) + 1e-6
        z = (real - mu) / sd
        lw = LedoitWolf().fit(z)
        self.state = {"mu": mu, "sd": sd, "centre": lw.location_, "precision": lw.precision_}
        self._set_scale(real)
        return self

    def score_features(self, f: NDArray[np.floating], _check: bool = True) -> NDArray[np.float64]:
        """Mahalanobis distance per row (higher = more anomalous)."""
        if _check:
            self._check_fitted()
        s = self.state
        z = (np.asarray(f, dtype=np.float64) - s["mu"]) / s["sd"] - s["centre"]
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", z, s["precision"], z), 0.0))


class ResidualAnomalyDetector(AnomalyDetector):
    """Noise deficit of a pixel predictor's residual against real images; ``num_classes`` must be 2."""

    state_keys = frozenset({"predictor", "mu", "sd"})

    def __init__(self, num_classes: int = 2, min_real: int = 8, radius: int = 2, seed: int = 0) -> None:
        super().__init__(num_classes, min_real)
        self.radius, self.seed = radius, seed

    def features(self, x: NDArray[np.floating]) -> NDArray[np.float32]:
        from medforensics.features import sized_planes
        from medforensics.features.prediction import deficit_features, prediction_residual

        if "predictor" not in self.state:
            raise ConfigError(f"{type(self).__name__} used before fit")
        w = self.state["predictor"]
        return np.concatenate([deficit_features(prediction_residual(s, w)) for s in sized_planes(x)], 1)

    def fit(self, x: NDArray[np.floating], y: NDArray[np.integer] | None = None) -> ResidualAnomalyDetector:
        """Learn the predictor, then the features' spread, on the authentic rows (all when ``y`` is None)."""
        from medforensics.features import planes
        from medforensics.features.prediction import fit_predictor

        real = self._real_rows(np.asarray(x), y)
        self.state = {"predictor": fit_predictor(np.concatenate(planes(real)), self.radius, self.seed)}
        return self.fit_features(self.features(real))

    def fit_features(
        self, f: NDArray[np.floating], y: NDArray[np.integer] | None = None
    ) -> ResidualAnomalyDetector:
        """The features' mean and spread over the authentic rows (the predictor must be fitted)."""
        if "predictor" not in self.state:
            raise ConfigError("the residual anomaly detector learns its predictor from images: use fit")
        real = self._real_rows(np.asarray(f, dtype=np.float64), y)
        self.state.update(mu=real.mean(0), sd=real.std(0) + 1e-6)
        self._set_scale(real)
        return self

    def load_state_dict(self, state: dict[str, NDArray[Any]]) -> None:
        """Stored arrays; InputError unless they can be this detector's (shapes agree, values finite)."""
        from medforensics.features.prediction import DEFICIT_NAMES

        super().load_state_dict(state)
        w, mu, sd = (self.state[k] for k in ("predictor", "mu", "sd"))
        side = np.sqrt(w.size)
        width = len(DEFICIT_NAMES)
        reason = (
            "predictor must be (2r+1)^2 weights"
            if w.ndim != 1 or side != int(side) or int(side) % 2 == 0
            else f"mu and sd must hold the same multiple of {width} values"
            if mu.ndim != 1 or mu.shape != sd.shape or mu.size % width or mu.size == 0
            else "sd must be positive"
            if not (sd > 0).all()
            else "the state holds NaN or infinite values"
            if not all(np.isfinite(v).all() for v in self.state.values())
            else None
        )
        if reason:
            self.fitted = False
            raise InputError(f"weights do not fit the model ({reason})")

    def score_features(self, f: NDArray[np.floating], _check: bool = True) -> NDArray[np.float64]:
        """Root sum of squared standardised deficits (features below the real mean) per row."""
        if _check:
            self._check_fitted()
        z = (np.asarray(f, dtype=np.float64) - self.state["mu"]) / self.state["sd"]
        return np.sqrt((np.minimum(z, 0.0) ** 2).sum(1))


@register_model("anomaly_gaussian", input_kind="features", input_size=64, family="anomaly")
def anomaly_gaussian(in_channels: int = 1, num_classes: int = 2) -> GaussianAnomalyDetector:
    """Gaussian density (Ledoit-Wolf) of forensic features of real images; score = Mahalanobis distance."""
    return GaussianAnomalyDetector(num_classes)


@register_model("test_anomaly_gaussian", input_kind="features", input_size=32, family="anomaly")
def test_anomaly_gaussian(in_channels: int = 1, num_classes: int = 2) -> GaussianAnomalyDetector:
    """Twin of ``anomaly_gaussian`` for tests."""
    return GaussianAnomalyDetector(num_classes, min_real=4)


#: Crop side (px) of ``anomaly_residual``: its surround (beyond 35 % of the side from the centre, 23 mm at
#: 0.7 mm pixels) must lie outside the largest edit, a removal's 36 mm hole; at 64 px it did not (16 mm).
RESIDUAL_CROP = 96


@register_model("anomaly_residual", input_kind="features", input_size=RESIDUAL_CROP, family="anomaly")
def anomaly_residual(in_channels: int = 1, num_classes: int = 2) -> ResidualAnomalyDetector:
    """Noise deficit of a linear pixel predictor's residual (learned on real images), centre vs surround."""
    return ResidualAnomalyDetector(num_classes)


@register_model("test_anomaly_residual", input_kind="features", input_size=32, family="anomaly")
def test_anomaly_residual(in_channels: int = 1, num_classes: int = 2) -> ResidualAnomalyDetector:
    """Twin of ``anomaly_residual`` for tests."""
    return ResidualAnomalyDetector(num_classes, min_real=4)
